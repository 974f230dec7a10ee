"""Faults during `pod apply` and `pod rm` (issue 19): whatever was killed, and whatever became of the pod's records,
`pod rm --force` removes all of the pod — no process, mount, cgroup, pinned namespace, link, state or data left."""
import json
import os
import random
import subprocess
import time
import uuid

import pytest

import helpers
from pods import container
from test_cgroup import cgroup2_root

pytestmark = pytest.mark.pea_only

KILL_ROUNDS = 50


def quick(pods, name, **spec):
    """One container that goes at SIGTERM, so that the polite part of a teardown costs nothing."""
    return pods.manifest([container("a", pods.rootfs, "trap 'exit 0' TERM; echo up; sleep 60 & wait")], name=name,
                         spec={"terminationGracePeriodSeconds": 1, **spec})


def pod_dir(pods, name):
    return os.path.join(pods.root, "pods", name)


def shims(pods):
    """PIDs of the pea-shims serving under this test's --root."""
    needle = b"\0--root\0" + pods.root.encode() + b"\0--ready-fd\0"
    return helpers.processes_where(lambda pid, cmdline: needle in cmdline)


@pytest.fixture
def client_cgroup():
    """A cgroup for `pod apply` clients: what they leave running (the shim, or a fork on its way to become it —
    pea leaves the shim in its caller's cgroup) is whatever it lists."""
    path = f"{cgroup2_root()}/pea-it-clients-{uuid.uuid4().hex[:8]}"
    os.mkdir(path)
    try:
        yield path
    finally:
        for pid in in_flight(path):
            helpers.kill_and_reap(pid)
        helpers.wait_until(lambda: not in_flight(path), 5, "the clients' cgroup to empty")
        os.rmdir(path)


def in_flight(cgroup):
    with open(os.path.join(cgroup, "cgroup.procs")) as f:
        return [int(line) for line in f]


def applying(pods, manifest, cgroup=None):
    def enter_cgroup():
        with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
            f.write("0")
    return subprocess.Popen(pods.argv("pod", "apply", "-f", manifest, "--data-root", pods.data),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=pods.env,
                            preexec_fn=enter_cgroup if cgroup else None)


def killed(proc):
    proc.kill()
    proc.wait()


def applied(pods, manifest, netns=None):
    code, out, err = pods.apply(manifest, netns=netns)
    assert code == 0, err


def assert_removed(pods, name, netns=None):
    """`pod rm --force` succeeds (or finds no pod, when nothing of it was made) and leaves nothing."""
    code, out, err = pods.cli("pod", "rm", "--force", name, netns=netns, timeout=30)
    assert code == 0 or err.strip() == f"pea: pod {name} does not exist", err
    assert pods.leftovers(names=[name]) == []


# ---- the class: commands killed at random moments ------------------------------------------------------------------

def test_pod_apply_killed_at_random_moments(pods, client_cgroup):
    """The client killed 0–60 ms in (and in some rounds later); in every third round its detached shim first, 0–20 ms
    after it started. A shim left running goes on making the pod: `pod rm --force` stops it wherever it is
    (once the pod's directory exists: before that there is no pod to name)."""
    rng = random.Random()
    for i in range(KILL_ROUNDS):
        name = pods.name()
        manifest = quick(pods, name)
        client = applying(pods, manifest, client_cgroup)
        if i % 3 == 0:
            # The shim, 0–20 ms after it exists (it makes the pod in about 50 ms), then the client.
            helpers.wait_until(lambda: shims(pods) or client.poll() is not None, 10, "the shim to start")
            time.sleep(rng.uniform(0, 0.02))
            for pid in shims(pods):
                helpers.kill_and_reap(pid)
        else:
            time.sleep(rng.uniform(0, 0.06) if i % 5 else rng.uniform(0.06, 0.2))
        killed(client)
        # Until the shim has made the pod's directory there is no pod for `pod rm` to name; a copy of the client
        # that has not yet become the shim is in flight too.
        helpers.wait_until(lambda: os.path.exists(pod_dir(pods, name)) or not in_flight(client_cgroup), 10,
                           "the shim to make the pod or exit")
        assert_removed(pods, name)


def test_pod_rm_killed_at_random_moments(pods):
    """`pod rm` (through the shim) or `pod rm --force` killed 0–20 ms in (it takes about that long), in some rounds
    up to 60 ms; then `pod rm --force` again."""
    rng = random.Random()
    for i in range(KILL_ROUNDS):
        name = pods.name()
        applied(pods, quick(pods, name))
        force = ["--force"] if i % 2 else []
        remover = subprocess.Popen(pods.argv("pod", "rm", *force, name), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, env=pods.env)
        time.sleep(rng.uniform(0, 0.02) if i % 5 else rng.uniform(0.02, 0.06))
        killed(remover)
        assert_removed(pods, name)


# ---- the cases of item 3 -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("member,content", [("a", b""), ("a", None), ("_infra", None)],
                         ids=["member-empty", "member-random", "infra-random"])
def test_pod_whose_member_state_is_garbage_is_removed(pods, member, content):
    name = pods.name()
    applied(pods, quick(pods, name))
    with open(os.path.join(pod_dir(pods, name), "oci", member, "state.json"), "wb") as f:
        f.write(os.urandom(300) if content is None else content)
    code, out, err = pods.cli("pod", "rm", "--force", name, timeout=30)
    assert code == 0, err
    assert pods.leftovers() == []


def memory_volume_pod(pods, name, pea=None):
    vol = [{"name": "mem", "mountPath": "/mem"}]
    return pods.manifest([container("a", pods.rootfs, "trap 'exit 0' TERM; echo up; sleep 60 & wait",
                                    volumeMounts=vol)], name=name,
                         volumes=[{"name": "mem", "emptyDir": {"medium": "Memory"}}],
                         spec={"terminationGracePeriodSeconds": 1}, pea=pea)


