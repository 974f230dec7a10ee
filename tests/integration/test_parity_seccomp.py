"""Seccomp as runc 1.1 does it (issue 14 items 5 and 9), each behaviour run against pea and runc alike:
syscalls newer than the profile get ENOSYS; startContainer hooks run under the filter; SCMP_ACT_NOTIFY hands the
listener and the container state to the agent at listenerPath; pea's cache of compiled programs stays out of the
caller's --root, and bounded."""
import errno
import fcntl
import json
import os
import platform
import re
import select
import shutil
import socket
import struct
import threading

import pytest

import helpers

RUNC = "/usr/sbin/runc"
CACHE_ENV = helpers.SECCOMP_CACHE_ENV
DEFAULT_CACHE = "/run/pea-seccomp-cache"


@pytest.fixture(params=["pea", "runc"])
def any_run(request, run, work_dir, test_mark):
    """The runner of the runtime under test, then runc's (with a --root of its own), so a difference fails."""
    if request.param == "pea":
        yield run
        return
    if not helpers.is_pea(run.runtime):
        pytest.skip("the runtime under test is not pea: its own run covers it")
    if not os.access(RUNC, os.X_OK):
        pytest.skip(f"{RUNC} is not installed")
    root = os.path.join(work_dir, "runc-root")
    os.mkdir(root, 0o700)
    runc = helpers.Runner(RUNC, root, work_dir, test_mark)
    yield runc
    for left in runc("list", "--quiet").out.split():
        runc("delete", "--force", left)


def results(out):
    """"NAME VERDICT" lines as a dict."""
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)


# ---- ENOSYS for syscalls newer than the profile -------------------------------------------------------------------

def x86_64_syscalls():
    """{name: number} from the kernel headers."""
    with open("/usr/include/x86_64-linux-gnu/asm/unistd_64.h") as f:
        return {m[1]: int(m[2]) for m in re.finditer(r"#define __NR_(\w+) (\d+)", f.read())}


@pytest.mark.skipif(platform.machine() != "x86_64" or
                    not os.path.exists("/usr/include/x86_64-linux-gnu/asm/unistd_64.h"),
                    reason="the profile is built from x86_64's syscall table")
def test_a_syscall_newer_than_the_profile_gets_enosys(any_run, bundle, cid):
    """Everything below pidfd_send_signal (424) but getcpu is allowed, the rest gets the default EPERM: getcpu,
    older than the newest name, still gets EPERM; faccessat2 and openat2, newer than any name, get ENOSYS (as on a
    kernel without them, so that a C library falls back to the older call)."""
    old = sorted(name for name, nr in x86_64_syscalls().items() if nr < 424 and name != "getcpu")
    bundle.config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": old, "action": "SCMP_ACT_ALLOW"}],
    }
    bundle.args("sh", "-c", "for n in getpid getcpu faccessat2 openat2; do echo $n $(peatest syscall $n); done")
    r = any_run("run", "--bundle", bundle, cid)
    assert r.code == 0, r.err
    assert results(r.out) == {"getpid": "ok", "getcpu": "EPERM", "faccessat2": "ENOSYS", "openat2": "ENOSYS"}


# ---- startContainer hooks under the filter ------------------------------------------------------------------------

def test_start_container_hooks_run_under_the_filter(any_run, bundle, cid):
    """The hook runs in the container after the filter is loaded, as runc orders it (noNewPrivileges: the filter
    goes last before the user's process): its mkdir is refused."""
    bundle.config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}],
    }
    assert bundle.process["noNewPrivileges"] is True
    bundle.config["hooks"] = {"startContainer": [
        {"path": "/bin/sh", "args": ["sh", "-c", "mkdir /hook-dir 2>/dev/null; echo $? > /hook-status"]}]}
    bundle.args("sh", "-c", "echo status $(cat /hook-status); test -d /hook-dir && echo dir made || echo dir refused")
    r = any_run("run", "--bundle", bundle, cid)
    assert r.code == 0, r.err
    assert results(r.out) == {"status": "1", "dir": "refused"}


# ---- SCMP_ACT_NOTIFY and the seccomp agent ------------------------------------------------------------------------

# <linux/seccomp.h>: struct seccomp_notif is 80 bytes (id, pid, flags, then seccomp_data: nr, arch, ip, args[6]),
# struct seccomp_notif_resp 24 (id, val, error, flags); the ioctls are _IOWR('!', 0 and 1, those structs).
NOTIF_RECV = 0xC0502100
NOTIF_SEND = 0xC0182101
NOTIF = struct.Struct("=QIIiIQ6Q")
NOTIF_RESP = struct.Struct("=QqiI")


