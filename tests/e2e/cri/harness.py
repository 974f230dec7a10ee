"""A private containerd 1.6 with its CRI plugin configured for pea (README snippets + this host's settings), the
pea-pause sandbox image and the busybox image imported into the CRI's ctr namespace (k8s.io), and a CRI client."""
import io
import json
import os
import signal
import subprocess
import tarfile

import e2e
from cri import client as cri_client

# pea's own containerd shim (shim/v2), the CRI runtime handler "pea-shim".
SHIM_RUNTIME_HANDLER = "pea-shim"
SHIM_BINARY = "containerd-shim-pea-v2"

PAUSE_IMAGE = "localhost/pea-e2e/pause:latest"
CRI_NAMESPACE = "k8s.io"  # containerd's CRI plugin keeps its containers and images there


def has_cap_sys_resource():
    with open("/proc/self/status") as f:
        eff = next(line for line in f if line.startswith("CapEff:")).split()[1]
    return bool(int(eff, 16) & (1 << 24))  # CAP_SYS_RESOURCE


def make_pause_tar(path, pause_binary):
    """A root filesystem holding only /pause (pea-pause, static), like the upstream pause image."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        with open(pause_binary, "rb") as f:
            data = f.read()
        info = tarfile.TarInfo("pause")
        info.mode, info.mtime, info.size = 0o755, 0, len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


def owned_states(root, directory):
    """Names of the container states in pea's state ROOT whose bundle lies under DIRECTORY (a containerd's private
    directory): the CRI's namespace is k8s.io in every containerd, so state roots named after it are shared between
    test runs on one machine, and each run checks only its own containers. A state being written (not yet
    readable) belongs to whoever writes it; a leaked one of ours is complete."""
    owned = []
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return []
    for name in names:
        try:
            with open(os.path.join(root, name, "state.json")) as f:
                bundle = json.load(f).get("bundle", "")
        except (OSError, ValueError):
            continue
        if bundle.startswith(directory.rstrip("/") + "/"):
            owned.append(name)
    return sorted(owned)


class CriContainerd(e2e.Containerd):
    """containerd whose CRI plugin runs pods on pea: default_runtime_name "pea" (README), sandbox_image the local
    pea-pause image, no CNI configuration (host-network pods only), CRI state under the private root."""

    def __init__(self, directory, pea, mark, pause_binary, shim_binary=None):
        super().__init__(directory, pea, mark)
        self.ns = CRI_NAMESPACE
        self.pause_binary = pause_binary
        self.cni_conf = os.path.join(directory, "cni-conf")  # empty: no pod network, NetworkReady stays false
        self.cni_bin = os.path.join(directory, "cni-bin")
        self.logs = os.path.join(directory, "pod-logs")
        for d in (self.cni_conf, self.cni_bin, self.logs):
            os.makedirs(d)
        self.cgroup_parent = f"/e2e-{mark}-cri"
        with open(self.config, "a") as f:
            f.write("\n" + e2e.readme_snippet("containerd-cri-default.toml", self.pea))
            # This host only: disable_cgroup when the v2 cpu controller is missing: the CRI gives every sandbox cpu
            # shares 2, which pea refuses without the controller (containers get pea's default cgroup /pea/ID).
            # No registry (the sandbox image is imported), no CNI configuration (an empty conf dir,
            # never the host's /etc/cni/net.d), and restrict_oom_score_adj without CAP_SYS_RESOURCE: the CRI gives
            # the sandbox oom_score_adj -998, which needs it (pea fails, as runc does); restricted, containerd asks for
            # no score below its own.
            cri = ['[plugins."io.containerd.grpc.v1.cri"]', f'  sandbox_image = "{PAUSE_IMAGE}"']
            if not e2e.cgroup2_has("cpu"):
                cri.append("  disable_cgroup = true")
            if not has_cap_sys_resource():
                cri.append("  restrict_oom_score_adj = true")
            cri += ['  stream_server_address = "127.0.0.1"', '  stream_server_port = "0"',
                    '[plugins."io.containerd.grpc.v1.cri".cni]',
                    f'  conf_dir = "{self.cni_conf}"', f'  bin_dir = "{self.cni_bin}"']
            f.write("\n" + "\n".join(cri) + "\n")
            # containerd-shim-pea-v2 and the pea it runs, found on containerd's PATH (containerd resolves
            # io.containerd.pea.v2 to the binary of that name), configured with the README's snippet.
            if shim_binary:
                f.write("\n" + e2e.readme_snippet("containerd-pea-shim.toml", self.pea))
        if shim_binary:
            self.bin = os.path.join(directory, "bin")
            os.makedirs(self.bin)
            os.symlink(os.path.abspath(shim_binary), os.path.join(self.bin, SHIM_BINARY))
            os.symlink(pea, os.path.join(self.bin, "pea"))
            self.env = dict(os.environ, PATH=self.bin + ":" + os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"))
        self.shim_pea_root = os.path.join("/run/containerd/pea", self.ns)
        self.cri = None

    def pea_shims(self):
        """[(pid, cmdline)] of this containerd's containerd-shim-pea-v2 daemons."""
        return [(pid, cmd) for pid, cmd in e2e.processes_with(self.address) if SHIM_BINARY in cmd]

    def shim_pea_state(self):
        """The containers in the pea shim's state root that are this containerd's: the root is per namespace and the
        CRI's namespace is always k8s.io, so another test run's containerd may keep containers in it too."""
        return owned_states(self.shim_pea_root, self.dir)

    def runc_pea_state(self):
        """The same for the runc shim's pea root (/run/containerd/runc/k8s.io)."""
        return owned_states(self.runc_root, self.dir)

    def start(self, gen_dir):
        self.shim_pea_root_existed = os.path.isdir(self.shim_pea_root)
        super().start()
        # The base class would list the whole runc root (k8s.io, shared with other runs): stop() checks ours only.
        self.runc_root_made, self.runc_root_existed = not self.runc_root_existed, True
        self.api = cri_client.compile_api(gen_dir)
        self.cri = cri_client.Client(self.address, *self.api)

    def kill_daemon(self):
        """kill -9 containerd (not its shims) and wait for it to be gone."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def restart(self):
        """Start containerd again after kill_daemon, its log appended to, and wait for its CRI to answer (the CRI
        plugin recovers its pods and containers from the shims before it serves)."""
        self.cri.close()
        self.log.close()
        self.log = open(self.log.name, "a")
        self.proc = subprocess.Popen(["containerd", "--config", self.config], stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
                                     env=getattr(self, "env", None))
        self.cri = cri_client.Client(self.address, *self.api)

        def answers():
            if self.proc.poll() is not None:
                raise AssertionError(f"containerd exited {self.proc.returncode}: {self.log_text()[-3000:]}")
            try:
                self.cri.Version(version="v1", deadline=5)
                self.cri.ListPodSandbox(deadline=5)
                return True
            except self.cri.grpc.RpcError:
                return False
        e2e.wait_until(answers, 30, "the restarted containerd's CRI to answer")

    def import_images(self, rootfs_tar):
        self.import_image(rootfs_tar)
        pause_tar = make_pause_tar(os.path.join(self.dir, "pause-rootfs.tar"), self.pause_binary)
        archive = e2e.make_oci_archive(os.path.join(self.dir, "pause-oci.tar"), pause_tar, PAUSE_IMAGE,
                                       image_config={"Entrypoint": ["/pause"], "WorkingDir": "/"})
        self.ok("images", "import", archive, timeout=120)
        listed = {i.spec.image for i in self.cri.ListImages().images}
        names = {t for i in self.cri.ListImages().images for t in i.repo_tags}
        assert {PAUSE_IMAGE, e2e.IMAGE} <= names, f"the CRI sees the images {names} {listed}"

    def remove_all(self):
        """Stop and remove every pod sandbox and container through the CRI, then check containerd's view."""
        problems = []
        if self.cri is not None:
            try:
                for c in self.cri.ListContainers(deadline=30).containers:
                    problems.append(f"CRI container left: {c.metadata.name} ({c.id})")
                    self.cri.StopContainer(container_id=c.id, timeout=0, deadline=30)
                    self.cri.RemoveContainer(container_id=c.id, deadline=30)
                for s in self.cri.ListPodSandbox(deadline=30).items:
                    problems.append(f"CRI pod sandbox left: {s.metadata.name} ({s.id})")
                    self.cri.StopPodSandbox(pod_sandbox_id=s.id, deadline=30)
                    self.cri.RemovePodSandbox(pod_sandbox_id=s.id, deadline=30)
            except self.cri.grpc.RpcError as e:
                problems.append(f"CRI cleanup failed: {e.code()}: {e.details()}")
        problems += super().remove_all()
        for root in (self.shim_pea_root, self.runc_root):
            for c in owned_states(root, self.dir):
                # Reported, then killed and removed: a container no shim knows any more is nobody else's to clean.
                problems.append(f"pea state left: {root}/{c}")
                r = e2e.run([self.pea, "--root", root, "delete", "--force", c], timeout=30)
                if r.code != 0:
                    problems.append(f"pea delete --force {c}: {r}")
        for root in e2e.cgroup_hierarchies():
            problems += e2e.cgroups_left_in(os.path.join(root, self.cgroup_parent.lstrip("/")))
        return problems

    def stop(self):
        """Clean up through the CRI, remove the images, stop containerd by PID (always, whatever failed before)."""
        problems = []
        try:
            if self.proc is not None and self.proc.poll() is None and self.cri is not None:
                problems += self.remove_all()
                try:
                    self.cri.RemoveImage(image=self.cri.pb.ImageSpec(image=PAUSE_IMAGE), deadline=30)
                except self.cri.grpc.RpcError as e:
                    problems.append(f"CRI RemoveImage {PAUSE_IMAGE}: {e.code()}: {e.details()}")
        finally:
            if self.cri is not None:
                self.cri.close()
                self.cri = None
            problems += super().stop()
        # pea's state roots for k8s.io (the pea shim's and the runc shim's): none of our containers may be left;
        # a root this run made goes when empty (another run's containers keep it).
        roots = ((self.shim_pea_root, self.shim_pea_state(), not getattr(self, "shim_pea_root_existed", True)),
                 (self.runc_root, self.runc_pea_state(), getattr(self, "runc_root_made", False)))
        for root, left, made in roots:
            if left:
                problems.append(f"pea state left behind in {root}: {left}")
            elif made:
                try:
                    os.rmdir(root)
                except OSError:
                    pass
        for root in e2e.cgroup_hierarchies():
            p = os.path.join(root, self.cgroup_parent.lstrip("/"))
            if os.path.isdir(p):
                problems += [f"cgroup left behind: {s}" for s in e2e.rmdir_tree(p)]
        return problems