@pytest.mark.parametrize("shim_alive", [True, False], ids=["shim-running", "shim-killed"])
def test_pod_whose_pod_json_is_garbage_is_listed_broken_and_removed(pods, shim_alive):
    """The tmpfs volume, the cgroup and a shim still running are found through the teardown record. (A running shim
    rewrites pod.json at its next change; one that was killed does not.)"""
    name = pods.name()
    applied(pods, memory_volume_pod(pods, name))
    assert any(p.startswith(pods.data) for p in helpers.mount_points()), "the Memory volume is a mount"
    if not shim_alive:
        for pid in shims(pods):
            helpers.kill_and_reap(pid)
    with open(os.path.join(pod_dir(pods, name), "pod.json"), "wb") as f:
        f.write(os.urandom(300))
    code, out, err = pods.cli("pod", "ls", "--output", "json")
    assert code == 0, err
    assert {"name": name, "status": "broken"} in json.loads(out)
    code, out, err = pods.cli("pod", "rm", "--force", name, timeout=30)
    assert code == 0, err
    assert pods.leftovers() == []


def link_names(netns):
    out = subprocess.run(["ip", "-n", netns, "-o", "link"], capture_output=True, text=True, check=True).stdout
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]


@pytest.fixture
def sentinel_cgroup():
    """A cgroup that is not pea's, with a process in it: (its path below the cgroup2 root, the process)."""
    relative = f"/pea-it-sentinel-{uuid.uuid4().hex[:8]}"
    path = cgroup2_root() + relative
    os.mkdir(path)
    proc = subprocess.Popen(["sleep", "300"])
    try:
        with open(os.path.join(path, "cgroup.procs"), "w") as f:
            f.write(str(proc.pid))
        yield relative, proc
    finally:
        proc.kill()
        proc.wait()
        helpers.wait_until(lambda: open(os.path.join(path, "cgroup.events")).read().find("populated 0") >= 0, 5,
                           "the sentinel cgroup to empty")
        os.rmdir(path)


def test_bridge_pod_whose_pod_json_is_wrong_json_loses_its_veth_and_bridge(pods, test_netns, work_dir,
                                                                           sentinel_cgroup):
    """pod.json holds valid JSON naming what is not the pod's: a cgroup, a directory, a link. None of it is touched;
    the pod's own cgroup, volume, veth and bridge are found through the teardown record."""
    name = pods.name()
    applied(pods, memory_volume_pod(pods, name, pea={"network": {"mode": "bridge", "bridge": "peait9",
                                                                 "address": "198.18.11.2/24"}}), netns=test_netns)
    names = link_names(test_netns)
    assert "peait9" in names and any(n.startswith("pv") for n in names), names
    sentinel_dir = os.path.join(work_dir, "sentinel")
    os.mkdir(sentinel_dir)
    open(os.path.join(sentinel_dir, "keep"), "w").close()
    cgroup, process = sentinel_cgroup
    with open(os.path.join(pod_dir(pods, name), "pod.json"), "w") as f:
        json.dump({"version": 1, "cgroup": cgroup, "dataDir": sentinel_dir, "network": {"bridge": "lo"}, "shim": 1},
                  f)
    code, out, err = pods.cli("pod", "rm", "--force", name, netns=test_netns, timeout=30)
    assert code == 0, err
    assert link_names(test_netns) == ["lo"]
    assert pods.leftovers() == []
    assert os.path.exists(os.path.join(sentinel_dir, "keep")), "a directory pod.json named was removed"
    assert process.poll() is None, "a process in a cgroup pod.json named was killed"


def test_garbage_pod_json_removes_only_its_own_pod(pods, runtime, work_dir, pod_rootfs, test_mark):
    """Two pods of one name under two state roots: removing the broken one does not touch the other."""
    import pods as pods_module
    other = pods_module.Pods(runtime, os.path.join(work_dir, "second"), pod_rootfs, test_mark)
    os.makedirs(other.work_dir, exist_ok=True)
    name = pods.name()
    try:
        applied(pods, quick(pods, name))
        applied(other, quick(other, name))
        with open(os.path.join(pod_dir(pods, name), "pod.json"), "wb") as f:
            f.write(os.urandom(300))
        code, out, err = pods.cli("pod", "rm", "--force", name, timeout=30)
        assert code == 0, err
        code, out, err = other.cli("pod", "ps", "--output", "json", name)
        assert code == 0, err
        assert [c["state"] for c in json.loads(out)] == ["running"]
    finally:
        assert other.cleanup() == []


def test_shim_killed_while_it_makes_the_infra(pods):
    """SIGKILL of the shim once the pod's cgroup exists, while the infra is being made: the half-made pod goes."""
    cgroup_root = cgroup2_root()
    for _ in range(3):
        name = pods.name()
        client = applying(pods, quick(pods, name))
        pattern = os.path.join(cgroup_root, "pea")

        def infra_cgroup():
            try:
                return any(d.startswith(f"pod-{name}-") and os.path.isdir(os.path.join(pattern, d, "_infra"))
                           for d in os.listdir(pattern))
            except FileNotFoundError:
                return False
        helpers.wait_until(infra_cgroup, 10, "the infra's cgroup")
        for pid in shims(pods):
            helpers.kill_and_reap(pid)
        client.wait(10)
        code, out, err = pods.cli("pod", "rm", "--force", name, timeout=30)
        assert code == 0, err
        assert pods.leftovers(names=[name]) == []
