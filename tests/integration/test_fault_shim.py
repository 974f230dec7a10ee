"""Faults around pea-shim: a client attached to an exec while the pod is torn down, and a shim that does not answer
(SIGSTOPped). Teardown never waits for an attached client, and no client waits for a silent shim beyond its
deadline."""
import os
import pty
import select
import signal
import subprocess
import time

import pytest

import helpers
from pods import container

pytestmark = pytest.mark.pea_only

GRACE = 2  # the manifests' terminationGracePeriodSeconds
EXEC_ARGS = ("sleep", "77")  # what the attached exec runs: found on the host by these arguments and the mark


def served_pod(pods, spec=None):
    """A pod of one container that ignores SIGTERM (sleep as its pid 1): a stop takes the whole grace period. (In the
    pod's shared PID namespace, spec shareProcessNamespace, the infra is pid 1 and SIGTERM ends sleep at once.)"""
    name = pods.name()
    code, _, err = pods.apply(pods.manifest([container("a", pods.rootfs, "exec sleep 300")], name=name, spec=spec))
    assert code == 0, err
    shim = pods.state(name)["shim"]["pid"]
    return name, shim


def exec_processes(mark):
    """Host PIDs of the exec'd command of these tests that carry MARK in their environment."""
    def is_exec(pid, cmdline):
        if tuple(a.decode() for a in cmdline.split(b"\0")[:-1]) != EXEC_ARGS:
            return False
        with open(f"/proc/{pid}/environ", "rb") as f:
            return f"PEA_IT_MARK={mark}".encode() in f.read().split(b"\0")
    return helpers.processes_where(is_exec)


def is_alive(pid):
    """Whether PID runs (a zombie does not count)."""
    try:
        return helpers._proc_stat(pid)[0] != "Z"
    except (OSError, IndexError):
        return False


class AttachedExec:
    """`pea pod exec -c a NAME -- sleep 77` in the background: on a pty of its own (-it) or with its stdout and
    stderr in a file."""

    def __init__(self, pods, name, has_tty, err_path, args=EXEC_ARGS):
        argv = pods.argv("pod", "exec", *(["-it"] if has_tty else []), "-c", "a", "-e",
                         f"PEA_IT_MARK={pods.mark}", name, "--", *args)
        self.master = None
        self.err_path = err_path
        if has_tty:
            self.master, slave = pty.openpty()
            self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=pods.env,
                                         start_new_session=True)
            os.close(slave)
        else:
            with open(err_path, "wb") as err:
                self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err, env=pods.env)

    def wait(self, timeout, until=None):
        """Its exit code and what it printed (a pty's output is read as it comes, or the client would block); with
        UNTIL, None once the output holds it (the client goes on)."""
        output = b""
        deadline = time.monotonic() + timeout
        while self.master is not None and time.monotonic() < deadline:
            if until is not None and until.encode() in output:
                return None
            if select.select([self.master], [], [], 0.1)[0]:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:  # EIO: the client has exited, with every slave fd
                    break
                if not chunk:
                    break
                output += chunk
            elif self.proc.poll() is not None:
                break
        code = self.proc.wait(max(deadline - time.monotonic(), 0.1))
        if self.master is None:
            with open(self.err_path, "rb") as f:
                output = f.read()
        return code, output.decode(errors="replace").replace("\r\n", "\n")

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.master is not None:
            os.close(self.master)


