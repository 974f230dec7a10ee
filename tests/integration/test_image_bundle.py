"""`pea image bundle`: an OCI runtime bundle written from an image of the store, that pea and runc both run the same
way; layers applied as overlayfs stacks them (whiteouts, opaque directories), the image config converted as the OCI
image spec's conversion document says, and no layer writes outside the bundle.

Images are made offline by images.py (its layer and layout writers): the busybox root of examples/make-rootfs as the
base, small tar layers above it.
"""
import json
import os
import stat
import tarfile

import pytest

import helpers
import images
from images import base_layer, entry, host_target, tar_bytes  # noqa: F401 (fixtures)

RUNC = "/usr/sbin/runc"

# The upper layers of the test image: a user by name with a group membership, a whiteout, an opaque directory,
# hard links, a symlink, a fifo, an extended attribute and a set-uid file.
APP_LAYER = [
    entry("etc", tarfile.DIRTYPE, mode=0o755),
    entry("etc/passwd", data=b"root:x:0:0:root:/root:/bin/sh\napp:x:1234:1234:app:/home/app:/bin/sh\n"),
    entry("etc/group", data=b"root:x:0:\napp:x:1234:\nextra:x:2000:www,app\nother:x:2001:www\n"),
    entry("home/app", tarfile.DIRTYPE, mode=0o750, uid=1234, gid=1234),
    entry("srv", tarfile.DIRTYPE, mode=0o755),
    entry("srv/data", tarfile.DIRTYPE, mode=0o755),
    entry("srv/data/keep", data=b"kept\n"),
    entry("srv/data/gone", data=b"deleted above\n"),
    entry("srv/old", tarfile.DIRTYPE, mode=0o755),
    entry("srv/old/a", data=b"hidden by an opaque directory\n"),
    entry("srv/h1", data=b"linked\n", uid=1234, gid=1234),
    entry("srv/h2", tarfile.LNKTYPE, linkname="srv/h1"),
    entry("srv/link", tarfile.SYMTYPE, linkname="data/keep"),
    entry("srv/fifo", tarfile.FIFOTYPE, mode=0o640),
    entry("srv/suid", data=b"#!/bin/sh\n", mode=0o4755, pax={"SCHILY.xattr.user.note": "kept"}),
]
TOP_LAYER = [
    entry("srv", tarfile.DIRTYPE, mode=0o755),
    entry("srv/data", tarfile.DIRTYPE, mode=0o755),
    entry("srv/data/.wh.gone"),
    entry("srv/old", tarfile.DIRTYPE, mode=0o775),
    entry("srv/old/.wh..wh..opq"),
    entry("srv/old/b", data=b"b\n"),
]
SCRIPT = ("id; pwd; echo \"$GREETING|$HOME|$PATH\"; ls /srv/data; ls /srv/old; cat /srv/link; "
          "[ $(stat -c %i /srv/h1) = $(stat -c %i /srv/h2) ] && echo linked")
CONFIG = {
    "Entrypoint": ["/bin/sh", "-c"], "Cmd": [SCRIPT], "Env": ["GREETING=hello", "PATH=/bin:/usr/bin"],
    "WorkingDir": "/srv", "User": "app", "StopSignal": "SIGQUIT", "ExposedPorts": {"80/tcp": {}, "53/udp": {}},
    "Volumes": {"/srv/data": {}}, "Labels": {"org.opencontainers.image.author": "label wins", "team": "pea"},
}


@pytest.fixture
def store(runtime, tmp_path):
    return images.Store(runtime, tmp_path / "data")


def load_image(store, tmp_path, name, layers, config):
    layout = images.write_layout(str(tmp_path / ("layout-" + name.replace(":", "-"))), [("v1", layers, True, config)])
    store.run("import", layout, name)


def bundle(store, image, directory, *options, check=True):
    return store.run("bundle", *options, image, str(directory), check=check)


def run_in(runner, path, cid, test_mark):
    """Run the bundle at PATH in the foreground (with the test's mark in its env, for the leak checks)."""
    with open(os.path.join(path, "config.json")) as f:
        config = json.load(f)
    config["process"]["env"].append(f"PEA_IT_MARK={test_mark}")
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f)
    return runner("run", "--bundle", path, cid, timeout=60)


