"""Helpers shared by the integration tests: the runtime runner, the bundle, and leak detection."""
import collections
import contextlib
import ctypes
import fcntl
import functools
import importlib.machinery
import importlib.util
import json
import os
import re
import signal
import subprocess
import tempfile
import termios
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def _load_make_bundle():
    path = os.path.join(REPO, "tests", "fixtures", "make-bundle")
    loader = importlib.machinery.SourceFileLoader("make_bundle", path)
    spec = importlib.util.spec_from_loader("make_bundle", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


make_bundle = _load_make_bundle()


@functools.lru_cache(maxsize=None)
def is_pea(runtime):
    """True unless `RUNTIME --version` names another runtime (runc, crun...)."""
    try:
        out = subprocess.run([runtime, "--version"], capture_output=True, text=True, timeout=10).stdout
    except OSError:
        return True
    first = out.split("\n", 1)[0].lower()
    return not any(other in first for other in ("runc", "crun", "youki"))


# pea's cache of compiled seccomp programs, for the runtime a Runner runs: in the test's work dir, not in the host's
# /run/pea-seccomp-cache.
SECCOMP_CACHE_ENV = "PEA_SECCOMP_CACHE_DIR"


def state_dirs(root):
    """The directories under a state root: its containers and pods."""
    return sorted(e for e in os.listdir(root) if os.path.isdir(os.path.join(root, e)))


Result = collections.namedtuple("Result", "code out err")


def parse_kv(text):
    """peatest output ("KEY VALUE..." lines) as a dict; a key without value maps to ""."""
    result = {}
    for line in text.splitlines():
        if line.strip():
            key, _, value = line.partition(" ")
            result[key] = value
    return result


def read(path):
    """The text of PATH; "" for None (output that went to a caller's fd)."""
    if path is None:
        return ""
    with open(path, errors="replace") as f:
        return f.read()


# ---- the runner ---------------------------------------------------------------------------------------------------

# Children that a test waits for itself: the orphan reaper leaves them alone.  Every Popen claims its own child
# (_ClaimedPopen, below); claim_child is for the others, such as a container's init reparented to us.  The lock
# makes "start a child and claim it" atomic with respect to the reaper.
_own_children = set()
_reap_lock = threading.Lock()


def claim_child(pid):
    """Keep the background reaper off PID: the caller will waitpid() it (release with release_child)."""
    with _reap_lock:
        _own_children.add(pid)


def release_child(pid):
    with _reap_lock:
        _own_children.discard(pid)


class Runner:
    """Runs the runtime with a fixed --root, capturing stdout/stderr through files.

    Files rather than pipes: after `create` the container keeps the runtime's stdio, so reading a pipe to EOF would
    wait for the container.  Arguments may include a Bundle, which is saved and passed as its path.
    """

    def __init__(self, runtime, root, work_dir, mark):
        self.runtime = runtime
        self.root = root
        self.work_dir = work_dir
        # The runtime runs with PEA_IT_MARK in its environment, so a process it forks carries the mark even
        # before it execs the container's process (whose env carries it through the bundle's config).
        self.env = dict(os.environ, PEA_IT_MARK=mark)
        self.env[SECCOMP_CACHE_ENV] = os.path.join(work_dir, "seccomp-cache")

    def argv(self, *args, global_args=()):
        out = [self.runtime, "--root", self.root, *global_args]
        for a in args:
            if isinstance(a, Bundle):
                a.save()
            out.append(os.fspath(a) if isinstance(a, os.PathLike) else str(a))
        return out

    def _output(self, given, kind, stack):
        """(file object or fd for the child, path to read back or None).

        GIVEN may be None (a new file of our own), a path (appended to, e.g. shared by create and the container),
        or an fd such as a pipe's write end (passed as is; nothing to read back).
        """
        if isinstance(given, int):
            return given, None
        path = given
        if path is None:
            fd, path = tempfile.mkstemp(prefix=kind + "-", dir=self.work_dir)
            os.close(fd)
        return stack.enter_context(open(path, "ab")), path

    def popen(self, *args, global_args=(), stdin=None, stdout=None, stderr=None, fds=None, close_fds=True,
              env=None, tty=None):
        """Start the runtime in the background; returns a Popen with .out_path and .err_path.

        stdin: None (/dev/null), a file object or an fd.  stdout/stderr: see _output.  fds={target: source} places
        fds at fixed numbers (for --preserve-fds).  tty=FD runs the runtime in a new session with the pty slave FD
        as its stdio and controlling terminal (the stdout/stderr files stay empty).
        """
        fds = fds or {}

        def in_child():
            # Runs in the child before subprocess closes the others: puts each source fd at its target number.
            for target, source in fds.items():
                os.dup2(source, target)
                os.set_inheritable(target, True)
            if tty is not None:
                fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        with contextlib.ExitStack() as stack:
            out, out_path = self._output(stdout, "out", stack)
            err, err_path = self._output(stderr, "err", stack)
            if tty is not None:
                stdin = out = err = tty
            proc = subprocess.Popen(self.argv(*args, global_args=global_args),
                                    stdin=subprocess.DEVNULL if stdin is None else stdin, stdout=out, stderr=err,
                                    close_fds=close_fds, pass_fds=tuple(fds) if close_fds else (),
                                    preexec_fn=in_child if fds or tty is not None else None,
                                    start_new_session=tty is not None, env=self.env if env is None else env)
        proc.out_path, proc.err_path = out_path, err_path
        return proc

    def __call__(self, *args, timeout=30, **kw):
        """Run the runtime to completion: Result(code, stdout text, stderr text)."""
        proc = self.popen(*args, **kw)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError(f"{' '.join(proc.args)} did not finish within {timeout}s")
        return Result(code, read(proc.out_path), read(proc.err_path))

    def ok(self, *args, **kw):
        """Run and assert exit 0; returns the Result."""
        r = self(*args, **kw)
        assert r.code == 0, f"{' '.join(map(str, args))} exited {r.code}: {r.err.strip()}"
        return r

    def state(self, cid):
        return _parse_state(self.ok("state", cid))

    def wait_for_status(self, cid, status, timeout=5.0):
        deadline = time.monotonic() + timeout
        while True:
            reap_orphans()
            r = self("state", cid)
            if r.code == 0:
                current = _parse_state(r)
                if current["status"] == status:
                    return current
            if time.monotonic() > deadline:
                raise AssertionError(f"{cid} never reached {status}: last state {r.out.strip()} {r.err.strip()}")
            time.sleep(0.02)


def _parse_state(result):
    try:
        return json.loads(result.out)
    except ValueError:
        raise AssertionError(f"state printed no JSON: {result.out!r}") from None


def wait_until(predicate, timeout=5.0, what="condition"):
    """Poll PREDICATE (reaping orphans meanwhile) until it is true; fail after TIMEOUT seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        reap_orphans()
        time.sleep(0.01)


# ---- the bundle ---------------------------------------------------------------------------------------------------

class Bundle(os.PathLike):
    """A bundle directory with its config dict: tests edit .config, the Runner saves it when passed as an argument."""

    def __init__(self, path, binaries, mark):
        self.path = path
        self.rootfs = os.path.join(path, "rootfs")
        os.makedirs(path)
        make_bundle.build_rootfs(self.rootfs, binaries["peatest"], binaries["busybox"], link=True)
        self.config = make_bundle.default_config(["true"])
        self.mark = f"PEA_IT_MARK={mark}"
        self.config["process"]["env"].append(self.mark)

    def __fspath__(self):
        return self.path

    def save(self):
        make_bundle.write_config(self.path, self.config)

    @property
    def process(self):
        return self.config["process"]

    def args(self, *args):
        self.config["process"]["args"] = [str(a) for a in args]
        return self

    def env(self, *entries):
        """Replace process.env with ENTRIES (the test mark is kept, so leaks stay traceable)."""
        self.config["process"]["env"] = [*entries, self.mark]
        return self

    def mount(self, destination, type=None, source=None, options=None):
        m = {"destination": destination}
        if type is not None:
            m["type"] = type
        if source is not None:
            m["source"] = source
        if options is not None:
            m["options"] = list(options)
        self.config["mounts"].append(m)
        return m

    def add_namespace(self, kind, path=None):
        ns = {"type": kind}
        if path:
            ns["path"] = path
        self.config["linux"]["namespaces"].append(ns)


# ---- processes, mounts and cgroups --------------------------------------------------------------------------------

def become_subreaper():
    """Orphaned container processes are reparented to us, as to containerd's shim or conmon, and we reap them."""
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_CHILD_SUBREAPER = 36
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def occupy_low_fds():
    """Keep fds 3 and 4 open in this process, so subprocess never puts its own pipes there (see Runner.popen fds)."""
    kept = []
    while True:
        fd = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
        if fd > 4:
            os.close(fd)
            break
        kept.append(fd)
    return kept


def _proc_stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    fields = text[text.rindex(")") + 2:].split()
    return fields[0], int(fields[1])  # state, ppid


class _ClaimedPopen(subprocess.Popen):
    """A Popen whose child the reaper leaves alone from fork until Popen itself has reaped it.

    Without the claim the reaper can reap a finished child first; Popen's waitpid then fails with ECHILD, which
    subprocess reports as exit code 0: a failing command would pass.
    """

    def _execute_child(self, *args, **kwargs):
        with _reap_lock:
            super()._execute_child(*args, **kwargs)
            _own_children.add(self.pid)

    def _handle_exitstatus(self, *args, **kwargs):
        super()._handle_exitstatus(*args, **kwargs)
        release_child(self.pid)


def start_reaper():
    """Reap orphans in the background, as a shim does: a runtime may wait for a killed init to be reaped.

    Every subprocess.Popen from here on (subprocess.run included) claims its child, so that the reaper never
    takes the exit status of a command a test waits for.
    """
    subprocess.Popen = _ClaimedPopen
    def loop():
        while True:
            reap_orphans()
            time.sleep(0.05)
    threading.Thread(target=loop, name="orphan-reaper", daemon=True).start()


def reap_orphans():
    """Reap zombie children that we did not start ourselves (container processes reparented to us)."""
    with _reap_lock:
        _reap_orphans_locked()


def _reap_orphans_locked():
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in _own_children:
            continue
        try:
            state, ppid = _proc_stat(entry)
        except (OSError, ValueError):
            continue
        if ppid == me and state == "Z":
            try:
                os.waitpid(int(entry), os.WNOHANG)
            except ChildProcessError:
                pass


def kill_and_reap(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    time.sleep(0.05)
    reap_orphans()


def processes_where(predicate):
    """PIDs of the processes for which predicate(pid, command line bytes) holds; a process that goes while it is
    looked at (OSError) is left out."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if predicate(int(entry), f.read()):
                    found.append(int(entry))
        except OSError:
            pass
    return found


def _marked_once(mark, paths):
    found = []
    me = os.getpid()
    needles = [b"PEA_IT_MARK=" + mark.encode()] + [p.encode() for p in paths]
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                environ = f.read()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
            root = os.readlink(f"/proc/{entry}/root")
        except OSError:
            continue
        # The mark is a prefix of the value, so the session mark finds every test's processes.
        if any(n in environ or n in cmdline for n in needles):
            found.append((int(entry), f"environment or command line names the test: {cmdline[:80]!r}"))
        elif root.startswith(tuple(paths)):
            found.append((int(entry), f"root {root}"))
    return found


def marked_processes(mark, paths, wait=0.0):
    """Processes whose environment holds PEA_IT_MARK=<mark...>, whose environment or command line names one of
    PATHS (the test's bundle or --root), or whose root is under one of them.

    Waits up to WAIT seconds (reaping orphans) for them to go, since a SIGKILL takes a moment to land.
    """
    deadline = time.monotonic() + wait
    while True:
        reap_orphans()
        found = _marked_once(mark, paths)
        if not found or time.monotonic() >= deadline:
            return found
        time.sleep(0.05)


def marked_cgroups(mark, base="/sys/fs/cgroup", depth=4):
    """Cgroup directories whose name contains MARK not followed by a digit (container ids carry it), any hierarchy."""
    found = []
    pattern = re.compile(re.escape(mark) + r"(?!\d)")
    base_depth = base.rstrip("/").count("/")
    for dirpath, dirnames, _ in os.walk(base):
        if dirpath.count("/") - base_depth >= depth:
            dirnames[:] = []
        for d in dirnames:
            if pattern.search(d):
                found.append(os.path.join(dirpath, d))
    return found


def remove_cgroups(paths):
    """Best effort: remove leaked cgroups (deepest first) so one leak does not fail every later check."""
    for path in sorted(paths, key=len, reverse=True):
        for dirpath, _, _ in sorted(os.walk(path), key=lambda w: len(w[0]), reverse=True):
            try:
                os.rmdir(dirpath)
            except OSError:
                pass


def unescape_mount_field(field):
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def mount_table():
    """The host's mounts as a multiset of (mount point, fs type, source)."""
    table = collections.Counter()
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            table[(unescape_mount_field(fields[4]), fields[sep + 1], unescape_mount_field(fields[sep + 2]))] += 1
    return table


def mount_points():
    return {point for point, _, _ in mount_table()}


def detach_mounts(points):
    """Best effort: lazily unmount leaked mounts (deepest first) so they do not outlive the test."""
    libc = ctypes.CDLL(None, use_errno=True)
    MNT_DETACH = 2
    for point in sorted(points, key=len, reverse=True):
        libc.umount2(point.encode(), MNT_DETACH)


def snapshot():
    """What a failed create must not change: the host's mounts (compare with new_mounts_since)."""
    return mount_table()


def new_mounts_since(before):
    after = mount_table()
    return sorted((after - before).elements())
