"""containerd 1.6 with pea's own shim, containerd-shim-pea-v2 (runtime io.containerd.pea.v2), driven by ctr.

A private containerd (own root, state, sockets, namespace) started with a PATH whose first directory holds the built
shim and pea: containerd resolves io.containerd.pea.v2 to the binary containerd-shim-pea-v2 there, and the shim makes
the containers in-process through libpea (test_shim_executes_no_pea swaps that pea for one that fails). The shim's
pea state is /run/containerd/pea/NAMESPACE; it must be empty after each test.
"""
import hashlib
import json
import os
import re
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

import e2e
from conftest import BUILD_DIR, MARK, fail_on_problems, require_containerd, serve_containerd
from e2e import IMAGE, wait_until
from test_podman import _pty_run

RUNTIME = "io.containerd.pea.v2"
SHIM = os.path.join(BUILD_DIR, "shim", "v2", "containerd-shim-pea-v2")


class ShimContainerd(e2e.Containerd):
    """A private containerd whose PATH starts with a directory holding containerd-shim-pea-v2 and pea."""

    def __init__(self, directory, pea, mark, forward_events=True):
        super().__init__(directory, pea, mark + "-shim")
        self.bin = os.path.join(directory, "bin")
        os.makedirs(self.bin)
        if forward_events:
            os.symlink(os.path.abspath(SHIM), os.path.join(self.bin, "containerd-shim-pea-v2"))
        else:
            # Without TTRPC_ADDRESS (containerd before 1.4 set none) the shim runs the publish binary per event.
            with open(os.path.join(self.bin, "containerd-shim-pea-v2"), "w") as f:
                f.write(f"#!/bin/sh\nunset TTRPC_ADDRESS\nexec {os.path.abspath(SHIM)} \"$@\"\n")
            os.chmod(os.path.join(self.bin, "containerd-shim-pea-v2"), 0o755)
        os.symlink(pea, os.path.join(self.bin, "pea"))
        self.pea_root = os.path.join("/run/containerd/pea", self.ns)

    def start(self):
        self.runc_root = os.path.join("/run/containerd/runc", self.ns)
        self.runc_root_existed = True  # runc's shim never runs here
        self.log = open(os.path.join(self.dir, "containerd.log"), "a")
        env = dict(os.environ, PATH=self.bin + ":" + os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"))
        self.proc = subprocess.Popen(["containerd", "--config", self.config], stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True, env=env)

        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"containerd exited {self.proc.returncode}: {self.log_text()[-3000:]}")
            return os.path.exists(self.address) and self("version").code == 0
        wait_until(up, 30, "containerd to answer")

    def kill_daemon(self):
        """kill -9 containerd (not its shims) and wait for it to be gone."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.log.close()

    def run_args(self, *args):
        return ["run", "--runtime", RUNTIME, *args]

    def pea_state(self):
        return sorted(os.listdir(self.pea_root)) if os.path.isdir(self.pea_root) else []

    def shims(self):
        return [(pid, cmd) for pid, cmd in e2e.processes_with(self.address) if "containerd-shim-pea-v2" in cmd]

    def shims_forwarding_events(self):
        """PIDs of this containerd's shims holding a connection to its ttrpc socket (the events Forward client)."""
        ttrpc = os.path.join(self.dir, "ttrpc.sock")
        lines = subprocess.run(["ss", "-xpnH"], capture_output=True, text=True, check=True).stdout.splitlines()
        # "u_str ESTAB 0 0 LOCAL-PATH-OR-* INODE PEER-PATH-OR-* PEER-INODE users:((...))": containerd's end names
        # the socket path; the shim's end is the peer inode.
        peers = {fields[7] for fields in (line.split() for line in lines) if len(fields) > 7 and fields[4] == ttrpc}
        shim_pids = {pid for pid, _ in self.shims()}
        found = set()
        for fields in (line.split() for line in lines):
            if len(fields) > 7 and fields[5] in peers:
                found |= {int(p) for p in re.findall(r"pid=(\d+)", " ".join(fields[8:]))} & shim_pids
        return found

    def stop(self):
        problems = super().stop()
        if self.pea_state():
            problems.append(f"pea state left behind in {self.pea_root}: {self.pea_state()}")
        elif os.path.isdir(self.pea_root):
            os.rmdir(self.pea_root)
        return problems


@pytest.fixture(scope="module")
def shim_session(session_dir, pea, rootfs_tar):
    require_containerd()
    if not os.access(SHIM, os.X_OK):
        pytest.fail(f"{SHIM} is not built (ninja -C {BUILD_DIR})", pytrace=False)
    c = ShimContainerd(os.path.join(session_dir, "ctrd-shim"), pea, MARK)
    yield from serve_containerd(c, rootfs_tar, "containerd (pea shim)")


@pytest.fixture
def ctr(shim_session):
    yield shim_session
    problems = shim_session.remove_all()
    if shim_session.pea_state():
        problems.append(f"pea state left behind: {shim_session.pea_state()}")
    fail_on_problems(problems, "test left behind")


def task_status(ctr, name):
    for line in ctr.ok("tasks", "ls").out.splitlines()[1:]:
        fields = line.split()
        if fields and fields[0] == name:
            return fields[2]
    return None