def force_remove(pods, name, shim):
    """Whatever a failed test left: the shim continued (if stopped) and killed, the pod removed by force."""
    try:
        os.kill(shim, signal.SIGCONT)
        os.kill(shim, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if os.path.isdir(os.path.join(pods.root, "pods", name)):
        pods.cli("pod", "rm", "--force", name, timeout=60)


def tear_down_with_exec_attached(pods, command, name, shim, attached):
    """Runs `pea pod COMMAND NAME` while ATTACHED execs in the pod: it ends within the grace period plus a few
    seconds, takes the shim and the exec'd command with it, tells the exec client why, and leaves nothing."""
    helpers.wait_until(lambda: exec_processes(pods.mark), 10, "the exec'd command")
    [exec_pid] = exec_processes(pods.mark)
    start = time.monotonic()
    try:
        code, _, err = pods.cli("pod", command, name, timeout=15)
    except subprocess.TimeoutExpired:
        pytest.fail(f"pod {command} with an exec attached took more than 15 s")
    took = time.monotonic() - start
    assert code == 0, err
    # The grace period (the container ignores SIGTERM), then the teardown: a few seconds, never the exec's.
    assert took < GRACE + 5, f"pod {command} took {took:.1f} s"
    assert not is_alive(shim), "the shim still runs"
    assert not is_alive(exec_pid), "the exec'd command outlived its container"
    code, output = attached.wait(10)
    assert code != 0 and f"pea: pod exec {name}: the pod is being stopped" in output, (code, output)
    assert pods.leftovers() == []


@pytest.mark.parametrize("has_tty", [False, True], ids=["no-tty", "tty"])
@pytest.mark.parametrize("command", ["rm", "stop"])
def test_an_attached_exec_does_not_delay_the_teardown(pods, command, has_tty):
    name, shim = served_pod(pods)
    attached = AttachedExec(pods, name, has_tty, os.path.join(pods.work_dir, "exec.err"))
    try:
        tear_down_with_exec_attached(pods, command, name, shim, attached)
    finally:
        attached.close()
        force_remove(pods, name, shim)


def test_an_attached_exec_in_the_shared_pid_namespace_dies_with_its_container(pods):
    """There the exec'd command would outlive its container's init (the infra is the namespace's pid 1): the shim
    kills it when the container stops, and the infra's own exit does not wait for it."""
    name, shim = served_pod(pods, spec={"shareProcessNamespace": True})
    attached = AttachedExec(pods, name, False, os.path.join(pods.work_dir, "exec.err"))
    try:
        tear_down_with_exec_attached(pods, "rm", name, shim, attached)
    finally:
        attached.close()
        force_remove(pods, name, shim)


def test_an_attached_exec_is_told_that_its_container_was_recreated(pods):
    name, shim = served_pod(pods)
    attached = AttachedExec(pods, name, False, os.path.join(pods.work_dir, "exec.err"))
    try:
        helpers.wait_until(lambda: exec_processes(pods.mark), 10, "the exec'd command")
        changed = container("a", pods.rootfs, "exec sleep 300", env=[{"name": "COLOUR", "value": "blue"}])
        code, out, err = pods.apply(pods.manifest([changed], name=name), timeout=30)
        assert code == 0 and out == "recreated: a\n", err
        code, output = attached.wait(10)
        assert code != 0 and output == f"pea: pod exec {name}: container a stopped\n", (code, output)
        assert exec_processes(pods.mark) == []
        code, _, err = pods.cli("pod", "rm", name, timeout=15)
        assert code == 0, err
    finally:
        attached.close()
        force_remove(pods, name, shim)


def test_a_stopped_shim_fails_exec_wait_and_events_within_their_deadline_naming_the_shim(pods):
    name, shim = served_pod(pods)
    commands = {"exec": ("exec", name, "--", "true"), "wait": ("wait", name), "events": ("events", name)}
    clients, outputs = {}, {}
    try:
        os.kill(shim, signal.SIGSTOP)
        start = time.monotonic()
        # An exec request (with our stdio) stays queued at the stopped shim: output goes to a file, not a pipe whose
        # end would stay open there.
        for what, args in commands.items():
            with open(os.path.join(pods.work_dir, f"{what}.err"), "wb") as err:
                clients[what] = subprocess.Popen(pods.argv("pod", *args), stdin=subprocess.DEVNULL, stdout=err,
                                                 stderr=err, env=pods.env)
        for what, client in clients.items():
            try:
                code = client.wait(max(16 - (time.monotonic() - start), 0.1))
            except subprocess.TimeoutExpired:
                pytest.fail(f"pod {what} waited more than 16 s for a stopped shim")
            with open(os.path.join(pods.work_dir, f"{what}.err")) as f:
                outputs[what] = (code, f.read())
        took = time.monotonic() - start
        for what, (code, message) in outputs.items():
            assert code != 0 and message == f"pea: pod {what} {name}: pea-shim (pid {shim}) did not answer within 10s\n"
        assert 9 < took < 14, f"the clients gave up after {took:.1f} s"
    finally:
        for client in clients.values():
            if client.poll() is None:
                client.kill()
                client.wait()
        force_remove(pods, name, shim)


def test_a_tty_exec_whose_command_ended_gives_up_on_a_stopped_shim(pods):
    """The session itself does not need the shim (the pty master is ours): it runs on while the shim is stopped. Once
    the pty hangs up the exit is due, and a shim that does not answer is not waited for beyond its deadline."""
    name, shim = served_pod(pods)
    attached = AttachedExec(pods, name, True, None, args=("sh", "-c", "echo ready; sleep 3; echo done"))
    try:
        assert attached.wait(10, until="ready") is None
        os.kill(shim, signal.SIGSTOP)
        start = time.monotonic()
        code, output = attached.wait(20)
        took = time.monotonic() - start
        assert code != 0 and "done\n" in output, (code, output)
        assert f"pea: pod exec {name}: pea-shim (pid {shim}) did not answer within 10s\n" in output, output
        # The command's end (under 3 s after the stop), then the 10 s deadline.
        assert 10 < took < 17, f"the client gave up after {took:.1f} s"
    finally:
        attached.close()
        force_remove(pods, name, shim)


def test_rm_force_kills_a_stopped_shim_and_removes_the_pod_within_10s(pods):
    name, shim = served_pod(pods)
    try:
        os.kill(shim, signal.SIGSTOP)
        start = time.monotonic()
        try:
            code, _, err = pods.cli("pod", "rm", "--force", name, timeout=20)
        except subprocess.TimeoutExpired:
            pytest.fail("pod rm --force took more than 20 s with a stopped shim")
        took = time.monotonic() - start
        assert code == 0, err
        assert took < 10, f"pod rm --force took {took:.1f} s"
        assert not is_alive(shim), "the stopped shim still exists"
        assert pods.leftovers() == []
    finally:
        force_remove(pods, name, shim)
