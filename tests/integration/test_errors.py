"""Bad input and failures: non-zero exit, one clear line on stderr, and a failed create leaves nothing behind."""
import json
import os

import pytest

from helpers import read


def one_line(err):
    """The error output must be one line (runc's `time=... level=error msg=...` counts as one)."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got: {err!r}"
    return lines[0]


def assert_names(err, runtime_is_pea, *words):
    """pea names the field or argument at fault; runc's words differ, so only pea is held to them."""
    line = one_line(err)
    if runtime_is_pea:
        for word in words:
            assert word in line, f"{word!r} not named in {line!r}"


def write_raw_config(bundle, text):
    with open(os.path.join(bundle.path, "config.json"), "w") as f:
        f.write(text)


def create_fails(run, bundle, cid, *flags):
    """create with the bundle as it is on disk (no save): must fail."""
    r = run("create", *flags, "--bundle", bundle.path, cid)
    assert r.code != 0, "create should have failed"
    return r


# ---- configuration errors -----------------------------------------------------------------------------------------

def test_malformed_json(run, bundle, cid, assert_no_leaks, runtime_is_pea):
    write_raw_config(bundle, '{"ociVersion": "1.0.2", "process": {')
    r = create_fails(run, bundle, cid)
    assert_names(r.err, runtime_is_pea, "config.json")
    assert_no_leaks()


def test_missing_config(run, bundle, cid, assert_no_leaks, runtime_is_pea):
    r = create_fails(run, bundle, cid)  # never saved
    assert_names(r.err, runtime_is_pea, "config.json")
    assert_no_leaks()


@pytest.mark.parametrize("field,value,named", [
    ("args", "sh -c true", "process.args"),
    ("terminal", "yes", "process.terminal"),
    ("cwd", 17, "process.cwd"),
], ids=["args-string", "terminal-string", "cwd-number"])
def test_wrong_types(run, bundle, cid, assert_no_leaks, runtime_is_pea, field, value, named):
    bundle.process[field] = value
    bundle.save()
    r = create_fails(run, bundle, cid)
    assert_names(r.err, runtime_is_pea, named)
    assert_no_leaks()


def test_missing_process_args(run, bundle, cid, assert_no_leaks, runtime_is_pea):
    del bundle.process["args"]
    bundle.save()
    r = create_fails(run, bundle, cid)
    assert_names(r.err, runtime_is_pea, "process.args")
    assert_no_leaks()


def test_empty_process_args(run, bundle, cid, assert_no_leaks, runtime_is_pea):
    bundle.process["args"] = []
    bundle.save()
    r = create_fails(run, bundle, cid)
    assert_names(r.err, runtime_is_pea, "process.args")
    assert_no_leaks()


def test_relative_cwd(run, bundle, cid, assert_no_leaks, runtime_is_pea):
    bundle.process["cwd"] = "tmp"
    bundle.save()
    r = create_fails(run, bundle, cid)
    assert_names(r.err, runtime_is_pea, "process.cwd")
    assert_no_leaks()


def test_unknown_namespace_type(run, bundle, cid, assert_no_leaks, runtime_is_pea):
    bundle.add_namespace("bogus")
    bundle.save()
    r = create_fails(run, bundle, cid)
    assert_names(r.err, runtime_is_pea, "linux.namespaces", "bogus")
    assert_no_leaks()


def test_duplicate_namespace(run, bundle, cid, assert_no_leaks, runtime_is_pea):
    bundle.add_namespace("pid")
    bundle.save()
    r = create_fails(run, bundle, cid)
    assert_names(r.err, runtime_is_pea, "linux.namespaces", "pid")
    assert_no_leaks()


def test_hostname_without_uts_namespace(run, bundle, cid, assert_no_leaks, runtime_is_pea):
    bundle.config["linux"]["namespaces"] = [ns for ns in bundle.config["linux"]["namespaces"] if ns["type"] != "uts"]
    bundle.save()
    r = create_fails(run, bundle, cid)
    assert_names(r.err, runtime_is_pea, "hostname", "uts")
    assert_no_leaks()


