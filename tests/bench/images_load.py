"""Images: load and unpack of one ~100 MB image of six layers (busybox and five of incompressible random files), by
pea (`pea image load -i` of an oci-archive), by umoci (`umoci unpack` of the OCI layout) and by containerd (`ctr
images import` with its unpack into overlayfs snapshots, then `ctr snapshots prepare` of the container's layer), and
pea's `image bundle` after its load against `umoci unpack` (both end with a runtime bundle); then the disk used by
ten images on that base (each adds a small layer of its own): pea's store, umoci's layout and ten bundles,
containerd's content store and snapshots. containerd is a private one (its own root, state and socket under the work
dir), never the system's. Everything is made offline and removed at the end."""
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile

from benchlib import REPO, Cleanup, median_ms, timed_checked
from memory import start_private_containerd

BASE_LAYERS = 5           # random layers above busybox
BIG_FILES, BIG_SIZE = 12, 1 << 20
SMALL_FILES, SMALL_SIZE = 500, 16 << 10
IMAGES = 10
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _du_kib(*paths):
    """Disk blocks used (KiB) by the paths together: a file linked twice counts once."""
    out = subprocess.run(["du", "-sck", *paths], capture_output=True, text=True, check=True).stdout
    return int(out.strip().splitlines()[-1].split()[0])


class Layout:
    """An OCI image layout written by hand, gzip layers (level 1: random data does not compress, and every tool
    pays the same inflate)."""

    def __init__(self, path):
        self.path = path
        self.blobs = os.path.join(path, "blobs", "sha256")
        os.makedirs(self.blobs)
        self.manifests = []

    def blob(self, data):
        digest = hashlib.sha256(data).hexdigest()
        with open(os.path.join(self.blobs, digest), "wb") as f:
            f.write(data)
        return {"digest": "sha256:" + digest, "size": len(data)}

    def layer(self, tar_bytes):
        desc = self.blob(gzip.compress(tar_bytes, compresslevel=1, mtime=0))
        desc["mediaType"] = "application/vnd.oci.image.layer.v1.tar+gzip"
        return desc, "sha256:" + hashlib.sha256(tar_bytes).hexdigest()

    def image(self, ref, layers, name):
        """layers: [(descriptor, diff ID)]; ref: the layout's ref.name; name: containerd's image name."""
        config = self.blob(json.dumps({
            "architecture": "amd64", "os": "linux", "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": [d for _, d in layers]}}).encode())
        manifest = self.blob(json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": dict(config, mediaType="application/vnd.oci.image.config.v1+json"),
            "layers": [desc for desc, _ in layers]}).encode())
        self.manifests.append(dict(manifest, mediaType=OCI_MANIFEST,
                                   platform={"architecture": "amd64", "os": "linux"},
                                   annotations={"org.opencontainers.image.ref.name": ref,
                                                "io.containerd.image.name": name}))

    def finish(self, manifests=None):
        with open(os.path.join(self.path, "index.json"), "w") as f:
            json.dump({"schemaVersion": 2, "manifests": manifests or self.manifests}, f)
        with open(os.path.join(self.path, "oci-layout"), "w") as f:
            json.dump({"imageLayoutVersion": "1.0.0"}, f)

    def archive(self, path, manifests):
        """An oci-archive of the layout holding only these manifests (and the blobs they use)."""
        used = set()
        for m in manifests:
            used.add(m["digest"][7:])
            with open(os.path.join(self.blobs, m["digest"][7:])) as f:
                doc = json.load(f)
            used.update(d["digest"][7:] for d in doc["layers"] + [doc["config"]])
        with tarfile.open(path, "w") as t:
            index = json.dumps({"schemaVersion": 2, "manifests": manifests}).encode()
            info = tarfile.TarInfo("index.json")
            info.size = len(index)
            t.addfile(info, io.BytesIO(index))
            t.add(os.path.join(self.path, "oci-layout"), arcname="oci-layout")
            for digest in sorted(used):
                t.add(os.path.join(self.blobs, digest), arcname="blobs/sha256/" + digest)


def _tar_of_dir(root):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name in sorted(os.listdir(root)):
            t.add(os.path.join(root, name), arcname=name)
    return buf.getvalue()


