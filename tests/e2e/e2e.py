"""Helpers of the end-to-end tests: the busybox image, a private podman and a private containerd."""
import gzip
import hashlib
import io
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tarfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
import helpers  # noqa: E402  (mount table helpers shared with the integration tests)

mount_points = helpers.mount_points
detach_mounts = helpers.detach_mounts
CGROUP_ROOT = "/sys/fs/cgroup"
IMAGE = "localhost/pea-e2e/busybox:latest"


# ---- the image ----------------------------------------------------------------------------------------------------

def make_rootfs_tar(path, busybox="/bin/busybox"):
    """Write a busybox-static root filesystem tarball (every applet a symlink in /bin) to PATH; returns PATH."""
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split()
    files = {
        "etc/passwd": "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n"
                      "nobody:x:65534:65534:nobody:/:/bin/false\n",
        "etc/group": "root:x:0:\nuser:x:1000:\nextra:x:2000:user\nnogroup:x:65534:\n",
        "www/index.html": "hello from the pod\n",
    }

    def add(tar, name, kind, data=b"", mode=0o755, target=""):
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.mtime = kind, mode, 0
        info.linkname = target
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data) if data else None)

    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for d in ("bin", "etc", "dev", "proc", "sys", "tmp", "root", "home", "home/user", "www", "data", "run"):
            add(tar, d, tarfile.DIRTYPE, mode=0o1777 if d == "tmp" else 0o755)
        with open(busybox, "rb") as f:
            add(tar, "bin/busybox", tarfile.REGTYPE, f.read(), 0o755)
        for a in sorted(set(applets) - {"busybox"}):
            add(tar, f"bin/{a}", tarfile.SYMTYPE, target="busybox")
        for name, text in files.items():
            add(tar, name, tarfile.REGTYPE, text.encode(), 0o644)
    return path


