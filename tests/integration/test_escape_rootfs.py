"""Escapes through the container's root filesystem: recursive mount attributes (rro...), options a bind mount does
not know, the old root that --no-pivot leaves behind, masked paths applied without the container's /proc, and a
symlinked /proc or /sys in the image."""
import ctypes
import os
import subprocess

import pytest

import helpers

pytestmark = pytest.mark.pea_only


def mountinfo(text):
    """Mountinfo lines → {mount point: set of per-mount options}; the last mount on a point wins."""
    mounts = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) > 5 and "-" in fields:
            mounts[helpers.unescape_mount_field(fields[4])] = set(fields[5].split(","))
    return mounts


def run_sh(run, bundle, cid, script, *run_args):
    bundle.args("sh", "-c", script)
    r = run("run", *run_args, "--bundle", bundle, cid)
    assert r.code == 0, f"exit {r.code}: {r.err}"
    return r.out


@pytest.fixture
def tree_with_submount(run, tmp_path):
    """A host directory TOP holding a file and, at TOP/sub, a tmpfs of its own (a submount), mounted with the
    options the test asks for: make(options) -> TOP. Requested after `run`, so it is unmounted before the state
    root's teardown looks for leaked mounts."""
    top = tmp_path / "top"
    sub = top / "sub"
    sub.mkdir(parents=True)
    mounted = []

    def make(options="size=1m"):
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "pea-sub", str(sub)], check=True)
        mounted.append(str(sub))
        return str(top)
    yield make
    libc = ctypes.CDLL(None, use_errno=True)
    for point in mounted:
        libc.umount2(point.encode(), 2)  # MNT_DETACH


# ---- recursive attributes ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("options,expected", [
    (["rbind", "rro"], ["EROFS", "EROFS"]),
    (["rbind", "ro"], ["EROFS", "ok"]),
    (["rbind"], ["ok", "ok"]),
], ids=["rro", "ro-is-not-recursive", "rw"])
def test_rro_makes_submounts_read_only(run, bundle, cid, tree_with_submount, options, expected):
    """"ro" makes the bind read-only, as with runc, and leaves its submounts as they are; "rro" reaches every
    submount (mount_setattr AT_RECURSIVE), so nothing below the mount point stays writable."""
    bundle.mount("/data", None, tree_with_submount(), options)
    out = run_sh(run, bundle, cid, "peatest write /data/new; peatest write /data/sub/new")
    assert out.split() == expected


# (options of the host's submount, bind options, per-mount options the submount must show, ones it must not)
RECURSIVE = [
    ("size=1m", ["rro"], {"ro"}, {"rw"}),
    ("size=1m", ["rnosuid"], {"nosuid"}, set()),
    ("size=1m", ["rnodev"], {"nodev"}, set()),
    ("size=1m", ["rnoexec"], {"noexec"}, set()),
    ("size=1m", ["rnoatime"], {"noatime"}, {"relatime"}),
    ("size=1m", ["rstrictatime"], set(), {"relatime", "noatime"}),
    ("size=1m", ["rnodiratime"], {"nodiratime"}, set()),
    ("size=1m,noatime", ["rrelatime"], {"relatime"}, {"noatime"}),
    ("size=1m,noatime", ["ratime"], {"relatime"}, {"noatime"}),
    ("size=1m,strictatime", ["rnostrictatime"], {"relatime"}, set()),
    ("size=1m", ["rnorelatime"], set(), {"relatime", "noatime"}),
    ("size=1m", ["rnosymfollow"], {"nosymfollow"}, set()),
    ("size=1m,nosymfollow", ["rsymfollow"], set(), {"nosymfollow"}),
    ("size=1m,ro,nosuid,nodev,noexec", ["rrw", "rsuid", "rdev", "rexec"], {"rw"},
     {"ro", "nosuid", "nodev", "noexec"}),
    ("size=1m", ["rro", "rrw"], {"rw"}, {"ro"}),
]


