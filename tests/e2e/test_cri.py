"""containerd 1.6's CRI plugin on pea, driven by the tests' own CRI client (tests/e2e/cri): a host-network pod
sandbox whose pause container is pea-pause, and a busybox container in it.

The requests carry no resources (LinuxContainerResources empty): kubelet would send cpu shares, which pea refuses
on a host without the v2 cpu controller (this one).
"""
import hashlib
import json
import os
import re
import subprocess

import pytest

from e2e import IMAGE, cgroup2_root, wait_until

# The runc v2 shim's default --root for pea: /run/containerd/runc/NAMESPACE.
RUNC_ROOT = "/run/containerd/runc/k8s.io"


def pea_list(pea):
    if not os.path.isdir(RUNC_ROOT):
        return []
    r = subprocess.run([pea, "--root", RUNC_ROOT, "list", "--quiet"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def pod_processes(pause_pid):
    """The host PIDs of the processes in the PID namespace of PAUSE_PID."""
    ns = os.readlink(f"/proc/{pause_pid}/ns/pid")
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/ns/pid") == ns:
                    found.append(int(entry))
            except OSError:
                pass
    return sorted(found)


def host_network_pod(cri, name):
    pb = cri.cri.pb
    uid = f"uid-{name}"
    return pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, uid=uid, namespace="e2e"),
        log_directory=os.path.join(cri.logs, uid),
        labels={"e2e": "pea"},
        linux=pb.LinuxPodSandboxConfig(
            cgroup_parent=cri.cgroup_parent,
            security_context=pb.LinuxSandboxSecurityContext(
                namespace_options=pb.NamespaceOption(network=pb.NODE, pid=pb.POD, ipc=pb.POD))))


def busybox(cri, name, command, log_path="c_0.log"):
    pb = cri.cri.pb
    return pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name=name),
        image=pb.ImageSpec(image=IMAGE),
        command=command,
        log_path=log_path,
        # No resources at all (see the module's docstring).
        linux=pb.LinuxContainerConfig(resources=pb.LinuxContainerResources()))


def test_version_and_status(cri):
    v = cri.cri.Version(version="v1")
    assert (v.runtime_name, v.runtime_api_version) == ("containerd", "v1")
    assert v.runtime_version.startswith("1.6"), v
    conditions = {c.type: c.status for c in cri.cri.Status().status.conditions}
    assert conditions["RuntimeReady"] is True
    assert conditions["NetworkReady"] is False  # no CNI configuration: host-network pods only


