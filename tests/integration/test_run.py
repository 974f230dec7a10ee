"""`run`: output, exit codes, stdio passed through, signals forwarded, --detach and --pid-file."""
import os
import select
import signal
import time

from helpers import read, wait_until


def test_run_prints_output_and_exits_zero(run, bundle, cid):
    bundle.args("sh", "-c", "echo hello; echo oops >&2")
    r = run("run", "--bundle", bundle, cid)
    assert (r.code, r.out, r.err) == (0, "hello\n", "oops\n")


def test_run_returns_the_exit_code(run, bundle, cid):
    bundle.args("peatest", "exit", "3")
    assert run("run", "--bundle", bundle, cid).code == 3


def test_run_deletes_the_container_afterwards(run, bundle, cid):
    bundle.args("true")
    run.ok("run", "--bundle", bundle, cid)
    assert "does not exist" in run("state", cid).err


def test_run_keep_leaves_a_stopped_container(run, bundle, cid):
    bundle.args("true")
    run.ok("run", "--keep", "--bundle", bundle, cid)
    state = run.state(cid)
    assert state["status"] == "stopped" and state["pid"] == 0
    run.ok("delete", cid)


def test_run_killed_by_sigkill_returns_137(run, bundle, cid, wait_for_status):
    bundle.args("peatest", "sleep", "100")
    proc = run.popen("run", "--bundle", bundle, cid)
    wait_for_status(cid, "running")
    run.ok("kill", cid, "KILL")
    assert proc.wait(timeout=10) == 137


def test_run_of_a_process_killed_by_a_signal_returns_128_plus_n(run, bundle, cid):
    """Without a pid namespace the process is not an init, so it can die of its own SIGTERM."""
    bundle.config["linux"]["namespaces"] = [ns for ns in bundle.config["linux"]["namespaces"] if ns["type"] != "pid"]
    bundle.args("peatest", "kill-self", "TERM")
    assert run("run", "--bundle", bundle, cid).code == 128 + signal.SIGTERM


def test_run_passes_stdin_through(run, bundle, cid, work_dir):
    bundle.args("cat")
    stdin_path = os.path.join(work_dir, "stdin")
    with open(stdin_path, "w") as f:
        f.write("line one\nline two\n")
    with open(stdin_path) as stdin:
        r = run("run", "--bundle", bundle, cid, stdin=stdin)
    assert (r.code, r.out) == (0, "line one\nline two\n")


def test_run_forwards_signals_to_the_container(run, bundle, cid):
    ready = os.path.join(bundle.rootfs, "tmp", "ready")
    bundle.args("sh", "-c", "trap 'exit 7' TERM; touch /tmp/ready; while :; do sleep 0.05; done")
    proc = run.popen("run", "--bundle", bundle, cid)
    wait_until(lambda: os.path.exists(ready), what="the container to install its trap")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 7


def test_run_detach_with_pid_file(run, bundle, cid, work_dir, wait_for_status):
    bundle.args("peatest", "sleep", "100")
    pid_file = os.path.join(work_dir, "pid")
    r = run("run", "--detach", "--pid-file", pid_file, "--bundle", bundle, cid)
    assert r.code == 0, r.err
    state = wait_for_status(cid, "running")
    assert read(pid_file) == str(state["pid"])
    run.ok("kill", cid, "KILL")
    wait_for_status(cid, "stopped")
    run.ok("delete", cid)


def test_run_without_bundle_flag_uses_the_current_directory(run, bundle, cid):
    bundle.args("sh", "-c", "echo from-cwd")
    bundle.save()
    old = os.getcwd()
    os.chdir(bundle.path)
    try:
        r = run("run", cid)
    finally:
        os.chdir(old)
    assert (r.code, r.out) == (0, "from-cwd\n")


def test_run_finds_the_executable_through_path(run, bundle, cid):
    bundle.args("peatest", "cwd")
    bundle.env("PATH=/nonexistent:/bin")
    r = run("run", "--bundle", bundle, cid)
    assert (r.code, r.out) == (0, "cwd /\n")


def read_to_eof(fd, timeout=5.0):
    """Read a pipe until every writer has closed it; fails if a writer lingers past TIMEOUT."""
    data = b""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0 and select.select([fd], [], [], left)[0], f"pipe still open after {timeout}s: {data!r}"
        chunk = os.read(fd, 4096)
        if not chunk:
            return data.decode()
        data += chunk


def test_stdio_pipes_belong_to_the_container(run, bundle, cid, wait_for_status):
    """Callers hand create pipes: the container reads and writes them, and they reach EOF when it exits (no
    runtime process keeps a copy)."""
    bundle.args("sh", "-c", "read line; echo out:$line; echo err:$line >&2")
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        r = run("create", "--bundle", bundle, cid, stdin=in_r, stdout=out_w, stderr=err_w)
        for fd in (in_r, out_w, err_w):
            os.close(fd)
        in_r = out_w = err_w = -1
        assert r.code == 0
        run.ok("start", cid)
        os.write(in_w, b"ping\n")
        os.close(in_w)
        in_w = -1
        assert read_to_eof(out_r) == "out:ping\n"
        assert read_to_eof(err_r) == "err:ping\n"
    finally:
        for fd in (in_r, in_w, out_r, out_w, err_r, err_w):
            if fd >= 0:
                os.close(fd)
    wait_for_status(cid, "stopped")
