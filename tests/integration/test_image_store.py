"""The image store: importing OCI layouts and loading archives, layers shared between images, removal that keeps what
is used, and unpacking that no hostile layer escapes.

Every image is made offline: layers and layouts by images.py (tarfile, the base from examples/make-rootfs, layouts
written by hand as the OCI image spec describes them), archives by skopeo.
"""
import gzip
import json
import os
import subprocess
import tarfile

import pytest

from images import Store, base_layer, entry, host_target, sha256, tar_bytes, write_layout  # noqa: F401 (fixtures)


@pytest.fixture
def store(runtime, tmp_path):
    return Store(runtime, tmp_path / "data")


def tree_inodes(path):
    return {os.lstat(os.path.join(d, n)).st_ino for d, dirs, files in os.walk(path) for n in dirs + files}


# ---- importing and loading ----------------------------------------------------------------------------------------

def test_import_layout_unpacks_the_layers_and_records_the_image(store, tmp_path, base_layer):
    extra = tar_bytes([entry("etc/motd", data=b"hello\n"), entry("bin/tool", data=b"#!/bin/sh\n", mode=0o4755,
                                                                   uid=1000, gid=33)])
    layout = write_layout(str(tmp_path / "layout"), [("v1", [base_layer, extra], True, {"Env": ["A=1"]})])
    result = store.run("import", layout, "example.com/app:1")
    assert result.stdout == "Imported image: example.com/app:1\n"
    image = store.inspect("example.com/app:1")
    assert image["Config"]["Env"] == ["A=1"]
    assert image["RootFS"]["diff_ids"] == [sha256(base_layer), sha256(extra)]
    top = image["LayerDirs"][1]
    with open(os.path.join(top, "etc", "motd")) as f:
        assert f.read() == "hello\n"
    st = os.lstat(os.path.join(top, "bin", "tool"))
    assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o4755, 1000, 33)
    assert os.path.isfile(os.path.join(image["LayerDirs"][0], "bin", "busybox"))
    # Resolvable by its ID prefix and its manifest digest too.
    assert store.inspect(image["Id"][:12])["Digest"] == image["Digest"]
    assert store.inspect(image["Digest"])["Id"] == image["Id"]
    assert store.work_dirs() == []


def test_names_are_normalised_as_docker_does(store, tmp_path):
    layout = write_layout(str(tmp_path / "layout"), [(None, [tar_bytes([entry("f", data=b"x")])], False, {})])
    store.run("import", layout, "busybox")
    store.run("tag", "busybox", "localhost:5000/x", "index.docker.io/user/app:2")
    names = store.images()[0]["Names"]
    assert sorted(names) == ["docker.io/library/busybox:latest", "docker.io/user/app:2", "localhost:5000/x:latest"]
    assert store.inspect("user/app:2")["Names"] == names
    bad = store.run("tag", "busybox", "Bad/Name", check=False)
    assert bad.returncode == 1 and "repository name must be lowercase" in bad.stderr


def test_whiteouts_become_overlay_whiteouts(store, tmp_path, base_layer):
    top = tar_bytes([entry("etc/.wh.passwd"), entry("var", tarfile.DIRTYPE, mode=0o755),
                     entry("var/.wh..wh..opq"), entry("var/new", data=b"n")])
    layout = write_layout(str(tmp_path / "layout"), [("v1", [base_layer, top], False, {})])
    store.run("import", layout, "wh:1")
    image = store.inspect("wh:1")
    upper = image["LayerDirs"][1]
    st = os.lstat(os.path.join(upper, "etc", "passwd"))
    assert (st.st_mode & 0o170000, st.st_rdev) == (0o020000, 0)
    assert os.getxattr(os.path.join(upper, "var"), "trusted.overlay.opaque") == b"y"
    # Mounted as overlay lower dirs (top first), the whiteout hides the base's file.
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    lower = ":".join(reversed(image["LayerDirs"]))
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", f"ro,lowerdir={lower}", str(mnt)], check=True)
    try:
        assert not os.path.exists(mnt / "etc" / "passwd")
        assert os.path.exists(mnt / "etc" / "group")
        assert os.listdir(mnt / "var") == ["new"]
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_ten_images_on_one_base_keep_the_base_once(store, tmp_path, base_layer):
    images = [(f"v{i}", [base_layer, tar_bytes([entry(f"app{i}", data=b"%d" % i)])], True, {}) for i in range(10)]
    layout = write_layout(str(tmp_path / "layout"), images)
    for i in range(10):
        store.run("import", "--ref", f"v{i}", layout, f"app{i}:1")
    assert len(store.images()) == 10
    assert len(store.layers()) == 11  # one base, ten small layers
    base_dirs = {store.inspect(f"app{i}:1")["LayerDirs"][0] for i in range(10)}
    assert len(base_dirs) == 1
    # On disk: the base's files once, not ten times.
    base_inodes = len(tree_inodes(base_dirs.pop()))
    store_inodes = len(tree_inodes(os.path.join(store.path, "layers")))
    assert store_inodes < base_inodes + 100, (store_inodes, base_inodes)