def _random_layer(index, big_files, small_files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for kind, count, size in (("big", big_files, BIG_SIZE), ("small", small_files, SMALL_SIZE)):
            for i in range(count):
                info = tarfile.TarInfo(f"data{index}/{kind}/{i:04d}")
                info.size, info.mode, info.mtime = size, 0o644, 1700000000
                t.addfile(info, io.BytesIO(os.urandom(size)))
    return buf.getvalue()


def build_images(work):
    """The layout with the ten images (the first is the one timed), and oci-archives of the first and of all ten."""
    layout = Layout(os.path.join(work, "layout"))
    rootfs = os.path.join(work, "busybox-root")
    subprocess.run([os.path.join(REPO, "examples", "make-rootfs"), rootfs], check=True)
    base = [layout.layer(_tar_of_dir(rootfs))]
    shutil.rmtree(rootfs)
    base += [layout.layer(_random_layer(i, BIG_FILES, SMALL_FILES)) for i in range(BASE_LAYERS)]
    tops = [layout.layer(_random_layer(100 + i, 0, 16)) for i in range(IMAGES)]  # 256 KiB of its own each
    for i, top in enumerate(tops):
        layout.image(f"v{i}", base + [top], f"docker.io/library/pea-bench-img:v{i}")
    layout.finish()
    one, ten = os.path.join(work, "one.tar"), os.path.join(work, "ten.tar")
    layout.archive(one, layout.manifests[:1])
    layout.archive(ten, layout.manifests)
    with open(os.path.join(layout.blobs, layout.manifests[0]["digest"][7:])) as f:
        size = sum(d["size"] for d in json.load(f)["layers"])
    diff_ids = [d for _, d in base + tops[:1]]
    return {"layout": layout.path, "one": one, "ten": ten, "bytes": size, "layers": len(diff_ids),
            "chain_id": _chain_id(diff_ids)}


def _chain_id(diff_ids):
    """The snapshot name containerd gives an image's top layer (the image spec's ChainID)."""
    chain = diff_ids[0]
    for d in diff_ids[1:]:
        chain = "sha256:" + hashlib.sha256(f"{chain} {d}".encode()).hexdigest()
    return chain


def _pea_image(pea, data_root, *args):
    return [pea, "image", args[0], "--data-root", data_root, *args[1:]]


def bench_load(pea, work, imgs, runs):
    """Medians (ms) of load+unpack by pea, umoci and containerd, and of pea's bundle after its load."""
    res = {"pea": [], "bundle": [], "umoci": [], "containerd": []}
    cleanup = Cleanup()
    try:
        ctr_dir = tempfile.mkdtemp(prefix="ctrd-", dir=work)
        ctr, _ = start_private_containerd(ctr_dir, cleanup, "pea-bench-images")
        for i in range(runs + 1):  # the first round warms the page cache and is not counted
            keep = i > 0
            data_root = tempfile.mkdtemp(prefix="pea-data-", dir=work)
            t = timed_checked(_pea_image(pea, data_root, "load", "-q", "--name", "bench:0", "-i", imgs["one"]))
            t_bundle = timed_checked(_pea_image(pea, data_root, "bundle", "bench:0", os.path.join(data_root, "b")))
            shutil.rmtree(data_root)
            bundle = os.path.join(work, "umoci-bundle")
            t_umoci = timed_checked(["umoci", "unpack", "--image", imgs["layout"] + ":v0", bundle])
            shutil.rmtree(bundle)
            if keep:
                res["pea"].append(t)
                res["bundle"].append(t + t_bundle)
                res["umoci"].append(t_umoci)
            if ctr:
                t = timed_checked(ctr + ["images", "import", "--snapshotter", "overlayfs", imgs["one"]])
                t += timed_checked(ctr + ["snapshots", "--snapshotter", "overlayfs", "prepare", "bench-active",
                                          imgs["chain_id"]])
                if keep:
                    res["containerd"].append(t)
                timed_checked(ctr + ["snapshots", "--snapshotter", "overlayfs", "rm", "bench-active"])
                timed_checked(ctr + ["images", "rm", "--sync", "docker.io/library/pea-bench-img:v0"])
                left = subprocess.run(ctr + ["content", "ls", "-q"], capture_output=True, text=True).stdout.split()
                if left:
                    raise RuntimeError(f"containerd kept {len(left)} blobs after images rm --sync")
    finally:
        cleanup.run()
    return {k: median_ms(v) if v else None for k, v in res.items()}


def bench_disk(pea, work, imgs):
    """KiB on disk once the ten images are stored: pea's store; umoci's layout and ten bundles (unpack is its only
    way to run one); containerd's content, snapshots and metadata."""
    out = {}
    cleanup = Cleanup()
    try:
        data_root = tempfile.mkdtemp(prefix="pea-data-", dir=work)
        cleanup.push(shutil.rmtree, data_root, ignore_errors=True)
        for i in range(IMAGES):
            timed_checked(_pea_image(pea, data_root, "import", "-q", "--ref", f"v{i}", imgs["layout"], f"bench:{i}"))
        out["pea"] = _du_kib(os.path.join(data_root, "images"))
        bundles = tempfile.mkdtemp(prefix="umoci-", dir=work)
        cleanup.push(shutil.rmtree, bundles, ignore_errors=True)
        for i in range(IMAGES):
            timed_checked(["umoci", "unpack", "--image", f"{imgs['layout']}:v{i}", os.path.join(bundles, f"b{i}")])
        out["umoci"] = _du_kib(imgs["layout"], bundles)
        out["umoci_layout"] = _du_kib(imgs["layout"])
        ctr_dir = tempfile.mkdtemp(prefix="ctrd-", dir=work)
        ctr, _ = start_private_containerd(ctr_dir, cleanup, "pea-bench-images")
        if ctr:
            timed_checked(ctr + ["images", "import", "--snapshotter", "overlayfs", imgs["ten"]])
            root = os.path.join(ctr_dir, "root")
            out["containerd"] = _du_kib(*(os.path.join(root, p) for p in (
                "io.containerd.content.v1.content", "io.containerd.snapshotter.v1.overlayfs",
                "io.containerd.metadata.v1.bolt")))
    finally:
        cleanup.run()
    return out


def bench_images(pea, work, runs):
    imgs = build_images(work)
    return {"load": bench_load(pea, work, imgs, runs), "disk": bench_disk(pea, work, imgs),
            "bytes": imgs["bytes"], "layers": imgs["layers"]}