class Agent:
    """A seccomp agent on a unix socket: keeps each container process state it is sent, and answers every notified
    syscall with ANSWER (an errno)."""

    def __init__(self, path, answer):
        self.path = path
        self.answer = answer
        self.states = []
        self.notified = []
        self.errors = []
        self.stop = threading.Event()
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        self.server.listen(4)
        self.server.settimeout(0.1)
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self):
        try:
            self._serve()
        except Exception as e:  # noqa: BLE001 -- reported by the test
            self.errors.append(repr(e))

    def _serve(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.server.accept()
            except socket.timeout:
                continue
            with conn:
                conn.settimeout(10)
                msg, fds, _, _ = socket.recv_fds(conn, 1 << 20, 4)
                # Whole once it parses: the state may come in several writes, and runc 1.1 closes its connection
                # only when its process exits.
                while True:
                    try:
                        state = json.loads(msg)
                        break
                    except ValueError:
                        more = conn.recv(1 << 20)
                        if not more:
                            raise
                        msg += more
            self.states.append((state, len(fds)))
            if fds:
                t = threading.Thread(target=self._answer, args=(fds[0],), daemon=True)
                self.threads.append(t)
                t.start()
            for extra in fds[1:]:
                os.close(extra)

    def _answer(self, listener):
        poller = select.poll()
        poller.register(listener, select.POLLIN)
        try:
            while not self.stop.is_set():
                events = poller.poll(100)
                if not events:
                    continue
                if events[0][1] & select.POLLHUP:
                    return  # no process uses the filter any more
                buf = bytearray(NOTIF.size)
                try:
                    fcntl.ioctl(listener, NOTIF_RECV, buf, True)
                except OSError as e:
                    if e.errno in (errno.ENOENT, errno.EINTR):
                        continue
                    raise
                notif_id, pid, _, nr, _, _, *_ = NOTIF.unpack(buf)
                self.notified.append(nr)
                resp = bytearray(NOTIF_RESP.pack(notif_id, 0, -self.answer, 0))
                try:
                    fcntl.ioctl(listener, NOTIF_SEND, resp, True)
                except OSError as e:
                    if e.errno != errno.ENOENT:  # the caller was killed meanwhile
                        raise
        except Exception as e:  # noqa: BLE001 -- reported by the test
            self.errors.append(repr(e))
        finally:
            os.close(listener)

    def close(self):
        self.stop.set()
        for t in self.threads:
            t.join(5)
        self.server.close()


@pytest.fixture
def agent(work_dir):
    a = Agent(os.path.join(work_dir, "agent.sock"), errno.EXDEV)
    yield a
    a.close()
    assert a.errors == []


def notify_profile(bundle, listener_path, metadata):
    bundle.config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": listener_path,
        "listenerMetadata": metadata,
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}],
    }


@pytest.mark.parametrize("no_new_privileges", [True, False])
def test_notify_hands_the_listener_and_state_to_the_agent(any_run, bundle, cid, agent, work_dir, no_new_privileges):
    """create sends the init's listener with the state (status creating); exec sends its process's own (status
    running); the container's mkdir returns what the agent answers. Without no_new_privs the filter is loaded before
    the user switch, with it last: either way while create runs."""
    notify_profile(bundle, agent.path, "answer=EXDEV")
    bundle.process["noNewPrivileges"] = no_new_privileges
    bundle.args("sh", "-c", "echo init $(peatest syscall mkdir); exec sleep 60")
    out = os.path.join(work_dir, "container-out")
    any_run.ok("create", "--bundle", bundle, cid, stdout=out)
    try:
        init_pid = any_run.state(cid)["pid"]
        helpers.wait_until(lambda: len(agent.states) == 1, timeout=10, what="the state sent while create runs")
        any_run.ok("start", cid)
        helpers.wait_until(lambda: "init" in helpers.read(out), timeout=10, what="the init's mkdir")
        assert results(helpers.read(out)) == {"init": "EXDEV"}
        r = any_run("exec", cid, "peatest", "syscall", "mkdir")
        assert (r.code, r.out.strip()) == (0, "EXDEV"), r.err
    finally:
        any_run("kill", cid, "KILL")
        any_run("delete", "--force", cid)
    helpers.wait_until(lambda: len(agent.states) == 2, timeout=10, what="the exec's state")
    for (state, n_fds), status in zip(agent.states, ["creating", "running"]):
        assert n_fds == 1
        assert isinstance(state["ociVersion"], str) and state["ociVersion"]
        assert state["fds"] == ["seccompFd"]
        assert state["metadata"] == "answer=EXDEV"
        assert state["state"]["id"] == cid
        assert state["state"]["status"] == status
        assert state["state"]["pid"] == init_pid
        assert state["state"]["bundle"] == bundle.path
    assert agent.states[0][0]["pid"] == init_pid, "create: the init"
    assert agent.states[1][0]["pid"] not in (0, init_pid), "exec: the exec'd process"
    assert agent.notified and set(agent.notified) <= {83, 258}, "mkdir, mkdirat (x86_64)"


