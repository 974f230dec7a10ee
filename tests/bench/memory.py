"""Memory: peak RSS of `create` (the kernel's ru_maxrss from wait4, which for pea covers the image it re-executes
into from its sealed memfd copy), resident size of what stays behind per container (the created init), pea-pause's
binary, and the per-container monitors of the peers: conmon and containerd-shim-runc-v2, each started the way it is
used and measured with one sleeping container."""
import json
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import hashlib
import time

from benchlib import (Cleanup, make_bundle, proc_pss_kib, proc_status_kib, quiet, wait_until, write_config,
                      REPO)


def peak_rss_create(rt, bundle, runs):
    """Median ru_maxrss (KiB) of `create` over runs, and the init's RSS/PSS while it waits for start.

    Started by GNU time (/usr/bin/time -f %M: ru_maxrss from wait4), not from Python: a fork of this Python would
    count Python's own pages into the child's high-water mark before the exec."""
    gnu_time = "/usr/bin/time"
    if not os.access(gnu_time, os.X_OK):
        raise RuntimeError("needs GNU time (apt-get install time)")
    write_config(bundle, ["/bin/true"])
    peaks, init_rss, init_pss = [], [], []
    for i in range(runs):
        cid = f"mem{i}"
        with tempfile.NamedTemporaryFile("r") as out:
            p = subprocess.run([gnu_time, "-o", out.name, "-f", "%M"] + rt.argv("create", "--bundle", bundle, cid),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                if p.returncode != 0:
                    raise RuntimeError(f"{rt.name} create: exit {p.returncode}")
                peaks.append(int(out.read().split()[-1]))
                pid = (rt.state(cid) or {}).get("pid")
                if pid:
                    init_rss.append(proc_status_kib(pid) or 0)
                    init_pss.append(proc_pss_kib(pid) or 0)
            finally:
                rt.force_delete(cid)
    med = lambda xs: sorted(xs)[len(xs) // 2] if xs else None
    return {"peak": med(peaks), "init_rss": med(init_rss), "init_pss": med(init_pss)}


def pause_binary(build):
    path = os.path.join(build, "sandbox", "pea-pause")
    return os.path.getsize(path) if os.path.exists(path) else None


def k8s_pause():
    """Kubernetes' pause binary, if any is on this machine (registry.k8s.io/pause is not packaged by Debian)."""
    for path in ("/pause", "/usr/bin/pause", "/usr/local/bin/pause", "/usr/lib/kubernetes/pause"):
        if os.path.exists(path):
            return os.path.getsize(path)
    return None


# ---- conmon -------------------------------------------------------------------------------------------------------

def conmon_rss(work, runc):
    """conmon monitoring one `sleep` container made by runc: conmon's VmRSS/PSS (KiB) with the container running."""
    conmon = shutil.which("conmon")
    if not conmon:
        return None
    d = tempfile.mkdtemp(prefix="conmon-", dir=work)
    bundle = os.path.join(d, "bundle")
    make_bundle(bundle, ["sleep", "1000"])
    root = os.path.join(d, "state")
    for sub in ("exits", "sock"):
        os.mkdir(os.path.join(d, sub))
    cleanup = Cleanup()
    runc_argv = [runc, "--root", root]
    try:
        cleanup.push(quiet, runc_argv + ["delete", "--force", "bc"])
        subprocess.run([conmon, "--cid", "bc", "--cuuid", "00000000-0000-4000-8000-000000000001", "-n", "bc",
                        "-r", runc, "--runtime-arg", "--root", "--runtime-arg", root, "-b", bundle,
                        "-p", os.path.join(d, "pid"), "-P", os.path.join(d, "conmon.pid"),
                        "-l", "k8s-file:" + os.path.join(d, "log"), "--exit-dir", os.path.join(d, "exits"),
                        "--socket-dir-path", os.path.join(d, "sock"), "--log-level", "error"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
        cpid = int(open(os.path.join(d, "conmon.pid")).read())
        cleanup.push(_kill_if_named, cpid, "conmon")
        if not wait_until(lambda: os.path.exists(os.path.join(d, "pid")), 10):
            raise RuntimeError("conmon: the container was not created")
        subprocess.run(runc_argv + ["start", "bc"], check=True, stdout=subprocess.DEVNULL, timeout=30)
        time.sleep(0.3)
        return {"rss": proc_status_kib(cpid), "pss": proc_pss_kib(cpid)}
    finally:
        cleanup.run()
        shutil.rmtree(d, ignore_errors=True)


def _kill_if_named(pid, comm):
    try:
        if open(f"/proc/{pid}/comm").read().strip() == comm:
            os.kill(pid, signal.SIGKILL)
    except (FileNotFoundError, ProcessLookupError):
        pass


# ---- containerd ---------------------------------------------------------------------------------------------------

IMAGE = "docker.io/library/pea-bench:latest"


def _blob(layout, data):
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(layout, "blobs", "sha256", digest), "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + digest, "size": len(data)}


def build_oci_archive(path, work):
    """An OCI image layout tar of a busybox root (examples/make-rootfs), one uncompressed layer, for ctr import."""
    layout = tempfile.mkdtemp(prefix="layout-", dir=work)
    rootfs = tempfile.mkdtemp(prefix="rootfs-", dir=work)
    try:
        subprocess.run([os.path.join(REPO, "examples", "make-rootfs"), rootfs], check=True)
        os.makedirs(os.path.join(layout, "blobs", "sha256"))
        layer_path = os.path.join(work, "layer.tar")
        with tarfile.open(layer_path, "w", format=tarfile.PAX_FORMAT) as t:
            for name in sorted(os.listdir(rootfs)):
                t.add(os.path.join(rootfs, name), arcname=name)
        layer = _blob(layout, open(layer_path, "rb").read())
        os.unlink(layer_path)
        config = _blob(layout, json.dumps({
            "architecture": "amd64", "os": "linux",
            "config": {"Env": ["PATH=/bin"], "Cmd": ["sleep", "1000"]},
            "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]}}).encode())
        manifest = _blob(layout, json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": dict(config, mediaType="application/vnd.oci.image.config.v1+json"),
            "layers": [dict(layer, mediaType="application/vnd.oci.image.layer.v1.tar")]}).encode())
        with open(os.path.join(layout, "index.json"), "w") as f:
            json.dump({"schemaVersion": 2, "manifests": [dict(
                manifest, mediaType="application/vnd.oci.image.manifest.v1+json",
                platform={"architecture": "amd64", "os": "linux"},
                annotations={"io.containerd.image.name": IMAGE, "org.opencontainers.image.ref.name": "latest"})]},
                f)
        with open(os.path.join(layout, "oci-layout"), "w") as f:
            json.dump({"imageLayoutVersion": "1.0.0"}, f)
        with tarfile.open(path, "w") as t:
            for name in ("oci-layout", "index.json", "blobs"):
                t.add(os.path.join(layout, name), arcname=name)
    finally:
        shutil.rmtree(layout, ignore_errors=True)
        shutil.rmtree(rootfs, ignore_errors=True)


def _umount_under(prefix):
    points = [line.split()[4] for line in open("/proc/self/mountinfo")]
    for point in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
        quiet(["umount", "-l", point])


def start_private_containerd(d, cleanup, namespace):
    """A containerd of our own in D (config, root, state, socket; CRI off), never the system one; its undo actions
    go on CLEANUP. Returns the ctr argv for it (namespace NAMESPACE) and the daemon's Popen, or (None, None) when
    containerd is not installed."""
    containerd, ctr = shutil.which("containerd"), shutil.which("ctr")
    if not containerd or not ctr:
        return None, None
    sock = os.path.join(d, "containerd.sock")
    cfg = os.path.join(d, "config.toml")
    with open(cfg, "w") as f:
        f.write(f'version = 2\nroot = "{d}/root"\nstate = "{d}/state"\n'
                f'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", '
                f'"io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", '
                f'"io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp"]\n'
                f'[grpc]\n  address = "{sock}"\n[ttrpc]\n  address = "{sock}.ttrpc"\n'
                f'[debug]\n  address = ""\n[metrics]\n  address = ""\n'
                f'[plugins."io.containerd.internal.v1.opt"]\n  path = "{d}/opt"\n')
    ctr_argv = [ctr, "--address", sock, "--namespace", namespace]
    # The shims' sockets go to /run/containerd/s whatever the config says: remove what we made there.
    if not os.path.exists("/run/containerd"):
        cleanup.push(_remove_empty_tree, "/run/containerd")
    # containerd puts a namespace's containers under /<namespace>/ of every cgroup hierarchy, the v1 ones too.
    cleanup.push(_remove_cgroups, namespace)
    cleanup.push(shutil.rmtree, d, ignore_errors=True)
    cleanup.push(_umount_under, d + "/")
    log = open(os.path.join(d, "containerd.log"), "w")
    daemon = subprocess.Popen([containerd, "--config", cfg], stdout=log, stderr=log)
    cleanup.push(_stop_daemon, daemon)
    if not wait_until(lambda: os.path.exists(sock) and quiet(ctr_argv + ["version"]).returncode == 0, 20, 0.05):
        raise RuntimeError("containerd did not come up: " + open(os.path.join(d, "containerd.log")).read()[-500:])
    return ctr_argv, daemon


def containerd_shim_rss(work):
    """A private containerd (own config, root, state, socket under a temp dir; CRI off), the image imported from
    our own archive, `ctr run -d` of one sleeping container; VmRSS/PSS (KiB) of its containerd-shim-runc-v2."""
    if not shutil.which("containerd-shim-runc-v2"):
        return None
    d = tempfile.mkdtemp(prefix="ctrd-", dir=work)
    cleanup = Cleanup()
    try:
        ctr_argv, daemon = start_private_containerd(d, cleanup, "pea-bench")
        if not ctr_argv:
            return None
        archive = os.path.join(d, "image.tar")
        build_oci_archive(archive, d)
        subprocess.run(ctr_argv + ["images", "import", "--snapshotter", "overlayfs", archive], check=True,
                       stdout=subprocess.DEVNULL, timeout=120)
        cleanup.push(quiet, ctr_argv + ["containers", "rm", "bench"])
        cleanup.push(quiet, ctr_argv + ["tasks", "rm", "--force", "bench"])
        cleanup.push(_ctr_kill_wait, ctr_argv, "bench")
        p = subprocess.run(ctr_argv + ["run", "-d", "--snapshotter", "overlayfs", "--fifo-dir", d + "/fifo",
                                       "--runc-root", d + "/runc", IMAGE, "bench"],
                           capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            raise RuntimeError("ctr run: " + p.stderr.strip())
        task_pid = None
        for _ in range(100):
            out = subprocess.run(ctr_argv + ["tasks", "ls"], capture_output=True, text=True).stdout.split("\n")
            rows = [line.split() for line in out[1:] if line.startswith("bench")]
            if rows and rows[0][2] == "RUNNING":
                task_pid = int(rows[0][1])
                break
            time.sleep(0.05)
        if not task_pid:
            raise RuntimeError("ctr: the task did not run")
        shim = _ppid(task_pid)
        if open(f"/proc/{shim}/comm").read().strip() != "containerd-shim":
            raise RuntimeError(f"ctr: parent of the task is {open(f'/proc/{shim}/comm').read().strip()}")
        time.sleep(0.3)
        return {"rss": proc_status_kib(shim), "pss": proc_pss_kib(shim),
                "daemon_rss": proc_status_kib(daemon.pid)}
    finally:
        cleanup.run()


def _remove_empty_tree(top):
    for dirpath, dirnames, filenames in os.walk(top, topdown=False):
        if not filenames:
            try:
                os.rmdir(dirpath)
            except OSError:
                pass


def _remove_cgroups(name):
    """rmdir /sys/fs/cgroup/*/NAME (and the unified one) depth first; a cgroup with processes stays."""
    import glob
    for top in glob.glob(f"/sys/fs/cgroup/*/{name}") + glob.glob(f"/sys/fs/cgroup/{name}"):
        for dirpath, _, _ in sorted(os.walk(top), key=lambda w: len(w[0]), reverse=True):
            try:
                os.rmdir(dirpath)
            except OSError:
                pass


def _ppid(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def _ctr_kill_wait(ctr_argv, cid):
    quiet(ctr_argv + ["tasks", "kill", "--signal", "SIGKILL", cid])
    wait_until(lambda: "RUNNING" not in subprocess.run(ctr_argv + ["tasks", "ls"], capture_output=True,
                                                       text=True).stdout, 10, 0.05)


def _stop_daemon(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
