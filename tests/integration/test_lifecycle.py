"""create → state → start → kill → delete, as containerd, conmon and CRI-O drive it."""
import json
import os
import re

import pytest

from helpers import claim_child, read, release_child, state_dirs, wait_until

STATE_KEYS = {"ociVersion", "id", "pid", "status", "bundle", "rootfs", "created", "owner"}
RFC3339_NANO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")
SLEEPER = ("peatest", "sleep", "100")
# PID 1 of a pid namespace ignores signals it has no handler for, so TERM needs a trap; /tmp/ready says it is set.
TERM_SLEEPER = ("sh", "-c", "trap 'exit 0' TERM; touch /tmp/ready; while :; do sleep 0.05; done")


def start_term_sleeper(run, bundle, cid):
    bundle.args(*TERM_SLEEPER)
    run.ok("create", "--bundle", bundle, cid)
    run.ok("start", cid)
    ready = os.path.join(bundle.rootfs, "tmp", "ready")
    wait_until(lambda: os.path.exists(ready), what="the container to install its TERM trap")


def test_full_lifecycle(run, bundle, cid, work_dir, wait_for_status):
    bundle.args(*SLEEPER)
    pid_file = os.path.join(work_dir, "pid")
    r = run("create", "--bundle", bundle, "--pid-file", pid_file, cid)
    assert r.code == 0, r.err
    assert r.err == ""

    r = run("state", cid)
    assert r.code == 0 and r.err == ""
    state = json.loads(r.out)
    assert state["status"] == "created"
    assert state["id"] == cid
    assert state["pid"] > 0
    assert read(pid_file) == str(state["pid"])
    assert os.path.exists(f"/proc/{state['pid']}")

    run.ok("start", cid)
    running = wait_for_status(cid, "running")
    assert running["pid"] == state["pid"]

    run.ok("kill", cid, "KILL")
    stopped = wait_for_status(cid, "stopped")
    assert stopped["pid"] == 0

    r = run("delete", cid)
    assert r.code == 0, r.err
    r = run("state", cid)
    assert r.code != 0
    assert "does not exist" in r.err
    assert not state_dirs(run.root)


def test_state_json_shape(run, bundle, cid):
    bundle.args(*SLEEPER)
    run.ok("create", "--bundle", bundle, cid)
    r = run("state", cid)
    assert r.err == ""
    state = json.loads(r.out)
    assert STATE_KEYS <= set(state), f"missing keys: {STATE_KEYS - set(state)}"
    assert "annotations" not in state, "annotations must be omitted when empty"
    assert set(state) <= STATE_KEYS | {"annotations"}
    assert isinstance(state["pid"], int)
    assert state["bundle"] == os.path.realpath(bundle.path)
    assert state["rootfs"] == os.path.realpath(bundle.rootfs)
    assert RFC3339_NANO_UTC.match(state["created"]), state["created"]
    assert isinstance(state["owner"], str)
    assert isinstance(state["ociVersion"], str) and state["ociVersion"]


def test_state_carries_annotations(run, bundle, cid):
    bundle.args(*SLEEPER)
    bundle.config["annotations"] = {"org.example.key": "value", "io.kubernetes.cri.container-type": "container"}
    run.ok("create", "--bundle", bundle, cid)
    assert run.state(cid)["annotations"] == bundle.config["annotations"]


@pytest.mark.pea_only
def test_created_has_nanoseconds(run, bundle, cid):
    bundle.args(*SLEEPER)
    run.ok("create", "--bundle", bundle, cid)
    created = run.state(cid)["created"]
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$", created), created


def test_user_process_waits_for_start(run, bundle, cid, wait_for_status):
    bundle.args("sh", "-c", "touch /tmp/started; exec peatest sleep 100")
    marker = os.path.join(bundle.rootfs, "tmp", "started")
    run.ok("create", "--bundle", bundle, cid)
    assert run.state(cid)["status"] == "created"
    assert not os.path.exists(marker), "the user process ran before start"
    run.ok("start", cid)
    wait_for_status(cid, "running")
    wait_until(lambda: os.path.exists(marker), what="the user process to run")