@pytest.mark.parametrize("sub_options,options,present,absent", RECURSIVE,
                         ids=["+".join(r[1]) for r in RECURSIVE])
def test_recursive_attribute_reaches_the_submount(run, bundle, cid, tree_with_submount, sub_options, options,
                                                  present, absent):
    bundle.mount("/data", None, tree_with_submount(sub_options), ["rbind", *options])
    sub = mountinfo(run_sh(run, bundle, cid, "cat /proc/self/mountinfo"))["/data/sub"]
    assert present <= sub, f"{options}: /data/sub has {sorted(sub)}"
    assert not absent & sub, f"{options}: /data/sub has {sorted(sub)}"


def test_rro_on_a_tmpfs(run, bundle, cid):
    """A recursive attribute applies to a filesystem mount too (its whole tree is itself)."""
    bundle.mount("/scratch", "tmpfs", "tmpfs", ["size=1m", "rro"])
    assert run_sh(run, bundle, cid, "peatest write /scratch/x").split() == ["EROFS"]


# ---- options a bind mount does not know ----------------------------------------------------------------------------

@pytest.mark.parametrize("option", ["foo", "size=1m", "x-whatever"])
def test_unknown_bind_option_is_refused(run, bundle, cid, tmp_path, assert_no_leaks, option):
    """A bind mount has no filesystem to take data: an option it does not know used to reach the kernel as data and
    be ignored (a misspelt "rro" left the mount writable). It is now one line naming it."""
    bundle.mount("/data", None, str(tmp_path), ["rbind", option])
    bundle.args("true")
    r = run("run", "--bundle", bundle, cid)
    assert r.code == 1
    assert r.err.splitlines() == [f'pea: mount bind on /data: unknown mount option "{option}"'], r.err
    assert_no_leaks()


def test_idmap_is_refused_not_ignored(run, bundle, cid, tmp_path):
    bundle.mount("/data", "bind", str(tmp_path), ["rbind", "idmap"])
    bundle.args("true")
    r = run("run", "--bundle", bundle, cid)
    assert r.code == 1
    assert 'mount bind on /data: mount option "idmap" needs a user namespace and a runtime running as root' in r.err


def test_common_bind_options_still_work(run, bundle, cid, tmp_path):
    """What containerd, CRI-O and podman pass for binds."""
    (tmp_path / "f").write_text("x\n")
    bundle.mount("/data", "bind", str(tmp_path), ["rbind", "rprivate", "nosuid", "nodev", "noexec", "ro", "relatime",
                                                  "defaults"])
    bundle.mount("/data2", None, str(tmp_path), ["bind", "rslave", "rw", "strictatime", "rro"])
    out = run_sh(run, bundle, cid, "cat /data/f; peatest write /data/new; peatest write /data2/new")
    assert out.split() == ["x", "EROFS", "EROFS"]


def test_filesystem_options_still_reach_the_filesystem(run, bundle, cid):
    """For a filesystem (not a bind) an option that is not a flag is the filesystem's, and it judges it. One element
    may hold several, comma-separated, as mount(2) data would."""
    bundle.mount("/scratch", "tmpfs", "tmpfs", ["size=1m,nr_inodes=4", "mode=0700"])
    out = run_sh(run, bundle, cid, "stat -c %a /scratch; for i in 1 2 3 4 5; do touch /scratch/$i || exit 0; done")
    assert out.split()[0] == "700"
    bundle.mount("/bad", "tmpfs", "tmpfs", ["no-such-tmpfs-option=1"])
    bundle.args("true")
    r = run("run", "--bundle", bundle, cid + "-bad")
    assert r.code == 1
    assert 'mount tmpfs on /bad: option "no-such-tmpfs-option=1": Invalid argument' in r.err


