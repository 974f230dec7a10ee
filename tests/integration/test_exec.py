"""`exec`: a second process joins every namespace of a running container."""
import json
import os

import pytest

from helpers import parse_kv, read, wait_until


@pytest.fixture
def running(run, bundle, cid, wait_for_status):
    """A started container whose init sleeps; returns its state."""
    bundle.args("peatest", "sleep", "100")
    run.ok("create", "--bundle", bundle, cid)
    run.ok("start", cid)
    return wait_for_status(cid, "running")


def test_exec_joins_the_init_namespaces(run, cid, running):
    r = run.ok("exec", cid, "peatest", "ns")
    seen = parse_kv(r.out)
    for ns in ("pid", "net", "mnt", "ipc", "uts"):
        init_ns = os.readlink(f"/proc/{running['pid']}/ns/{ns}")
        assert seen[ns] == init_ns, f"exec is not in the init's {ns} namespace"
        assert init_ns != os.readlink(f"/proc/self/ns/{ns}"), f"the init shares the host's {ns} namespace"


def test_exec_returns_the_exit_code(run, cid, running):
    assert run("exec", cid, "peatest", "exit", "5").code == 5
    assert run("exec", cid, "true").code == 0


def test_exec_output_and_pid(run, cid, running):
    r = run.ok("exec", cid, "peatest", "pid")
    pid = int(parse_kv(r.out)["pid"])
    assert pid > 1, "exec must not be the container's init"


def test_exec_env(run, cid, running):
    r = run.ok("exec", "--env", "FOO=bar", "--env", "EMPTY=", cid, "peatest", "env")
    env = r.out.splitlines()
    assert "FOO=bar" in env and "EMPTY=" in env
    assert any(e.startswith("PATH=") for e in env), "exec keeps the container's environment"


def test_exec_cwd(run, cid, running):
    r = run.ok("exec", "--cwd", "/tmp", cid, "peatest", "cwd")
    assert r.out == "cwd /tmp\n"


def test_exec_user(run, cid, running):
    r = run.ok("exec", "--user", "1000:1000", cid, "peatest", "ids")
    ids = parse_kv(r.out)
    assert (ids["uid"], ids["euid"], ids["gid"], ids["egid"]) == ("1000", "1000", "1000", "1000")


def test_exec_process_file(run, bundle, cid, running, work_dir):
    process = {
        "terminal": False,
        "user": {"uid": 1000, "gid": 1000, "additionalGids": [2000]},
        "args": ["sh", "-c", "peatest ids; peatest cwd; echo FOO=$FOO"],
        "env": ["PATH=/bin", "FOO=from-process-file"],
        "cwd": "/home/test",
    }
    path = os.path.join(work_dir, "process.json")
    with open(path, "w") as f:
        json.dump(process, f)
    r = run.ok("exec", "--process", path, cid)
    out = parse_kv(r.out)
    assert out["uid"] == "1000" and out["gid"] == "1000"
    assert "2000" in out["groups"].split()
    assert out["cwd"] == "/home/test"
    assert "FOO=from-process-file" in r.out


def test_exec_detach_with_pid_file(run, cid, running, work_dir):
    pid_file = os.path.join(work_dir, "exec.pid")
    r = run("exec", "--detach", "--pid-file", pid_file, cid, "peatest", "sleep", "100")
    assert r.code == 0, r.err
    text = read(pid_file)
    assert text.isdigit(), f"pid file must hold only the decimal pid: {text!r}"
    pid = int(text)
    assert os.readlink(f"/proc/{pid}/ns/pid") == os.readlink(f"/proc/{running['pid']}/ns/pid")
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        assert f.read().split(b"\0")[:2] == [b"peatest", b"sleep"]


def test_exec_sees_the_init_filesystem(run, bundle, cid, wait_for_status):
    bundle.args("sh", "-c", "echo from-init > /tmp/shared; exec peatest sleep 100")
    run.ok("create", "--bundle", bundle, cid)
    run.ok("start", cid)
    wait_until(lambda: os.path.exists(os.path.join(bundle.rootfs, "tmp", "shared")), what="the init's file")
    assert run.ok("exec", cid, "cat", "/tmp/shared").out == "from-init\n"


def test_exec_in_a_stopped_container_fails(run, bundle, cid, wait_for_status):
    bundle.args("true")
    run.ok("create", "--bundle", bundle, cid)
    run.ok("start", cid)
    wait_for_status(cid, "stopped")
    r = run("exec", cid, "true")
    assert r.code != 0
    assert r.err.strip()


def test_exec_in_a_missing_container_fails(run, cid):
    r = run("exec", cid, "true")
    assert r.code != 0
    assert "does not exist" in r.err


def test_exec_no_new_privs_flag_applies(run, bundle, cid, wait_for_status):
    bundle.config["process"]["noNewPrivileges"] = False
    bundle.args("peatest", "sleep", "100")
    run.ok("create", "--bundle", bundle, cid)
    run.ok("start", cid)
    wait_for_status(cid, "running")
    plain = run.ok("exec", cid, "grep", "NoNewPrivs", "/proc/self/status").out.split()
    flagged = run.ok("exec", "--no-new-privs", cid, "grep", "NoNewPrivs", "/proc/self/status").out.split()
    assert (plain[-1], flagged[-1]) == ("0", "1")
