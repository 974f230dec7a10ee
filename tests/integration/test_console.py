"""process.terminal: the pty master handed over --console-socket with SCM_RIGHTS, as conmon and containerd expect."""
import array
import fcntl
import os
import re
import select
import socket
import struct
import time
import types

import pytest

from helpers import parse_kv


@pytest.fixture
def console_socket(work_dir):
    path = os.path.join(work_dir, "console.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.listen(4)
    sock.settimeout(10)
    yield types.SimpleNamespace(listener=sock, path=path)
    sock.close()


def receive_master(listener):
    """Accept one connection and return (the fds it sent, its payload, whether anything was cut off)."""
    conn, _ = listener.accept()
    with conn:
        fds = array.array("i")
        payload, ancillary, flags, _ = conn.recvmsg(4096, socket.CMSG_SPACE(16 * fds.itemsize))
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data[:len(data) - len(data) % fds.itemsize])
    return list(fds), payload, bool(flags & (socket.MSG_CTRUNC | socket.MSG_TRUNC))


def read_until(fd, pattern, timeout=5.0):
    """Read the pty master until the regex PATTERN matches, the other side closes, or TIMEOUT; returns the text
    with the pty's CRLF turned into LF."""
    out = b""
    deadline = time.monotonic() + timeout
    while not re.search(pattern.encode(), out):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            break
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: every slave fd is closed
            break
        if not chunk:
            break
        out += chunk
    return out.decode(errors="replace").replace("\r\n", "\n")


ISATTY_DONE = r"stderr \d\r?\n"  # the last line of `peatest isatty`
TIOCGPTN = 0x80045430  # _IOR('T', 0x30, unsigned int): only a pty master answers it


def is_pty_master(fd):
    try:
        fcntl.ioctl(fd, TIOCGPTN, struct.pack("I", 0))
        return True
    except OSError:
        return False


def create_with_console(run, bundle, cid, console_socket, *args):
    bundle.config["process"]["terminal"] = True
    bundle.args(*args)
    r = run("create", "--console-socket", console_socket.path, "--bundle", bundle, cid)
    assert r.code == 0, r.err
    fds, payload, truncated = receive_master(console_socket.listener)
    assert len(fds) == 1, f"expected exactly one fd over the console socket, got {len(fds)}"
    assert not truncated
    return fds[0], payload


def test_console_socket_receives_the_pty_master(run, bundle, cid, console_socket, wait_for_status):
    master, _ = create_with_console(run, bundle, cid, console_socket,
                                    "sh", "-c", "read line; echo got:$line; tty; peatest isatty")
    try:
        assert is_pty_master(master)
        run.ok("start", cid)
        os.write(master, b"hello\n")
        out = read_until(master, ISATTY_DONE)
    finally:
        os.close(master)
    assert "got:hello\n" in out
    lines = out.splitlines()
    tty = [line for line in lines if line.startswith("/dev/")]
    assert tty and tty[0].startswith("/dev/pts/"), out
    results = parse_kv("\n".join(line for line in lines if line.startswith(("stdin", "stdout", "stderr"))))
    assert results == {"stdin": "1", "stdout": "1", "stderr": "1"}
    wait_for_status(cid, "stopped")


def test_console_payload_names_the_pty(run, bundle, cid, console_socket):
    master, payload = create_with_console(run, bundle, cid, console_socket, "peatest", "sleep", "100")
    os.close(master)
    assert payload, "the console message carries the pty name as its payload"


def test_exec_tty_over_console_socket(run, bundle, cid, console_socket, wait_for_status):
    bundle.args("peatest", "sleep", "100")
    run.ok("create", "--bundle", bundle, cid)
    run.ok("start", cid)
    wait_for_status(cid, "running")
    r = run("exec", "--tty", "--detach", "--console-socket", console_socket.path, cid, "peatest", "isatty")
    assert r.code == 0, r.err
    fds, _, _ = receive_master(console_socket.listener)
    assert len(fds) == 1
    try:
        out = read_until(fds[0], ISATTY_DONE)
    finally:
        os.close(fds[0])
    assert "stdin 1\nstdout 1\nstderr 1" in out


def test_console_size(run, bundle, cid, console_socket):
    bundle.config["process"]["consoleSize"] = {"height": 30, "width": 100}
    master, _ = create_with_console(run, bundle, cid, console_socket, "stty", "size")
    try:
        run.ok("start", cid)
        out = read_until(master, r"\n")
    finally:
        os.close(master)
    assert out.strip() == "30 100"


def test_terminal_without_console_socket_fails_create(run, bundle, cid, assert_no_leaks):
    bundle.config["process"]["terminal"] = True
    bundle.args("peatest", "sleep", "100")
    r = run("create", "--bundle", bundle, cid)
    assert r.code != 0
    assert r.err.strip()
    assert_no_leaks()


def test_run_with_terminal_proxies_the_pty(run, bundle, cid):
    """Without --console-socket, a foreground run copies between its own terminal and the container's pty."""
    bundle.config["process"]["terminal"] = True
    bundle.args("sh", "-c", "read line; echo got:$line; peatest isatty")
    master, slave = os.openpty()
    try:
        proc = run.popen("run", "--bundle", bundle, cid, tty=slave)
        os.close(slave)
        slave = -1
        os.write(master, b"typed\n")
        out = read_until(master, ISATTY_DONE)
        assert proc.wait(timeout=10) == 0
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    assert "got:typed\n" in out
    assert "stdin 1\nstdout 1\nstderr 1" in out
