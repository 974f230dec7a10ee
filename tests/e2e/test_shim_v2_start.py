"""containerd-shim-pea-v2's `start` and its daemon's exit, driven directly with containerd's flags (no containerd).

`start` runs in a bundle whose config.json carries the CRI annotations of an app container of sandbox SANDBOX, so
every task of the test joins one group: one daemon, one socket /run/containerd/s/<sha256(ADDRESS/NS/SANDBOX)>. The
containerd address is a path nobody serves; a daemon without tasks publishes nothing, so it never needs containerd.
"""
import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import stat
import struct
import subprocess
import threading
import time

import pytest

import e2e
from conftest import BUILD_DIR, MARK
from e2e import wait_until
from test_shim_v2 import _field, _request, _response

SHIM = os.path.join(BUILD_DIR, "shim", "v2", "containerd-shim-pea-v2")
SOCKET_DIR = "/run/containerd/s"


class Group:
    """Tasks of one sandbox, started with `containerd-shim-pea-v2 start` the way containerd runs it."""

    def __init__(self, tmp_path, tag):
        self.tmp = tmp_path
        self.ns = f"e2e-{MARK}-{tag}"
        self.address = str(tmp_path / "containerd.sock")  # nobody listens: the daemons must not need it
        self.sandbox = f"sandbox-{MARK}-{tag}"
        self.socket = os.path.join(SOCKET_DIR, hashlib.sha256(
            f"{self.address}/{self.ns}/{self.sandbox}".encode()).hexdigest())

    def bundle(self, task):
        path = self.tmp / task
        path.mkdir(exist_ok=True)
        (path / "config.json").write_text(json.dumps({"annotations": {
            "io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-id": self.sandbox}}))
        return path

    def popen(self, task, wrapper=()):
        return subprocess.Popen([*wrapper, SHIM, "-namespace", self.ns, "-address", self.address, "-id", task, "start"],
                                cwd=self.bundle(task), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)

    def start(self, task):
        p = self.popen(task)
        out, err = p.communicate(timeout=30)
        assert p.returncode == 0, (p.returncode, err)
        return out.decode()

    def daemons(self):
        return [pid for pid, cmd in e2e.processes_with(self.address) if " start" not in cmd]

    def the_daemon(self, besides=()):
        """The one daemon other than BESIDES (waited for: it re-executes itself once after `start` returns)."""
        found = []

        def one():
            found[:] = [pid for pid in self.daemons() if pid not in besides]
            return len(found) == 1
        wait_until(one, 10, f"one daemon (found {found})")
        return found[0]

    def call(self, method, payload):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(20)
            sock.connect(self.socket)
            sock.sendall(_request(1, method, payload))
            return _response(sock)

    def create_failing(self, task):
        """A Create that comes and fails (its bundle is missing): containerd's Create for TASK, as far as the
        group's bookkeeping goes."""
        _, code, message, _ = self.call("Create", _field(1, task.encode()) + _field(2, str(self.tmp / "gone").encode()))
        assert code != 0, message

    def cleanup(self):
        for pid in self.daemons():
            os.kill(pid, signal.SIGTERM)
        wait_until(lambda: not self.daemons(), 15, "the daemons to exit")
        problems = []
        for path in (self.socket, self.socket + ".lock"):
            if os.path.lexists(path):
                problems.append(path)
                os.unlink(path)
        state = os.path.join("/run/containerd/pea", self.ns)
        if os.path.isdir(state):
            os.rmdir(state)
        assert not problems, f"left behind: {problems}"


@pytest.fixture
def group(tmp_path, request):
    if not os.access(SHIM, os.X_OK):
        pytest.fail(f"{SHIM} is not built (ninja -C {BUILD_DIR})", pytrace=False)
    os.makedirs(SOCKET_DIR, exist_ok=True)
    g = Group(tmp_path, request.node.name[-12:].replace("_", "-"))
    yield g
    g.cleanup()


def gone(pid):
    return not os.path.exists(f"/proc/{pid}")


# strace holds each `start` for a while after its connect(2) returns: every `start` finds the stale socket dead
# before any replaces it, the widest window two of them can have (without it the race is there, but rarely hit).
SLOW_PROBE = ("strace", "-qq", "-o", "/dev/null", "-e", "trace=connect", "-e", "inject=connect:delay_exit=300000")


@pytest.mark.parametrize("slow_probe", [False, True], ids=["plain", "slow-probe"])
def test_concurrent_starts_of_one_pod_make_one_shim(group, slow_probe):
    """Eight `start`s for containers of one pod at once, over the socket a killed shim left behind: exactly one
    daemon, every `start` prints its address, and the socket is the daemon's, mode 0600."""
    if slow_probe and not shutil.which("strace"):
        pytest.skip("strace is not installed")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(group.socket)
    stale.close()  # its file stays, nobody listens: what a shim killed by SIGKILL leaves
    starts = [group.popen(f"c{i}", SLOW_PROBE if slow_probe else ()) for i in range(8)]
    results = [(p.communicate(timeout=30), p.returncode) for p in starts]
    assert all(code == 0 for _, code in results), results
    assert {out for (out, _), _ in results} == {f"unix://{group.socket}".encode()}, results
    group.the_daemon()
    time.sleep(0.2)
    assert len(group.daemons()) == 1, [cmd for pid, cmd in e2e.processes_with(group.address)]
    assert stat.S_IMODE(os.lstat(group.socket).st_mode) == 0o600
    _, code, _, payload = group.call("Connect", _field(1, b"c0"))
    assert code == 0
    for i in range(8):
        assert (group.tmp / f"c{i}" / "address").read_text() == f"unix://{group.socket}"
    assert not os.path.exists(group.socket + ".lock")  # no lock file outlives its holder


