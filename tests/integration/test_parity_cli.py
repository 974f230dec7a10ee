"""runc parity of the command line (issue 14 item 6): exec's exit codes and flags, kill 0, the terminal's owner,
where hooks start, list order and table, ps of a stopped container, --debug, disableOOMKiller.

Where the comparison is cheap each test runs against pea and against runc 1.1 (/usr/sbin/runc) on the same bundle with
the same command, so that a difference between the two shows up as a failed test. On this host runc drives the v1
cgroup controllers and pea cgroup v2, so cgroup-specific behaviour (exec --cgroup, disableOOMKiller) is pea's alone.
"""
import json
import os
import shutil
import socket
import subprocess
import time
import types

import pytest

import helpers
from test_console import read_until, receive_master

RUNC = "/usr/sbin/runc"
SLEEPER = ("peatest", "sleep", "100")


@pytest.fixture(params=["pea", "runc"])
def rt(request, runtime, work_dir, test_mark, cid, tmp_path):
    """The runtime under test (pea) or runc, each with a --root of its own; at teardown, force-delete what is left
    and fail on anything that leaked."""
    if request.param == "runc":
        if not os.access(RUNC, os.X_OK):
            pytest.skip("runc is not installed")
        path = RUNC
    else:
        if not helpers.is_pea(runtime):
            pytest.skip("PEA_RUNTIME is not pea (the runc case covers it)")
        path = runtime
    root = os.path.join(work_dir, "root-" + request.param)
    os.mkdir(root, 0o700)
    runner = helpers.Runner(path, root, work_dir, test_mark)
    runner.name = request.param
    yield runner
    problems = []
    for left in runner("list", "--quiet").out.split():
        r = runner("delete", "--force", left)
        if r.code != 0:
            problems.append(f"delete --force {left} failed: {r.err.strip()}")
    for pid, why in helpers.marked_processes(test_mark, (str(tmp_path), work_dir), wait=2.0):
        problems.append(f"process left behind: pid {pid} ({why})")
        helpers.kill_and_reap(pid)
    cgroups = helpers.marked_cgroups(cid)
    problems += [f"cgroup left behind: {p}" for p in cgroups]
    helpers.remove_cgroups(cgroups)
    leftovers = helpers.state_dirs(root)
    if leftovers:
        problems.append(f"state left behind in {root}: {leftovers}")
    shutil.rmtree(root, ignore_errors=True)
    if problems:
        pytest.fail("teardown found leaks:\n  " + "\n  ".join(problems), pytrace=False)


