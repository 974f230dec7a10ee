"""`pea pod logs -f` against a writer that outruns rotation: every line the container wrote is printed once, in
order and whole, or the lines rotation took before the follower could read them are announced by exactly one marker
line each time, whose count is what is missing. A stopped follower never slows the container."""
import os
import re
import signal
import subprocess
import time

import pytest

import helpers
from pods import container, ps

pytestmark = pytest.mark.pea_only

# Small files, so that a few MB of output rotate hundreds of times and most of it is dropped.
ROTATION = {"PEA_SHIM_LOG_MAX_BYTES": "65536"}
MARKER = re.compile(r"^pea: pod logs: (\d+) lines \((\d+) bytes\) of a's output were rotated away before they could "
                    r"be read$")


def follower(pods, name):
    """`pea pod logs -f -c a`, stdout and stderr in one pipe, so that a marker's place among the lines shows."""
    return subprocess.Popen(pods.argv("pod", "logs", "-f", "-c", "a", name), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=pods.env)


def check_numbers(out, last, tail=()):
    """The follower's output: numbers up to `last` (from wherever it began), in order, each whole, any number
    missing announced by one marker just before the next number, with the count of what is missing; then the lines
    of `tail`. Returns how many markers there were."""
    lines = out.splitlines()
    assert lines[len(lines) - len(tail):] == list(tail), lines[-5:]
    lines = lines[:len(lines) - len(tail)]
    assert lines, "the follower printed nothing"
    assert lines[0].isdigit(), lines[:3]
    expect, markers, announced = int(lines[0]), 0, None
    for i, line in enumerate(lines):
        m = MARKER.match(line)
        if m:
            assert announced is None, f"two markers for one gap at line {i}: {lines[i - 1:i + 1]}"
            announced = (int(m.group(1)), int(m.group(2)))
            markers += 1
            continue
        assert line.isdigit(), f"line {i} is neither a whole number nor a marker: {line!r}"
        n = int(line)
        if announced is None:
            assert n == expect, f"line {i}: {n} after {expect - 1}, a silent gap of {n - expect} lines"
        else:
            missing = range(expect, n)
            assert announced[0] == len(missing), f"line {i}: the marker says {announced[0]}, {len(missing)} missing"
            # The bytes that went with the files: the missing lines' but, at most, a piece of the first and last.
            size = [len(str(k)) + 1 for k in missing]
            assert sum(size[1:-1]) <= announced[1] <= sum(size), (announced, len(missing))
            announced = None
        expect = n + 1
    assert announced is None, "a marker after the last line"
    assert expect == last + 1, f"ended at {expect - 1}, not {last}"
    return markers


def test_follower_keeps_up_or_announces_each_gap_while_the_writer_outruns_rotation(pods):
    name = pods.name()
    n = 300000
    # The follower starts before the output does; 300000 lines are about 13 MB of records, 200 rotations.
    script = f"sleep 1; seq 1 {n}"
    code, out, err = pods.apply(pods.manifest([container("a", pods.rootfs, script)], name=name),
                                env=dict(pods.env, **ROTATION))
    assert code == 0, err
    f = follower(pods, name)
    try:
        out, _ = f.communicate(timeout=25)
    finally:
        if f.poll() is None:
            f.kill()
            f.wait()
    assert f.returncode == 0, out[-2000:]
    check_numbers(out, n)
    code, _, err = pods.cli("pod", "rm", name)
    assert code == 0, err


def test_stopped_follower_does_not_slow_the_writer_and_is_told_what_it_missed(pods):
    name = pods.name()
    n = 100000
    # b writes the same as a, unfollowed: the measure of an unhindered writer. Each says how long its burst took.
    script = (f"seq 1 1000; sleep 3; read t0 x < /proc/uptime; seq 1001 {n}; read t1 x < /proc/uptime; "
              "echo took $t0 $t1 >&2")
    code, out, err = pods.apply(pods.manifest([container("a", pods.rootfs, script),
                                               container("b", pods.rootfs, script)], name=name),
                                env=dict(pods.env, **ROTATION))
    assert code == 0, err
    f = follower(pods, name)
    try:
        # The first 1000 lines, read from the pipe itself: communicate() reads it too, past any buffer.
        first = ""
        while not first.endswith("1000\n"):
            got = os.read(f.stdout.fileno(), 65536).decode()
            assert got, first[-200:]
            first += got
        # Stopped before the burst, kept stopped until both writers are done.
        f.send_signal(signal.SIGSTOP)
        stopped_at = time.monotonic()
        helpers.wait_until(lambda: all(c["state"] == "exited" for c in ps(pods, name).values()), 20,
                           "both writers done while the follower is stopped")
        stopped_for = time.monotonic() - stopped_at
        f.send_signal(signal.SIGCONT)
        out, _ = f.communicate(timeout=20)
    finally:
        if f.poll() is None:
            f.kill()
            f.wait()
    assert f.returncode == 0, out[-2000:]

    def took(c):
        code, out, logged = pods.cli("pod", "logs", "-c", c, "--tail", "1", name)
        assert code == 0 and out == "" and logged.startswith("took "), (out, logged)
        t0, t1 = (float(v) for v in logged.split()[1:3])
        return t1 - t0

    a, b = took("a"), took("b")
    assert a <= 3 * b + 1.0 and a < stopped_for, f"a took {a:.2f}s, b {b:.2f}s, follower stopped {stopped_for:.2f}s"
    # Its stderr line goes to the follower's stderr, which shares the pipe here.
    took_line = [line for line in out.splitlines() if line.startswith("took ")]
    assert len(took_line) == 1, out.splitlines()[-5:]
    assert check_numbers(first + out.replace(took_line[0] + "\n", ""), n) >= 1, "nothing was rotated away?"
    code, _, err = pods.cli("pod", "rm", name)
    assert code == 0, err