@pytest.mark.pea_only  # runc 1.1 accepts a relative destination (taken as relative to /)
def test_relative_mount_destination(run, bundle, cid, assert_no_leaks):
    bundle.mount("relative/dir", "tmpfs", "tmpfs")
    bundle.save()
    r = create_fails(run, bundle, cid)
    line = one_line(r.err)
    assert "mounts" in line and "destination" in line and "relative/dir" in line
    assert_no_leaks()


def test_missing_rootfs(run, bundle, cid, assert_no_leaks, runtime_is_pea):
    bundle.config["root"]["path"] = "no-such-rootfs"
    bundle.save()
    r = create_fails(run, bundle, cid)
    assert_names(r.err, runtime_is_pea, "no-such-rootfs")
    assert_no_leaks()


def test_unknown_seccomp_action(run, bundle, cid, assert_no_leaks, runtime_is_pea):
    bundle.config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                                         "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_BOGUS"}]}
    bundle.save()
    r = create_fails(run, bundle, cid)
    assert_names(r.err, runtime_is_pea, "SCMP_ACT_BOGUS")
    assert_no_leaks()


def test_non_namespaced_sysctl(run, bundle, cid, assert_no_leaks, runtime_is_pea):
    bundle.config["linux"]["sysctl"] = {"vm.swappiness": "10"}
    bundle.save()
    r = create_fails(run, bundle, cid)
    assert_names(r.err, runtime_is_pea, "vm.swappiness")
    assert_no_leaks()


def test_bad_mount_fails_create_cleanly(run, bundle, cid, assert_no_leaks):
    """A failure deep in the container's setup (after namespaces exist) still leaves nothing behind."""
    bundle.mount("/data", "bind", "/no/such/source/dir", ["bind"])
    bundle.save()
    r = create_fails(run, bundle, cid)
    one_line(r.err)
    assert_no_leaks()


# ---- ids ----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad_id", ["a/b", "..", "../escape", ""], ids=["slash", "dotdot", "dotdot-slash", "empty"])
def test_invalid_id(run, bundle, cid, assert_no_leaks, bad_id):
    bundle.save()
    r = create_fails(run, bundle, bad_id)
    assert r.err.strip()
    assert not os.path.exists(os.path.join(os.path.dirname(run.root), "escape"))
    assert_no_leaks()


def test_id_in_use(run, bundle, cid, runtime_is_pea):
    bundle.args("peatest", "sleep", "100")
    run.ok("create", "--bundle", bundle, cid)
    first = run.state(cid)
    r = run("create", "--bundle", bundle, cid)
    assert r.code != 0
    assert_names(r.err, runtime_is_pea, cid)
    assert run.state(cid) == first, "a refused create must not touch the existing container"


# ---- commands on missing or stopped containers --------------------------------------------------------------------

@pytest.mark.parametrize("command", [["state"], ["start"], ["kill"], ["kill", "KILL"], ["delete"], ["exec", "true"]],
                         ids=["state", "start", "kill", "kill-KILL", "delete", "exec"])
def test_missing_container(run, cid, command):
    args = [command[0], cid, *command[1:]]
    r = run(*args)
    assert r.code != 0
    assert "does not exist" in one_line(r.err)
    assert r.out == ""


def test_delete_force_of_a_missing_container_succeeds(run, cid):
    """runc treats `delete --force` of an unknown id as done (callers clean up blindly)."""
    assert run("delete", "--force", cid).code == 0


def test_kill_of_a_stopped_container(run, bundle, cid, wait_for_status):
    bundle.args("true")
    run.ok("create", "--bundle", bundle, cid)
    run.ok("start", cid)
    wait_for_status(cid, "stopped")
    r = run("kill", cid, "KILL")
    assert r.code != 0
    assert "container not running" in one_line(r.err)