@pytest.fixture
def console(work_dir):
    path = os.path.join(work_dir, "console.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.listen(4)
    sock.settimeout(10)
    yield types.SimpleNamespace(listener=sock, path=path)
    sock.close()


def running(rt, bundle, cid, *args):
    bundle.args(*(args or SLEEPER))
    rt.ok("run", "--detach", "--bundle", bundle, cid)
    return rt.wait_for_status(cid, "running")


def stopped(rt, bundle, cid):
    """A container whose init was killed before start: created, then stopped."""
    bundle.args(*SLEEPER)
    rt.ok("create", "--bundle", bundle, cid)
    rt.ok("kill", cid, "KILL")
    helpers.reap_orphans()
    return rt.wait_for_status(cid, "stopped")


# ---- exec ---------------------------------------------------------------------------------------------------------

def test_exec_exits_255_when_the_runtime_fails(rt, bundle, cid, work_dir):
    """1 is an exit code a process can return; runc's own failures in exec are 255, its usage errors 1."""
    r = rt("exec", cid, "true")
    assert r.code == 255, f"no such container: {r}"
    running(rt, bundle, cid)
    assert rt("exec", cid, "sh", "-c", "exit 3").code == 3
    assert rt("exec", cid, "sh", "-c", "exit 1").code == 1
    assert rt("exec", cid, "/no/such/binary").code == 255
    process_file = os.path.join(work_dir, "process.json")
    with open(process_file, "w") as f:
        f.write("{")
    assert rt("exec", "--process", process_file, cid).code == 255
    assert rt("exec", "--process", os.path.join(work_dir, "missing.json"), cid).code == 255
    assert rt("exec", "--user", "nobody", cid, "true").code == 255
    assert rt("exec").code == 1
    rt.ok("kill", cid, "KILL")
    helpers.reap_orphans()
    rt.wait_for_status(cid, "stopped")
    r = rt("exec", cid, "true")
    assert r.code == 255 and "stopped" in r.err, r


def test_exec_into_a_paused_container_needs_ignore_paused(rt, bundle, cid):
    running(rt, bundle, cid)
    rt.ok("pause", cid)
    r = rt("exec", cid, "true")
    assert r.code == 255 and "paused" in r.err, r
    exec_proc = rt.popen("exec", "--ignore-paused", cid, "sh", "-c", "echo ran; exit 4")
    try:
        # The process starts in the frozen cgroup: it cannot finish before the resume.
        time.sleep(1)
        assert exec_proc.poll() is None, f"exec --ignore-paused returned {exec_proc.poll()} before the resume"
        rt.ok("resume", cid)
        assert exec_proc.wait(timeout=20) == 4
    finally:
        if exec_proc.poll() is None:
            rt("resume", cid)
            exec_proc.kill()
            exec_proc.wait()
    assert helpers.read(exec_proc.out_path) == "ran\n"


def test_exec_user_and_additional_gids(rt, bundle, cid):
    """-u UID changes the uid alone (the container's gid and groups stay); -g adds groups after the container's."""
    bundle.process["user"] = {"uid": 0, "gid": 1000, "additionalGids": [2000]}
    running(rt, bundle, cid)
    out = rt.ok("exec", "-u", "1000", "-g", "10", "-g", "20", cid, "sh", "-c", "id -u; id -g; id -G").out.split("\n")
    assert out[:2] == ["1000", "1000"]
    assert sorted(out[2].split()) == sorted(["1000", "2000", "10", "20"])
    # (runc refuses -g and --additional-gids together: "two forms of the same flag")
    assert "30" in rt.ok("exec", "--additional-gids", "30", cid, "id", "-G").out.split()
    assert rt("exec", "-g", "ten", cid, "true").code == 1  # a usage error
    assert rt("exec", "-g", "-5", cid, "true").code == 255


def test_exec_cap_adds_a_capability(rt, bundle, cid):
    running(rt, bundle, cid)
    status = rt.ok("exec", "--cap", "CAP_SYS_ADMIN", cid, "cat", "/proc/self/status").out
    sets = {line.split(":")[0]: int(line.split()[1], 16) for line in status.splitlines() if line.startswith("Cap")}
    cap_sys_admin = 1 << 21
    for name in ("CapBnd", "CapPrm", "CapEff"):
        assert sets[name] & cap_sys_admin, f"{name} lacks CAP_SYS_ADMIN: {status}"


@pytest.mark.pea_only  # runc drives the v1 controllers on this host; pea's --cgroup is cgroup v2's
def test_exec_into_a_sub_cgroup(run, bundle, cid):
    bundle.args(*SLEEPER)
    run.ok("run", "--detach", "--bundle", bundle, cid)
    pid = run.wait_for_status(cid, "running")["pid"]
    with open(f"/proc/{pid}/cgroup") as f:
        own = next(line.strip()[3:] for line in f if line.startswith("0::"))
    root = next(line.split()[4] for line in open("/proc/self/mountinfo")
                if line.split(" - ", 1)[1].startswith("cgroup2 ") and line.split()[3] == "/")
    os.mkdir(os.path.join(root + own, "sub"))
    for given in ("sub", ":sub", "/sub"):
        out = run.ok("exec", "--cgroup", given, cid, "cat", "/proc/self/cgroup").out
        assert f"0::{own}/sub\n" in out, (given, out)
    for given, words in (("../escape", "not below"), ("sub/../..", "not below"), ("missing", "No such file"),
                         ("cpu:sub", "per-controller")):
        r = run("exec", "--cgroup", given, cid, "true")
        assert r.code == 255 and words in r.err, (given, r)
    r = run("exec", "--cgroup", "sub", "--cgroup", "sub", cid, "true")
    assert r.code == 255, r


# ---- kill, list, ps -----------------------------------------------------------------------------------------------

def test_kill_signal_zero_checks_liveness(rt, bundle, cid):
    bundle.args(*SLEEPER)
    rt.ok("create", "--bundle", bundle, cid)
    assert rt("kill", cid, "0").code == 0
    rt.ok("start", cid)
    assert rt("kill", cid, "0").code == 0
    assert rt("kill", "--all", cid, "0").code == 0
    rt.ok("kill", cid, "KILL")
    helpers.reap_orphans()
    rt.wait_for_status(cid, "stopped")
    r = rt("kill", cid, "0")
    assert r.code == 1 and "not running" in r.err, r


def runc_table(entries):
    """What runc's tabwriter makes of `list`: columns as wide as their widest cell plus 3, at least 12."""
    rows = [["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]]
    rows += [[e["id"], str(e["pid"]), e["status"], e["bundle"], e["created"], e["owner"]] for e in entries]
    widths = [max(12, max(len(row[k]) for row in rows) + 3) for k in range(5)]
    return "".join("".join(row[k].ljust(widths[k]) for k in range(5)) + row[5] + "\n" for row in rows)


def test_list_is_sorted_by_id_in_every_format(rt, bundle, cid):
    bundle.args(*SLEEPER)
    ids = [f"{cid}-{suffix}" for suffix in ("m", "b", "z", "a")]
    for one in ids:
        rt.ok("create", "--bundle", bundle, one)
    assert rt.ok("list", "--quiet").out.split() == sorted(ids)
    entries = json.loads(rt.ok("list", "--format", "json").out)
    assert [e["id"] for e in entries] == sorted(ids)
    assert {e["owner"] for e in entries} == {"root"}
    assert rt.ok("list").out == runc_table(entries)


def test_list_of_an_empty_root(rt):
    assert rt.ok("list", "--format", "json").out == "null\n"
    assert rt.ok("list").out == runc_table([])


def test_ps_of_a_stopped_container(rt, bundle, cid):
    stopped(rt, bundle, cid)
    header = subprocess.run(["ps", "-ef"], capture_output=True, text=True, check=True).stdout.splitlines()[0]
    r = rt("ps", cid)
    assert r.code == 0, r
    assert r.out.splitlines() == [header]
    r = rt("ps", "--format", "json", cid)
    assert (r.code, r.out) == (0, "null\n"), r


# ---- terminal -----------------------------------------------------------------------------------------------------

OWNER_OF_TTY = "stat -c '%u:%g' $(tty)"


def test_terminal_of_create_belongs_to_the_user(rt, bundle, cid, console):
    """The user owns its terminal; its group stays devpts's (gid=5, tty)."""
    bundle.process["user"] = {"uid": 1000, "gid": 1000}
    bundle.process["terminal"] = True
    bundle.args("sh", "-c", OWNER_OF_TTY)
    rt.ok("create", "--console-socket", console.path, "--bundle", bundle, cid)
    fds, _, _ = receive_master(console.listener)
    try:
        rt.ok("start", cid)
        out = read_until(fds[0], r"\d+:\d+\n")
    finally:
        for fd in fds:
            os.close(fd)
    assert out.strip() == "1000:5"


def test_terminal_of_exec_belongs_to_the_user(rt, bundle, cid, console):
    running(rt, bundle, cid)
    r = rt("exec", "--tty", "--detach", "--console-socket", console.path, "--user", "1000:1000", cid,
           "sh", "-c", OWNER_OF_TTY)
    assert r.code == 0, r
    fds, _, _ = receive_master(console.listener)
    try:
        out = read_until(fds[0], r"\d+:\d+\n")
    finally:
        for fd in fds:
            os.close(fd)
    assert out.strip() == "1000:5"


# ---- hooks --------------------------------------------------------------------------------------------------------

def test_hooks_start_in_the_bundle_and_the_container_root(rt, bundle, cid, work_dir):
    """prestart and createRuntime hooks start in the bundle, createContainer hooks in the container's root,
    startContainer hooks in the process's cwd."""
    log = os.path.join(work_dir, "hook-cwd")

    def hook(kind):
        return {"path": "/bin/sh", "args": ["sh", "-c", f"echo {kind} $(pwd) >> {log}"]}

    bundle.config["hooks"] = {kind: [hook(kind)] for kind in ("prestart", "createRuntime", "createContainer")}
    bundle.config["hooks"]["startContainer"] = [{"path": "/bin/sh", "args": ["sh", "-c", "pwd > /start-cwd"]}]
    bundle.process["cwd"] = "/etc"
    bundle.args("true")
    rt.ok("run", "--bundle", bundle, cid)
    with open(log) as f:
        seen = dict(line.split(" ", 1) for line in f.read().splitlines())
    bundle_path = os.path.realpath(bundle.path)
    assert seen == {"prestart": bundle_path, "createRuntime": bundle_path,
                    "createContainer": os.path.join(bundle_path, "rootfs")}
    with open(os.path.join(bundle.rootfs, "start-cwd")) as f:
        assert f.read() == "/etc\n"


# ---- --debug, disableOOMKiller ------------------------------------------------------------------------------------

@pytest.mark.parametrize("log_format", ["text", "json"])
def test_debug_writes_debug_lines_to_the_log(rt, bundle, cid, work_dir, log_format):
    bundle.args(*SLEEPER)
    quiet_log = os.path.join(work_dir, "quiet.log")
    debug_log = os.path.join(work_dir, "debug.log")
    rt.ok("create", "--bundle", bundle, cid, global_args=("--log", quiet_log, "--log-format", log_format))
    rt.ok("delete", "--force", cid, global_args=("--log", quiet_log, "--log-format", log_format))
    rt.ok("create", "--bundle", bundle, cid,
          global_args=("--debug", "--log", debug_log, "--log-format", log_format))

    def levels(path):
        if not os.path.exists(path):
            return []
        with open(path) as f:
            lines = f.read().splitlines()
        if log_format == "json":
            return [json.loads(line)["level"] for line in lines]
        return [line.split("level=", 1)[1].split()[0] for line in lines]

    assert "debug" not in levels(quiet_log)
    assert "debug" in levels(debug_log)


@pytest.mark.pea_only  # runc applies it through v1's memory.oom_control on this host (and ignores it on v2)
def test_disable_oom_killer_is_a_warning(run, bundle, cid):
    bundle.config["linux"]["resources"]["memory"] = {"disableOOMKiller": True}
    bundle.args("true")
    r = run("run", "--bundle", bundle, cid)
    assert r.code == 0, r
    assert "warning" in r.err and "disableOOMKiller" in r.err, r.err
