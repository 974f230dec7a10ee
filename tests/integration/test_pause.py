"""pea-pause, the pod's infra process: reaps zombies, exits 0 on SIGTERM/SIGINT, prints its version."""
import os
import signal
import subprocess
import time

import pytest

from conftest import BUILD_DIR

PAUSE = os.path.join(BUILD_DIR, "sandbox", "pea-pause")

pytestmark = pytest.mark.pea_only


def children_of(pid):
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


def start_pause_with_orphan():
    """pea-pause as PID 1 of a new pid namespace, with a child that exits at once and must be reaped."""
    return subprocess.Popen(["unshare", "--pid", "--fork", "--kill-child", "sh", "-c",
                             f"(sleep 0.2 &) ; exec {PAUSE}"])


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_exits_zero_on_stop_signals(sig):
    p = subprocess.Popen([PAUSE])
    time.sleep(0.1)
    p.send_signal(sig)
    assert p.wait(timeout=5) == 0


def test_reaps_zombies_as_pid_one():
    p = start_pause_with_orphan()
    try:
        deadline = time.time() + 5
        pause_pid = None
        while time.time() < deadline and pause_pid is None:
            kids = children_of(p.pid)
            pause_pid = kids[0] if kids else None
            time.sleep(0.05)
        assert pause_pid, "pea-pause did not start"
        time.sleep(1)  # the background sleep has exited by now
        states = []
        for child in children_of(pause_pid):
            with open(f"/proc/{child}/stat") as f:
                states.append(f.read().rsplit(")", 1)[1].split()[0])
        assert "Z" not in states, "a zombie was left unreaped"
        os.kill(pause_pid, signal.SIGTERM)
        assert p.wait(timeout=5) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_version_and_size():
    out = subprocess.run([PAUSE, "-v"], capture_output=True, text=True, check=True).stdout
    assert out.startswith("pea-pause ")
    assert os.path.getsize(PAUSE) <= 1024 * 1024
