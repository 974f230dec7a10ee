"""cgroup v2 on the host: every container in its own cgroup, pause/resume, kill --all, ps, update, events, and a
clear error for a limit whose controller the host lacks. Limits themselves are tested in the VM (tests/vm)."""
import json
import os
import subprocess
import tempfile
import time

import pytest

from helpers import wait_until

pytestmark = pytest.mark.pea_only

COUNTER = ("sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.02; done")


def cgroup2_root():
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.split(" - ", 1)
            if right.startswith("cgroup2 ") and left.split()[3] == "/":
                return left.split()[4]
    pytest.skip("no cgroup2 hierarchy mounted")


def container_cgroup(pid):
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            if line.startswith("0::"):
                return cgroup2_root() + line.strip()[3:]
    raise AssertionError("no cgroup2 line")


def read_count(bundle):
    try:
        with open(os.path.join(bundle.rootfs, "tmp", "count")) as f:
            return int(f.read().strip() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def test_container_gets_its_own_cgroup_and_loses_it_on_delete(run, bundle, cid):
    bundle.args("peatest", "sleep", "100")
    run.ok("create", "--bundle", bundle, cid)
    pid = run.state(cid)["pid"]
    path = container_cgroup(pid)
    assert path.endswith(f"/pea/{cid}")
    assert open(os.path.join(path, "cgroup.procs")).read().split() == [str(pid)]
    run.ok("delete", "--force", cid)
    assert not os.path.exists(path)


def test_delete_removes_the_cgroups_a_container_made_in_its_own(run, bundle, cid):
    """A container with a cgroup namespace (systemd inside, a nested runtime) makes cgroups below its own."""
    bundle.args("peatest", "sleep", "100")
    run.ok("run", "--detach", "--bundle", bundle, cid)
    path = container_cgroup(run.state(cid)["pid"])
    os.makedirs(os.path.join(path, "inner", "deeper"))
    run.ok("delete", "--force", cid)
    assert not os.path.exists(path)


def test_cgroups_path_is_honoured(run, bundle, cid):
    bundle.config["linux"]["cgroupsPath"] = f"/pea-it/{cid}"
    bundle.args("peatest", "sleep", "100")
    run.ok("create", "--bundle", bundle, cid)
    assert container_cgroup(run.state(cid)["pid"]) == cgroup2_root() + f"/pea-it/{cid}"
    run.ok("delete", "--force", cid)
    assert not os.path.exists(cgroup2_root() + f"/pea-it/{cid}")
    assert not os.path.exists(cgroup2_root() + "/pea-it"), "the parent pea made for it was left behind"


def test_a_parent_pea_did_not_make_stays(run, bundle, cid):
    parent = cgroup2_root() + f"/pea-it-{cid}"
    os.mkdir(parent)
    try:
        bundle.config["linux"]["cgroupsPath"] = f"/pea-it-{cid}/c"
        bundle.args("peatest", "sleep", "100")
        run.ok("create", "--bundle", bundle, cid)
        run.ok("delete", "--force", cid)
        assert os.listdir(parent) and not os.path.exists(parent + "/c")
    finally:
        os.rmdir(parent)


def test_pause_freezes_and_resume_thaws(run, bundle, cid, wait_for_status):
    bundle.args(*COUNTER)
    run.ok("run", "--detach", "--bundle", bundle, cid)
    wait_until(lambda: read_count(bundle) > 2, what="the counter to start")
    run.ok("pause", cid)
    assert run.state(cid)["status"] == "paused"
    frozen = read_count(bundle)
    time.sleep(0.3)
    assert read_count(bundle) == frozen, "the counter moved while paused"
    assert run("pause", cid).code != 0, "pausing a paused container must fail"
    run.ok("resume", cid)
    wait_for_status(cid, "running")
    wait_until(lambda: read_count(bundle) > frozen + 2, what="the counter to go on")
    assert "not paused" in run("resume", cid).err


def test_kill_all_reaches_a_process_that_left_the_process_group(run, bundle, cid, wait_for_status):
    bundle.args("sh", "-c", "setsid sh -c 'echo $$ > /tmp/escaped; exec sleep 100' & exec sleep 100")
    run.ok("run", "--detach", "--bundle", bundle, cid)
    escaped = os.path.join(bundle.rootfs, "tmp", "escaped")
    wait_until(lambda: os.path.exists(escaped) and open(escaped).read().strip(), what="the escaped process")
    pids = json.loads(run.ok("ps", "--format", "json", cid).out)
    assert len(pids) == 2
    init = run.state(cid)["pid"]
    assert init in pids
    table = run.ok("ps", cid).out.splitlines()
    assert "PID" in table[0] and len(table) == 3
    run.ok("kill", "--all", cid, "KILL")
    wait_for_status(cid, "stopped")
    for pid in pids:
        wait_until(lambda: not os.path.exists(f"/proc/{pid}") or
                   open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z",
                   what=f"process {pid} to die")


def has_controller(name):
    return name in open(os.path.join(cgroup2_root(), "cgroup.controllers")).read().split()


def test_a_limit_without_its_controller_is_a_clear_error(run, bundle, cid, assert_no_leaks):
    if has_controller("memory"):
        pytest.skip("this host has the memory controller (the VM tests cover limits)")
    bundle.config["linux"]["resources"] = {"memory": {"limit": 64 << 20}}
    bundle.args("true")
    r = run("create", "--bundle", bundle, cid)
    assert r.code == 1
    lines = r.err.strip().splitlines()
    assert len(lines) == 1
    assert 'needs the "memory" controller, which is not available' in lines[0]
    assert_no_leaks()


def test_update_and_events(run, bundle, cid):
    bundle.args("peatest", "sleep", "100")
    run.ok("run", "--detach", "--bundle", bundle, cid)
    event = json.loads(run.ok("events", "--stats", cid).out)
    assert event["type"] == "stats" and event["id"] == cid
    assert "cpu" in event["data"]
    if not has_controller("pids"):
        r = run("update", "--pids-limit", "10", cid)
        assert r.code == 1 and '"pids" controller' in r.err
    assert run("update", "--pids-limit", "ten", cid).code == 1


def run_with_devices(run, bundle, cid, devices, script):
    caps = bundle.config["process"].setdefault("capabilities", {})
    for kind in ("bounding", "effective", "permitted"):
        caps[kind] = sorted(set(caps.get(kind, [])) | {"CAP_MKNOD"})
    bundle.config["linux"].setdefault("resources", {})["devices"] = devices
    bundle.args("sh", "-c", script)
    return run("run", "--bundle", bundle, cid)


def test_device_filter_denies_what_the_rules_do_not_allow(run, bundle, cid):
    r = run_with_devices(run, bundle, cid, [{"allow": False, "access": "rwm"}],
                         "mknod /tmp/console c 5 1 && mknod /tmp/null c 1 3 && echo x > /tmp/null && echo null-ok;"
                         " echo x > /tmp/console")
    assert "null-ok" in r.out, r.err
    assert r.code != 0 and "Operation not permitted" in r.out + r.err


def test_device_filter_allows_a_listed_device(run, bundle, cid):
    r = run_with_devices(run, bundle, cid,
                         [{"allow": False, "access": "rwm"},
                          {"allow": True, "type": "c", "major": 5, "minor": 1, "access": "rw"}],
                         "mknod /tmp/console c 5 1 && : < /tmp/console && echo console-ok")
    assert r.code == 0 and "console-ok" in r.out, r.err


def test_kill_all_of_a_stopped_container_reaches_what_its_init_left(run, bundle, cid, wait_for_status):
    """Without a PID namespace of its own a container's children outlive its init; `kill --all` of the stopped
    container still signals its cgroup (as runc: containerd's shim does so for pods sharing a PID namespace)."""
    bundle.config["linux"]["namespaces"] = [n for n in bundle.config["linux"]["namespaces"] if n["type"] != "pid"]
    bundle.args("sh", "-c", "sleep 100 & echo $! > /tmp/left")
    run.ok("run", "--detach", "--bundle", bundle, cid)
    wait_for_status(cid, "stopped")
    left = os.path.join(bundle.rootfs, "tmp", "left")
    wait_until(lambda: os.path.exists(left) and open(left).read().strip(), what="the child's pid")
    pid = int(open(left).read())
    assert open(f"/proc/{pid}/cmdline").read().startswith("sleep")
    assert "container not running" in run("kill", cid, "KILL").err  # the init alone: gone
    run.ok("kill", "--all", cid, "KILL")
    wait_until(lambda: not os.path.exists(f"/proc/{pid}") or
               open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z", what=f"process {pid} to die")
    run.ok("kill", "--all", cid, "KILL")  # nothing left: still fine


@pytest.mark.parametrize("is_sitter_alive", [True, False], ids=["leaf-populated", "leaf-empty"])
def test_the_leaf_pea_moves_its_callers_into_goes_with_the_last_container(run, bundle, cid, is_sitter_alive):
    """Nested CI (field notes 7): pea runs in a cgroup that holds processes, so to hand a domain controller down it
    moves them into a leaf, pea-leaf. Deleting the last container there removes the leaf: an empty one at once, a
    populated one after giving its processes back to the cgroup they came from."""
    root = cgroup2_root()
    if not has_controller("hugetlb") or not os.path.isdir("/sys/kernel/mm/hugepages/hugepages-2048kB"):
        pytest.skip("needs the hugetlb controller with 2 MB pages, the domain controller this host has")
    root_subtree = open(os.path.join(root, "cgroup.subtree_control")).read().split()
    outer = os.path.join(root, f"pea-it-{cid}")
    leaf = os.path.join(outer, "pea-leaf")
    os.mkdir(outer)
    sitter = subprocess.Popen(["sleep", "100"])
    try:
        with open(os.path.join(outer, "cgroup.procs"), "w") as f:
            f.write(str(sitter.pid))
        bundle.config["linux"]["cgroupsPath"] = f"/pea-it-{cid}/c"
        bundle.config["linux"]["resources"] = {"hugepageLimits": [{"pageSize": "2MB", "limit": 1 << 30}]}
        bundle.args("peatest", "sleep", "100")
        # The runtime starts inside outer, beside the sitter.
        enter = 'echo $$ > "$0/cgroup.procs" && exec "$@"'
        # Files, not pipes: the container keeps the runtime's stdio.
        with tempfile.TemporaryFile("w+") as err:
            r = subprocess.run(["sh", "-c", enter, outer, *run.argv("run", "--detach", "--bundle", bundle, cid)],
                               env=run.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                               timeout=30)
            err.seek(0)
            assert r.returncode == 0, err.read()
        assert open(os.path.join(leaf, "cgroup.procs")).read().split() == [str(sitter.pid)], "no evacuation"
        assert "hugetlb" in open(os.path.join(outer, "cgroup.subtree_control")).read()
        if not is_sitter_alive:
            sitter.kill()
            sitter.wait()
            wait_until(lambda: not open(os.path.join(leaf, "cgroup.procs")).read(), what="the leaf to empty")
        run.ok("delete", "--force", cid)
        assert not os.path.exists(leaf), "pea-leaf left behind"
        assert os.listdir(outer) and not any(os.path.isdir(os.path.join(outer, e)) for e in os.listdir(outer))
        if is_sitter_alive:
            assert open(os.path.join(outer, "cgroup.procs")).read().split() == [str(sitter.pid)]
            assert open(os.path.join(outer, "cgroup.subtree_control")).read().strip() == ""
    finally:
        sitter.kill()
        sitter.wait()
        for path in (os.path.join(outer, "c"), leaf, outer):
            if os.path.isdir(path):
                with open(os.path.join(path, "cgroup.procs")) as f:
                    for pid in f.read().split():
                        with open(os.path.join(root, "cgroup.procs"), "w") as to_root:
                            to_root.write(pid)
                os.rmdir(path)
        if "hugetlb" not in root_subtree:
            try:
                with open(os.path.join(root, "cgroup.subtree_control"), "w") as f:
                    f.write("-hugetlb")
            except OSError:
                pass  # another test's cgroup uses it meanwhile
