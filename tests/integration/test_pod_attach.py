"""`pea pod attach` with the container fields the kubelet honours: stdin (kept open by the shim), stdinOnce (closed
after the first attach session), tty (a pty whose master the shim holds; its output still goes to the log). Each
client runs on a pty of its own, as a user's terminal."""
import fcntl
import os
import pty
import select
import signal
import struct
import termios
import time

import pytest

import helpers
from pods import container

pytestmark = pytest.mark.pea_only


class Attached:
    """`pea pod attach ARGS` on a pty; echo off unless it goes raw itself (so what comes back is the container's)."""

    def __init__(self, pods, *args, rows=None, cols=None):
        with helpers._reap_lock:  # the orphan reaper must leave the client to us
            self.pid, self.fd = pty.fork()
            if self.pid != 0:
                helpers._own_children.add(self.pid)
        if self.pid == 0:
            try:
                attrs = termios.tcgetattr(0)
                attrs[3] &= ~termios.ECHO
                termios.tcsetattr(0, termios.TCSANOW, attrs)
                if rows:
                    fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
                argv = pods.argv("pod", "attach", *args)
                # A terminal's Ctrl-C must reach the client as a user's would, even when this suite runs in the
                # background of a shell without job control (which starts it with SIGINT ignored).
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                os.execve(argv[0], argv, pods.env)
            finally:
                os._exit(127)
        self.buf = bytearray()
        self.status = None

    @property
    def text(self):
        return self.buf.decode(errors="replace")

    def read_until(self, predicate, timeout=15):
        end = time.monotonic() + timeout
        while not predicate(self.text) and time.monotonic() < end:
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if not ready:
                continue
            try:
                data = os.read(self.fd, 4096)
            except OSError:
                return False
            if not data:
                return False
            self.buf.extend(data)
        return predicate(self.text)

    def expect(self, text, timeout=15):
        assert self.read_until(lambda t: text in t, timeout), f"no {text!r} from pod attach:\n{self.text}"

    def write(self, data):
        os.write(self.fd, data)

    def wait(self, timeout=20):
        """The client's exit code, reading its terminal meanwhile."""
        end = time.monotonic() + timeout
        while self.status is None and time.monotonic() < end:
            self.read_until(lambda t: False, 0.2)
            done, word = os.waitpid(self.pid, os.WNOHANG)
            if done:
                self.status = os.waitstatus_to_exitcode(word)
        self.read_until(lambda t: False, 0.3)
        assert self.status is not None, f"pod attach still runs after {timeout}s:\n{self.text}"
        return self.status

    def close(self):
        if self.status is None:
            os.kill(self.pid, 9)
            os.waitpid(self.pid, 0)
            self.status = -9
        helpers.release_child(self.pid)
        os.close(self.fd)


@pytest.fixture
def attach(pods):
    clients = []

    def start(*args, **kw):
        c = Attached(pods, *args, **kw)
        clients.append(c)
        return c
    yield start
    for c in clients:
        c.close()


def applied(pods, containers, **kw):
    name = pods.name()
    code, out, err = pods.apply(pods.manifest(containers, name=name, **kw))
    assert code == 0, err
    return name


def logs(pods, name, c):
    code, out, err = pods.cli("pod", "logs", name, "-c", c)
    assert code == 0, err
    return out


def state(pods, name, c):
    code, out, err = pods.cli("pod", "ps", "-o", "json", name)
    assert code == 0, err
    import json
    return {x["name"]: x for x in json.loads(out)}[c]["state"]


def test_stdin_reaches_the_container_and_its_output_every_client(pods, attach):
    name = applied(pods, [container("side", pods.rootfs, "exec sleep 300"),
                          container("cat", pods.rootfs, "exec cat", stdin=True)])
    writer = attach(name, "-c", "cat", "-i")
    watcher = attach("-c", "cat", name)  # options after or before the name; output only
    # The watcher sees output once its session is open: ping until it does.
    for i in range(60):
        writer.write(f"ping {i}\n".encode())
        if watcher.read_until(lambda t: "ping" in t, 0.5):
            break
    writer.write(b"hello from the terminal\n")
    writer.expect("hello from the terminal")
    watcher.expect("hello from the terminal")
    helpers.wait_until(lambda: "hello from the terminal" in logs(pods, name, "cat"), 10, "the line in the log")
    # EOF of the client's stdin ends its session, not the container's stdin (no stdinOnce): cat runs on.
    writer.write(b"\x04")
    assert writer.wait() == 0, writer.text
    assert state(pods, name, "cat") == "running"
    again = attach(name, "--container=cat", "--stdin")
    time.sleep(0.5)
    again.write(b"second session\n")
    again.expect("second session")
    watcher.expect("second session")
    # Ctrl-C ends a client without a tty; the container runs on.
    watcher.write(b"\x03")
    assert watcher.wait() != 0
    assert state(pods, name, "cat") == "running"
    assert os.waitpid(again.pid, os.WNOHANG) == (0, 0), again.text