def test_an_option_too_long_for_fsconfig_goes_to_mount_as_data(run, bundle, cid):
    """fsconfig takes values of at most 255 bytes (an overlay's lowerdir can be longer): such a mount is made with
    mount(2) and its data string; what would need the new mount's fd afterwards is refused, not done by path."""
    long_size = "size=" + "0" * 300 + "1m"
    bundle.mount("/scratch", "tmpfs", "tmpfs", [long_size, "mode=0700"])
    assert run_sh(run, bundle, cid, "stat -c %a /scratch").split() == ["700"]
    bundle.mount("/copied", "tmpfs", "tmpfs", [long_size, "tmpcopyup"])
    bundle.args("true")
    r = run("run", "--bundle", bundle, cid + "-copy")
    assert r.code == 1
    assert ("mount tmpfs on /copied: an option over 255 bytes cannot be combined with tmpcopyup, a propagation or a "
            "recursive option") in r.err


# ---- --no-pivot -----------------------------------------------------------------------------------------------------

# A nested user namespace (root in it, no capability needed outside) with its own mount namespace, and a pid or
# network namespace of its own, tries to mount a fresh procfs or sysfs. The kernel allows it only if one is "fully
# visible" in the mount namespace, covered nowhere (maskedPaths cover the container's own /proc and /sys).
NESTED_MOUNT = {
    "proc": "unshare -Urmpf sh -c 'echo nested; mount -t proc proc /mnt && echo MOUNTED' 2>&1; true",
    "sysfs": "unshare -Urmnf sh -c 'echo nested; mount -t sysfs sysfs /mnt && echo MOUNTED' 2>&1; true",
}


@pytest.mark.parametrize("fstype", sorted(NESTED_MOUNT))
@pytest.mark.parametrize("run_args", [(), ("--no-pivot",)], ids=["pivot", "no-pivot"])
def test_nested_user_namespace_cannot_mount_an_unmasked_procfs_or_sysfs(run, bundle, cid, run_args, fstype):
    """With --no-pivot the old root stayed under the chrooted rootfs, the host's /proc and /sys in it: out of reach
    by path, but in the container's mount namespace, where the kernel's check saw them, so a nested user namespace
    could mount a fresh procfs or sysfs that no maskedPath covers (runc refuses it). Now nothing of the host's tree
    stays in that namespace. As a user other than root, who may map itself into a user namespace without
    CAP_SETFCAP."""
    bundle.process["user"] = {"uid": 1000, "gid": 1000}
    out = run_sh(run, bundle, cid, NESTED_MOUNT[fstype], *run_args)
    assert "nested" in out, f"the nested namespaces were not made: {out!r}"
    assert "MOUNTED" not in out, f"a fresh {fstype} was mounted: {out!r}"


# ---- masked and read-only paths, by fd -----------------------------------------------------------------------------

def test_masked_and_readonly_paths_without_proc(run, bundle, cid):
    """Masking a file bound /proc/self/fd/N of /dev/null, and without a procfs on the container's /proc that path
    did not exist: a container with no /proc mount could not start with a masked file."""
    bundle.config["mounts"] = [m for m in bundle.config["mounts"] if m["destination"] != "/proc"]
    os.makedirs(os.path.join(bundle.rootfs, "secret-dir"))
    os.makedirs(os.path.join(bundle.rootfs, "frozen"))
    for path in ("secret-file", "secret-dir/inside"):
        with open(os.path.join(bundle.rootfs, path), "w") as f:
            f.write("do not read\n")
    bundle.config["linux"]["maskedPaths"] = ["/secret-file", "/secret-dir"]
    bundle.config["linux"]["readonlyPaths"] = ["/frozen"]
    out = run_sh(run, bundle, cid, "peatest read /secret-file; ls -A /secret-dir | wc -l; peatest write /frozen/x;"
                                    " peatest write /tmp/x")
    assert out.split() == ["size", "0", "0", "EROFS", "ok"]


