"""Cgroup requests as runc reads them, run against pea and runc 1.1.5 on the same bundle.

A request equal to the kernel's default asks for nothing: ctr sends cpu shares 1024 whenever it is given no
--cpu-shares, Kubernetes and podman send pids.limit 0 or -1 and memory.limit -1 for "no limit". Where cgroup2 lacks
the controller (this host: cgroup2 at /sys/fs/cgroup/unified with none of them) such a request must not fail; a real
limit there still is a clear error (test_cgroup.py).
"""
import json
import os
import shutil

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