def test_shim_stays_for_a_task_that_joined_until_its_create(group):
    """Shutdown with no task left ends the daemon only when no `start` that chose it still waits for its Create:
    the starting task's and a joined task's Create must come first (a Shutdown asked for meanwhile takes effect
    then). The socket goes with the daemon, and the next `start` makes a fresh one."""
    address = group.start("c1")
    daemon = group.the_daemon()
    group.call("Shutdown", b"")
    time.sleep(0.5)
    assert not gone(daemon) and group.call("Connect", _field(1, b"c1"))[1] == 0  # c1's Create is still to come
    assert group.start("c2") == address and group.the_daemon() == daemon
    group.create_failing("c1")
    group.call("Shutdown", b"")
    time.sleep(0.5)
    assert not gone(daemon)  # c2's Create is still to come
    group.create_failing("c2")  # the last expected Create came: the Shutdown asked for takes effect
    wait_until(lambda: gone(daemon), 10, "the daemon to exit")
    assert not os.path.lexists(group.socket)
    assert group.start("c3") == address
    assert group.the_daemon(besides=[daemon])


def test_exiting_shim_leaves_the_next_shims_socket(group):
    """A daemon that exits while answers it owes are still queued (a client not reading them) takes its socket
    away before it stops listening, and never afterwards: a `start` in that window makes a new daemon, whose socket
    survives the old one's exit."""
    address = group.start("c1")
    old = group.the_daemon()
    group.create_failing("c1")
    flood = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    flood.connect(group.socket)
    # Answers pile up unread: the old daemon drains them (up to 5 s) before it exits.
    requests = b"".join(_request(2 * i + 1, "Connect", _field(1, b"c1")) for i in range(20000))
    sender = threading.Thread(target=lambda: flood.sendall(requests), daemon=True)
    sender.start()
    time.sleep(0.5)
    try:
        assert group.call("Shutdown", b"")[1] == 0
        # The old daemon has stopped serving new connections (its socket is gone, or nobody accepts on it).
        def withdrawn():
            try:
                group.call("Connect", _field(1, b"c1"))
                return False
            except (ConnectionRefusedError, FileNotFoundError, ConnectionResetError):
                return True
        wait_until(withdrawn, 10, "the old daemon to stop listening")
        assert not gone(old)  # still draining
        assert group.start("c2") == address
        new = group.the_daemon(besides=[old])
    finally:
        flood.close()
    wait_until(lambda: gone(old), 15, "the old daemon to exit")
    assert os.path.lexists(group.socket), "the old daemon removed the new daemon's socket"
    assert group.call("Connect", _field(1, b"c2"))[1] == 0
    assert group.the_daemon() == new


def test_sigterm_as_the_shim_starts_withdraws_its_socket(group):
    """SIGTERM the moment `start` returns (the daemon may still be re-executing itself): the daemon goes by its
    orderly way, its socket and lock file with it."""
    group.start("c1")
    daemon = group.the_daemon()
    os.kill(daemon, signal.SIGTERM)
    wait_until(lambda: gone(daemon), 10, "the daemon to exit")
    assert not os.path.lexists(group.socket)


def test_shim_leaving_on_sigterm_refuses_to_be_joined(group):
    """A daemon told to go (SIGTERM) while a `start` holds the socket's lock keeps answering until it can withdraw:
    a Join is refused as 'exiting' (the `start` then waits and makes a fresh daemon), and once the lock is free the
    daemon withdraws its socket and exits."""
    address = group.start("c1")
    daemon = group.the_daemon()
    lock = os.open(group.socket + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # as a `start` deciding about the socket does
        os.kill(daemon, signal.SIGTERM)
        time.sleep(0.5)
        assert not gone(daemon)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(20)
            sock.connect(group.socket)
            body = _field(1, b"pea.shim.v1.Group") + _field(2, b"Join") + _field(3, _field(1, b"c2"))
            sock.sendall(struct.pack(">IIBB", len(body), 1, 1, 0) + body)
            assert _response(sock)[1:3] == (9, "the shim is exiting")
        waiting = group.popen("c2")  # blocks on the lock
        time.sleep(0.2)
        assert waiting.poll() is None
    finally:
        os.close(lock)
    out, err = waiting.communicate(timeout=30)
    assert (waiting.returncode, out.decode()) == (0, address), err
    wait_until(lambda: gone(daemon), 10, "the old daemon to exit")
    fresh = group.the_daemon(besides=[daemon])
    assert os.path.lexists(group.socket) and group.call("Connect", _field(1, b"c2"))[1] == 0
    assert fresh != daemon
