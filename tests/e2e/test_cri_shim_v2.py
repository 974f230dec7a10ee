"""containerd 1.6's CRI plugin on pea's own shim: the runtime handler "pea-shim" (runtime_type
io.containerd.pea.v2, tests/e2e/cri/harness.py). A pod's containers join the shim of its sandbox: one
containerd-shim-pea-v2 process per pod, gone with the pod.

Daemon independence: the pod outlives a kill -9 of containerd, and a kill -9 of its shim leaves nothing behind.
Streaming exec and attach go through containerd's streaming server (tests/e2e/cri/stream.py)."""
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

import e2e
from conftest import BUILD_DIR, MARK
from cri import stream
from cri.harness import SHIM_RUNTIME_HANDLER
from e2e import wait_until
from test_cri import busybox, host_network_pod, pod_processes


SHIM = os.path.join(BUILD_DIR, "shim", "v2", "containerd-shim-pea-v2")
SOCKET_DIR = "/run/containerd/s"


def shim_socket(cri, group):
    """Where the pod's shim listens: /run/containerd/s/sha256(ADDRESS/NAMESPACE/SANDBOX-ID)."""
    key = f"{cri.address}/{cri.ns}/{group}".encode()
    return os.path.join(SOCKET_DIR, hashlib.sha256(key).hexdigest())


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

    wait_until(lambda: not cri.pea_shims(), 10, "the pod's shim to exit")
    assert not os.path.exists(shim_socket(cri, pod))
    assert cri.shim_pea_state() == []