def test_masked_paths_do_not_go_through_a_procfs_the_config_put_on_proc(run, bundle, cid):
    """A procfs tree that is not the container's own on /proc (here the host's /proc/sys, read-only): masking
    looked up /proc/self/fd/N in it and failed. It goes by fd now."""
    bundle.config["mounts"] = [m for m in bundle.config["mounts"] if m["destination"] != "/proc"]
    bundle.mount("/proc", None, "/proc/sys", ["rbind", "ro"])
    with open(os.path.join(bundle.rootfs, "secret-file"), "w") as f:
        f.write("do not read\n")
    bundle.config["linux"]["maskedPaths"] = ["/secret-file"]
    bundle.config["linux"]["readonlyPaths"] = []
    assert run_sh(run, bundle, cid, "peatest read /secret-file").split() == ["size", "0"]


# ---- a symlinked /proc or /sys --------------------------------------------------------------------------------------

@pytest.mark.parametrize("fstype,destination", [("proc", "/proc"), ("sysfs", "/sys")])
def test_symlinked_proc_or_sys_is_refused(run, bundle, cid, assert_no_leaks, fstype, destination):
    """The image's /proc or /sys is a symlink (to a directory it chose): procfs and sysfs must not be mounted where
    it leads. runc refuses it; so does pea, with one line."""
    name = destination.lstrip("/")
    os.makedirs(os.path.join(bundle.rootfs, "elsewhere"))
    os.rmdir(os.path.join(bundle.rootfs, name))
    os.symlink("/elsewhere", os.path.join(bundle.rootfs, name))
    bundle.args("true")
    r = run("run", "--bundle", bundle, cid)
    assert r.code == 1
    assert r.err.splitlines() == [
        f"pea: create {cid}: mount {fstype} on {destination}: {destination} in the rootfs is a symlink: refused"], r.err
    assert_no_leaks()


# ---- devices --------------------------------------------------------------------------------------------------------

def test_a_device_path_that_is_a_symlink_in_the_image_is_never_followed(run, bundle, cid, tmp_path):
    """With /dev from the image, a device's path may be a symlink planted there (or swapped in by a container that
    shares the rootfs). It is kept, as runc keeps what exists, and the owner and mode asked for never reach what it
    names, here a host file by its absolute path."""
    bundle.config["mounts"] = [m for m in bundle.config["mounts"] if m["destination"] != "/dev"]
    victim = tmp_path / "victim"
    victim.write_text("host file\n")
    os.chmod(victim, 0o600)
    dev = os.path.join(bundle.rootfs, "dev")
    os.makedirs(dev, exist_ok=True)
    os.symlink(str(victim), os.path.join(dev, "extra-null"))
    bundle.config["linux"]["devices"] = [
        {"type": "c", "path": "/dev/extra-null", "major": 1, "minor": 3, "fileMode": 0o666, "uid": 1000, "gid": 1000}]
    bundle.config["linux"]["maskedPaths"] = []  # masking needs a /dev/null, which this /dev does not have
    bundle.args("true")
    r = run("run", "--bundle", bundle, cid)
    assert r.code == 0, r.err
    st = os.stat(victim)
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (0, 0, 0o600), "the host file's owner or mode changed"
    assert os.readlink(os.path.join(dev, "extra-null")) == str(victim)


def test_a_device_gets_its_mode_whatever_the_umask(run, bundle, cid):
    bundle.config["linux"]["devices"] = [
        {"type": "c", "path": "/dev/extra-null", "major": 1, "minor": 3, "fileMode": 0o666, "uid": 0, "gid": 0}]
    bundle.config["linux"]["resources"]["devices"].append({"allow": True, "type": "c", "major": 1, "minor": 3,
                                                           "access": "rwm"})
    bundle.args("stat", "-c", "%a", "/dev/extra-null")
    old = os.umask(0o077)
    try:
        r = run("run", "--bundle", bundle, cid)
    finally:
        os.umask(old)
    assert r.code == 0, r.err
    assert r.out == "666\n"