def test_unknown_signal(run, bundle, cid, runtime_is_pea):
    bundle.args("peatest", "sleep", "100")
    run.ok("create", "--bundle", bundle, cid)
    run.ok("start", cid)
    r = run("kill", cid, "BOGUS")
    assert r.code != 0
    assert_names(r.err, runtime_is_pea, "BOGUS")
    assert run.state(cid)["status"] == "running"


# ---- the executable -----------------------------------------------------------------------------------------------

def test_missing_executable(run, bundle, cid, assert_no_leaks):
    bundle.args("no-such-program")
    bundle.save()
    r = create_fails(run, bundle, cid)
    assert "executable file not found in $PATH" in one_line(r.err)
    assert_no_leaks()


def test_missing_executable_with_run(run, bundle, cid, assert_no_leaks):
    bundle.args("no-such-program")
    r = run("run", "--bundle", bundle, cid)
    assert r.code != 0
    assert "executable file not found in $PATH" in one_line(r.err)
    assert_no_leaks()


def test_non_executable_file(run, bundle, cid, assert_no_leaks):
    path = os.path.join(bundle.rootfs, "bin", "not-executable")
    with open(path, "w") as f:
        f.write("#!/bin/sh\necho should not run\n")
    os.chmod(path, 0o644)
    bundle.args("/bin/not-executable")
    bundle.save()
    r = create_fails(run, bundle, cid)
    assert "permission denied" in one_line(r.err)
    assert_no_leaks()


def test_exec_of_a_missing_executable(run, bundle, cid, wait_for_status):
    bundle.args("peatest", "sleep", "100")
    run.ok("create", "--bundle", bundle, cid)
    run.ok("start", cid)
    wait_for_status(cid, "running")
    r = run("exec", cid, "no-such-program")
    assert r.code != 0
    assert "executable file not found in $PATH" in one_line(r.err)
    assert run.state(cid)["status"] == "running"


# ---- the command line and the log --------------------------------------------------------------------------------

def test_unknown_flag(run, cid):
    r = run("create", "--no-such-flag", cid)
    assert r.code == 1
    assert "no-such-flag" in r.err


@pytest.mark.pea_only  # runc exits 3 for an unknown command
def test_unknown_command_exits_1(run):
    r = run("frobnicate")
    assert r.code == 1
    assert "frobnicate" in one_line(r.err)


def test_unknown_command_fails(run):
    assert run("frobnicate").code != 0


def test_log_json(run, cid, work_dir):
    log = os.path.join(work_dir, "log.json")
    with open(log, "w") as f:
        f.write('{"level":"info","msg":"earlier line","time":"2024-01-01T00:00:00Z"}\n')
    r = run("state", cid, global_args=["--log", log, "--log-format", "json"])
    assert r.code != 0
    human = one_line(r.err)
    assert "does not exist" in human
    assert not human.startswith("{"), "stderr gets a human line, not the JSON"
    lines = read(log).splitlines()
    assert lines[0].startswith('{"level":"info"'), "the log is opened for append"
    assert lines[-1].startswith('{"level":"error","msg":'), lines[-1]
    entries = [json.loads(line) for line in lines[1:]]
    errors = [e for e in entries if e.get("level") == "error"]
    assert errors, f"no error line in {lines}"
    assert "does not exist" in errors[-1]["msg"]
    assert isinstance(errors[-1]["time"], str) and errors[-1]["time"]


def test_log_json_for_a_failed_create(run, bundle, cid, work_dir, assert_no_leaks):
    log = os.path.join(work_dir, "log.json")
    bundle.args("no-such-program")
    bundle.save()
    r = run("create", "--bundle", bundle.path, cid, global_args=["--log", log, "--log-format", "json"])
    assert r.code != 0
    assert "executable file not found in $PATH" in one_line(r.err)
    errors = [json.loads(line) for line in read(log).splitlines() if '"error"' in line]
    assert errors and "executable file not found in $PATH" in errors[-1]["msg"]
    assert_no_leaks()
