"""runc's less common commands and flags: checkpoint/restore (not supported), --pidfd-socket, and where a systemd
"slice:prefix:name" cgroupsPath puts the container."""
import ctypes
import json
import os
import select
import signal
import socket
import subprocess
import threading

import pytest

from test_cgroup import cgroup2_root, container_cgroup

pytestmark = pytest.mark.pea_only  # runc 1.1 has no --pidfd-socket and really runs CRIU

SYS_PIDFD_SEND_SIGNAL = 424
libc = ctypes.CDLL(None, use_errno=True)


@pytest.mark.parametrize("command,flags", [
    ("checkpoint", ["--image-path", "/nonexistent", "--work-path", "/nonexistent", "--leave-running",
                    "--tcp-established", "--ext-unix-sk", "--shell-job", "--file-locks", "--pre-dump",
                    "--manage-cgroups-mode", "soft"]),
    ("restore", ["--image-path", "/nonexistent", "-b", "/nonexistent", "-d", "--pid-file", "/nonexistent",
                 "--tcp-established", "--ext-unix-sk", "--shell-job", "--file-locks",
                 "--manage-cgroups-mode", "full", "--no-subreaper"]),
])
def test_checkpoint_and_restore_are_not_supported(run, command, flags):
    r = run(command, *flags, "c1")
    assert r.code == 1
    assert r.err == f"pea: {command} c1: not supported: pea does not implement checkpoint/restore (CRIU)\n"
    r = run(command, "--no-such-flag", "c1")
    assert r.code == 1 and "unknown option --no-such-flag" in r.err


def test_features_claims_no_checkpoint(run):
    """runc announces CRIU with the annotation org.opencontainers.runc.checkpoint.enabled; pea must not."""
    features = json.loads(run.ok("features").out)
    features.get("linux", {}).pop("capabilities", None)  # CAP_CHECKPOINT_RESTORE is a capability, not a claim
    text = json.dumps(features).lower()
    assert "checkpoint" not in text and "criu" not in text, text