def test_load_docker_and_oci_archives(store, tmp_path, base_layer):
    layout = write_layout(str(tmp_path / "layout"), [("v1", [base_layer], True, {"Entrypoint": ["/bin/sh"]})])
    docker_tar, oci_tar = tmp_path / "d.tar", tmp_path / "o.tar"
    subprocess.run(["skopeo", "copy", "-q", f"oci:{layout}:v1", f"docker-archive:{docker_tar}:busybox:d"],
                   check=True, capture_output=True)
    subprocess.run(["skopeo", "copy", "-q", f"oci:{layout}:v1", f"oci-archive:{oci_tar}:localhost/o:1"],
                   check=True, capture_output=True)
    assert store.run("load", "-i", str(docker_tar)).stdout == "Loaded image: docker.io/library/busybox:d\n"
    assert store.run("load", "-i", str(oci_tar)).stdout == "Loaded image: localhost/o:1\n"
    # A compressed archive on stdin.
    with open(docker_tar, "rb") as f:
        zipped = gzip.compress(f.read(), compresslevel=1)
    piped = subprocess.run([store.runtime, "image", "load", "--data-root", store.data_root, "--name", "piped:1"],
                           input=zipped, capture_output=True, timeout=60)
    assert piped.returncode == 0, piped.stderr
    assert store.inspect("busybox:d")["Config"]["Entrypoint"] == ["/bin/sh"]
    assert store.inspect("localhost/o:1")["Id"] == store.inspect("busybox:d")["Id"]
    assert len(store.layers()) == 1
    assert store.work_dirs() == []


def test_index_resolves_to_the_host_platform(store, tmp_path):
    layout = write_layout(str(tmp_path / "layout"), [
        (None, [tar_bytes([entry("arch", data=b"arm64")])], False, {}),
        (None, [tar_bytes([entry("arch", data=b"amd64")])], False, {}),
    ])
    # Turn the two manifests into one index (as a registry's manifest list), arm64 first.
    with open(os.path.join(layout, "index.json")) as f:
        manifests = json.load(f)["manifests"]
    for m, arch in zip(manifests, ["arm64", "amd64"]):
        m["platform"] = {"os": "linux", "architecture": arch}
    index = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                        "manifests": manifests}).encode()
    with open(os.path.join(layout, "blobs", "sha256", sha256(index)[7:]), "wb") as f:
        f.write(index)
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json",
                                                      "digest": sha256(index), "size": len(index)}]}, f)
    store.run("import", layout, "multi:1")
    image = store.inspect("multi:1")
    with open(os.path.join(image["LayerDirs"][0], "arch")) as f:
        assert f.read() == "amd64"
    assert image["IndexDigests"] == [sha256(index)]
    assert store.inspect("multi@" + sha256(index))["Id"] == image["Id"]