def test_init_is_reparented_to_the_callers_subreaper(run, bundle, cid):
    """After create returns, the init is our child (we are a subreaper, as a shim is), so we can reap it."""
    bundle.args(*SLEEPER)
    run.ok("create", "--bundle", bundle, cid)
    pid = run.state(cid)["pid"]
    with open(f"/proc/{pid}/stat") as f:
        ppid = int(f.read().rsplit(")", 1)[1].split()[1])
    assert ppid == os.getpid()
    claim_child(pid)
    run.ok("start", cid)
    run.ok("kill", cid, "KILL")
    try:
        _, status = os.waitpid(pid, 0)
    finally:
        release_child(pid)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == 9


def test_exited_container_reports_stopped(run, bundle, cid, wait_for_status):
    bundle.args("true")
    run.ok("create", "--bundle", bundle, cid)
    run.ok("start", cid)
    state = wait_for_status(cid, "stopped")
    assert state["pid"] == 0
    run.ok("delete", cid)


@pytest.mark.parametrize("signal", ["KILL", "SIGKILL", "9"])
def test_kill_accepts_every_spelling_of_sigkill(run, bundle, cid, wait_for_status, signal):
    bundle.args(*SLEEPER)
    run.ok("create", "--bundle", bundle, cid)
    run.ok("start", cid)
    r = run("kill", cid, signal)
    assert r.code == 0, r.err
    assert wait_for_status(cid, "stopped")["pid"] == 0


@pytest.mark.parametrize("signal", ["TERM", "SIGTERM", "15"])
def test_kill_term_reaches_a_handler(run, bundle, cid, wait_for_status, signal):
    start_term_sleeper(run, bundle, cid)
    r = run("kill", cid, signal)
    assert r.code == 0, r.err
    wait_for_status(cid, "stopped")


def test_kill_defaults_to_term(run, bundle, cid, wait_for_status):
    start_term_sleeper(run, bundle, cid)
    run.ok("kill", cid)
    wait_for_status(cid, "stopped")


def test_kill_a_created_container(run, bundle, cid, wait_for_status):
    bundle.args(*SLEEPER)
    run.ok("create", "--bundle", bundle, cid)
    run.ok("kill", cid, "KILL")
    wait_for_status(cid, "stopped")
    r = run("start", cid)
    assert r.code != 0, "start of a container whose init died must fail"
    run.ok("delete", cid)


def test_start_twice_fails(run, bundle, cid, wait_for_status):
    bundle.args(*SLEEPER)
    run.ok("create", "--bundle", bundle, cid)
    run.ok("start", cid)
    wait_for_status(cid, "running")
    r = run("start", cid)
    assert r.code != 0
    assert run.state(cid)["status"] == "running"


def test_delete_refuses_a_running_container(run, bundle, cid, wait_for_status):
    bundle.args(*SLEEPER)
    run.ok("create", "--bundle", bundle, cid)
    run.ok("start", cid)
    r = run("delete", cid)
    assert r.code != 0
    assert run.state(cid)["status"] == "running"


@pytest.mark.parametrize("started", [True, False], ids=["running", "created"])
def test_delete_force(run, bundle, cid, wait_for_status, started):
    bundle.args(*SLEEPER)
    run.ok("create", "--bundle", bundle, cid)
    pid = run.state(cid)["pid"]
    if started:
        run.ok("start", cid)
        wait_for_status(cid, "running")
    r = run("delete", "--force", cid)
    assert r.code == 0, r.err
    assert "does not exist" in run("state", cid).err
    wait_until(lambda: not os.path.exists(f"/proc/{pid}"), what="the init to be gone after delete --force")


