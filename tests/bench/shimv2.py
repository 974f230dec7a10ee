"""containerd's shims side by side, through the CRI of one private containerd 1.6 (tests/e2e/cri/harness.py, the
same configuration as the end-to-end tests): pea's own containerd-shim-pea-v2 (runtime handler "pea-shim"),
containerd-shim-runc-v2 running pea (handler "pea", the README's snippet) and containerd-shim-runc-v2 running runc
(handler "runc", BinaryName /usr/sbin/runc, its own Root under the bench's directory).

Memory: N pods of a sandbox and one sleeping container each, per handler; the shims' RSS and PSS summed over every
shim process of this containerd, per pod, and the MemAvailable drop per pod. Latency: RunPodSandbox +
CreateContainer + StartContainer through the CRI, handlers interleaved, medians."""
import os
import shutil
import sys
import tempfile
import time
import uuid

from benchlib import Cleanup, REPO, proc_pss_kib, proc_status_kib, wait_until

E2E = os.path.join(REPO, "tests", "e2e")
PEA_SHIM = "pea-shim"        # containerd-shim-pea-v2
RUNC_SHIM_PEA = "pea"        # containerd-shim-runc-v2 + pea (README)
RUNC_SHIM_RUNC = "runc"      # containerd-shim-runc-v2 + runc
SHIM_BINARIES = {PEA_SHIM: "containerd-shim-pea-v2", RUNC_SHIM_PEA: "containerd-shim-runc-v2",
                 RUNC_SHIM_RUNC: "containerd-shim-runc-v2"}
FIXED_DIRS = ("/run/containerd/pea", "/run/containerd/runc", "/run/containerd/s", "/run/containerd/fifo",
              "/run/containerd")


def _import_e2e():
    if E2E not in sys.path:
        sys.path.insert(0, E2E)
    try:
        import grpc  # noqa: F401
        import grpc_tools  # noqa: F401
    except ImportError:
        raise RuntimeError("shimv2 needs python3-grpcio and python3-grpc-tools (run the bench with /usr/bin/python3)")
    import e2e
    from cri import harness
    return e2e, harness


def _mem_available_kib():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1])
    raise RuntimeError("no MemAvailable in /proc/meminfo")


def _settled_mem_available():
    """MemAvailable after dropping clean caches and a pause, median of three readings (the machine is not idle)."""
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")
    time.sleep(0.5)
    readings = []
    for _ in range(3):
        readings.append(_mem_available_kib())
        time.sleep(0.1)
    return sorted(readings)[1]