def _blob(blobs, data):
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, digest), "wb") as f:
        f.write(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def make_oci_archive(path, rootfs_tar, name, image_config=None):
    """Write an OCI image layout archive (oci-layout, index.json, manifest, config, one gzip layer) for ROOTFS_TAR.

    IMAGE_CONFIG (the config's "config": Env, Cmd, Entrypoint...) defaults to a shell with a PATH."""
    work = path + ".d"
    blobs = os.path.join(work, "blobs", "sha256")
    os.makedirs(blobs)
    with open(rootfs_tar, "rb") as f:
        layer = f.read()
    gz = gzip.compress(layer, mtime=0)
    layer_desc = dict(_blob(blobs, gz), mediaType="application/vnd.oci.image.layer.v1.tar+gzip")
    config = {
        "architecture": "amd64", "os": "linux", "created": "1970-01-01T00:00:00Z",
        "config": image_config or {"Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["/bin/sh"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "pea tests/e2e"}],
    }
    config_desc = dict(_blob(blobs, json.dumps(config).encode()), mediaType="application/vnd.oci.image.config.v1+json")
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": config_desc, "layers": [layer_desc]}
    manifest_desc = dict(_blob(blobs, json.dumps(manifest).encode()),
                         mediaType="application/vnd.oci.image.manifest.v1+json",
                         platform={"architecture": "amd64", "os": "linux"},
                         annotations={"io.containerd.image.name": name,
                                      "org.opencontainers.image.ref.name": name.rsplit(":", 1)[1]})
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": [manifest_desc]}
    with open(os.path.join(work, "index.json"), "w") as f:
        json.dump(index, f)
    with open(os.path.join(work, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    with tarfile.open(path, "w") as tar:
        for entry in ("oci-layout", "index.json", "blobs"):
            tar.add(os.path.join(work, entry), arcname=entry)
    shutil.rmtree(work)
    return path


# ---- README snippets ----------------------------------------------------------------------------------------------

def readme_snippet(key, pea):
    """The indented code block that follows `<!-- e2e:KEY -->` in README.md, with /usr/local/sbin/pea -> PEA.

    The tests configure the orchestrators with exactly these snippets, so the README's examples are tested.
    """
    with open(os.path.join(REPO, "README.md")) as f:
        lines = f.read().splitlines()
    start = lines.index(f"<!-- e2e:{key} -->") + 1
    while not lines[start].strip():
        start += 1
    block = []
    for line in lines[start:]:
        if line.strip() and not line.startswith("    "):
            break
        block.append(line[4:])
    return ("\n".join(block).strip() + "\n").replace("/usr/local/sbin/pea", pea)


# ---- processes and cgroups ----------------------------------------------------------------------------------------

def sweep_leftovers(path, expected_mounts=()):
    """After a daemon is gone: kill every process still naming PATH and detach every mount under it, reporting each
    (but the EXPECTED_MOUNTS) as a leak."""
    problems = []
    for pid, cmd in processes_with(path):
        problems.append(f"process left behind: {pid} {cmd}")
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    points = [m for m in mount_points() if m.startswith(path)]
    problems += [f"mount left behind: {m}" for m in points if m not in expected_mounts]
    detach_mounts(points)
    return problems


def cgroups_left_in(path):
    """A leak report for any child cgroup of PATH (which may be missing)."""
    if not os.path.isdir(path):
        return []
    children = [d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d))]
    return [f"cgroups left behind in {path}: {children}"] if children else []


def processes_with(word):
    """[(pid, cmdline)] of processes whose command line contains WORD."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if word in cmd:
            found.append((int(entry), cmd.strip()))
    return found


def cgroup_dirs(name):
    """Every cgroup directory called NAME directly under a hierarchy's root (v1 and v2)."""
    out = []
    for h in os.listdir(CGROUP_ROOT):
        p = os.path.join(CGROUP_ROOT, h, name)
        if os.path.isdir(p):
            out.append(p)
    if os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.controllers")) and os.path.isdir(
            os.path.join(CGROUP_ROOT, name)):
        out.append(os.path.join(CGROUP_ROOT, name))
    return out


def cgroup_hierarchies():
    """The mount points of every cgroup hierarchy (v1 and v2)."""
    out = []
    for line in open("/proc/self/mountinfo"):
        fields = line.split()
        sep = fields.index("-")
        if fields[sep + 1] in ("cgroup", "cgroup2"):
            out.append(fields[4])
    return out


def cgroup2_root():
    for line in open("/proc/self/mountinfo"):
        fields = line.split()
        sep = fields.index("-")
        if fields[sep + 1] == "cgroup2":
            return fields[4]
    return None


def cgroup2_has(controller):
    """True when the cgroup2 hierarchy's root offers CONTROLLER."""
    root = cgroup2_root()
    try:
        with open(os.path.join(root, "cgroup.controllers")) as f:
            return controller in f.read().split()
    except (OSError, TypeError):
        return False


def rmdir_tree(path):
    """Remove a cgroup directory and its children (deepest first); returns the directories that would not go."""
    stuck = []
    for dirpath, dirnames, _ in sorted(os.walk(path), key=lambda t: -t[0].count("/")):
        try:
            os.rmdir(dirpath)
        except OSError:
            stuck.append(dirpath)
    return stuck


def wait_until(predicate, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Result:
    def __init__(self, proc):
        self.code, self.out, self.err = proc.returncode, proc.stdout, proc.stderr

    def __repr__(self):
        return f"exit {self.code}, stdout {self.out!r}, stderr {self.err!r}"


def run(argv, env=None, input=None, timeout=60):
    p = subprocess.run(argv, env=env, input=input, capture_output=True, text=True, timeout=timeout,
                       stdin=None if input is not None else subprocess.DEVNULL)
    return Result(p)


# ---- podman -------------------------------------------------------------------------------------------------------

class Podman:
    """podman with private storage (--root/--runroot/--tmpdir), a private containers.conf and storage.conf through
    CONTAINERS_CONF/CONTAINERS_STORAGE_CONF, --cgroup-manager cgroupfs, --events-backend file, --runtime PEA."""

    def __init__(self, directory, pea, mark):
        self.dir, self.pea, self.mark = directory, pea, mark
        for sub in ("root", "runroot", "tmp", "networks"):
            os.makedirs(os.path.join(directory, sub))
        self.conf = os.path.join(directory, "containers.conf")
        self.storage_conf = os.path.join(directory, "storage.conf")
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        nofile = 1048576 if nofile == resource.RLIM_INFINITY else min(nofile, 1048576)
        with open(self.conf, "w") as f:
            f.write(readme_snippet("containers.conf", pea))
            # This host only: podman's defaults raise RLIMIT_NOFILE/NPROC to 1048576, which needs CAP_SYS_RESOURCE
            # beyond the current hard limit (runc fails the same way); no pids limit (no pids controller here);
            # no network: never touch the host's network.
            f.write("\n[containers]\n"
                    f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc=4096:4096"]\n'
                    "pids_limit = 0\n"
                    'netns = "none"\n'
                    "\n[network]\n"
                    f'network_config_dir = "{directory}/networks"\n')
        with open(self.storage_conf, "w") as f:
            f.write(f'[storage]\ndriver = "overlay"\ngraphroot = "{directory}/root"\nrunroot = "{directory}/runroot"\n')
        self.env = dict(os.environ, CONTAINERS_CONF=self.conf, CONTAINERS_STORAGE_CONF=self.storage_conf)
        self.env.pop("CONTAINER_HOST", None)
        self.base = ["podman", "--root", f"{directory}/root", "--runroot", f"{directory}/runroot",
                     "--tmpdir", f"{directory}/tmp", "--cgroup-manager", "cgroupfs", "--events-backend", "file"]
        self.cgroups_before = {p for p in cgroup_dirs("libpod_parent")}
        self.pea_roots = ("/run/pea", f"{directory}/runroot/pea")

    def argv(self, *args, runtime=True):
        return self.base + (["--runtime", self.pea] if runtime else []) + [str(a) for a in args]

    def __call__(self, *args, input=None, timeout=60, runtime=True):
        return run(self.argv(*args, runtime=runtime), env=self.env, input=input, timeout=timeout)

    def ok(self, *args, **kw):
        r = self(*args, **kw)
        assert r.code == 0, f"podman {' '.join(map(str, args))}: {r}"
        return r

    def popen(self, *args, **kw):
        return subprocess.Popen(self.argv(*args), env=self.env, **kw)

    def default_capabilities(self):
        """The capabilities podman gives a container by default (from `podman info`'s security section)."""
        info = json.loads(self.ok("info", "--format", "json").out)
        return [c.strip() for c in info["host"]["security"]["capabilities"].split(",") if c.strip()]

    def import_image(self, rootfs_tar):
        self.ok("import", "--change", "ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin", "--change", 'CMD ["/bin/sh"]',
                rootfs_tar, IMAGE, timeout=120)

    def remove_all(self):
        """Remove every container and pod; returns what had to be forced (containers still running are fine)."""
        problems = []
        self("pod", "rm", "--force", "--all", "--time", "0")
        r = self("ps", "--all", "--quiet", "--no-trunc")
        ids = r.out.split()
        if ids:
            rm = self("rm", "--force", "--time", "0", *ids)
            if rm.code != 0:
                problems.append(f"podman rm failed: {rm}")
        left = self("ps", "--all", "--quiet").out.split()
        if left:
            problems.append(f"containers that podman could not remove: {left}")
        # pea's own state: whatever podman passed as --root, nothing of its containers may stay listed.
        for cid in ids:
            for root in self.pea_roots:
                if os.path.isdir(os.path.join(root, cid)):
                    problems.append(f"pea state left behind: {root}/{cid}")
        return problems

    def cleanup(self):
        problems = self.remove_all()
        self("rmi", "--all", "--force", timeout=120)
        # c/storage's overlay driver keeps its home (root/overlay) mounted private until shut down; that one is
        # podman's, not a leak.
        problems += sweep_leftovers(self.dir, expected_mounts=(f"{self.dir}/root/overlay",))
        # A container's cgroup (libpod-ID, made by pea) must be gone; podman's own (libpod_parent, conmon, and on
        # a hybrid host the pod's directory in the unified hierarchy, which podman 4.3 does not remove even with
        # runc) are removed silently.
        for parent in cgroup_dirs("libpod_parent"):
            for dirpath, dirnames, _ in os.walk(parent):
                problems += [f"container cgroup left behind: {dirpath}/{d}" for d in dirnames
                             if d.startswith("libpod-") and d != "libpod-conmon"]
            if parent not in self.cgroups_before:
                rmdir_tree(parent)
        return problems


# ---- containerd ---------------------------------------------------------------------------------------------------

class Containerd:
    """A private containerd (own root, state, sockets) whose runc v2 shim runs pea; ctr talks to it."""

    def __init__(self, directory, pea, mark):
        self.dir, self.pea, self.mark = directory, pea, mark
        self.ns = f"e2e-{mark}"
        self.address = os.path.join(directory, "containerd.sock")
        self.config = os.path.join(directory, "config.toml")
        self.proc = None
        os.makedirs(directory)
        snippet = readme_snippet("containerd-config.toml", pea)
        with open(self.config, "w") as f:
            f.write("version = 2\n"
                    f'root = "{directory}/root"\n'
                    f'state = "{directory}/state"\n'
                    "[grpc]\n"
                    f'  address = "{self.address}"\n'
                    "[ttrpc]\n"
                    f'  address = "{directory}/ttrpc.sock"\n'
                    "[debug]\n"
                    f'  address = "{directory}/debug.sock"\n'
                    "  level = \"debug\"\n"
                    "[metrics]\n"
                    '  address = ""\n'
                    "\n" + snippet)
        # ctr has no access to the CRI runtime table: the runc options (BinaryName) are given per run with
        # --runc-binary, or as a file with --runtime-config-path (the shim's runc options as TOML).
        self.runtime_options = os.path.join(directory, "pea-options.toml")
        with open(self.runtime_options, "w") as f:
            f.write(readme_snippet("ctr-runtime-options.toml", pea))

    def start(self):
        # The runc shim's state root for pea (its default --root) is per namespace, outside our directory.
        self.runc_root = os.path.join("/run/containerd/runc", self.ns)
        self.runc_root_existed = os.path.isdir(self.runc_root)
        self.log = open(os.path.join(self.dir, "containerd.log"), "w")
        self.proc = subprocess.Popen(["containerd", "--config", self.config], stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
                                     env=getattr(self, "env", None))

        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"containerd exited {self.proc.returncode}: {self.log_text()[-3000:]}")
            return os.path.exists(self.address) and self("version").code == 0
        wait_until(up, 30, "containerd to answer")

    def log_text(self):
        self.log.flush()
        with open(self.log.name, errors="replace") as f:
            return f.read()

    def argv(self, *args):
        args = [str(a) for a in args]
        if args[:1] == ["run"] and not cgroup2_has("cpu"):
            # ctr asks for cpu shares 1024 by default; pea refuses any cpu limit without the v2 cpu controller
            args[1:1] = ["--cpu-shares", "0"]
        return ["ctr", "--address", self.address, "--namespace", self.ns] + args

    def __call__(self, *args, input=None, timeout=60):
        return run(self.argv(*args), input=input, timeout=timeout)

    def ok(self, *args, **kw):
        r = self(*args, **kw)
        assert r.code == 0, f"ctr {' '.join(map(str, args))}: {r}"
        return r

    def popen(self, *args, **kw):
        return subprocess.Popen(self.argv(*args), **kw)

    def import_image(self, rootfs_tar):
        archive = make_oci_archive(os.path.join(self.dir, "busybox-oci.tar"), rootfs_tar, IMAGE)
        self.ok("images", "import", archive, timeout=120)
        assert IMAGE in self.ok("images", "ls", "--quiet").out.split(), "the OCI archive's image was not named"

    def tasks(self):
        r = self.ok("tasks", "ls")
        return [line.split()[0] for line in r.out.splitlines()[1:] if line.strip()]

    def containers(self):
        return self.ok("containers", "ls", "--quiet").out.split()

    def remove_all(self):
        problems = []
        for task in self.tasks():
            self("tasks", "kill", "--all", "--signal", "SIGKILL", task)
            try:
                wait_until(lambda: "STOPPED" in self("tasks", "ls").out.split() or task not in self.tasks(), 10,
                           f"task {task} to stop")
            except AssertionError:
                problems.append(f"task {task} did not stop on SIGKILL")
            r = self("tasks", "delete", "--force", task)
            if r.code != 0:
                problems.append(f"ctr tasks delete --force {task}: {r}")
        for c in self.containers():
            r = self("containers", "delete", c)
            if r.code != 0:
                problems.append(f"ctr containers delete {c}: {r}")
        if self.tasks() or self.containers():
            problems.append(f"left: tasks {self.tasks()}, containers {self.containers()}")
        # No shim of this containerd may outlive its tasks (a shim exits once its last task is deleted).
        try:
            wait_until(lambda: not processes_with(self.address), 10, "shims to exit")
        except AssertionError:
            problems += [f"shim left behind: {pid} {cmd}" for pid, cmd in processes_with(self.address)]
        root2 = cgroup2_root()
        if root2:
            problems += cgroups_left_in(os.path.join(root2, self.ns))
        return problems

    def stop(self):
        problems = []
        if self.proc is None:
            return problems
        if self.proc.poll() is None:
            problems += self.remove_all()
            self("images", "rm", IMAGE)
            self("namespaces", "rm", self.ns)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                problems.append("containerd did not exit on SIGTERM")
                self.proc.kill()
                self.proc.wait()
        else:
            problems.append(f"containerd died during the tests (exit {self.proc.returncode})")
        problems += sweep_leftovers(self.dir)
        # The namespace's cgroup directory: in the v2 hierarchy, and on a hybrid host (empty) in the v1 ones too.
        for root in cgroup_hierarchies():
            ns_cgroup = os.path.join(root, self.ns)
            if os.path.isdir(ns_cgroup):
                stuck = rmdir_tree(ns_cgroup)
                problems += [f"cgroup left behind: {p}" for p in stuck]
        if not self.runc_root_existed and os.path.isdir(self.runc_root):
            left = os.listdir(self.runc_root)
            if left:
                problems.append(f"pea state left behind in {self.runc_root}: {left}")
            else:
                os.rmdir(self.runc_root)
        self.log.close()
        return problems
