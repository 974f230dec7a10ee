"""containerd 1.6 + its runc v2 shim with pea as the runc binary, driven by ctr."""
import json
import os
import subprocess
import time

import pytest

from e2e import IMAGE, cgroup2_has, wait_until
from test_podman import _pty_run


def test_run_output_runc_binary(ctr, name):
    r = ctr.ok("run", "--rm", "--runc-binary", ctr.pea, IMAGE, name, "echo", "hello from pea")
    assert r.out == "hello from pea\n"


def test_run_runtime_config_path(ctr, name):
    """The runc shim's options as a file (README): BinaryName = pea."""
    r = ctr.ok("run", "--rm", "--runtime-config-path", ctr.runtime_options, IMAGE, name, "sh", "-c",
               "cat /proc/1/cmdline | tr '\\0' ' '")
    assert r.out == "sh -c cat /proc/1/cmdline | tr '\\0' ' ' "


@pytest.mark.parametrize("cmd,code", [(["true"], 0), (["sh", "-c", "exit 3"], 3), (["sh", "-c", "exit 130"], 130)])
def test_exit_codes(ctr, name, cmd, code):
    r = ctr("run", "--rm", "--runc-binary", ctr.pea, IMAGE, name, *cmd)
    assert r.code == code, r


def test_stdin(ctr, name):
    # ctr keeps the container's stdin open after its own EOF (with runc as well): read one line
    r = ctr.ok("run", "--rm", "--runc-binary", ctr.pea, IMAGE, name, "sh", "-c", "head -n 1 | tr a-z A-Z",
               input="piped\n")
    assert r.out == "PIPED\n"


def test_env_cwd_bind(ctr, name, tmp_path):
    (tmp_path / "in").write_text("from host\n")
    r = ctr.ok("run", "--rm", "--runc-binary", ctr.pea, "--env", "FOO=bar", "--cwd", "/data",
               "--mount", f"type=bind,src={tmp_path},dst=/data,options=rbind:rw", IMAGE, name,
               "sh", "-c", 'echo $FOO; pwd; cat in; echo out > out')
    assert r.out.splitlines() == ["bar", "/data", "from host"]
    assert (tmp_path / "out").read_text() == "out\n"


def test_read_only(ctr, name):
    r = ctr.ok("run", "--rm", "--runc-binary", ctr.pea, "--read-only", IMAGE, name, "sh", "-c",
               "touch /etc/x 2>/dev/null && echo writable || echo refused")
    assert r.out == "refused\n"


def test_privileged(ctr, name):
    r = ctr.ok("run", "--rm", "--runc-binary", ctr.pea, "--privileged", IMAGE, name, "sh", "-c",
               "grep -E '^CapEff' /proc/self/status; ls /dev | grep -c . ; mkdir /tmp/m && mount -t tmpfs t /tmp/m && echo mounted")
    lines = r.out.splitlines()
    assert int(lines[0].split()[1], 16) == int(open("/proc/self/status").read().split("CapBnd:")[1].split()[0], 16)
    assert int(lines[1]) > 10  # the host's devices
    assert lines[2] == "mounted"


def test_tty(ctr, name):
    code, out = _pty_run(ctr.argv("run", "--rm", "-t", "--runc-binary", ctr.pea, IMAGE, name,
                                  "sh", "-c", "tty; exit 4"), None)
    assert code == 4, out
    assert "/dev/pts/0" in out, out