class ShimBench:
    def __init__(self, pea, build, cleanup):
        self.e2e, harness = _import_e2e()
        self.dir = tempfile.mkdtemp(prefix="shimv2-", dir="/tmp")  # unix socket paths stay short
        os.chmod(self.dir, 0o755)
        self.cleanup = cleanup
        cleanup.push(shutil.rmtree, self.dir, ignore_errors=True)
        cleanup.push(self._detach_mounts)
        # containerd 1.6 and its shims make these whatever the configured state dirs are: the ones this run made go
        # when it ends, if empty (pushed outermost first, so the innermost are removed first).
        for d in reversed(FIXED_DIRS):
            if not os.path.exists(d):
                cleanup.push(_rmdir_if_empty, d)
                if d == "/run/containerd/pea":  # the shims' record of the sealed copy of themselves they share
                    cleanup.push(_unlink_if_present, os.path.join(d, ".containerd-shim-pea-v2-copy"))
        # The daemons' pea caches its seccomp programs here, not in the host's /run/pea-seccomp-cache.
        os.environ["PEA_SECCOMP_CACHE_DIR"] = os.path.join(self.dir, "seccomp-cache")
        pause = os.path.join(build, "sandbox", "pea-pause")
        shim = os.path.join(build, "shim", "v2", "containerd-shim-pea-v2")
        for path in (pause, shim):
            if not os.access(path, os.X_OK):
                raise RuntimeError(f"{path} is not built")
        self.mark = "b" + uuid.uuid4().hex[:7]
        self.cri = harness.CriContainerd(os.path.join(self.dir, "cri"), pea, self.mark, pause, shim_binary=shim)
        with open(self.cri.config, "a") as f:
            f.write(f'\n[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{RUNC_SHIM_RUNC}]\n'
                    f'  runtime_type = "io.containerd.runc.v2"\n'
                    f'  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{RUNC_SHIM_RUNC}.options]\n'
                    f'    BinaryName = "{shutil.which("runc") or "/usr/sbin/runc"}"\n'
                    f'    Root = "{self.dir}/runc-root"\n')
        self.cleanup.push(self._stop)
        self.cri.start(os.path.join(self.dir, "cri-api"))
        self.cri.import_images(self.e2e.make_rootfs_tar(os.path.join(self.dir, "busybox-rootfs.tar")))
        self.c = self.cri.cri
        self.pb = self.c.pb
        self.count = 0

    def _stop(self):
        for problem in self.cri.stop():
            print(f"bench: shimv2 cleanup: {problem}", flush=True)

    def _detach_mounts(self):
        self.e2e.detach_mounts([m for m in self.e2e.mount_points() if m.startswith(self.dir + "/")])

    def pod_config(self):
        self.count += 1
        name = f"{self.mark}-{self.count}"
        pb = self.pb
        return pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=name, uid=f"uid-{name}", namespace="bench"),
            log_directory=os.path.join(self.cri.logs, name),
            linux=pb.LinuxPodSandboxConfig(
                cgroup_parent=self.cri.cgroup_parent,
                security_context=pb.LinuxSandboxSecurityContext(
                    namespace_options=pb.NamespaceOption(network=pb.NODE, pid=pb.POD, ipc=pb.POD))))

    def container_config(self):
        pb = self.pb
        return pb.ContainerConfig(metadata=pb.ContainerMetadata(name="app"),
                                  image=pb.ImageSpec(image=self.e2e.IMAGE), command=["sleep", "1000"],
                                  log_path="app.log",
                                  linux=pb.LinuxContainerConfig(resources=pb.LinuxContainerResources()))

    def run_pod(self, handler):
        """RunPodSandbox + CreateContainer + StartContainer; returns (seconds, pod id)."""
        config, cconfig = self.pod_config(), self.container_config()
        t0 = time.perf_counter()
        pod = self.c.RunPodSandbox(config=config, runtime_handler=handler).pod_sandbox_id
        cid = self.c.CreateContainer(pod_sandbox_id=pod, sandbox_config=config, config=cconfig).container_id
        self.c.StartContainer(container_id=cid)
        t = time.perf_counter() - t0
        return t, pod

    def remove_pod(self, pod):
        self.c.StopPodSandbox(pod_sandbox_id=pod)
        self.c.RemovePodSandbox(pod_sandbox_id=pod)

    def shims(self, handler):
        return [pid for pid, cmd in self.e2e.processes_with(self.cri.address) if SHIM_BINARIES[handler] in cmd]

    def wait_no_shims(self):
        if not wait_until(lambda: not self.e2e.processes_with(self.cri.address), 20, 0.05):
            raise RuntimeError(f"shims left after removing the pods: {self.e2e.processes_with(self.cri.address)}")

    def memory(self, handler, n):
        """N pods on HANDLER: the shims' RSS/PSS per pod, and the MemAvailable drop per pod taken both ways (before
        the pods -> with them, and with them -> after their removal), averaged, so a steady drift of the rest of the
        machine cancels out."""
        before = _settled_mem_available()
        pods = []
        try:
            for _ in range(n):
                pods.append(self.run_pod(handler)[1])
            time.sleep(1)
            shims = self.shims(handler)
            rss = sum(proc_status_kib(p) or 0 for p in shims)
            pss = sum(proc_pss_kib(p) or 0 for p in shims)
            during = _settled_mem_available()
        finally:
            for pod in pods:
                self.remove_pod(pod)
            self.wait_no_shims()
        after = _settled_mem_available()
        return {"shims": len(shims), "rss": rss / n, "pss": pss / n, "drop": (before + after - 2 * during) / 2 / n}

    def memory_rounds(self, handlers, n, rounds):
        """memory() of each handler ROUNDS times, interleaved; the medians of each reading."""
        samples = {h: [] for h in handlers}
        for _ in range(rounds):
            for h in handlers:
                samples[h].append(self.memory(h, n))
        med = lambda xs: sorted(xs)[len(xs) // 2]
        return {h: {k: med([x[k] for x in s]) for k in s[0]} for h, s in samples.items()}

    def latency(self, handlers, runs):
        samples = {h: [] for h in handlers}
        for i in range(runs + 1):  # the first round warms up
            for h in handlers:
                t, pod = self.run_pod(h)
                self.remove_pod(pod)
                if i:
                    samples[h].append(t)
        self.wait_no_shims()
        return {h: sorted(s)[len(s) // 2] * 1000 for h, s in samples.items()}


def _unlink_if_present(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _rmdir_if_empty(path):
    try:
        os.rmdir(path)
    except OSError:
        pass


def bench_shimv2(pea, build, pods, runs):
    """{"memory": {handler: {...}}, "latency": {handler: ms}, "pods": N, "runs": R}; memory in 3 interleaved
    rounds, medians."""
    cleanup = Cleanup()
    try:
        b = ShimBench(pea, build, cleanup)
        mem = b.memory_rounds((PEA_SHIM, RUNC_SHIM_PEA), pods, 3)
        lat = b.latency((PEA_SHIM, RUNC_SHIM_PEA, RUNC_SHIM_RUNC), runs)
        return {"memory": mem, "latency": lat, "pods": pods, "runs": runs}
    finally:
        cleanup.run()


def containerd_version():
    import subprocess
    p = subprocess.run(["containerd", "--version"], capture_output=True, text=True)
    return p.stdout.split()[2] if p.returncode == 0 and len(p.stdout.split()) > 2 else "?"