def test_tty_gives_the_container_a_terminal_sized_as_the_client(pods, attach):
    script = ("test -t 0 && echo stdin-is-a-tty; "
              "while read line; do echo \"got $line\"; stty size; done")
    name = applied(pods, [container("t", pods.rootfs, script, stdin=True, tty=True)])
    helpers.wait_until(lambda: "stdin-is-a-tty" in logs(pods, name, "t"), 10, "the tty test in the log")
    client = attach(name, "-it", rows=33, cols=77)
    time.sleep(0.5)
    client.write(b"xyz\r")
    client.expect("got xyz")
    client.expect("33 77")
    # Ctrl-P Ctrl-Q detaches; the container keeps its terminal and runs on.
    client.write(b"\x10\x11")
    assert client.wait() == 0, client.text
    assert state(pods, name, "t") == "running"
    assert "got xyz" in logs(pods, name, "t")


def test_stdin_once_closes_stdin_after_the_first_session(pods, attach):
    name = applied(pods, [container("once", pods.rootfs, "cat; echo saw-eof; exec sleep 300",
                                    stdin=True, stdinOnce=True)])
    first = attach(name, "-i")
    time.sleep(0.5)
    first.write(b"only once\n")
    first.expect("only once")
    first.write(b"\x04")
    assert first.wait() == 0, first.text
    helpers.wait_until(lambda: "saw-eof" in logs(pods, name, "once"), 10, "EOF in the container")
    code, out, err = pods.cli("pod", "attach", "-i", name, timeout=20)
    assert code == 1 and "closed its stdin after its first attach session (stdinOnce)" in err, err


def test_a_container_without_stdin_is_output_only(pods, attach):
    name = applied(pods, [container("out", pods.rootfs,
                                    "cat; echo stdin-was-empty; while true; do echo tick; sleep 0.3; done")])
    helpers.wait_until(lambda: "stdin-was-empty" in logs(pods, name, "out"), 10, "cat ending at once on /dev/null")
    code, out, err = pods.cli("pod", "attach", "-i", name, timeout=20)
    assert code == 1 and "container out does not keep stdin open (set stdin: true" in err, err
    client = attach(name, "-t")
    client.expect("container out has no tty")
    client.expect("tick")
    client.write(b"\x03")
    assert client.wait() != 0


def test_pod_rm_while_attached_ends_the_client_with_a_message(pods, attach):
    name = applied(pods, [container("cat", pods.rootfs, "exec cat", stdin=True)])
    client = attach(name, "-i")
    time.sleep(0.5)
    client.write(b"before rm\n")
    client.expect("before rm")
    start = time.monotonic()
    code, out, err = pods.cli("pod", "rm", name, timeout=30)
    assert code == 0, err
    assert time.monotonic() - start < 15  # the grace period is 2 s
    assert client.wait(10) == 1, client.text
    assert "pea: pod attach " + name + ": the pod is being stopped" in client.text, client.text


def test_a_client_that_does_not_read_never_holds_the_shim_up(pods, attach):
    """A stopped client's pipe fills, then what the shim queues for it (1 MiB + 4 MiB); the shim ends that session
    rather than wait, and the pod goes on."""
    import signal
    import subprocess
    name = applied(pods, [container("flood", pods.rootfs,
                                    "until read -t 0.3 go; do echo waiting; done; head -c 8000000 /dev/zero | tr '\\0' x; echo; echo flood-done; "
                                    "exec sleep 300", stdin=True)])
    stuck = attach(name)
    stuck.expect("waiting")
    os.kill(stuck.pid, signal.SIGSTOP)
    writer = subprocess.Popen(pods.argv("pod", "attach", "-i", name), stdin=subprocess.PIPE,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=pods.env)
    try:
        time.sleep(0.5)
        writer.stdin.write(b"go\n")
        writer.stdin.flush()
        helpers.wait_until(lambda: "flood-done" in logs(pods, name, "flood"), 30, "the whole flood in the log")
        assert state(pods, name, "flood") == "running"
        code, out, err = pods.cli("pod", "ps", name, timeout=10)  # the shim answers at once
        assert code == 0, err
        # The writer may have kept up or been dropped too (that depends on the scheduler); either way it ends.
        writer.stdin.close()
        assert writer.wait(10) in (0, 1)
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
        os.kill(stuck.pid, signal.SIGCONT)
    assert stuck.wait() == 1
    assert "the output came faster than this client read it" in stuck.text, stuck.text[-500:]


def test_the_session_ends_with_the_container_and_takes_its_exit_code(pods, attach):
    name = applied(pods, [container("short", pods.rootfs, "read line; echo \"last words: $line\"; exit 7",
                                    stdin=True)])
    client = attach(name, "-i")
    time.sleep(0.5)
    client.write(b"bye\n")
    assert client.wait() == 7, client.text
    assert "last words: bye" in client.text, client.text