def test_run_output_and_exit_code(ctr, name):
    r = ctr.ok(*ctr.run_args("--rm", IMAGE, name, "echo", "hello from the pea shim"))
    assert r.out == "hello from the pea shim\n"
    r = ctr(*ctr.run_args("--rm", IMAGE, name, "sh", "-c", "echo to-stderr >&2; exit 7"))
    assert (r.code, r.err) == (7, "to-stderr\n"), r
    # One shim per task, gone with it; pea's state too.
    wait_until(lambda: not ctr.shims(), 10, "the shim to exit")
    assert not ctr.pea_state()


def test_stdin(ctr, name):
    r = ctr.ok(*ctr.run_args("--rm", IMAGE, name, "sh", "-c", "head -n 1 | tr a-z A-Z"), input="piped\n")
    assert r.out == "PIPED\n"


def test_tty(ctr, name):
    code, out = _pty_run(ctr.argv(*ctr.run_args("--rm", "-t", IMAGE, name, "sh", "-c", "tty; exit 4")), None)
    assert code == 4, out
    assert "/dev/pts/0" in out, out


def test_detached_exec_kill_status(ctr, name):
    ctr.ok(*ctr.run_args("-d", IMAGE, name, "sh", "-c", "trap 'exit 5' TERM; while :; do sleep 0.1; done"))
    wait_until(lambda: task_status(ctr, name) == "RUNNING", 10, "the task to run")
    r = ctr.ok("tasks", "exec", "--exec-id", "e1", "--cwd", "/tmp", name, "sh", "-c", "pwd; id -u")
    assert r.out.splitlines() == ["/tmp", "0"]
    assert ctr("tasks", "exec", "--exec-id", "e2", name, "sh", "-c", "exit 6").code == 6
    code, out = _pty_run(ctr.argv("tasks", "exec", "-t", "--exec-id", "e3", name, "sh", "-c", "tty; exit 2"), None)
    assert code == 2 and "/dev/pts/" in out, out
    pids = [int(line.split()[0]) for line in ctr.ok("tasks", "ps", name).out.splitlines()[1:] if line.strip()]
    assert pids, "no processes listed"
    if e2e.cgroup2_root():
        assert "cpu.usage_usec" in ctr.ok("tasks", "metrics", name).out  # Stats, from the cgroup v2 files
    ctr.ok("tasks", "kill", name)  # SIGTERM: the trap exits 5
    wait_until(lambda: task_status(ctr, name) == "STOPPED", 10, "the task to stop")
    r = ctr.ok("tasks", "delete", name)
    assert "exit status 5" in r.out or r.out == "", r  # ctr 1.6 prints nothing on a plain delete
    ctr.ok("containers", "delete", name)


def test_delete_reports_exit_status(ctr, name):
    ctr.ok(*ctr.run_args("-d", IMAGE, name, "sh", "-c", "sleep 0.3; exit 9"))
    wait_until(lambda: task_status(ctr, name) == "STOPPED", 10, "the task to stop")
    r = ctr.ok("tasks", "delete", name)  # ctr warns with the DeleteResponse's exit status
    assert "exit code 9" in r.err, r
    ctr.ok("containers", "delete", name)


def test_events_reach_containerd(ctr, name):
    """The shim forwards each task event over containerd's ttrpc socket, in order."""
    _check_events_in_order(ctr, name)


@pytest.fixture(scope="module")
def publish_binary_session(session_dir, pea, rootfs_tar):
    require_containerd()
    c = ShimContainerd(os.path.join(session_dir, "ctrd-pub"), pea, MARK + "-pub", forward_events=False)
    try:
        c.start()
        c.import_image(rootfs_tar)
        yield c
    finally:
        problems = c.stop()
    fail_on_problems(problems, "containerd (pea shim, publish binary) teardown found leaks")


def test_events_fall_back_to_publish_binary(publish_binary_session, name):
    """Without TTRPC_ADDRESS the same events, in the same order, go through containerd's publish binary."""
    ctr = publish_binary_session
    try:
        _check_events_in_order(ctr, name, forwards=False)
    finally:
        problems = ctr.remove_all()
    fail_on_problems(problems, "test left behind")