def test_detached_task_exec_ps_kill_delete(ctr, name):
    ctr.ok("run", "-d", "--runc-binary", ctr.pea, IMAGE, name, "sh", "-c",
           "trap 'exit 5' TERM; sleep 1000 & while :; do sleep 0.1; done")
    wait_until(lambda: "RUNNING" in ctr.ok("tasks", "ls").out, 10, "the task to run")
    r = ctr.ok("tasks", "exec", "--exec-id", "e1", "--user", "1000", "--cwd", "/tmp", name, "sh", "-c", "id -u; pwd")
    assert r.out.splitlines() == ["1000", "/tmp"]
    assert ctr("tasks", "exec", "--exec-id", "e2", name, "sh", "-c", "exit 6").code == 6
    code, out = _pty_run(ctr.argv("tasks", "exec", "-t", "--exec-id", "e3", name, "sh", "-c", "tty; exit 2"), None)
    assert code == 2 and "/dev/pts/" in out, out
    ps = ctr.ok("tasks", "ps", name).out.splitlines()
    pids = [int(line.split()[0]) for line in ps[1:] if line.strip()]
    assert len(pids) >= 2, ps  # sh, sleep 1000 (and the loop's sleep)
    cmds = [open(f"/proc/{p}/cmdline").read().replace("\0", " ").strip() for p in pids if os.path.exists(f"/proc/{p}")]
    assert "sleep 1000" in cmds, cmds
    ctr.ok("tasks", "kill", name)  # SIGTERM to init: the trap exits 5
    wait_until(lambda: "STOPPED" in ctr.ok("tasks", "ls").out, 10, "the task to stop")
    ctr.ok("tasks", "delete", name)
    ctr.ok("containers", "delete", name)


def test_task_delete_reports_status(ctr, name):
    ctr.ok("run", "-d", "--runc-binary", ctr.pea, IMAGE, name, "sh", "-c", "sleep 0.2; exit 9")
    wait_until(lambda: "STOPPED" in ctr.ok("tasks", "ls").out, 10, "the task to stop")
    r = ctr("tasks", "delete", name)
    # ctr prints nothing but exits with... its own status; the exit status is in the task's metrics/list
    assert r.code == 0, r
    ctr.ok("containers", "delete", name)


def test_kill_all(ctr, name):
    ctr.ok("run", "-d", "--runc-binary", ctr.pea, IMAGE, name, "sh", "-c",
           "trap '' TERM; sleep 1000 & sleep 1000 & wait")
    wait_until(lambda: len(ctr.ok("tasks", "ps", name).out.splitlines()) >= 4, 10, "three processes")
    ctr.ok("tasks", "kill", "--all", "--signal", "SIGKILL", name)
    wait_until(lambda: "STOPPED" in ctr.ok("tasks", "ls").out, 10, "the task to stop")
    ctr.ok("tasks", "delete", name)
    ctr.ok("containers", "delete", name)


def test_pause_resume(ctr, name):
    ctr.ok("run", "-d", "--runc-binary", ctr.pea, IMAGE, name, "sleep", "1000")
    wait_until(lambda: "RUNNING" in ctr.ok("tasks", "ls").out, 10, "the task to run")
    ctr.ok("tasks", "pause", name)
    assert "PAUSED" in ctr.ok("tasks", "ls").out
    ctr.ok("tasks", "resume", name)
    assert "RUNNING" in ctr.ok("tasks", "ls").out
    ctr.ok("tasks", "kill", "--signal", "SIGKILL", name)
    wait_until(lambda: "STOPPED" in ctr.ok("tasks", "ls").out, 10, "the task to stop")
    ctr.ok("tasks", "delete", name)
    ctr.ok("containers", "delete", name)


def test_several_tasks(ctr, name):
    names = [f"{name}-{i}" for i in range(4)]
    procs = [ctr.popen("run", "--rm", "--runc-binary", ctr.pea, IMAGE, n, "sh", "-c", f"sleep 0.5; echo {n}",
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
             for n in names]
    for n, p in zip(names, procs):
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0 and out == f"{n}\n", (out, err)


def test_create_error_reaches_ctr(ctr, name):
    """The shim reads the last error line of pea's --log (json): ctr prints pea's message."""
    r = ctr("run", "--rm", "--runc-binary", ctr.pea, IMAGE, name, "/no/such/binary")
    assert r.code != 0
    assert 'exec: "/no/such/binary"' in r.err and ("no such file" in r.err.lower() or "not found" in r.err), r
    r = ctr("run", "--rm", "--runc-binary", ctr.pea, "--memory-limit", str(64 << 20), IMAGE, name + "m", "true")
    have = cgroup2_has("memory")
    if not have:
        assert r.code != 0
        assert 'memory.max needs the "memory" controller' in r.err, r