def test_bundle_runs_the_same_under_pea_and_runc(store, tmp_path, base_layer, run, runtime, work_dir, cid,
                                                 test_mark):
    load_image(store, tmp_path, "app:1", [base_layer, tar_bytes(APP_LAYER), tar_bytes(TOP_LAYER)], CONFIG)
    out = tmp_path / "bundle"
    result = bundle(store, "app:1", out)
    assert result.stdout == ""
    assert "pea: warning: the image declares volumes (/srv/data): they stay in the rootfs" in result.stderr
    assert sorted(os.listdir(out)) == ["config.json", "rootfs"]

    with open(out / "config.json") as f:
        config = json.load(f)
    process = config["process"]
    assert process["args"] == ["/bin/sh", "-c", SCRIPT]
    assert process["cwd"] == "/srv" and process["terminal"] is False
    assert process["user"] == {"uid": 1234, "gid": 1234, "additionalGids": [2000]}
    assert process["env"] == ["GREETING=hello", "PATH=/bin:/usr/bin", "HOME=/home/app"]
    assert config["root"] == {"path": "rootfs", "readonly": False}
    assert config["annotations"] == {
        "org.opencontainers.image.os": "linux", "org.opencontainers.image.architecture": "amd64",
        "org.opencontainers.image.created": "2024-01-01T00:00:00Z", "org.opencontainers.image.stopSignal": "SIGQUIT",
        "org.opencontainers.image.exposedPorts": "80/tcp,53/udp", "org.opencontainers.image.author": "label wins",
        "team": "pea"}

    rootfs = out / "rootfs"
    assert not os.path.lexists(rootfs / "srv/data/gone")  # the whiteout deleted it, and is not copied itself
    assert os.listdir(rootfs / "srv/old") == ["b"]
    st = os.lstat(rootfs / "srv/old")
    assert stat.S_IMODE(st.st_mode) == 0o775  # the upper layer's directory
    with pytest.raises(OSError):
        os.getxattr(rootfs / "srv/old", "trusted.overlay.opaque")
    st = os.lstat(rootfs / "home/app")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o750, 1234, 1234)
    h1, h2 = os.lstat(rootfs / "srv/h1"), os.lstat(rootfs / "srv/h2")
    assert h1.st_ino == h2.st_ino and h1.st_nlink == 2 and (h1.st_uid, h1.st_gid) == (1234, 1234)
    assert os.readlink(rootfs / "srv/link") == "data/keep"
    assert stat.S_ISFIFO(os.lstat(rootfs / "srv/fifo").st_mode)
    assert stat.S_IMODE(os.lstat(rootfs / "srv/suid").st_mode) == 0o4755
    assert os.getxattr(rootfs / "srv/suid", "user.note") == b"kept"
    assert os.lstat(rootfs / "srv/data/keep").st_mtime == 1700000000
    # A plain copy: nothing shares an inode with the store, which may go away.
    layer_dirs = store.inspect("app:1")["LayerDirs"]
    assert os.lstat(rootfs / "bin/busybox").st_ino != os.lstat(os.path.join(layer_dirs[0], "bin/busybox")).st_ino

    expected = ["uid=1234(app) gid=1234(app) groups=2000(extra)", "/srv", "hello|/home/app|/bin:/usr/bin", "keep",
                "b", "kept", "linked"]
    by_pea = run_in(run, str(out), cid, test_mark)
    assert by_pea.code == 0, by_pea.err
    assert by_pea.out.splitlines() == expected
    runc_root = os.path.join(work_dir, "runc-root")
    runc = helpers.Runner(RUNC, runc_root, work_dir, test_mark)
    try:
        by_runc = run_in(runc, str(out), cid + "-runc", test_mark)
    finally:
        runc("delete", "--force", cid + "-runc")
    assert by_runc.code == 0, by_runc.err
    assert by_runc.out == by_pea.out


def test_numeric_user_and_group_by_name(store, tmp_path, base_layer):
    load_image(store, tmp_path, "num:1", [base_layer], {"User": "33:nogroup", "Cmd": None})
    result = bundle(store, "num:1", tmp_path / "b")
    assert 'pea: warning: the image has neither Entrypoint nor Cmd: process.args is the default ["sh"]' in result.stderr
    with open(tmp_path / "b" / "config.json") as f:
        process = json.load(f)["process"]
    assert process["user"] == {"uid": 33, "gid": 65534}
    assert process["args"] == ["sh"] and process["cwd"] == "/"
    assert "HOME=/var/www" in process["env"]


def test_unknown_user_fails_and_leaves_nothing(store, tmp_path, base_layer):
    load_image(store, tmp_path, "nouser:1", [base_layer], {"User": "ghost"})
    result = bundle(store, "nouser:1", tmp_path / "b", check=False)
    assert result.returncode == 1
    assert result.stderr == ("pea: bundle nouser:1: image config: User: user ghost not found in the image's "
                             "/etc/passwd\n")
    assert not os.path.exists(tmp_path / "b")
    # A directory that existed stays, empty, as it was.
    (tmp_path / "empty").mkdir()
    assert bundle(store, "nouser:1", tmp_path / "empty", check=False).returncode == 1
    assert os.listdir(tmp_path / "empty") == []


