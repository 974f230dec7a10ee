"""containerd 1.6's CRI plugin on pea's own shim: the runtime handler "pea-shim" (runtime_type
io.containerd.pea.v2, tests/e2e/cri/harness.py). A pod's containers join the shim of its sandbox: one
containerd-shim-pea-v2 process per pod, gone with the pod."""
import hashlib
import json
import os
import re

import pytest

from conftest import BUILD_DIR
from cri.harness import SHIM_RUNTIME_HANDLER
from e2e import wait_until
from test_cri import busybox, host_network_pod, pod_processes


def shim_socket(cri, group):
    """Where the pod's shim listens: /run/containerd/s/sha256(ADDRESS/NAMESPACE/SANDBOX-ID)."""
    key = f"{cri.address}/{cri.ns}/{group}".encode()
    return os.path.join("/run/containerd/s", hashlib.sha256(key).hexdigest())


def test_pod_of_two_containers_has_one_shim(cri, name):
    if not getattr(cri, "bin", None):
        pytest.fail(f"containerd-shim-pea-v2 is not built (ninja -C {BUILD_DIR})", pytrace=False)
    c = cri.cri
    pb = c.pb
    pod_config = host_network_pod(cri, name)
    pod = c.RunPodSandbox(config=pod_config, runtime_handler=SHIM_RUNTIME_HANDLER).pod_sandbox_id
    try:
        info = json.loads(c.PodSandboxStatus(pod_sandbox_id=pod, verbose=True).info["info"])
        assert info["runtimeType"] == "io.containerd.pea.v2", info
        pause_pid = info["pid"]
        # pea start returns once the init was told to go: its exec of /pause may follow a moment later.
        wait_until(lambda: open(f"/proc/{pause_pid}/cmdline", "rb").read() == b"/pause\0", 10, "the pause process")
        (sandbox_shim,) = cri.pea_shims()
        assert os.path.exists(shim_socket(cri, pod))

        ids = []
        for i in range(2):
            cid = c.CreateContainer(pod_sandbox_id=pod, sandbox_config=pod_config,
                                    config=busybox(cri, f"app{i}", ["sh", "-c", f"echo hello-{i}; sleep 300"],
                                                   log_path=f"app{i}.log")).container_id
            c.StartContainer(container_id=cid)
            assert c.ContainerStatus(container_id=cid).status.state == pb.CONTAINER_RUNNING
            ids.append(cid)
        # The containers' `start` found the sandbox's shim listening and returned its address: no second daemon.
        assert cri.pea_shims() == [sandbox_shim]
        assert sorted(cri.shim_pea_state()) == sorted([pod] + ids)
        assert not any(os.path.exists(shim_socket(cri, cid)) for cid in ids)

        r = c.ExecSync(container_id=ids[0], cmd=["sh", "-c", "echo out; echo err >&2; exit 3"], timeout=30,
                       deadline=60)
        assert (r.stdout, r.stderr, r.exit_code) == (b"out\n", b"err\n", 3), r
        # pid POD: both containers see the pause process as PID 1.
        r = c.ExecSync(container_id=ids[1], cmd=["cat", "/proc/1/cmdline"], timeout=30, deadline=60)
        assert (r.stdout, r.exit_code) == (b"/pause\0", 0), r

        for i, cid in enumerate(ids):
            path = c.ContainerStatus(container_id=cid).status.log_path

            def logged():
                with open(path) as f:
                    return f.read()
            text = wait_until(lambda: f"hello-{i}" in logged() and logged(), 10, "the container's log line")
            assert re.search(rf"^\d{{4}}-\d\d-\d\dT[\d:.]+(Z|[+-]\d\d:\d\d) stdout F hello-{i}$", text, re.M), text

        c.StopContainer(container_id=ids[0], timeout=10)
        cs = c.ContainerStatus(container_id=ids[0]).status
        assert (cs.state, cs.exit_code) == (pb.CONTAINER_EXITED, 128 + 15), cs
        c.RemoveContainer(container_id=ids[0])
        # The shim stays for the rest of the pod (containerd's Shutdown after a task's deletion is declined).
        assert cri.pea_shims() == [sandbox_shim]
        assert c.ContainerStatus(container_id=ids[1]).status.state == pb.CONTAINER_RUNNING
        assert pod_processes(pause_pid)[0] == pause_pid
    finally:
        c.StopPodSandbox(pod_sandbox_id=pod)
        c.RemovePodSandbox(pod_sandbox_id=pod)
    assert not c.ListContainers().containers and not c.ListPodSandbox().items
    wait_until(lambda: not cri.pea_shims(), 10, "the pod's shim to exit")
    assert not os.path.exists(shim_socket(cri, pod))
    assert cri.shim_pea_state() == []


def test_start_error_reaches_cri(cri, name):
    """The library's error (what pea's json log held) is the CRI's error for a container that cannot start."""
    c = cri.cri
    pod_config = host_network_pod(cri, name)
    pod = c.RunPodSandbox(config=pod_config, runtime_handler=SHIM_RUNTIME_HANDLER).pod_sandbox_id
    try:
        ctr_id = c.CreateContainer(pod_sandbox_id=pod, sandbox_config=pod_config,
                                   config=busybox(cri, "bad", ["/no/such/binary"])).container_id
        with pytest.raises(Exception) as e:
            c.StartContainer(container_id=ctr_id)
        assert 'exec: "/no/such/binary"' in str(e.value), e.value
        c.RemoveContainer(container_id=ctr_id)
    finally:
        c.StopPodSandbox(pod_sandbox_id=pod)
        c.RemovePodSandbox(pod_sandbox_id=pod)
    wait_until(lambda: not cri.pea_shims(), 10, "the pod's shim to exit")
    assert not cri.shim_pea_state()