def test_delete_force_of_a_stopped_container(run, bundle, cid, wait_for_status):
    bundle.args("true")
    run.ok("create", "--bundle", bundle, cid)
    run.ok("start", cid)
    wait_for_status(cid, "stopped")
    r = run("delete", "--force", cid)
    assert r.code == 0, r.err


def test_list_formats(run, bundle, cid, wait_for_status):
    bundle.args(*SLEEPER)
    run.ok("create", "--bundle", bundle, cid)
    pid = run.state(cid)["pid"]

    r = run.ok("list")
    lines = r.out.splitlines()
    assert lines[0].split()[:3] == ["ID", "PID", "STATUS"]
    row = [line for line in lines[1:] if line.split()[0] == cid]
    assert len(row) == 1
    assert row[0].split()[1:3] == [str(pid), "created"]

    r = run.ok("list", "--format", "json")
    entries = json.loads(r.out)
    assert [e["id"] for e in entries] == [cid]
    assert entries[0]["pid"] == pid and entries[0]["status"] == "created"
    assert entries[0]["bundle"] == os.path.realpath(bundle.path)

    r = run.ok("list", "--quiet")
    assert r.out == cid + "\n"


def test_list_empty_root(run):
    r = run.ok("list", "--format", "json")
    assert json.loads(r.out) in ([], None)
    assert run.ok("list", "--quiet").out == ""


def test_concurrent_creates_of_one_id(run, bundle, cid):
    """Four callers race to create the same id: exactly one wins, and the losers change nothing."""
    bundle.args(*SLEEPER)
    bundle.save()
    procs = [run.popen("create", "--bundle", bundle.path, cid) for _ in range(4)]
    codes = [p.wait(timeout=10) for p in procs]
    assert codes.count(0) == 1, f"exit codes {codes}"
    assert run.state(cid)["status"] == "created"
    assert run.ok("list", "--quiet").out == cid + "\n"


def test_concurrent_commands_on_one_container(run, bundle, cid, wait_for_status):
    """state, list and exec running alongside each other on one container all succeed."""
    bundle.args(*SLEEPER)
    run.ok("create", "--bundle", bundle, cid)
    run.ok("start", cid)
    wait_for_status(cid, "running")
    procs = [run.popen(*args) for args in [("state", cid), ("list",), ("exec", cid, "true"), ("state", cid),
                                            ("exec", cid, "true"), ("list", "--format", "json")]]
    for p in procs:
        assert p.wait(timeout=10) == 0, read(p.err_path)
    assert run.state(cid)["status"] == "running"


@pytest.mark.parametrize("flag", ["--no-pivot", "--no-new-keyring"])
def test_create_flags(run, bundle, cid, wait_for_status, flag):
    bundle.args("sh", "-c", "echo flag-ok")
    r = run("run", flag, "--bundle", bundle, cid)
    assert (r.code, r.out) == (0, "flag-ok\n"), r.err


def test_container_inherits_no_ignored_internal_signal(run, bundle, cid, work_dir):
    """glibc's posix_spawn leaves its internal signals 32 and 33 ignored in the program it starts, and glibc's
    signal() cannot reset them: a caller that spawns pea so (containerd-shim-pea-v2's start did) must still give the
    container a process that ignores nothing."""
    bundle.args("cat", "/proc/self/status")
    out = os.path.join(work_dir, "status")
    with open(out, "w") as f, open(os.devnull) as null:
        actions = [(os.POSIX_SPAWN_DUP2, null.fileno(), 0), (os.POSIX_SPAWN_DUP2, f.fileno(), 1)]
        pid = os.posix_spawn(run.runtime, run.argv("run", "--bundle", bundle, cid), run.env, file_actions=actions)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    ignored = int(re.search(r"^SigIgn:\s*([0-9a-f]+)$", read(out), re.M).group(1), 16)
    assert ignored == 0, f"the container ignores signals {[s + 1 for s in range(64) if ignored >> s & 1]}"