def test_refuses_a_non_empty_directory_unless_forced(store, tmp_path, base_layer):
    load_image(store, tmp_path, "one:1", [base_layer, tar_bytes([entry("version", data=b"1\n")])], {})
    load_image(store, tmp_path, "two:1", [base_layer, tar_bytes([entry("version", data=b"2\n")])], {})
    out = tmp_path / "b"
    out.mkdir()
    (out / "notes").write_text("mine\n")
    refused = bundle(store, "one:1", out, check=False)
    assert refused.returncode == 1
    assert refused.stderr == (f"pea: bundle one:1: {out} is not empty: refused (--force replaces its rootfs and "
                              "config.json)\n")
    assert os.listdir(out) == ["notes"]
    bundle(store, "one:1", out, "--force")
    bundle(store, "two:1", out, "--force")
    assert sorted(os.listdir(out)) == ["config.json", "notes", "rootfs"]
    assert (out / "rootfs" / "version").read_text() == "2\n"
    assert bundle(store, "missing:1", tmp_path / "c", check=False).stderr == (
        "pea: bundle missing:1: image missing:1 not known\n")
    assert not os.path.exists(tmp_path / "c")


def test_bundle_outlives_the_store(store, tmp_path, base_layer, run, cid, test_mark):
    load_image(store, tmp_path, "gone:1", [base_layer], {"Cmd": ["cat", "/etc/group"]})
    out = tmp_path / "b"
    bundle(store, "gone:1", out)
    store.run("rm", "gone:1")
    assert store.layers() == []
    result = run_in(run, str(out), cid, test_mark)
    assert result.code == 0 and result.out.startswith("root:x:0:"), result.err


def test_a_symlink_a_later_layer_writes_through_stays_inside(store, tmp_path, host_target):
    # Each layer alone is harmless (the store unpacks each on its own): the lower one plants symlinks named like
    # directories, the upper one writes files, a whiteout and an opaque directory "into" them.
    lower = tar_bytes([entry("etc", tarfile.SYMTYPE, linkname=str(host_target)),
                       entry("up", tarfile.SYMTYPE, linkname="../../../../../../../../.." + str(host_target)),
                       entry("keep", tarfile.SYMTYPE, linkname=str(host_target))])
    upper = tar_bytes([entry("etc/passwd", data=b"root:x:0:0::/:/bin/sh\n"),
                       entry("up/pwned", data=b"x"),
                       entry("keep", tarfile.DIRTYPE, mode=0o755), entry("keep/.wh..wh..opq"),
                       entry("keep/new", data=b"y")])
    load_image(store, tmp_path, "hostile:1", [lower, upper], {"Cmd": ["/bin/sh"]})
    out = tmp_path / "b"
    bundle(store, "hostile:1", out)
    rootfs = out / "rootfs"
    for name in ("etc", "up", "keep"):
        assert stat.S_ISDIR(os.lstat(rootfs / name).st_mode), name
    assert (rootfs / "etc" / "passwd").read_text() == "root:x:0:0::/:/bin/sh\n"
    assert os.listdir(rootfs / "up") == ["pwned"] and os.listdir(rootfs / "keep") == ["new"]


def test_a_user_database_symlinked_out_of_the_root_is_read_inside(store, tmp_path, base_layer, host_target):
    # /etc/passwd -> an absolute path: read inside the rootfs, never the host's file of that name.
    (host_target / "passwd").write_text("evil:x:0:0::/:/bin/sh\n")
    try:
        upper = tar_bytes([entry("etc/passwd", tarfile.SYMTYPE, linkname=str(host_target / "passwd"))])
        load_image(store, tmp_path, "link:1", [base_layer, upper], {"User": "evil"})
        result = bundle(store, "link:1", tmp_path / "b", check=False)
        assert result.returncode == 1
        assert "user evil not found in the image's /etc/passwd (it has none)" in result.stderr
    finally:
        (host_target / "passwd").unlink()


def test_rootless_bundle_runs_in_a_user_namespace(store, tmp_path, base_layer, run, work_dir, cid, test_mark):
    load_image(store, tmp_path, "rl:1", [base_layer], {"Cmd": ["cat", "/proc/self/uid_map"]})
    out = tmp_path / "b"
    bundle(store, "rl:1", out, "--rootless")
    with open(out / "config.json") as f:
        config = json.load(f)
    assert {"type": "user"} in config["linux"]["namespaces"]
    assert {"type": "network"} not in config["linux"]["namespaces"]
    assert config["linux"]["uidMappings"][0] == {"containerID": 0, "hostID": os.getuid(), "size": 1}
    by_pea = run_in(run, str(out), cid, test_mark)
    assert by_pea.code == 0, by_pea.err
    assert by_pea.out.split()[:3] == ["0", str(os.getuid()), "1"]
    runc = helpers.Runner(RUNC, os.path.join(work_dir, "runc-root"), work_dir, test_mark)
    try:
        by_runc = run_in(runc, str(out), cid + "-runc", test_mark)
    finally:
        runc("delete", "--force", cid + "-runc")
    assert by_runc.code == 0 and by_runc.out == by_pea.out, by_runc.err


def test_an_opaque_layer_root_hides_every_layer_below(store, tmp_path, base_layer):
    top = tar_bytes([entry(".wh..wh..opq"), entry("only", data=b"x")])
    load_image(store, tmp_path, "opaque:1", [base_layer, top], {"Cmd": ["/only"]})
    bundle(store, "opaque:1", tmp_path / "b")
    assert os.listdir(tmp_path / "b" / "rootfs") == ["only"]