class PidfdListener:
    """A unix socket that accepts one connection and keeps the fd it carries."""

    def __init__(self, work_dir):
        self.path = os.path.join(work_dir, "pidfd.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(1)
        self.fd = None
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        conn, _ = self.sock.accept()
        with conn:
            _, fds, _, _ = socket.recv_fds(conn, 64, 1)
            self.fd = fds[0] if fds else None

    def received(self):
        self.thread.join(5)
        self.sock.close()
        assert self.fd is not None, "no fd came over the pidfd socket"
        return self.fd


def pidfd_pid(fd):
    with open(f"/proc/self/fdinfo/{fd}") as f:
        for line in f:
            if line.startswith("Pid:"):
                return int(line.split()[1])
    raise AssertionError(f"fd {fd} is not a pidfd")


def pidfd_kill(fd):
    if libc.syscall(SYS_PIDFD_SEND_SIGNAL, fd, signal.SIGKILL, None, 0) != 0:
        raise OSError(ctypes.get_errno(), "pidfd_send_signal")


def wait_pidfd_exited(fd):
    assert select.select([fd], [], [], 5)[0] == [fd], "the pidfd never reported the exit"


@pytest.mark.parametrize("command", ["create", "run"])
def test_pidfd_socket_gets_the_init(run, bundle, cid, work_dir, wait_for_status, command):
    bundle.args("peatest", "sleep", "100")
    listener = PidfdListener(work_dir)
    run.ok(command, *(["--detach"] if command == "run" else []), "--pidfd-socket", listener.path,
           "--bundle", bundle, cid)
    fd = listener.received()
    try:
        assert pidfd_pid(fd) == run.state(cid)["pid"]
        pidfd_kill(fd)
        wait_pidfd_exited(fd)
        wait_for_status(cid, "stopped")
    finally:
        os.close(fd)
    run.ok("delete", cid)


def test_exec_pidfd_socket_gets_the_process(run, bundle, cid, work_dir):
    bundle.args("peatest", "sleep", "100")
    run.ok("run", "--detach", "--bundle", bundle, cid)
    listener = PidfdListener(work_dir)
    run.ok("exec", "--detach", "--pidfd-socket", listener.path, cid, "peatest", "sleep", "100")
    fd = listener.received()
    try:
        pid = pidfd_pid(fd)
        assert pid != run.state(cid)["pid"]
        assert str(pid) in run.ok("ps", "--format", "json", cid).out
        pidfd_kill(fd)
        wait_pidfd_exited(fd)
        assert run.state(cid)["status"] == "running"
    finally:
        os.close(fd)
    run.ok("delete", "--force", cid)


def test_pidfd_socket_that_nobody_listens_on_fails_the_create(run, bundle, cid, work_dir, assert_no_leaks):
    bundle.args("peatest", "sleep", "100")
    path = os.path.join(work_dir, "nobody.sock")
    r = run("create", "--pidfd-socket", path, "--bundle", bundle, cid)
    assert r.code == 1
    assert f"connect to pidfd socket {path}" in r.err and "No such file or directory" in r.err
    assert_no_leaks()


def systemd_runs_the_host():
    return os.path.isdir("/run/systemd/system")


def remove_created(paths):
    """rmdir what a test made, deepest first (only the directories that did not exist before it)."""
    for path in sorted(paths, key=len, reverse=True):
        os.rmdir(path)


def missing_dirs(path):
    out = []
    while not os.path.exists(path):
        out.append(path)
        path = os.path.dirname(path)
    return out


@pytest.mark.parametrize("slice_of", [
    lambda cid: ("system.slice", "/system.slice"),
    # A dash nests: pea<mark>-<n>.slice lives in pea<mark>.slice, as systemd lays it out.
    lambda cid: (f"pea{cid.split('-')[1]}-{cid.split('-')[2]}.slice",
                 f"/pea{cid.split('-')[1]}.slice/pea{cid.split('-')[1]}-{cid.split('-')[2]}.slice"),
])
def test_systemd_cgroups_path_maps_to_systemds_path(run, bundle, cid, slice_of):
    if systemd_runs_the_host():
        pytest.skip("systemd runs this host (see the delegated-subtree test)")
    slice_name, slice_path = slice_of(cid)
    expected = cgroup2_root() + f"{slice_path}/docker-{cid}.scope"
    created = missing_dirs(expected)
    bundle.config["linux"]["cgroupsPath"] = f"{slice_name}:docker:{cid}"
    bundle.args("peatest", "sleep", "100")
    try:
        r = run.ok("create", "--bundle", bundle, cid, global_args=("--debug",))
        assert f"maps to {expected}; systemd does not manage this host" in r.err
        assert container_cgroup(run.state(cid)["pid"]) == expected
        run.ok("delete", "--force", cid)
        assert not os.path.exists(expected)
    finally:
        run("delete", "--force", cid)
        remove_created([p for p in created if os.path.exists(p)])


@pytest.mark.parametrize("path,why", [
    ("bad--name.slice:p:x", '"bad--name.slice" is not a systemd slice name'),
    ("noslice:p:x", '"noslice" is not a systemd slice name'),
    ("-a.slice:p:x", '"-a.slice" is not a systemd slice name'),
    ("system.slice:p:", "not of the form slice:prefix:name"),
])
def test_invalid_systemd_cgroups_path_is_refused(run, bundle, cid, assert_no_leaks, path, why):
    bundle.config["linux"]["cgroupsPath"] = path
    r = run("create", "--bundle", bundle, cid)
    assert r.code == 1 and why in r.err, r.err
    assert_no_leaks()


def test_with_systemd_running_the_slice_must_already_be_delegated(run, bundle, cid, work_dir, assert_no_leaks):
    """systemd as init is simulated in a private mount namespace: sd_booted(3)'s /run/systemd/system exists."""
    mark, n = cid.split("-")[1:3]
    slice_dir = cgroup2_root() + f"/pea{mark}.slice"
    expected = f"{slice_dir}/p-{cid}.scope"
    bundle.config["linux"]["cgroupsPath"] = f"pea{mark}.slice:p:{cid}"
    bundle.args("peatest", "sleep", "100")
    bundle.save()

    def create():
        argv = run.argv("--debug", "create", "--bundle", bundle, cid)
        script = 'mount -t tmpfs pea-it /run && mkdir -p /run/systemd/system && exec "$@"'
        # A file, not a pipe: the created container keeps pea's stderr open.
        err_path = os.path.join(work_dir, "unshare-err")
        with open(err_path, "w") as err:
            code = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *argv],
                                  env=run.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                  timeout=30).returncode
        with open(err_path) as f:
            return code, f.read()

    code, err = create()
    assert code == 1
    assert (f'linux.cgroupsPath "pea{mark}.slice:p:{cid}" maps to {expected}; systemd manages this host and pea '
            f"does not ask it for a unit, so {slice_dir} must already exist and be delegated to pea: "
            "No such file or directory") in err, err
    assert not os.path.exists(slice_dir), "pea made a slice that systemd owns"
    assert_no_leaks()
    os.mkdir(slice_dir)
    try:
        code, err = create()
        assert code == 0, err
        assert f"systemd manages this host, pea creates the cgroup itself in the existing {slice_dir}" in err
        assert container_cgroup(run.state(cid)["pid"]) == expected
        run.ok("delete", "--force", cid)
    finally:
        run("delete", "--force", cid)
        os.rmdir(slice_dir)