def _check_events_in_order(ctr, name, forwards=True):
    events = ctr.popen("events", stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    reader = threading.Thread(target=lambda: seen.extend(iter(events.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        time.sleep(0.5)  # subscribed
        ctr.ok(*ctr.run_args("-d", IMAGE, name, "sleep", "1000"))
        wait_until(lambda: task_status(ctr, name) == "RUNNING", 10, "the task to run")
        (shim,) = [pid for pid, _ in ctr.shims()]
        assert (shim in ctr.shims_forwarding_events()) == forwards
        ctr.ok("tasks", "exec", "--exec-id", "x1", name, "true")
        ctr.ok("tasks", "pause", name)
        ctr.ok("tasks", "resume", name)
        ctr.ok("tasks", "kill", "--signal", "SIGKILL", name)
        wait_until(lambda: task_status(ctr, name) == "STOPPED", 10, "the task to stop")
        ctr.ok("tasks", "delete", name)
        ctr.ok("containers", "delete", name)
        # Events go one after another, the last one after Delete has been answered.
        wait_until(lambda: any(" /tasks/delete " in line for line in seen), 20, "the delete event")
    finally:
        events.terminate()
        events.wait(10)
        reader.join(10)
    out = "".join(seen)
    # "DATE TIME +0000 UTC NAMESPACE TOPIC EVENT-JSON"
    lines = [line.split(maxsplit=6) for line in out.splitlines() if " /tasks/" in line]
    topics = [fields[5] for fields in lines]
    want = ["/tasks/create", "/tasks/start", "/tasks/exec-added", "/tasks/exec-started", "/tasks/exit",
            "/tasks/paused", "/tasks/resumed", "/tasks/exit", "/tasks/delete"]
    assert [t for t in topics if t in want] == want, out
    init_exit = json.loads([fields[6] for fields in lines if fields[5] == "/tasks/exit"][-1])
    assert (init_exit["container_id"], init_exit["id"], init_exit["exit_status"]) == (name, name, 137), init_exit


def test_pause_resume(ctr, name):
    ctr.ok(*ctr.run_args("-d", IMAGE, name, "sleep", "1000"))
    wait_until(lambda: task_status(ctr, name) == "RUNNING", 10, "the task to run")
    ctr.ok("tasks", "pause", name)
    assert task_status(ctr, name) == "PAUSED"
    ctr.ok("tasks", "resume", name)
    assert task_status(ctr, name) == "RUNNING"
    ctr.ok("tasks", "kill", "--signal", "SIGKILL", name)
    wait_until(lambda: task_status(ctr, name) == "STOPPED", 10, "the task to stop")
    ctr.ok("tasks", "delete", name)
    ctr.ok("containers", "delete", name)


def test_checkpoint_is_refused(ctr, name):
    ctr.ok(*ctr.run_args("-d", IMAGE, name, "sleep", "1000"))
    wait_until(lambda: task_status(ctr, name) == "RUNNING", 10, "the task to run")
    r = ctr("tasks", "checkpoint", name)
    assert r.code != 0 and "not supported" in r.err, r
    ctr.ok("tasks", "kill", "--signal", "SIGKILL", name)
    wait_until(lambda: task_status(ctr, name) == "STOPPED", 10, "the task to stop")
    ctr.ok("tasks", "delete", name)
    ctr.ok("containers", "delete", name)


def test_create_error_reaches_ctr(ctr, name):
    r = ctr(*ctr.run_args("--rm", IMAGE, name, "/no/such/binary"))
    assert r.code != 0
    assert 'exec: "/no/such/binary"' in r.err, r


def test_containerd_killed_and_restarted(ctr, name):
    """kill -9 containerd while a task runs: the shim and the task live on; a new containerd reconnects through the
    bundle's address file, lists the task, and kills it; the exit status of a task that ended meanwhile is kept."""
    ctr.ok(*ctr.run_args("-d", IMAGE, name, "sleep", "1000"))
    ctr.ok(*ctr.run_args("-d", IMAGE, name + "-short", "sh", "-c", "sleep 1; exit 3"))
    wait_until(lambda: task_status(ctr, name) == "RUNNING", 10, "the task to run")
    shims = ctr.shims()
    assert len(shims) == 2, shims
    ctr.kill_daemon()
    time.sleep(1.5)  # the short task exits while containerd is away
    assert all(os.path.exists(f"/proc/{pid}") for pid, _ in shims)
    ctr.start()
    assert task_status(ctr, name) == "RUNNING"
    wait_until(lambda: task_status(ctr, name + "-short") == "STOPPED", 10, "the short task to be stopped")
    events = ctr.popen("events", stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    reader = threading.Thread(target=lambda: seen.extend(iter(events.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        time.sleep(0.5)  # subscribed
        ctr.ok("tasks", "kill", "--signal", "SIGKILL", name)
        wait_until(lambda: task_status(ctr, name) == "STOPPED", 10, "the task to stop")
        # The shim's events connection broke with the old containerd; the exit goes over a new one.
        wait_until(lambda: any(" /tasks/exit " in line and name in line for line in seen), 10, "the exit event")
        assert [pid for pid, _ in shims if pid in ctr.shims_forwarding_events()]
    finally:
        events.terminate()
        events.wait(10)
        reader.join(10)
    assert "exit code 137" in ctr.ok("tasks", "delete", name).err
    assert "exit code 3" in ctr.ok("tasks", "delete", name + "-short").err  # kept while containerd was away
    for n in (name, name + "-short"):
        ctr.ok("containers", "delete", n)


# ---- the shim's ttrpc socket, spoken to directly ------------------------------------------------------------------

def _field(number, data):
    """A length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _varint(n):
    out = b""
    while True:
        out += bytes([(n & 0x7f) | (0x80 if n > 0x7f else 0)])
        n >>= 7
        if not n:
            return out


def _parse(data):
    """{field number: [values]} of a protobuf message (varints and length-delimited fields)."""
    fields, i = {}, 0
    while i < len(data):
        key, i = _read_varint(data, i)
        if key & 7 == 0:
            value, i = _read_varint(data, i)
        else:
            size, i = _read_varint(data, i)
            value, i = data[i:i + size], i + size
        fields.setdefault(key >> 3, []).append(value)
    return fields


def _read_varint(data, i):
    n, shift = 0, 0
    while True:
        b = data[i]
        n |= (b & 0x7f) << shift
        i, shift = i + 1, shift + 7
        if not b & 0x80:
            return n, i


def _request(stream, method, payload):
    body = _field(1, b"containerd.task.v2.Task") + _field(2, method.encode()) + _field(3, payload)
    return struct.pack(">IIBB", len(body), stream, 1, 0) + body


def _response(sock):
    """(stream id, status code, status message, payload) of the next response."""
    head = b""
    while len(head) < 10:
        head += sock.recv(10 - len(head))
    length, stream, kind, _ = struct.unpack(">IIBB", head)
    assert kind == 2
    body = b""
    while len(body) < length:
        body += sock.recv(length - len(body))
    fields = _parse(body)
    status = _parse(fields.get(1, [b""])[0])
    return stream, status.get(1, [0])[0], status.get(2, [b""])[0].decode(), fields.get(2, [b""])[0]


def test_ttrpc_pipelining_and_unknown_methods(ctr, name):
    """On one connection: a Wait stays parked while later requests are answered; an unknown method is
    Unimplemented; the Wait is answered when the task exits."""
    ctr.ok(*ctr.run_args("-d", IMAGE, name, "sleep", "1000"))
    wait_until(lambda: task_status(ctr, name) == "RUNNING", 10, "the task to run")
    bundle = os.path.join(ctr.dir, "state", "io.containerd.runtime.v2.task", ctr.ns, name)
    with open(os.path.join(bundle, "address")) as f:
        address = f.read()
    assert address.startswith("unix:///run/containerd/s/"), address
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(20)
        sock.connect(address[len("unix://"):])
        task_id = _field(1, name.encode())
        sock.sendall(_request(1, "Wait", task_id) + _request(3, "NoSuchMethod", b"") + _request(5, "Connect", task_id))
        stream, code, message, _ = _response(sock)
        assert (stream, code, message) == (3, 12, "method NoSuchMethod")
        stream, code, _, payload = _response(sock)
        assert (stream, code) == (5, 0)
        connect = _parse(payload)
        assert connect[1][0] in [pid for pid, _ in ctr.shims()]  # shim_pid
        sock.sendall(_request(7, "Kill", task_id + bytes([3 << 3, 9])))  # signal 9
        answers = {}
        while len(answers) < 2:
            stream, code, message, payload = _response(sock)
            answers[stream] = (code, message, payload)
        assert answers[7][0] == 0, answers
        assert answers[1][0] == 0 and _parse(answers[1][2])[1] == [137], answers  # WaitResponse.exit_status
    ctr.ok("tasks", "delete", name)
    ctr.ok("containers", "delete", name)


def test_shim_executes_no_pea(ctr, name, tmp_path):
    """The shim makes and drives containers in-process: with the pea on containerd's PATH replaced by one that records
    each call and fails, a container still runs, execs, pauses, stops and goes."""
    link = os.path.join(ctr.bin, "pea")
    target = os.readlink(link)
    calls = tmp_path / "pea-calls"
    fake = tmp_path / "pea"
    fake.write_text(f"#!/bin/sh\necho \"$@\" >> {calls}\nexit 1\n")
    fake.chmod(0o755)
    os.unlink(link)
    os.symlink(str(fake), link)
    try:
        ctr.ok(*ctr.run_args("-d", IMAGE, name, "sleep", "60"))
        wait_until(lambda: task_status(ctr, name) == "RUNNING", 10, "the task to run")
        assert ctr.ok("tasks", "exec", "--exec-id", "e1", name, "echo", "exec ran").out == "exec ran\n"
        assert ctr.ok("tasks", "ps", name).out.count("\n") >= 2
        ctr.ok("tasks", "pause", name)
        wait_until(lambda: task_status(ctr, name) == "PAUSED", 10, "the task to pause")
        ctr.ok("tasks", "resume", name)
        ctr.ok("tasks", "kill", "--signal", "SIGKILL", name)
        wait_until(lambda: task_status(ctr, name) == "STOPPED", 10, "the task to stop")
        ctr.ok("tasks", "delete", name)
        ctr.ok("containers", "delete", name)
    finally:
        os.unlink(link)
        os.symlink(target, link)
    assert not calls.exists(), f"the shim executed pea: {calls.read_text()}"


def _fds_and_signals(pid):
    fds = sorted(int(fd) for fd in os.listdir(f"/proc/{pid}/fd"))
    targets = {fd: os.readlink(f"/proc/{pid}/fd/{fd}") for fd in fds}
    with open(f"/proc/{pid}/status") as f:
        masks = {k: v.strip() for k, v in (line.split(":", 1) for line in f) if k in ("SigBlk", "SigIgn")}
    return fds, targets, masks


def test_container_processes_inherit_nothing_of_the_shim(ctr, name):
    """The init and an exec'd process are cloned from the shim, which holds ttrpc sockets, fifos, an epoll and a
    signalfd, blocks SIGCHLD/SIGTERM/SIGINT and ignores SIGPIPE: they get stdio only, no signal blocked or ignored,
    as `pea create` gives them."""
    ctr.ok(*ctr.run_args("-d", IMAGE, name, "sleep", "60"))
    wait_until(lambda: task_status(ctr, name) == "RUNNING", 10, "the task to run")
    ctr.ok("tasks", "exec", "-d", "--exec-id", "e1", name, "sleep", "61")
    pids = [int(line.split()[0]) for line in ctr.ok("tasks", "ps", name).out.splitlines()[1:] if line.strip()]
    assert len(pids) == 2, pids
    shim_pids = {pid for pid, _ in ctr.shims()}
    for shim in shim_pids:
        # The processes are cloned from the shim: what they reach as /proc/PID/exe during setup is a sealed copy.
        assert os.readlink(f"/proc/{shim}/exe").startswith("/memfd:"), os.readlink(f"/proc/{shim}/exe")
    for pid in pids:
        fds, targets, masks = _fds_and_signals(pid)
        assert fds == [0, 1, 2], targets
        assert masks == {"SigBlk": "0" * 16, "SigIgn": "0" * 16}, masks
        with open(f"/proc/{pid}/stat") as f:
            assert int(f.read().rsplit(")", 1)[1].split()[1]) in shim_pids  # its parent: the shim, its reaper
    ctr.ok("tasks", "kill", "--signal", "SIGKILL", name)
    wait_until(lambda: task_status(ctr, name) == "STOPPED", 10, "the task to stop")
    ctr.ok("tasks", "delete", name)
    ctr.ok("containers", "delete", name)


def test_hooks_and_an_init_that_exits_at_once(ctr, name, tmp_path, rootfs_tar):
    """Hooks are children the library forks and waits for while the shim's reaper is its own loop: each hook's status
    must reach the library (a failing createRuntime hook fails the create, a failing poststart hook is a warning),
    and an init that exits as soon as it starts must still report its own exit code to ctr."""
    def hook(kind, code):
        path = tmp_path / f"hook-{kind}"
        path.write_text(f"#!/bin/sh\ncat > {tmp_path}/ran-{kind}\nexit {code}\n")
        path.chmod(0o755)
        return {"path": str(path)}

    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    subprocess.run(["tar", "-xf", rootfs_tar, "-C", str(rootfs)], check=True)
    spec = json.loads(ctr.ok("oci", "spec").out)
    spec["root"] = {"path": str(rootfs), "readonly": True}
    spec["process"]["args"] = ["sh", "-c", "exit 7"]
    spec["hooks"] = {"createRuntime": [hook("createRuntime", 0)], "poststart": [hook("poststart", 3)],
                     "poststop": [hook("poststop", 0)]}
    config = tmp_path / "config.json"
    config.write_text(json.dumps(spec))
    r = ctr(*ctr.run_args("--rm", "--config", str(config), name))
    assert r.code == 7, r
    for kind in ("createRuntime", "poststart", "poststop"):
        state = json.loads((tmp_path / f"ran-{kind}").read_text())
        assert state["id"] == name, state

    spec["hooks"] = {"createRuntime": [hook("createRuntime", 4)]}
    config.write_text(json.dumps(spec))
    r = ctr(*ctr.run_args("--rm", "--config", str(config), name))
    assert r.code != 0 and "createRuntime hook" in r.err and "exit status 4" in r.err, r
    ctr("containers", "delete", name)


def test_shim_keeps_nothing_of_finished_calls(ctr, name):
    """The library runs inside the long-lived shim: a call's fds (state directory, pidfds, the log file, the exec
    fifo) are closed when it returns, so a shim's fd count does not grow with the calls it served."""
    ctr.ok(*ctr.run_args("-d", IMAGE, name, "sleep", "60"))
    wait_until(lambda: task_status(ctr, name) == "RUNNING", 10, "the task to run")
    (shim,) = [pid for pid, _ in ctr.shims()]

    def calls(n):
        for i in range(n):
            assert ctr.ok("tasks", "exec", "--exec-id", f"e{n}-{i}", name, "true").out == ""
            ctr.ok("tasks", "ps", name)
            ctr.ok("tasks", "pause", name)
            ctr.ok("tasks", "resume", name)
        return sorted(os.listdir(f"/proc/{shim}/fd"), key=int)

    before = calls(1)
    assert calls(5) == before
    ctr.ok("tasks", "kill", "--signal", "SIGKILL", name)
    wait_until(lambda: task_status(ctr, name) == "STOPPED", 10, "the task to stop")
    ctr.ok("tasks", "delete", name)
    ctr.ok("containers", "delete", name)


# ---- log URIs (ctr run --log-uri) ----------------------------------------------------------------------------------

def _script(path, body):
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + body)
    os.chmod(path, 0o755)
    return path


def test_binary_log_uri(ctr, name):
    """binary:///LOGGER?out=FILE: the shim starts LOGGER with the arguments `out FILE`, only CONTAINER_ID and
    CONTAINER_NAMESPACE in its environment, stdout on fd 3 and stderr on fd 4; the container starts once the
    logger closed fd 5, and the logger is reaped after it ends."""
    out = os.path.join(ctr.dir, name + "-log")
    logger = _script(os.path.join(ctr.dir, name + "-logger"),
                     '/usr/bin/printf "%s\\n" "$@" > "$2.args"\n'
                     '/usr/bin/env > "$2.env"\n'
                     'exec 5>&-\n'
                     '/bin/cat <&3 > "$2.out" &\n'
                     '/bin/cat <&4 > "$2.err"\n'
                     'wait\n'
                     'touch "$2.done"\n')
    ctr.ok(*ctr.run_args("-d", "--log-uri", f"binary://{logger}?out={out}", IMAGE, name,
                         "sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 3"))
    wait_until(lambda: task_status(ctr, name) == "STOPPED", 10, "the task to stop")
    wait_until(lambda: os.path.exists(out + ".done"), 10, "the logger to read both streams to their end")
    with open(out + ".args") as f:
        assert f.read().splitlines() == ["out", out]
    with open(out + ".env") as f:
        env = dict(line.split("=", 1) for line in f.read().splitlines() if "=" in line)
    assert env.get("CONTAINER_ID") == name and env.get("CONTAINER_NAMESPACE") == ctr.ns, env
    assert not {"PATH", "HOME", "TTRPC_ADDRESS"} & set(env), env  # not the shim's environment
    with open(out + ".out") as f:
        assert f.read() == "to-stdout\n"
    with open(out + ".err") as f:
        assert f.read() == "to-stderr\n"
    # The shim lives on (the task is not deleted yet) and has reaped its logger: no zombie child is left.
    shim_pids = [pid for pid, _ in ctr.shims()]
    assert len(shim_pids) == 1, shim_pids
    wait_until(lambda: not _zombie_children(shim_pids[0]), 10, "the shim to reap the logger")
    r = ctr.ok("tasks", "delete", name)
    assert "exit code 3" in r.err, r  # the process's status, with its output gone to the logger
    ctr.ok("containers", "delete", name)


def _zombie_children(parent):
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "Z" and int(fields[1]) == parent:
            found.append(int(entry))
    return found


def test_logger_ready_by_writing_a_byte(ctr, name):
    """A logger may also signal readiness by writing to fd 5 and keep it open: the container starts at once."""
    out = os.path.join(ctr.dir, name + "-log")
    logger = _script(os.path.join(ctr.dir, name + "-logger"),
                     '/usr/bin/printf r >&5\n'
                     'exec /bin/cat <&3 > "$2"\n')
    started = time.monotonic()
    ctr.ok(*ctr.run_args("--rm", "--log-uri", f"binary://{logger}?out={out}", IMAGE, name, "echo", "hi"))
    assert time.monotonic() - started < 9  # not the shim's 10 s bound on a logger that never signals
    wait_until(lambda: os.path.exists(out) and open(out).read() == "hi\n", 10, "the logger to write the output")


def test_failing_logger_is_a_clear_error(ctr, name):
    """A logger that exits before it is ready fails the create with its status; one that never signals fails it
    after the shim's bound (10 s) and is killed. Neither leaves a task, a container process or the logger."""
    failing = _script(os.path.join(ctr.dir, name + "-failing"), "echo cannot log >&2\nexit 3\n")
    r = ctr(*ctr.run_args("--rm", "--log-uri", f"binary://{failing}", IMAGE, name, "echo", "never"))
    assert r.code != 0
    assert f"logging binary {failing} exited with status 3 before it was ready" in r.err, r
    ctr("containers", "delete", name)
    silent = _script(os.path.join(ctr.dir, name + "-silent"), "exec /bin/sleep 1000\n")
    started = time.monotonic()
    r = ctr(*ctr.run_args("--rm", "--log-uri", f"binary://{silent}", IMAGE, name + "-s", "echo", "never"))
    assert r.code != 0
    assert f"logging binary {silent} did not signal that it was ready within 10 s" in r.err, r
    assert time.monotonic() - started < 40
    ctr("containers", "delete", name + "-s")
    wait_until(lambda: not e2e.processes_with(silent), 10, "the silent logger to be killed")
    assert not ctr.tasks()


def test_file_log_uri_appends_in_order(ctr, name):
    """file:///PATH as containerd's shim makes it: the directories created, the file 0644 and appended to; stdout
    and stderr interleave in the order the process wrote them."""
    log = os.path.join(ctr.dir, name + "-logs", "sub", "c.log")
    script = "echo 1; echo 2 >&2; echo 3; echo 4 >&2"
    for run in ("a", "b"):
        ctr.ok(*ctr.run_args("--rm", "--log-uri", f"file://{log}", IMAGE, f"{name}-{run}", "sh", "-c", script))
    with open(log) as f:
        assert f.read() == "1\n2\n3\n4\n" * 2
    assert os.stat(log).st_mode & 0o777 == 0o644
    assert os.stat(os.path.dirname(log)).st_mode & 0o777 == 0o755


# ---- runtime options ------------------------------------------------------------------------------------------------

def test_runtime_config_path_is_refused_by_name(ctr, name):
    """ctr --runtime-config-path sends runtimeoptions.v1.Options{ConfigPath}: pea's shim reads no such file and says
    so instead of dropping it."""
    r = ctr(*ctr.run_args("--rm", "--runtime-config-path", "/etc/pea-runtime.toml", IMAGE, name, "true"))
    assert r.code != 0
    assert "runtime option ConfigPath /etc/pea-runtime.toml: io.containerd.pea.v2 reads no runtime config file" \
        in r.err, r
    ctr("containers", "delete", name)
    assert not ctr.shims()


def test_shim_start_reads_runtime_options(ctr, name, tmp_path):
    """The start subcommand, given containerd.runc.v1.Options on stdin: an option pea cannot honour fails it
    with the option's name before any shim starts."""
    def any_of(type_url, value):
        return _field(1, type_url.encode()) + _field(2, value)
    argv = [SHIM, "-namespace", ctr.ns, "-address", "/nonexistent.sock", "-id", name, "start"]
    (tmp_path / "config.json").write_text("{}")  # the bundle: start reads its annotations
    socket_path = "/run/containerd/s/" + hashlib.sha256(f"/nonexistent.sock/{ctr.ns}/{name}".encode()).hexdigest()
    for value, message in [
            (_field(6, b"/usr/bin/runc"), "runtime option BinaryName /usr/bin/runc: io.containerd.pea.v2 runs pea"),
            (_field(8, b"/usr/sbin/criu"), "runtime option CriuPath /usr/sbin/criu: not supported"),
            (_field(3, b"/no/such/cgroup"), None)]:
        r = subprocess.run(argv, input=any_of("containerd.runc.v1.Options", value), capture_output=True,
                           cwd=tmp_path, timeout=30)
        if message is None:
            # ShimCgroup that does not exist: the daemon it started is stopped again, nothing is left listening.
            is_v2 = subprocess.run(["stat", "-f", "-c", "%T", "/sys/fs/cgroup"], capture_output=True,
                                   text=True).stdout.strip() == "cgroup2fs"
            why = "open its cgroup.procs" if is_v2 else "/sys/fs/cgroup is not cgroup v2"
            assert r.returncode == 1 and f"runtime option ShimCgroup /no/such/cgroup: {why}".encode() in r.stderr, r
            continue
        assert r.returncode == 1 and message.encode() in r.stderr, r
    r = subprocess.run(argv, input=any_of("io.example.Options", b""), capture_output=True, cwd=tmp_path, timeout=30)
    assert r.returncode == 1 and b"runtime options of type io.example.Options are not supported" in r.stderr, r
    assert not e2e.processes_with("/nonexistent.sock")
    assert not os.path.exists(socket_path)


# ---- ttrpc deadlines -----------------------------------------------------------------------------------------------

def test_wait_with_deadline_is_answered_deadline_exceeded(ctr, name):
    """A Wait whose ttrpc deadline (Request.timeout_nano) passes while the task runs is answered DEADLINE_EXCEEDED
    (code 4) and forgotten: the task's exit later answers only the Waits still parked."""
    ctr.ok(*ctr.run_args("-d", IMAGE, name, "sleep", "1000"))
    wait_until(lambda: task_status(ctr, name) == "RUNNING", 10, "the task to run")
    bundle = os.path.join(ctr.dir, "state", "io.containerd.runtime.v2.task", ctr.ns, name)
    with open(os.path.join(bundle, "address")) as f:
        address = f.read()
    task_id = _field(1, name.encode())

    def request(stream, method, payload, timeout_nano=0):
        body = _field(1, b"containerd.task.v2.Task") + _field(2, method.encode()) + _field(3, payload)
        if timeout_nano:
            body += _varint(4 << 3) + _varint(timeout_nano)
        return struct.pack(">IIBB", len(body), stream, 1, 0) + body

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(20)
        sock.connect(address[len("unix://"):])
        started = time.monotonic()
        sock.sendall(request(1, "Wait", task_id, 500_000_000) + request(3, "Wait", task_id))
        stream, code, message, _ = _response(sock)
        assert (stream, code, message) == (1, 4, "context deadline exceeded")
        assert time.monotonic() - started >= 0.45
        sock.sendall(request(5, "Kill", task_id + bytes([3 << 3, 9])))
        answers = {}
        while len(answers) < 2:
            stream, code, message, payload = _response(sock)
            answers[stream] = (code, message, payload)
        assert set(answers) == {3, 5}, answers
        assert answers[3][0] == 0 and _parse(answers[3][2])[1] == [137], answers
        sock.sendall(request(7, "Connect", task_id))
        stream, code, _, _ = _response(sock)
        assert (stream, code) == (7, 0)  # nothing more came for stream 1
    ctr.ok("tasks", "delete", name)
    ctr.ok("containers", "delete", name)


def second_bundle_beside(ctr, name, suffix, process=None):
    """Run NAME detached and make a second bundle (NAME+SUFFIX) on its rootfs, read-only, for requests spoken to
    NAME's shim directly; PROCESS fields replace the process's. Returns (the shim's address, the id, the bundle)."""
    ctr.ok(*ctr.run_args("-d", IMAGE, name, "sleep", "1000"))
    wait_until(lambda: task_status(ctr, name) == "RUNNING", 10, "the task to run")
    bundle = os.path.join(ctr.dir, "state", "io.containerd.runtime.v2.task", ctr.ns, name)
    with open(os.path.join(bundle, "address")) as f:
        address = f.read()
    with open(os.path.join(bundle, "config.json")) as f:
        config = json.load(f)
    second = name + suffix
    second_bundle = os.path.join(ctr.dir, second)
    os.makedirs(second_bundle)
    config["root"] = {"path": os.path.join(bundle, "rootfs"), "readonly": True}
    config["linux"]["cgroupsPath"] = config["linux"]["cgroupsPath"].replace(name, second)
    config["process"].update(process or {})
    with open(os.path.join(second_bundle, "config.json"), "w") as f:
        json.dump(config, f)
    return address, second, second_bundle


def test_create_reads_runtime_options(ctr, name):
    """containerd.runc.v1.Options in CreateTaskRequest.options, as the Go client sends them (ctr cannot): IoUid/IoGid
    give the process's fifo to that owner; a Root other than the state root of the shim's other tasks is refused
    by name. Spoken to the shim of a running task, with a second bundle made here."""
    address, second, second_bundle = second_bundle_beside(ctr, name, "-opts")
    fifo = os.path.join(second_bundle, "stdout")
    os.mkfifo(fifo, 0o600)

    def runc_options(fields):
        return _field(1, b"containerd.runc.v1.Options") + _field(2, fields)

    def create(task_id, options):
        return (_field(1, task_id.encode()) + _field(2, second_bundle.encode()) + _field(6, fifo.encode())
                + _field(7, fifo.encode()) + _field(10, options))

    io_owner = _varint(4 << 3) + _varint(4321) + _varint(5 << 3) + _varint(4322)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(20)
        sock.connect(address[len("unix://"):])
        sock.sendall(_request(1, "Create", create(second, runc_options(io_owner))))
        stream, code, message, _ = _response(sock)
        assert (stream, code) == (1, 0), message
        st = os.stat(fifo)
        assert (st.st_uid, st.st_gid) == (4321, 4322)
        sock.sendall(_request(3, "Create", create(second + "-root", runc_options(_field(7, b"/run/pea-elsewhere")))))
        stream, code, message, _ = _response(sock)
        assert (stream, code) == (3, 2)
        assert message == (f"create {second}-root: runtime option Root: this shim's other tasks use the state root "
                           f"{ctr.pea_root}, not /run/pea-elsewhere/{ctr.ns}"), message
        assert not os.path.exists("/run/pea-elsewhere")
        sock.sendall(_request(5, "Delete", _field(1, second.encode())))
        stream, code, message, _ = _response(sock)
        assert (stream, code) == (5, 0), message
    ctr.ok("tasks", "kill", "-s", "KILL", name)
    wait_until(lambda: task_status(ctr, name) == "STOPPED", 10, "the task to stop")
    ctr.ok("tasks", "delete", name)
    ctr.ok("containers", "delete", name)


def test_terminal_output_to_a_logger(ctr, name):
    """With a terminal, the shim copies the pty's output into the logger's stdout pipe (fd 3); its stderr pipe (fd 4)
    ends at once. Spoken to the shim of a running task, with a second bundle made here."""
    address, second, second_bundle = second_bundle_beside(
        ctr, name, "-tty", process={"terminal": True, "args": ["sh", "-c", "tty; echo done"]})
    out = os.path.join(ctr.dir, second + "-log")
    logger = _script(os.path.join(ctr.dir, second + "-logger"),
                     'exec 5>&-\n'
                     '/bin/cat <&4 > "$2.err"\n'  # ends at once: a terminal has no stderr
                     'exec /bin/cat <&3 > "$2"\n')
    task_id = _field(1, second.encode())
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(20)
        sock.connect(address[len("unix://"):])
        create = (task_id + _field(2, second_bundle.encode()) + _varint(4 << 3) + _varint(1)
                  + _field(6, f"binary://{logger}?out={out}".encode()))
        sock.sendall(_request(1, "Create", create))
        stream, code, message, _ = _response(sock)
        assert (stream, code) == (1, 0), message
        sock.sendall(_request(3, "Start", task_id) + _request(5, "Wait", task_id))
        answers = {}
        while len(answers) < 2:
            stream, code, message, payload = _response(sock)
            answers[stream] = (code, message, payload)
        assert answers[3][0] == 0 and answers[5][0] == 0, answers
        assert _parse(answers[5][2]).get(1, [0]) == [0], answers  # exit status 0
        wait_until(lambda: os.path.exists(out) and "done" in open(out).read(), 10, "the terminal's output")
        with open(out) as f:
            assert f.read().replace("\r\n", "\n") == "/dev/pts/0\ndone\n"
        sock.sendall(_request(7, "Delete", task_id))
        stream, code, message, _ = _response(sock)
        assert (stream, code) == (7, 0), message
    wait_until(lambda: not e2e.processes_with(logger), 10, "the logger to end")
    ctr.ok("tasks", "kill", "-s", "KILL", name)
    wait_until(lambda: task_status(ctr, name) == "STOPPED", 10, "the task to stop")
    ctr.ok("tasks", "delete", name)
    ctr.ok("containers", "delete", name)
