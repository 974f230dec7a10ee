"""Shared pieces of the benchmarks: the busybox bundle, timing, medians, /proc readings, and a cleanup stack that
runs on normal exit, on an exception and on SIGINT/SIGTERM (both turned into KeyboardInterrupt)."""
import json
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEVNULL = subprocess.DEVNULL


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def install_signal_handlers():
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)


class Cleanup:
    """A stack of undo actions, run last-in first-out; a failing action does not stop the others. While it runs,
    SIGINT and SIGTERM are ignored so a second Ctrl-C cannot leave half the cleanup undone."""

    def __init__(self):
        self.actions = []

    def push(self, fn, *args, **kw):
        self.actions.append((fn, args, kw))
        return len(self.actions) - 1

    def run(self):
        old = [signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)]
        try:
            while self.actions:
                fn, args, kw = self.actions.pop()
                try:
                    fn(*args, **kw)
                except Exception as e:  # keep going: everything else must still be undone
                    print(f"bench: cleanup {getattr(fn, '__name__', fn)}: {e}", flush=True)
        finally:
            signal.signal(signal.SIGINT, old[0])
            signal.signal(signal.SIGTERM, old[1])


def quiet(argv, **kw):
    return subprocess.run(argv, stdout=DEVNULL, stderr=DEVNULL, **kw)


def timed(argv):
    start = time.perf_counter()
    subprocess.run(argv, stdout=DEVNULL, stderr=DEVNULL)
    return time.perf_counter() - start


def timed_checked(argv):
    """Wall time of argv, which must succeed. Its stderr goes to a file, not a pipe: a container's init inherits
    it and would hold a pipe open past the command's exit."""
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        p = subprocess.run(argv, stdout=DEVNULL, stderr=err)
        t = time.perf_counter() - start
        if p.returncode != 0:
            err.seek(0)
            raise RuntimeError(f"{' '.join(argv)}: exit {p.returncode}: {err.read().decode(errors='replace').strip()}")
    return t


def median_ms(samples):
    return statistics.median(samples) * 1000


def wait_until(pred, timeout=10.0, interval=0.001):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(interval)
    return pred()


def proc_status_kib(pid, field="VmRSS"):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except FileNotFoundError:
        pass
    return None


def proc_pss_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return None


def proc_cpu_seconds(pid):
    """utime + stime of a process (not its children), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_of(pid):
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(x) for x in f.read().split()]
    except FileNotFoundError:
        pass
    return out


def descendants(pid):
    seen, todo = [], [pid]
    while todo:
        p = todo.pop()
        for c in children_of(p):
            seen.append(c)
            todo.append(c)
    return seen


def make_bundle(path, args=("/bin/true",)):
    """A read-only busybox root with five namespaces, the same for every runtime."""
    rootfs = os.path.join(path, "rootfs")
    os.makedirs(os.path.join(rootfs, "bin"))
    for d in ("proc", "dev", "sys", "tmp"):
        os.makedirs(os.path.join(rootfs, d))
    shutil.copy2("/bin/busybox", os.path.join(rootfs, "bin", "busybox"))
    for applet in ("true", "sh", "sleep", "cat", "head", "yes", "dd"):
        os.symlink("busybox", os.path.join(rootfs, "bin", applet))
    write_config(path, args)


def bundle_config(args, terminal=False):
    """The bundle's config.json: a read-only root, five namespaces, three capabilities, no new privileges."""
    return {
        "ociVersion": "1.0.2", "root": {"path": "rootfs", "readonly": True}, "hostname": "bench",
        "process": {"terminal": terminal, "user": {"uid": 0, "gid": 0}, "args": list(args), "cwd": "/",
                    "env": ["PATH=/bin"],
                    "capabilities": {k: ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE"]
                                     for k in ("bounding", "effective", "permitted")},
                    "noNewPrivileges": True},
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
                   {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                    "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}],
        "linux": {"namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
                  "maskedPaths": ["/proc/kcore", "/proc/keys"], "readonlyPaths": ["/proc/sys"]},
    }


def write_config(bundle, args, terminal=False):
    config = bundle_config(args, terminal)
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(config, f)
    return config


def state_root(work, name):
    """Where a runtime keeps its state in this run: WORK/run/NAME. `run` mounts a tmpfs on WORK/run, as /run is on
    a node (this VM's /run is on its disk, where every state write would cost an ext4 inode and a rename)."""
    return os.path.join(work, "run", name)


def mount_state_tmpfs(work):
    path = os.path.join(work, "run")
    os.mkdir(path, 0o755)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755", "pea-bench-run", path], check=True)


def umount_state_tmpfs(work):
    path = os.path.join(work, "run")
    if os.path.ismount(path):
        quiet(["umount", "-l", path])


class Runtime:
    """An OCI runtime CLI (pea or runc) with its own --root under the work dir."""

    def __init__(self, name, binary, root):
        self.name, self.binary, self.root = name, binary, root

    def argv(self, *args):
        return [self.binary, "--root", self.root] + list(args)

    def state(self, cid):
        p = subprocess.run(self.argv("state", cid), capture_output=True, text=True)
        if p.returncode != 0:
            return None
        return json.loads(p.stdout)

    def status(self, cid):
        s = self.state(cid)
        return s and s.get("status")

    def force_delete(self, cid):
        quiet(self.argv("delete", "--force", cid))

    def delete_all(self):
        """Force-delete every container under this root (what `list` shows)."""
        p = subprocess.run(self.argv("list", "--quiet"), capture_output=True, text=True)
        for cid in p.stdout.split():
            self.force_delete(cid)