def test_concurrent_creates_in_a_pod_share_its_shim(cri, name):
    """Four CreateContainer calls for one pod at once (the kubelet starts a pod's containers in parallel): each
    container's `start` joins the sandbox's shim under the socket's lock, one shim serves them all, and it exits
    with the pod (every joined task's Create came, so Shutdown is not held back)."""
    require_shim(cri)
    c = cri.cri
    config, pod, pause_pid = run_pod(cri, name)
    try:
        (sandbox_shim,) = cri.pea_shims()
        results, errors = {}, []

        def create(i):
            try:
                results[i] = c.CreateContainer(pod_sandbox_id=pod, sandbox_config=config, config=busybox(
                    cri, f"app{i}", ["sleep", "300"], log_path=f"app{i}.log")).container_id
            except Exception as e:  # reported below, in the test's thread
                errors.append(e)
        threads = [threading.Thread(target=create, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors and len(results) == 4, errors
        for cid in results.values():
            c.StartContainer(container_id=cid)
            assert c.ContainerStatus(container_id=cid).status.state == c.pb.CONTAINER_RUNNING
        assert cri.pea_shims() == [sandbox_shim]
        assert sorted(cri.shim_pea_state()) == sorted([pod, *results.values()])
        assert not any(os.path.exists(shim_socket(cri, cid)) for cid in results.values())
    finally:
        c.StopPodSandbox(pod_sandbox_id=pod)
        c.RemovePodSandbox(pod_sandbox_id=pod)
    wait_until(lambda: not cri.pea_shims(), 10, "the pod's shim to exit")
    assert not os.path.exists(shim_socket(cri, pod)) and not os.path.exists(shim_socket(cri, pod) + ".lock")
    assert cri.shim_pea_state() == []


def require_shim(cri):
    if not getattr(cri, "bin", None):
        pytest.fail(f"containerd-shim-pea-v2 is not built (ninja -C {BUILD_DIR})", pytrace=False)


def run_pod(cri, name):
    """A host-network pod on pea's shim, its pause process running; returns (config, id, pause pid)."""
    c = cri.cri
    config = host_network_pod(cri, name)
    pod = c.RunPodSandbox(config=config, runtime_handler=SHIM_RUNTIME_HANDLER).pod_sandbox_id
    pause_pid = json.loads(c.PodSandboxStatus(pod_sandbox_id=pod, verbose=True).info["info"])["pid"]
    wait_until(lambda: open(f"/proc/{pause_pid}/cmdline", "rb").read() == b"/pause\0", 10, "the pause process")
    return config, pod, pause_pid


def start_container(cri, pod, config, name, command):
    """Create and start a busybox container in POD; returns (id, pid)."""
    c = cri.cri
    cid = c.CreateContainer(pod_sandbox_id=pod, sandbox_config=config,
                            config=busybox(cri, name, command, log_path=f"{name}.log")).container_id
    c.StartContainer(container_id=cid)
    return cid, container_pid(cri, cid)


def container_pid(cri, cid):
    return json.loads(cri.cri.ContainerStatus(container_id=cid, verbose=True).info["info"])["pid"]


def read_log(cri, cid):
    with open(cri.cri.ContainerStatus(container_id=cid).status.log_path) as f:
        return f.read()


# Waits for /tmp/go, which the test makes from the host (through /proc/PID/root) while containerd is away.
WAIT_FOR_GO = "while [ ! -e /tmp/go ]; do sleep 0.05; done"


def let_go(pid):
    with open(f"/proc/{pid}/root/tmp/go", "w"):
        pass


def test_containerd_killed_and_restarted(cri, name):
    """kill -9 containerd while a pod runs on pea's shim, start it again: the pause process and the containers keep
    running (same PIDs, same shim), the restarted CRI lists the same pod and containers, reports the exit code of a
    container that ended meanwhile, shows what a container logged meanwhile, runs ExecSync; stopping and removing
    the pod afterwards leaves no shim, state, mount or cgroup (the fixture checks the rest)."""
    require_shim(cri)
    c, pb = cri.cri, cri.cri.pb
    config, pod, pause_pid = run_pod(cri, name)
    try:
        talker, talker_pid = start_container(cri, pod, config, "talker",
                                             ["sh", "-c", f"echo before; {WAIT_FOR_GO}; echo meanwhile; sleep 300"])
        quitter, quitter_pid = start_container(cri, pod, config, "quitter", ["sh", "-c", f"{WAIT_FOR_GO}; exit 7"])
        wait_until(lambda: "before" in read_log(cri, talker), 10, "the talker's first line")
        (shim,) = cri.pea_shims()
        mounts = {m for m in e2e.mount_points() if m.startswith(cri.dir)}

        cri.kill_daemon()
        let_go(quitter_pid)
        let_go(talker_pid)
        wait_until(lambda: not os.path.exists(f"/proc/{quitter_pid}"), 10, "the quitter to exit and be reaped")
        time.sleep(0.3)  # the talker writes its line into the fifo the shim holds open
        assert cri.pea_shims() == [shim]
        assert all(os.path.exists(f"/proc/{pid}") for pid in (pause_pid, talker_pid))

        log_before_restart = len(cri.log_text())
        cri.restart()
        c = cri.cri
        assert [(s.id, s.state) for s in c.ListPodSandbox().items] == [(pod, pb.SANDBOX_READY)]
        assert sorted(x.id for x in c.ListContainers().containers) == sorted([talker, quitter])
        assert json.loads(c.PodSandboxStatus(pod_sandbox_id=pod, verbose=True).info["info"])["pid"] == pause_pid
        status = c.ContainerStatus(container_id=talker).status
        assert (status.state, container_pid(cri, talker)) == (pb.CONTAINER_RUNNING, talker_pid), status
        status = c.ContainerStatus(container_id=quitter).status
        assert (status.state, status.exit_code) == (pb.CONTAINER_EXITED, 7), status
        # The same shim serves the pod; containerd reached it through the bundles' address files.
        assert cri.pea_shims() == [shim]
        # The CRI's recovery deleted the stopped task (its rootfs unmounted); the others keep theirs.
        assert {m for m in e2e.mount_points() if m.startswith(cri.dir)} == {m for m in mounts if quitter not in m}
        wait_until(lambda: "meanwhile" in read_log(cri, talker), 10, "the line logged while containerd was away")
        # The quitter's exit event, queued in the shim while containerd was away, reaches the new one (its debug log).
        wait_until(lambda: re.search(r'msg="event forwarded" ns=k8s.io topic=/tasks/exit\b',
                                     cri.log_text()[log_before_restart:]), 10, "the queued exit event")
        r = c.ExecSync(container_id=talker, cmd=["sh", "-c", "echo again; exit 2"], timeout=30, deadline=60)
        assert (r.stdout, r.exit_code) == (b"again\n", 2), r

        c.StopContainer(container_id=talker, timeout=10)
        status = c.ContainerStatus(container_id=talker).status
        assert (status.state, status.exit_code) == (pb.CONTAINER_EXITED, 128 + 15), status
        for cid in (talker, quitter):
            c.RemoveContainer(container_id=cid)
    finally:
        cri.cri.StopPodSandbox(pod_sandbox_id=pod)
        cri.cri.RemovePodSandbox(pod_sandbox_id=pod)
    wait_until(lambda: not cri.pea_shims(), 10, "the pod's shim to exit")
    assert not os.path.exists(shim_socket(cri, pod))
    assert cri.shim_pea_state() == []
    assert not [m for m in e2e.mount_points() if m.startswith(cri.dir) and pod in m]


def subscribe_events(containerd):
    """`ctr events` in the background: returns (process, list of lines so far, reader thread)."""
    events = containerd.popen("events", stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    reader = threading.Thread(target=lambda: seen.extend(iter(events.stdout.readline, "")), daemon=True)
    reader.start()
    time.sleep(0.5)  # subscribed
    return events, seen, reader


def task_exits(seen):
    """{task id: exit status} of the /tasks/exit events among `ctr events` lines."""
    exits = {}
    for line in seen:
        fields = line.split(maxsplit=6)  # DATE TIME +0000 UTC NAMESPACE TOPIC EVENT-JSON
        if len(fields) == 7 and fields[5] == "/tasks/exit":
            event = json.loads(fields[6])
            exits[event["id"]] = event.get("exit_status", 0)
    return exits


def test_shim_killed(cri, name):
    """kill -9 the pod's shim: containerd sees each task's connection drop and runs `containerd-shim-pea-v2 delete`
    in each task's bundle (the sandbox's and each container's). Each delete kills what is left of its container
    (the init, the processes it started; the sandbox's pause process, and with it the pod's PID namespace), removes
    its pea state, rootfs mounts and cgroup, and answers exit status 137, which containerd publishes as the task's
    exit. The CRI, whose Wait on each task failed with the connection, reports the containers exited with 255
    (containerd 1.6's "exit status unknown") and the pod not ready; removing them leaves nothing."""
    require_shim(cri)
    c, pb = cri.cri, cri.cri.pb
    config, pod, pause_pid = run_pod(cri, name)
    events, seen, reader = subscribe_events(cri)
    try:
        # A container with a process of its own besides the init, and one whose init ignores SIGTERM.
        parent, parent_pid = start_container(cri, pod, config, "parent", ["sh", "-c", "sleep 300 & wait"])
        stubborn, stubborn_pid = start_container(cri, pod, config, "stubborn",
                                                 ["sh", "-c", "trap '' TERM; while :; do sleep 1; done"])
        wait_until(lambda: len(pod_processes(pause_pid)) >= 5, 10, "the containers' processes")
        processes = pod_processes(pause_pid)
        assert {pause_pid, parent_pid, stubborn_pid} <= set(processes), processes
        ((shim, _),) = cri.pea_shims()
        os.kill(shim, signal.SIGKILL)

        wait_until(lambda: task_exits(seen).keys() >= {pod, parent, stubborn}, 20, "the exit of each task")
        assert task_exits(seen) == {pod: 137, parent: 137, stubborn: 137}, seen

        def exited(cid):
            s = c.ContainerStatus(container_id=cid).status
            return s.state == pb.CONTAINER_EXITED and s
        for cid in (parent, stubborn):
            status = wait_until(lambda: exited(cid), 20, f"the CRI to report {cid} exited")
            assert status.exit_code == 255, status
        wait_until(lambda: c.PodSandboxStatus(pod_sandbox_id=pod).status.state == pb.SANDBOX_NOTREADY, 20,
                   "the pod to be not ready")
        # No orphan: every process of the pod is gone (killed, and reaped by whoever inherited it).
        wait_until(lambda: not any(os.path.exists(f"/proc/{pid}") for pid in processes), 10,
                   f"the pod's processes {processes} to be gone")
        assert not cri.pea_shims()
        assert cri.shim_pea_state() == []
        assert not [m for m in e2e.mount_points() if m.startswith(cri.dir) and (parent in m or stubborn in m)]
        assert not os.path.exists(shim_socket(cri, pod))
        for root in e2e.cgroup_hierarchies():
            for cid in (pod, parent, stubborn):
                assert not os.path.exists(os.path.join(root, cri.cgroup_parent.lstrip("/"), cid))
                assert not os.path.exists(os.path.join(root, "pea", cid))
        for cid in (parent, stubborn):
            c.RemoveContainer(container_id=cid)
    finally:
        events.terminate()
        events.wait(10)
        reader.join(10)
        c.StopPodSandbox(pod_sandbox_id=pod)
        c.RemovePodSandbox(pod_sandbox_id=pod)
    assert not c.ListContainers().containers and not c.ListPodSandbox().items


def test_streaming_exec_and_attach(cri, name):
    """The CRI's Exec and Attach on pea's shim, through containerd's streaming server (the WebSocket channel
    protocols, binary and base64): stdin reaches the process, stdout and stderr come back apart, and the exit code
    comes back in the v4 status."""
    require_shim(cri)
    c = cri.cri
    config, pod, _ = run_pod(cri, name)
    try:
        sleeper, _ = start_container(cri, pod, config, "sleeper", ["sleep", "300"])
        script = ["sh", "-c", "read x; echo got $x; echo to-stderr >&2; exit 3"]
        for protocol in ("v4.channel.k8s.io", "v4.base64.channel.k8s.io"):
            url = c.Exec(container_id=sleeper, cmd=script, stdin=True, stdout=True, stderr=True).url
            out, err, status = stream.run(url, protocol, stdin=b"hello\n")
            assert (out, err, stream.exit_code_of(status)) == (b"got hello\n", b"to-stderr\n", 3), (protocol, status)
        url = c.Exec(container_id=sleeper, cmd=["true"], stdout=True, stderr=True).url
        assert stream.run(url) == (b"", b"", {"metadata": {}, "status": "Success"})

        # Attach: to the stdin and output of a container's init (the CRI opens its stdin for this).
        echo_config = busybox(cri, "echo", ["sh", "-c", "while read line; do echo echo: $line; done; exit 4"],
                              log_path="echo.log")
        echo_config.stdin = True
        echo = c.CreateContainer(pod_sandbox_id=pod, sandbox_config=config, config=echo_config).container_id
        c.StartContainer(container_id=echo)
        session = stream.Session(c.Attach(container_id=echo, stdin=True, stdout=True, stderr=True).url,
                                 "v4.channel.k8s.io")
        try:
            assert session.receive() == (stream.STDOUT, b"")  # the server's "ready"
            session.send(stream.STDIN, b"ping\n")
            got = b""
            while b"echo: ping\n" not in got:
                channel, data = session.receive()
                got += data if channel == stream.STDOUT else b""
        finally:
            session.close()
        assert "echo: ping" in read_log(cri, echo)
        c.StopContainer(container_id=echo, timeout=10)
        for cid in (sleeper, echo):
            c.RemoveContainer(container_id=cid)
    finally:
        c.StopPodSandbox(pod_sandbox_id=pod)
        c.RemovePodSandbox(pod_sandbox_id=pod)


def test_reopen_container_log(cri, name):
    """ReopenContainerLog (the kubelet's log rotation): after the log file is renamed, what the container writes
    next goes to a new file at the log path."""
    require_shim(cri)
    c = cri.cri
    config, pod, _ = run_pod(cri, name)
    try:
        cid, pid = start_container(cri, pod, config, "rotated",
                                   ["sh", "-c", f"echo first; {WAIT_FOR_GO}; echo second; sleep 300"])
        path = c.ContainerStatus(container_id=cid).status.log_path
        wait_until(lambda: "first" in read_log(cri, cid), 10, "the first line")
        os.rename(path, path + ".1")
        c.ReopenContainerLog(container_id=cid)
        let_go(pid)
        wait_until(lambda: os.path.exists(path) and "second" in read_log(cri, cid), 10, "the line after the reopen")
        with open(path + ".1") as f:
            rotated = f.read()
        assert "first" in rotated and "second" not in rotated, rotated
        assert "first" not in read_log(cri, cid)
        c.StopContainer(container_id=cid, timeout=10)
        c.RemoveContainer(container_id=cid)
    finally:
        c.StopPodSandbox(pod_sandbox_id=pod)
        c.RemovePodSandbox(pod_sandbox_id=pod)


def test_delete_removes_only_a_dead_shims_socket(pea, tmp_path):
    """`containerd-shim-pea-v2 delete` removes the socket the bundle's address file names when no shim answers on it,
    and nothing else: not a live shim's socket, not a file elsewhere, not a symlink in the socket directory."""
    if not os.access(SHIM, os.X_OK):
        pytest.fail(f"{SHIM} is not built (ninja -C {BUILD_DIR})", pytrace=False)
    namespace = f"e2e-{MARK}-delete"
    os.makedirs(SOCKET_DIR, exist_ok=True)
    dead, live, link = (os.path.join(SOCKET_DIR, f"e2e-{MARK}-{what}") for what in ("dead", "live", "link"))
    elsewhere = tmp_path / "not-a-socket"
    elsewhere.write_text("keep me")
    dead_socket = socket.socket(socket.AF_UNIX)
    dead_socket.bind(dead)
    dead_socket.close()  # its file stays, nobody listens: what a shim killed by SIGKILL leaves
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(live)
    listener.listen(1)
    os.symlink(dead, link)
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    env = dict(os.environ, PATH=os.path.dirname(pea) + ":" + os.environ.get("PATH", "/usr/bin:/bin"))

    def delete(address):
        (bundle / "address").write_text(f"unix://{address}")
        r = subprocess.run([SHIM, "-namespace", namespace, "-address", "/run/e2e-none.sock", "-id", f"e2e-{MARK}",
                            "-bundle", str(bundle), "delete"], capture_output=True, env=env, timeout=30)
        assert r.returncode == 0, r
        # DeleteResponse: field 2 exit_status (varint) 137
        assert b"\x10\x89\x01" in r.stdout, r
    try:
        for keep in (live, link, str(elsewhere)):
            delete(keep)
            assert os.path.lexists(keep), keep
        delete(dead)
        assert not os.path.lexists(dead)
    finally:
        listener.close()
        for path in (dead, live, link):
            if os.path.lexists(path):
                os.unlink(path)
        if os.path.isdir(os.path.join("/run/containerd/pea", namespace)):
            os.rmdir(os.path.join("/run/containerd/pea", namespace))


def test_shim_killed_while_containerd_is_down(cri, name):
    """kill -9 containerd, then the pod's shim, start containerd again: it finds each task's shim gone while loading
    them (the address file names a socket nobody serves), runs `containerd-shim-pea-v2 delete` in each bundle, and
    the CRI recovers the pod as not ready and its container as exited; nothing of the pod is left running."""
    require_shim(cri)
    config, pod, pause_pid = run_pod(cri, name)
    try:
        cid, pid = start_container(cri, pod, config, "victim", ["sleep", "300"])
        ((shim, _),) = cri.pea_shims()
        cri.kill_daemon()
        os.kill(shim, signal.SIGKILL)
        cri.restart()
        c, pb = cri.cri, cri.cri.pb
        assert c.PodSandboxStatus(pod_sandbox_id=pod).status.state == pb.SANDBOX_NOTREADY
        assert c.ContainerStatus(container_id=cid).status.state == pb.CONTAINER_EXITED
        wait_until(lambda: not any(os.path.exists(f"/proc/{p}") for p in (pause_pid, pid)), 10,
                   "the pod's processes to be gone")
        assert cri.shim_pea_state() == []
        assert not [m for m in e2e.mount_points() if m.startswith(cri.dir) and cid in m]
        assert not os.path.exists(shim_socket(cri, pod))
        c.RemoveContainer(container_id=cid)
    finally:
        cri.cri.StopPodSandbox(pod_sandbox_id=pod)
        cri.cri.RemovePodSandbox(pod_sandbox_id=pod)


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
