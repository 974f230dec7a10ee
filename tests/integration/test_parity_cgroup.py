"""Cgroup requests as runc reads them, run against pea and runc 1.1.5 on the same bundle.

A request equal to the kernel's default asks for nothing: ctr sends cpu shares 1024 whenever it is given no
--cpu-shares, Kubernetes and podman send pids.limit 0 or -1 and memory.limit -1 for "no limit". Where cgroup2 lacks
the controller (this host: cgroup2 at /sys/fs/cgroup/unified with none of them) such a request must not fail; a real
limit there still is a clear error (test_cgroup.py).
"""
import json
import os
import shutil
import subprocess

import pytest

import helpers
from test_cgroup import cgroup2_root, has_controller

RUNC = "/usr/sbin/runc"

# Every "unset" spelling callers use: ctr's default shares, pids 0 and -1, memory -1, a quota of -1 with the default
# period, no swap limit, and zero reservation, burst and idle.
DEFAULT_REQUESTS = [
    {"cpu": {"shares": 1024}},
    {"pids": {"limit": 0}},
    {"pids": {"limit": -1}},
    {"memory": {"limit": -1}},
    {"memory": {"limit": -1, "swap": -1, "reservation": 0}},
    {"cpu": {"shares": 1024, "quota": -1, "period": 100000}},
    {"cpu": {"shares": 1024, "quota": 0, "period": 0}},
    {"cpu": {"shares": 1024, "quota": -1}, "memory": {"limit": -1, "swap": -1}, "pids": {"limit": 0}},
]


@pytest.fixture(params=["pea", "runc"])
def both(request, runtime, work_dir, test_mark, cid):
    """A Runner for pea (the runtime under test) or for runc, each with its own --root, cleaned up by itself."""
    path = runtime if request.param == "pea" else RUNC
    if not os.access(path, os.X_OK):
        pytest.skip(f"{path} is not installed")
    root = os.path.join(work_dir, f"root-{request.param}")
    os.mkdir(root, 0o700)
    runner = helpers.Runner(path, root, work_dir, test_mark)
    yield runner
    runner("delete", "--force", cid)
    shutil.rmtree(root, ignore_errors=True)


def missing_controllers(resources):
    return [c for c in resources if not has_controller(c)]


@pytest.mark.parametrize("resources", DEFAULT_REQUESTS, ids=lambda r: json.dumps(r, separators=(",", ":")))
def test_a_request_for_the_defaults_runs_without_the_controller(both, bundle, cid, resources):
    if not missing_controllers(resources):
        pytest.skip(f"this host's cgroup2 has {', '.join(resources)} (the VM tests cover limits)")
    bundle.config["linux"]["resources"] = resources
    bundle.args("sh", "-c", "echo ran")
    r = both("run", "--bundle", bundle, cid)
    assert (r.code, r.out, r.err) == (0, "ran\n", ""), f"{both.runtime}: {r.err}"


def test_update_to_the_defaults_runs_without_the_controller(both, bundle, cid, tmp_path):
    resources = {"cpu": {"shares": 1024, "quota": -1}, "memory": {"limit": -1}, "pids": {"limit": -1}}
    if missing_controllers(resources) != list(resources):
        pytest.skip("this host's cgroup2 has some of cpu, memory and pids (the VM tests cover limits)")
    bundle.args("sleep", "100")
    both.ok("run", "--detach", "--bundle", bundle, cid)
    request = tmp_path / "resources.json"
    request.write_text(json.dumps(resources))
    r = both("update", "--resources", str(request), cid)
    assert (r.code, r.err) == (0, ""), f"{both.runtime}: {r.err}"
    both.ok("delete", "--force", cid)


@pytest.mark.pea_only  # runc 1.1.5 uses this hybrid host's cgroup v1 controllers, where the limit takes effect
@pytest.mark.parametrize("resources,controller", [
    ({"cpu": {"shares": 512}}, "cpu"),
    ({"cpu": {"shares": 1024, "quota": 50000}}, "cpu"),
    ({"pids": {"limit": 10}}, "pids"),
    ({"memory": {"limit": -1, "reservation": 1 << 20}}, "memory"),
])
def test_a_real_limit_next_to_defaults_is_still_refused(run, bundle, cid, assert_no_leaks, resources, controller):
    if has_controller(controller):
        pytest.skip(f"this host's cgroup2 has the {controller} controller")
    bundle.config["linux"]["resources"] = resources
    r = run("create", "--bundle", bundle, cid)
    assert r.code == 1
    assert f'needs the "{controller}" controller, which is not available in {cgroup2_root()}' in r.err
    assert_no_leaks()


def run_with_systemd_marker(run, work_dir, *args):
    """Run pea where sd_booted(3)'s /run/systemd/system exists (a private mount namespace) but no systemd answers."""
    script = 'mount -t tmpfs pea-it /run && mkdir -p /run/systemd/system && exec "$@"'
    err_path = os.path.join(work_dir, "unshare-err")
    with open(err_path, "w") as err:
        code = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
                               *run.argv(*args)], env=run.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=err, timeout=30).returncode
    with open(err_path) as f:
        return code, f.read()


@pytest.mark.pea_only  # runc 1.1.5 on this host's cgroup v1 asks systemd too, with other words
def test_systemd_cgroup_without_systemd_is_a_clear_error(run, bundle, cid, work_dir, assert_no_leaks):
    """--systemd-cgroup asks systemd for a scope; where systemd does not run the host, or does not answer, create
    fails saying so and leaves nothing, instead of making the cgroup on cgroupfs."""
    if os.path.isdir("/run/systemd/system"):
        pytest.skip("systemd runs this host (the VM tests cover the driver)")
    bundle.config["linux"]["cgroupsPath"] = f"system.slice:pea-it:{cid}"
    r = run("create", "--bundle", bundle, cid, global_args=("--systemd-cgroup",))
    assert r.code == 1
    assert r.err == (f"pea: create {cid}: --systemd-cgroup: systemd does not run this host (no /run/systemd/system);"
                     " without --systemd-cgroup pea makes the container's cgroup itself\n")
    assert not os.path.exists(cgroup2_root() + f"/system.slice/pea-it-{cid}.scope")
    assert_no_leaks()
    code, err = run_with_systemd_marker(run, work_dir, "--systemd-cgroup", "create", "--bundle", bundle, cid)
    assert code == 1
    assert f"pea: create {cid}: --systemd-cgroup: connect to systemd (system bus, /run/systemd/private): " in err
    assert_no_leaks()


@pytest.mark.pea_only
@pytest.mark.parametrize("path,why", [
    ("/abs/path", 'linux.cgroupsPath "/abs/path": --systemd-cgroup needs the form slice:prefix:name'),
    ("system.slice:p:own.slice", "a slice of its own for the container is not supported with --systemd-cgroup"),
    ("bad--name.slice:p:x", '"bad--name.slice" is not a systemd slice name'),
])
def test_systemd_cgroup_refuses_other_forms(run, bundle, cid, assert_no_leaks, path, why):
    bundle.config["linux"]["cgroupsPath"] = path
    r = run("create", "--bundle", bundle, cid, global_args=("--systemd-cgroup",))
    assert r.code == 1 and why in r.err, r.err
    assert_no_leaks()