def test_pod_sandbox_and_container(cri, pea, name):
    """RunPodSandbox .. RemovePodSandbox: the pause container is pea-pause, the pod's PID 1, in the host network."""
    c = cri.cri
    pb = c.pb
    pod_config = host_network_pod(cri, name)
    pod = c.RunPodSandbox(config=pod_config, runtime_handler="pea").pod_sandbox_id
    st = c.PodSandboxStatus(pod_sandbox_id=pod, verbose=True)
    assert st.status.state == pb.SANDBOX_READY
    assert st.status.linux.namespaces.options.network == pb.NODE
    info = json.loads(st.info["info"])
    assert info["runtimeHandler"] == "pea" and info["runtimeType"] == "io.containerd.runc.v2", info
    pause_pid = info["pid"]
    assert pause_pid > 0
    # The sandbox's process is the image's /pause, that is the built pea-pause, in the host's network namespace.
    assert open(f"/proc/{pause_pid}/cmdline", "rb").read() == b"/pause\0"
    assert sha256(f"/proc/{pause_pid}/exe") == sha256(cri.pause_binary)
    assert os.readlink(f"/proc/{pause_pid}/ns/net") == os.readlink("/proc/self/ns/net")
    assert os.readlink(f"/proc/{pause_pid}/ns/pid") != os.readlink("/proc/self/ns/pid")
    assert pod in pea_list(pea)
    state = json.loads(subprocess.run([pea, "--root", RUNC_ROOT, "state", pod], capture_output=True, text=True,
                                      check=True).stdout)
    assert (state["status"], state["pid"]) == ("running", pause_pid), state

    ctr_id = c.CreateContainer(pod_sandbox_id=pod, sandbox_config=pod_config,
                               config=busybox(cri, "app", ["sh", "-c", "echo hello-cri; sleep 300"])).container_id
    assert c.ContainerStatus(container_id=ctr_id).status.state == pb.CONTAINER_CREATED
    c.StartContainer(container_id=ctr_id)
    cs = c.ContainerStatus(container_id=ctr_id).status
    assert cs.state == pb.CONTAINER_RUNNING, cs
    assert cs.log_path == os.path.join(cri.logs, f"uid-{name}", "c_0.log")
    assert ctr_id in pea_list(pea)

    r = c.ExecSync(container_id=ctr_id, cmd=["echo", "exec-ok"], timeout=30, deadline=60)
    assert (r.stdout, r.exit_code) == (b"exec-ok\n", 0), r
    r = c.ExecSync(container_id=ctr_id, cmd=["sh", "-c", "echo to-stderr >&2; exit 3"], timeout=30, deadline=60)
    assert (r.stderr, r.exit_code) == (b"to-stderr\n", 3), r
    # The container shares the sandbox's PID namespace (pid POD): PID 1 is the pause process.
    r = c.ExecSync(container_id=ctr_id, cmd=["cat", "/proc/1/cmdline"], timeout=30, deadline=60)
    assert r.stdout == b"/pause\0", r

    # The CRI log format: "TIMESTAMP STREAM TAG MESSAGE" (RFC 3339 nano, stdout/stderr, F full / P partial).
    def logged():
        with open(cs.log_path) as f:
            return f.read()
    text = wait_until(lambda: "hello-cri" in logged() and logged(), 10, "the container's log line")
    assert re.search(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+(Z|[+-]\d\d:\d\d) stdout F hello-cri$", text, re.M), text

    c.StopContainer(container_id=ctr_id, timeout=10)
    cs = c.ContainerStatus(container_id=ctr_id).status
    assert cs.state == pb.CONTAINER_EXITED, cs
    assert cs.exit_code == 128 + 15, cs  # sh (not the pod's PID 1) ends on the SIGTERM
    # Its child (sleep 300, reparented to the pod's pause) goes too: the shim kills what is left of a container
    # that shares the pod's PID namespace (`kill --all` once its init has exited).
    wait_until(lambda: pod_processes(pause_pid) == [pause_pid], 10, "only the pause process left in the pod")
    c.RemoveContainer(container_id=ctr_id)
    assert not c.ListContainers().containers
    assert ctr_id not in pea_list(pea)

    c.StopPodSandbox(pod_sandbox_id=pod)
    assert c.PodSandboxStatus(pod_sandbox_id=pod).status.state == pb.SANDBOX_NOTREADY
    wait_until(lambda: not os.path.exists(f"/proc/{pause_pid}"), 10, "the pause process to exit")
    c.RemovePodSandbox(pod_sandbox_id=pod)
    assert not c.ListPodSandbox().items
    left = pea_list(pea)
    assert pod not in left and ctr_id not in left, left
    assert not os.path.exists(os.path.join(RUNC_ROOT, pod)) and not os.path.exists(os.path.join(RUNC_ROOT, ctr_id))
    root2 = cgroup2_root()
    for cid in (pod, ctr_id):
        assert not os.path.exists(os.path.join(root2, "pea", cid))
        assert not os.path.exists(os.path.join(root2, cri.cgroup_parent.lstrip("/"), cid))


def test_start_error_reaches_cri(cri, pea, name):
    """pea's error (the shim reads its json log) is the CRI's error for a container that cannot start."""
    c = cri.cri
    pod_config = host_network_pod(cri, name)
    pod = c.RunPodSandbox(config=pod_config, runtime_handler="pea").pod_sandbox_id
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
    assert pod not in pea_list(pea)


def test_several_pods(cri, pea, name):
    """Three host-network pods at once, each with a container; removed through the CRI, nothing stays in pea."""
    c = cri.cri
    pb = c.pb
    made = []
    try:
        for i in range(3):
            cfg = host_network_pod(cri, f"{name}-{i}")
            pod = c.RunPodSandbox(config=cfg, runtime_handler="pea").pod_sandbox_id
            made.append(pod)
            cid = c.CreateContainer(pod_sandbox_id=pod, sandbox_config=cfg,
                                    config=busybox(cri, "app", ["sleep", "300"])).container_id
            c.StartContainer(container_id=cid)
        running = [x for x in c.ListContainers().containers if x.state == pb.CONTAINER_RUNNING]
        assert len(running) == 3, running
        for x in running:
            r = c.ExecSync(container_id=x.id, cmd=["cat", "/proc/1/cmdline"], timeout=30, deadline=60)
            assert r.stdout == b"/pause\0"
    finally:
        # RemovePodSandbox stops and removes the pod's containers as well
        for pod in made:
            c.StopPodSandbox(pod_sandbox_id=pod)
            c.RemovePodSandbox(pod_sandbox_id=pod)
    assert not c.ListContainers().containers and not c.ListPodSandbox().items
    left = pea_list(pea)
    assert not set(made) & set(left), left


def test_stop_kills_what_the_container_left(cri, pea, name):
    """In the pod's PID namespace a container's children outlive its init (reparented to the pause): once the init
    has exited the shim runs `pea kill --all ID KILL` on the stopped container, which must still reach them."""
    c = cri.cri
    pod_config = host_network_pod(cri, name)
    pod = c.RunPodSandbox(config=pod_config, runtime_handler="pea").pod_sandbox_id
    try:
        pause_pid = json.loads(c.PodSandboxStatus(pod_sandbox_id=pod, verbose=True).info["info"])["pid"]
        ctr_id = c.CreateContainer(pod_sandbox_id=pod, sandbox_config=pod_config,
                                   config=busybox(cri, "orphans", ["sh", "-c", "sleep 300 & sleep 301 & wait"],
                                                  log_path="orphans_0.log")).container_id
        c.StartContainer(container_id=ctr_id)
        wait_until(lambda: len(pod_processes(pause_pid)) == 4, 10, "pause, sh and two sleeps")
        c.StopContainer(container_id=ctr_id, timeout=10)
        assert c.ContainerStatus(container_id=ctr_id).status.exit_code == 128 + 15
        wait_until(lambda: pod_processes(pause_pid) == [pause_pid], 10, "only the pause process left in the pod")
        c.RemoveContainer(container_id=ctr_id)
    finally:
        c.StopPodSandbox(pod_sandbox_id=pod)
        c.RemovePodSandbox(pod_sandbox_id=pod)
