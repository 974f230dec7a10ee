"""pea-pause, the pod's infra process: reaps zombies, exits 0 on SIGTERM/SIGINT, prints its version; tiny and static."""
import os
import re
import signal
import struct
import subprocess
import sys
import time

import pytest

from conftest import BUILD_DIR

PAUSE = os.path.join(BUILD_DIR, "sandbox", "pea-pause")

pytestmark = pytest.mark.pea_only


def children_of(pid):
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


def status_of(pid):
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def wait_ready(pid):
    """Wait until PID runs pea-pause and sleeps in its signal wait; its status then. (SigBlk cannot tell: while in
    sigtimedwait the waited signals are unblocked.)"""
    deadline = time.time() + 5
    while time.time() < deadline:
        try:
            with open(f"/proc/{pid}/wchan") as f:
                waiting = "sigtimedwait" in f.read()
            if waiting and os.readlink(f"/proc/{pid}/exe") == os.path.realpath(PAUSE):
                return status_of(pid)
        except OSError:
            pass
        time.sleep(0.02)
    pytest.fail(f"pea-pause (pid {pid}) did not reach its wait")


def stop(p):
    if p.poll() is None:
        p.kill()
        p.wait()


def start_pause_as_pid_one(launcher=()):
    """pea-pause as PID 1 of a new pid namespace, exec'd by the command LAUNCHER (which gets pea-pause's path as its
    last argument) if any; (unshare's Popen, pea-pause's pid)."""
    p = subprocess.Popen(["unshare", "--pid", "--fork", "--kill-child", *launcher, PAUSE])
    try:
        deadline = time.time() + 5
        while time.time() < deadline and not children_of(p.pid):
            time.sleep(0.02)
        kids = children_of(p.pid)
        assert kids, "pea-pause did not start"
        status = wait_ready(kids[0])
        assert status["NSpid"].split()[-1] == "1", "pea-pause is not PID 1 of its pid namespace"
        return p, kids[0]
    except BaseException:
        stop(p)
        raise


@pytest.mark.parametrize("inherited", [signal.SIG_DFL, signal.SIG_IGN])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_exits_zero_on_stop_signals(sig, inherited):
    """Also when started with the signal ignored (a shell's background job): a blocked signal is queued anyway."""
    p = subprocess.Popen([PAUSE], preexec_fn=lambda: signal.signal(sig, inherited))
    try:
        status = wait_ready(p.pid)
        assert int(status["SigCgt"], 16) == 0, "pea-pause should take its signals without handlers"
        p.send_signal(sig)
        assert p.wait(timeout=5) == 0
    finally:
        stop(p)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_exits_zero_on_stop_signals_as_pid_one(sig):
    """PID 1 drops signals it has no handler for unless they are blocked and waited for, as pea-pause does."""
    p, pause_pid = start_pause_as_pid_one()
    try:
        os.kill(pause_pid, sig)
        assert p.wait(timeout=5) == 0  # unshare --fork exits with its child's status
    finally:
        stop(p)


def zombies_of(pid):
    states = []
    for child in children_of(pid):
        with open(f"/proc/{child}/stat") as f:
            states.append(f.read().rsplit(")", 1)[1].split()[0])
    return states.count("Z")


# Leaves pea-pause a child that is a zombie already (its SIGCHLD went before pea-pause existed) and an orphan that
# exits a second later.
ZOMBIE_AND_ORPHAN = """
import os, sys, time
if os.fork() == 0:
    if os.fork() == 0:
        time.sleep(1)
    os._exit(0)
time.sleep(0.2)
os.execv(sys.argv[1], sys.argv[1:])
"""


def test_reaps_zombies_as_pid_one():
    p, pause_pid = start_pause_as_pid_one([sys.executable, "-c", ZOMBIE_AND_ORPHAN])
    try:
        assert zombies_of(pause_pid) == 0, "the child that exited before pea-pause started is still a zombie"
        deadline = time.time() + 5
        while time.time() < deadline and children_of(pause_pid):
            time.sleep(0.05)
        assert not children_of(pause_pid), "the orphan was left a zombie"
        os.kill(pause_pid, signal.SIGTERM)
        assert p.wait(timeout=5) == 0
    finally:
        stop(p)


@pytest.mark.parametrize("flag", ["-v", "--version"])
def test_version(flag):
    out = subprocess.run([PAUSE, flag], capture_output=True, text=True, check=True, timeout=5).stdout
    assert re.fullmatch(r"pea-pause \S+\n", out)


def test_size_on_disk():
    assert os.path.getsize(PAUSE) <= 64 * 1024


def test_resident_size():
    p = subprocess.Popen([PAUSE])
    try:
        rss_kib = int(wait_ready(p.pid)["VmRSS"].split()[0])
        assert rss_kib < 256, f"VmRSS {rss_kib} KiB"
    finally:
        stop(p)


def test_static_without_interpreter():
    with open(PAUSE, "rb") as f:
        elf = f.read()
    assert elf[:4] == b"\x7fELF" and elf[4] == 2 and elf[5] == 1, "not a 64-bit little-endian ELF"
    phoff, = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    types = [struct.unpack_from("<I", elf, phoff + i * phentsize)[0] for i in range(phnum)]
    assert 3 not in types, "has PT_INTERP: needs a dynamic loader"
    assert 2 not in types, "has PT_DYNAMIC: not statically linked"
