"""Images made offline for the image and pod tests: tar layers written with Python's tarfile, OCI image layouts
written by hand as the OCI image spec describes them, the busybox rootfs of examples/make-rootfs as a base layer, and
a `pea image` store driven through the CLI."""
import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile

import pytest

import helpers

MAKE_ROOTFS = os.path.join(helpers.REPO, "examples", "make-rootfs")
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tar_bytes(entries):
    """A tar of (TarInfo, data or None) pairs, in order."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def entry(name, kind=tarfile.REGTYPE, data=b"", mode=0o644, linkname="", uid=0, gid=0, pax=None):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.uid, info.gid = uid, gid
    info.linkname = linkname
    info.mtime = 1700000000
    if pax:
        info.pax_headers = pax
    if kind == tarfile.REGTYPE:
        info.size = len(data)
        return info, data
    return info, None


def write_layout(path, images):
    """An OCI image layout at PATH. images: [(ref name or None, [layer tar bytes], compress, config extra)]."""
    blobs = os.path.join(path, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)

    def blob(data):
        digest = sha256(data)
        with open(os.path.join(blobs, digest[7:]), "wb") as f:
            f.write(data)
        return {"digest": digest, "size": len(data)}

    manifests = []
    for ref, layers, compress, extra in images:
        descs, diff_ids = [], []
        for layer in layers:
            diff_ids.append(sha256(layer))
            data = gzip.compress(layer, mtime=0) if compress else layer
            descs.append(dict(blob(data), mediaType=OCI_LAYER + ("+gzip" if compress else "")))
        config = {"architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
                  "config": dict({"Cmd": ["/bin/sh"]}, **extra),
                  "rootfs": {"type": "layers", "diff_ids": diff_ids}}
        config_desc = dict(blob(json.dumps(config).encode()), mediaType="application/vnd.oci.image.config.v1+json")
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": config_desc, "layers": descs}
        desc = dict(blob(json.dumps(manifest).encode()), mediaType="application/vnd.oci.image.manifest.v1+json")
        if ref:
            desc["annotations"] = {"org.opencontainers.image.ref.name": ref}
        manifests.append(desc)
    with open(os.path.join(path, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": manifests}, f)
    with open(os.path.join(path, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    return path


def tar_tree(root):
    """A directory tree as one uncompressed layer (bytes): entries sorted, mtimes fixed."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(dirnames) + sorted(filenames):
                full = os.path.join(dirpath, name)
                info = tar.gettarinfo(full, os.path.relpath(full, root))
                info.mtime = 1700000000
                if info.isreg():
                    with open(full, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
    return buf.getvalue()


@pytest.fixture(scope="module")
def base_layer(tmp_path_factory):
    """The busybox rootfs of examples/make-rootfs as one uncompressed layer (bytes), made once."""
    root = tmp_path_factory.mktemp("base") / "rootfs"
    subprocess.run([MAKE_ROOTFS, str(root)], check=True, capture_output=True)
    return tar_tree(root)


@pytest.fixture
def host_target(tmp_path):
    """A directory on the host that a hostile image aims at; it must stay empty."""
    target = tmp_path / "host-target"
    target.mkdir()
    yield target
    assert os.listdir(target) == [], "a layer wrote on the host"


class Store:
    def __init__(self, runtime, data_root):
        self.runtime = runtime
        self.data_root = str(data_root)
        self.path = os.path.join(self.data_root, "images")

    def run(self, *args, env=None, check=True):
        result = subprocess.run([self.runtime, "image", args[0], "--data-root", self.data_root, *args[1:]],
                                capture_output=True, text=True, timeout=120, env=dict(os.environ, **(env or {})))
        if check:
            assert result.returncode == 0, result.stderr
        return result

    def images(self):
        return json.loads(self.run("ls", "-o", "json").stdout)

    def layers(self):
        path = os.path.join(self.path, "layers", "sha256")
        return sorted(os.listdir(path)) if os.path.isdir(path) else []

    def blobs(self):
        path = os.path.join(self.path, "blobs", "sha256")
        return sorted(os.listdir(path)) if os.path.isdir(path) else []

    def work_dirs(self):
        path = os.path.join(self.path, "tmp")
        return os.listdir(path) if os.path.isdir(path) else []

    def layer_dir(self, diff_id):
        return os.path.join(self.path, "layers", "sha256", diff_id[7:], "diff")

    def inspect(self, what):
        return json.loads(self.run("inspect", what).stdout)[0]