def test_features_name_notify(any_run):
    r = any_run.ok("features")
    assert "SCMP_ACT_NOTIFY" in json.loads(r.out)["linux"]["seccomp"]["actions"]


def test_notify_without_a_listener_path_or_an_agent_fails_create(any_run, bundle, cid, work_dir):
    notify_profile(bundle, os.path.join(work_dir, "nobody-listens.sock"), "m")
    r = any_run("create", "--bundle", bundle, cid)
    assert r.code != 0, "no agent: the listener cannot be handed over"
    assert any_run("state", cid).code != 0, "nothing left of it"
    del bundle.config["linux"]["seccomp"]["listenerPath"]
    del bundle.config["linux"]["seccomp"]["listenerMetadata"]
    r = any_run("create", "--bundle", bundle, cid)
    assert r.code != 0, "SCMP_ACT_NOTIFY with nobody to answer"
    assert any_run("state", cid).code != 0


@pytest.mark.pea_only
def test_notify_errors_name_what_is_missing(run, bundle, cid, work_dir, assert_no_leaks):
    path = os.path.join(work_dir, "nobody-listens.sock")
    notify_profile(bundle, path, "m")
    r = run("create", "--bundle", bundle, cid)
    assert r.code != 0
    assert f"connect to seccomp agent {path}: No such file or directory" in r.err
    assert_no_leaks()
    del bundle.config["linux"]["seccomp"]["listenerPath"]
    r = run("create", "--bundle", bundle, cid)
    assert "linux.seccomp.listenerMetadata: must not be set without listenerPath" in r.err
    del bundle.config["linux"]["seccomp"]["listenerMetadata"]
    r = run("create", "--bundle", bundle, cid)
    assert "linux.seccomp.listenerPath: required by SCMP_ACT_NOTIFY" in r.err


# ---- the cache of compiled programs -------------------------------------------------------------------------------

def test_nothing_is_left_in_the_callers_root(any_run, bundle, cid):
    """containerd, CRI-O and podman own --root: once the container is deleted, it holds nothing of the runtime."""
    bundle.config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}],
    }
    bundle.args("peatest", "syscall", "mkdir")
    r = any_run("run", "--bundle", bundle, cid)
    assert (r.code, r.out.strip()) == (0, "EPERM"), r.err
    assert os.listdir(any_run.root) == []


@pytest.mark.pea_only
def test_the_cache_is_pea_own_directory(run, bundle, cid):
    """Without PEA_SECCOMP_CACHE_DIR (the other tests set it), root's pea keeps it in /run/pea-seccomp-cache,
    private to it."""
    del run.env[CACHE_ENV]
    existed = os.path.isdir(DEFAULT_CACHE)
    before = set(os.listdir(DEFAULT_CACHE)) if existed else set()
    # A profile of this test alone (the errno), so that its entry is new.
    bundle.config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1 + os.getpid() % 4000}],
    }
    try:
        run.ok("run", "--bundle", bundle, cid)
        st = os.stat(DEFAULT_CACHE)
        assert (st.st_uid, st.st_mode & 0o777) == (0, 0o700)
        assert set(os.listdir(DEFAULT_CACHE)) - before, "the program was stored there"
    finally:
        if not existed:
            shutil.rmtree(DEFAULT_CACHE, ignore_errors=True)
        else:
            for name in set(os.listdir(DEFAULT_CACHE)) - before:
                os.unlink(os.path.join(DEFAULT_CACHE, name))


@pytest.mark.pea_only
def test_the_cache_stays_bounded(run, bundle, cid, work_dir):
    """Past 64 distinct profiles the cache starts over rather than grow."""
    cache = run.env[CACHE_ENV]
    bundle.args("true")
    for i in range(66):
        bundle.config["linux"]["seccomp"] = {
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 100 + i}],
        }
        run.ok("run", "--bundle", bundle, f"{cid}-{i}")
        assert os.path.isdir(cache), "kept where PEA_SECCOMP_CACHE_DIR says"
        entries = os.listdir(cache)
        assert 1 <= len(entries) <= 64, f"after {i + 1} profiles: {len(entries)} entries"
    assert len(entries) < 64, "it started over"
    assert all(os.stat(os.path.join(cache, e)).st_mode & 0o777 == 0o600 for e in entries)