def test_concurrent_loads_of_one_archive(store, tmp_path, base_layer):
    layout = write_layout(str(tmp_path / "layout"), [("v1", [base_layer], True, {})])
    archive = tmp_path / "a.tar"
    subprocess.run(["skopeo", "copy", "-q", f"oci:{layout}:v1", f"oci-archive:{archive}:same:1"], check=True)
    procs = [subprocess.Popen([store.runtime, "image", "load", "-q", "--data-root", store.data_root, "-i",
                               str(archive)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert out == "Loaded image: docker.io/library/same:1\n"
    assert len(store.images()) == 1 and len(store.layers()) == 1
    assert store.work_dirs() == []
    with open(os.path.join(store.inspect("same:1")["LayerDirs"][0], "etc", "passwd")) as f:
        assert f.read().startswith("root:")


# ---- removal --------------------------------------------------------------------------------------------------------

def test_rm_keeps_what_another_image_or_a_holder_uses(store, tmp_path, base_layer):
    images = [(f"v{i}", [base_layer, tar_bytes([entry(f"app{i}", data=b"%d" % i)])], False, {}) for i in range(2)]
    layout = write_layout(str(tmp_path / "layout"), images)
    store.run("import", "--ref", "v0", layout, "a:1")
    store.run("import", "--ref", "v1", layout, "b:1")
    a, b = store.inspect("a:1"), store.inspect("b:1")
    result = store.run("rm", "a:1")
    assert result.stdout == f"Untagged: docker.io/library/a:1\nDeleted: {a['Id']}\n"
    assert not os.path.exists(a["LayerDirs"][1])
    assert os.path.isdir(b["LayerDirs"][0]) and b["LayerDirs"][0] == a["LayerDirs"][0]
    assert len(store.layers()) == 2
    # A holder (a pod) keeps an image: holds/HOLDER lists manifest digests.
    os.makedirs(os.path.join(store.path, "holds"), exist_ok=True)
    with open(os.path.join(store.path, "holds", "pod-web"), "w") as f:
        f.write(b["Digest"] + "\n")
    refused = store.run("rm", "b:1", check=False)
    assert refused.returncode == 1
    assert refused.stderr.strip() == "pea: image b:1 is in use by pod-web: refused"
    assert store.run("prune", "-a").stdout == ""
    assert store.inspect("b:1")["Digest"] == b["Digest"]
    os.unlink(os.path.join(store.path, "holds", "pod-web"))
    store.run("rm", "b:1")
    assert store.images() == [] and store.layers() == [] and store.blobs() == []


def test_rm_by_id_of_an_image_with_several_names_needs_force(store, tmp_path):
    layout = write_layout(str(tmp_path / "layout"), [(None, [tar_bytes([entry("f", data=b"x")])], False, {})])
    store.run("import", layout, "one:1")
    store.run("tag", "one:1", "two:1")
    image_id = store.inspect("one:1")["Id"]
    refused = store.run("rm", image_id[:12], check=False)
    assert refused.returncode == 1 and "has 2 names" in refused.stderr
    out = store.run("rm", "-f", image_id[:12]).stdout.splitlines()
    assert sorted(out[:2]) == ["Untagged: docker.io/library/one:1", "Untagged: docker.io/library/two:1"]
    assert out[2] == f"Deleted: {image_id}"
    missing = store.run("rm", "one:1", check=False)
    assert missing.returncode == 1 and missing.stderr.strip() == "pea: image one:1 not known"


def test_prune_removes_unnamed_images_and_dead_work_dirs(store, tmp_path):
    layout = write_layout(str(tmp_path / "layout"), [(None, [tar_bytes([entry("f", data=b"x")])], False, {})])
    loaded = store.run("import", layout).stdout
    assert loaded.startswith("Imported image: sha256:")
    assert store.images()[0]["Names"] == []
    # A work directory whose process died mid-unpack (nobody holds its lock).
    dead = os.path.join(store.path, "tmp", "999999-dead")
    os.makedirs(os.path.join(dead, "layer-0", "diff"))
    image_id = store.images()[0]["Id"]
    assert store.run("prune").stdout == image_id + "\n"
    assert store.images() == [] and store.layers() == [] and store.work_dirs() == []


# ---- hostile layers -------------------------------------------------------------------------------------------------

def import_hostile(store, tmp_path, layer, compress=False, env=None):
    layout = write_layout(str(tmp_path / "hostile"), [("v1", [layer], compress, {})])
    result = store.run("import", layout, "hostile:1", env=env, check=False)
    assert result.returncode == 1, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pea: "), result.stderr
    assert store.layers() == [] and store.images() == [] and store.work_dirs() == []
    return lines[0]


def test_dotdot_entries_are_refused(store, tmp_path, host_target):
    depth = "../" * 12
    msg = import_hostile(store, tmp_path, tar_bytes([entry(f"{depth}{host_target}/escaped", data=b"x")]))
    assert "path leaves the layer (..): refused" in msg


def test_file_through_an_absolute_symlink_is_refused(store, tmp_path, host_target):
    layer = tar_bytes([entry("evil", tarfile.SYMTYPE, linkname=str(host_target)), entry("evil/pwned", data=b"x")])
    msg = import_hostile(store, tmp_path, layer)
    assert "entry evil/pwned: a parent directory is a symlink or not a directory: refused" in msg


def test_file_through_a_relative_symlink_is_refused(store, tmp_path, host_target):
    layer = tar_bytes([entry("a", tarfile.DIRTYPE, mode=0o755), entry("a/up", tarfile.SYMTYPE, linkname="../../../.."),
                       entry(f"a/up{host_target}/pwned", data=b"x")])
    assert "a parent directory is a symlink" in import_hostile(store, tmp_path, layer)


def test_hard_link_to_a_host_file_is_refused(store, tmp_path):
    before = os.stat("/etc/shadow").st_nlink
    msg = import_hostile(store, tmp_path, tar_bytes([entry("shadow", tarfile.LNKTYPE, linkname="/etc/shadow")]))
    assert "entry shadow: hard link target is not in the layer" in msg
    msg = import_hostile(store, tmp_path,
                         tar_bytes([entry("shadow", tarfile.LNKTYPE, linkname="../../../../../../etc/shadow")]))
    assert "hard link target leaves the layer: refused" in msg
    assert os.stat("/etc/shadow").st_nlink == before


def test_hard_link_through_a_symlink_is_refused(store, tmp_path):
    layer = tar_bytes([entry("etc", tarfile.SYMTYPE, linkname="/etc"),
                       entry("shadow", tarfile.LNKTYPE, linkname="etc/shadow")])
    assert "hard link target is reached through a symlink: refused" in import_hostile(store, tmp_path, layer)


def test_decompression_bomb_is_refused(store, tmp_path):
    zeros = b"\0" * (1 << 20)
    layer = tar_bytes([entry(f"bomb{i}", data=zeros) for i in range(64)])
    msg = import_hostile(store, tmp_path, layer, compress=True, env={"PEA_IMAGE_MAX_LAYER_BYTES": str(8 << 20)})
    assert "more than 8388608 bytes uncompressed: refused (limit PEA_IMAGE_MAX_LAYER_BYTES)" in msg


def test_too_many_entries_is_refused(store, tmp_path):
    layer = tar_bytes([entry(f"f{i}") for i in range(300)])
    msg = import_hostile(store, tmp_path, layer, env={"PEA_IMAGE_MAX_LAYER_ENTRIES": "100"})
    assert "more than 100 entries: refused (limit PEA_IMAGE_MAX_LAYER_ENTRIES)" in msg


def test_layer_that_does_not_match_its_digest_is_refused(store, tmp_path):
    layout = write_layout(str(tmp_path / "layout"), [("v1", [tar_bytes([entry("f", data=b"good")])], False, {})])
    with open(os.path.join(layout, "index.json")) as f:
        manifest_digest = json.load(f)["manifests"][0]["digest"]
    with open(os.path.join(layout, "blobs", "sha256", manifest_digest[7:])) as f:
        layer_digest = json.load(f)["layers"][0]["digest"]
    layer_path = os.path.join(layout, "blobs", "sha256", layer_digest[7:])
    with open(layer_path, "rb") as f:
        data = f.read()
    with open(layer_path, "wb") as f:
        f.write(data.replace(b"good", b"evil"))
    result = store.run("import", layout, "bad:1", check=False)
    assert result.returncode == 1
    assert f"blob {layer_digest}: content does not match its digest" in result.stderr
    assert store.layers() == [] and store.work_dirs() == []


def test_absolute_paths_land_inside_the_layer(store, tmp_path, host_target):
    layer = tar_bytes([entry(f"{host_target}/inside", data=b"x"), entry("/abs", data=b"y")])
    layout = write_layout(str(tmp_path / "layout"), [("v1", [layer], False, {})])
    store.run("import", layout, "abs:1")
    top = store.inspect("abs:1")["LayerDirs"][0]
    assert os.path.isfile(os.path.join(top, str(host_target).lstrip("/"), "inside"))
    assert os.path.isfile(os.path.join(top, "abs"))


def test_device_nodes_and_xattrs(store, tmp_path):
    layer = tar_bytes([
        entry("dev", tarfile.DIRTYPE, mode=0o755),
        (lambda i: (setattr(i, "devmajor", 1), setattr(i, "devminor", 3), (i, None))[-1])(
            entry("dev/null", tarfile.CHRTYPE, mode=0o666)[0]),
        entry("ping", data=b"p", mode=0o755, pax={"SCHILY.xattr.user.note": "kept",
                                                   "SCHILY.xattr.trusted.overlay.redirect": "/etc"}),
    ])
    layout = write_layout(str(tmp_path / "layout"), [("v1", [layer], False, {})])
    store.run("import", layout, "dev:1")
    top = store.inspect("dev:1")["LayerDirs"][0]
    st = os.lstat(os.path.join(top, "dev", "null"))
    assert (st.st_mode & 0o170000, os.major(st.st_rdev), os.minor(st.st_rdev)) == (0o020000, 1, 3)
    assert os.getxattr(os.path.join(top, "ping"), "user.note") == b"kept"
    # An image never sets overlay's own attributes.
    with pytest.raises(OSError):
        os.getxattr(os.path.join(top, "ping"), "trusted.overlay.redirect")
