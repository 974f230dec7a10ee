"""runc parity for mounts and namespaces (issue 14 items 1-4): rshared both ways, unbindable, namespaces left out of
the config, user-namespace bind sources and cgroup, a read-only /dev.

Each test runs the runtime under test and, where runc 1.1 behaves the same, runc on the same bundle. Whatever may
mount outside a container's own mount namespace runs inside a private mount namespace the test makes
(`unshare -m --propagation private`): it goes away with its last process, so nothing reaches this machine's tree.
"""
import os
import shutil
import subprocess

import pytest

import helpers
from helpers import parse_kv

RUNC = "/usr/sbin/runc"
PRIVATE_MOUNT_NS = ["unshare", "-m", "--propagation", "private", "--"]


@pytest.fixture(params=["runtime", "runc"])
def rt(request, runtime, work_dir, test_mark):
    """A Runner for the runtime under test, then for runc, each with a --root of its own; .is_pea tells them apart."""
    path = runtime if request.param == "runtime" else RUNC
    if not os.access(path, os.X_OK):
        pytest.skip(f"{path} is not installed")
    root = os.path.join(work_dir, f"root-{request.param}")
    os.mkdir(root, 0o700)
    runner = helpers.Runner(path, root, work_dir, test_mark)
    runner.is_pea = helpers.is_pea(path)
    yield runner
    # A container a failed test left: only in a private mount namespace that is gone by now, but its process,
    # cgroup and state must go too.
    listed = runner("list", "--quiet")
    for left in listed.out.split():
        runner("delete", "--force", left)
    assert helpers.state_dirs(root) == [], "state left behind"


def in_private_mount_ns(rt, script, *args, timeout=30):
    """Run the shell SCRIPT ($RT is the runtime with its --root; ARGS are $1...) in a private mount namespace."""
    proc = subprocess.run([*PRIVATE_MOUNT_NS, "sh", "-c", script, "sh", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=dict(rt.env, RT=" ".join(rt.argv())))
    return helpers.Result(proc.returncode, proc.stdout, proc.stderr)


def add_caps(bundle, *caps):
    for kind in bundle.process["capabilities"].values():
        kind.extend(caps)


# ---- item 1: propagation ------------------------------------------------------------------------------------------

BOTH_WAYS_CONTAINER = """
mount -t tmpfs tmpfs /shared/inner && touch /shared/inner/made-inside
for i in $(seq 200); do [ -e /shared/from-host/marker ] && break; sleep 0.05; done
[ -e /shared/from-host/marker ] && echo seen > /shared/result || echo missing > /shared/result
"""

# $1 the shared source directory, $2 the bundle, $3 the id. The source is made a shared mount here, in the test's
# own namespace; the container's mount namespace is cloned from this one.
BOTH_WAYS_HOST = """
set -e
mkdir -p "$1/inner" "$1/from-host"
mount --bind "$1" "$1"
mount --make-shared "$1"
$RT create --bundle "$2" "$3" </dev/null >"$2/container.out" 2>&1 || { cat "$2/container.out"; exit 1; }
$RT start "$3"
for i in $(seq 200); do [ -e "$1/inner/made-inside" ] && break; sleep 0.05; done
[ -e "$1/inner/made-inside" ] && echo "host sees the container's mount" || echo "host misses the container's mount"
mount -t tmpfs tmpfs "$1/from-host"
touch "$1/from-host/marker"
for i in $(seq 200); do [ -s "$1/result" ] && break; sleep 0.05; done
echo "container: $(cat "$1/result" 2>/dev/null)"
$RT delete --force "$3" >/dev/null 2>&1 || true
"""


def test_rshared_bind_propagates_both_ways(rt, bundle, cid, tmp_path):
    """rootfsPropagation rshared and an rshared bind (Kubernetes' Bidirectional): a mount made in the container under
    the bind appears on the host, and one the host makes under the source appears in the container."""
    source = tmp_path / "shared"
    source.mkdir()
    bundle.config["linux"]["rootfsPropagation"] = "rshared"
    bundle.mount("/shared", "bind", str(source), ["rbind", "rshared"])
    add_caps(bundle, "CAP_SYS_ADMIN")
    bundle.args("sh", "-c", BOTH_WAYS_CONTAINER)
    bundle.save()
    r = in_private_mount_ns(rt, BOTH_WAYS_HOST, source, bundle.path, cid)
    assert r.code == 0, r.out + r.err
    assert r.out.splitlines() == ["host sees the container's mount", "container: seen"], r.out + r.err


def test_rslave_bind_sends_nothing_back(rt, bundle, cid, tmp_path):
    """The default (rslave root) still keeps the container's mounts from the host, the host's reaching it."""
    source = tmp_path / "shared"
    source.mkdir()
    bundle.mount("/shared", "bind", str(source), ["rbind"])
    add_caps(bundle, "CAP_SYS_ADMIN")
    bundle.args("sh", "-c", BOTH_WAYS_CONTAINER)
    bundle.save()
    # The host gives the container 1 s to show its mount, then mounts its own.
    r = in_private_mount_ns(rt, BOTH_WAYS_HOST.replace("$(seq 200); do [ -e \"$1/inner", "$(seq 20); do [ -e \"$1/inner"),
                            source, bundle.path, cid)
    assert r.code == 0, r.out + r.err
    assert r.out.splitlines() == ["host misses the container's mount", "container: seen"], r.out + r.err


def test_unbindable_bind_cannot_be_bound_again(rt, bundle, cid, tmp_path):
    (tmp_path / "src").mkdir()
    bundle.mount("/unbindable", "bind", str(tmp_path / "src"), ["rbind", "unbindable"])
    add_caps(bundle, "CAP_SYS_ADMIN")
    bundle.args("sh", "-c", "mkdir -p /again; mount --bind /unbindable /again 2>&1 || echo refused")
    bundle.save()
    r = in_private_mount_ns(rt, '$RT run --bundle "$1" "$2"', bundle.path, cid)
    assert r.code == 0, r.err
    assert "Invalid argument" in r.out and r.out.endswith("refused\n"), r.out


def test_runbindable_root_is_applied(rt, bundle, cid):
    """rootfsPropagation runbindable makes the container's "/" unbindable (pea applies it last: runc 1.1 applies it
    before binding its rootfs, which then fails with EINVAL, so create fails there)."""
    bundle.config["linux"]["rootfsPropagation"] = "runbindable"
    add_caps(bundle, "CAP_SYS_ADMIN")
    bundle.args("sh", "-c", "awk '$5 == \"/\"' /proc/self/mountinfo; mkdir -p /again; "
                            "mount --bind / /again 2>&1 || echo refused")
    bundle.save()
    r = in_private_mount_ns(rt, '$RT run --bundle "$1" "$2"', bundle.path, cid)
    if not rt.is_pea:
        assert r.code != 0 and "invalid argument" in r.err, r.out + r.err
        return
    assert r.code == 0, r.err
    root_line, *rest = r.out.splitlines()
    assert "unbindable" in root_line.split(" - ")[0].split(), root_line
    assert rest[-1] == "refused" and "Invalid argument" in r.out, r.out


# ---- item 2: namespaces not listed --------------------------------------------------------------------------------

def strip_to_no_namespaces(bundle):
    bundle.config["linux"]["namespaces"] = []
    del bundle.config["hostname"]
    # Paths of a shared mount namespace cannot be masked for the container alone (runc refuses them too).
    bundle.config["linux"]["maskedPaths"] = []
    bundle.config["linux"]["readonlyPaths"] = []


def test_unlisted_namespaces_mount_included_are_inherited(rt, bundle, cid):
    """No namespace listed: every one is the caller's, the mount namespace too (the container is chrooted into its
    rootfs, its mounts made under it in the caller's namespace)."""
    strip_to_no_namespaces(bundle)
    with open(os.path.join(bundle.rootfs, "marker"), "w") as f:
        f.write("in the rootfs\n")
    bundle.args("sh", "-c", "peatest ns; cat /marker; test -e /proc/self/ns/mnt && echo proc-mounted")
    bundle.save()
    script = ('for k in mnt net ipc uts pid cgroup; do echo "caller-$k $(readlink /proc/self/ns/$k)"; done; '
              '$RT run --bundle "$1" "$2"')
    r = in_private_mount_ns(rt, script, bundle.path, cid)
    assert r.code == 0, r.err
    seen = parse_kv(r.out)
    for kind in ("mnt", "net", "ipc", "uts", "pid", "cgroup"):
        assert seen[kind] == seen[f"caller-{kind}"], kind
    assert "in" in seen and seen["in"] == "the rootfs", r.out
    assert "proc-mounted" in seen


def test_masked_paths_without_a_mount_namespace_are_refused(rt, bundle, cid):
    strip_to_no_namespaces(bundle)
    bundle.config["linux"]["maskedPaths"] = ["/proc/kcore"]
    bundle.save()
    r = in_private_mount_ns(rt, '$RT run --bundle "$1" "$2"', bundle.path, cid)
    assert r.code != 0
    assert "mount namespace" in r.err.lower() or "mnt namespace" in r.err.lower(), r.err


@pytest.mark.pea_only  # runc 1.1's exec stays in the host's root when the config has no mount namespace
def test_exec_without_a_mount_namespace_enters_the_container_root(run, bundle, cid):
    strip_to_no_namespaces(bundle)
    with open(os.path.join(bundle.rootfs, "marker"), "w") as f:
        f.write("in the rootfs\n")
    bundle.args("peatest", "sleep", "100")
    bundle.save()
    script = ('$RT create --bundle "$1" "$2" </dev/null >/dev/null 2>&1 || exit 1; $RT exec "$2" cat /marker; '
              'echo "exit $?"; $RT delete --force "$2"')
    r = in_private_mount_ns(run, script, bundle.path, cid)
    assert r.code == 0, r.err
    assert r.out == "in the rootfs\nexit 0\n", r.out + r.err


# ---- item 3: user namespaces --------------------------------------------------------------------------------------

@pytest.fixture
def userns_bundle(session_dir, work_dir, binaries, test_mark):
    """A bundle with a user namespace (0 -> 100000), on a path the mapped root can traverse."""
    for d in (session_dir, work_dir):
        os.chmod(d, 0o711)
    bundle = helpers.Bundle(os.path.join(work_dir, "bundle"), binaries, test_mark)
    os.chmod(bundle.path, 0o711)
    bundle.add_namespace("user")
    bundle.config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    bundle.config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    return bundle


def test_userns_bind_source_behind_a_root_only_directory(rt, userns_bundle, cid, work_dir):
    """The source is reached with the runtime's rights, not the container root's: a directory only the host's root
    may enter (0700) on the way does not stop the mount."""
    private = os.path.join(work_dir, "private")
    os.makedirs(os.path.join(private, "data"))
    os.chmod(private, 0o700)
    with open(os.path.join(private, "data", "file"), "w") as f:
        f.write("behind a root-only directory\n")
    os.makedirs(os.path.join(userns_bundle.rootfs, "data"))
    userns_bundle.mount("/data", "bind", os.path.join(private, "data"), ["rbind", "ro"])
    userns_bundle.args("cat", "/data/file")
    userns_bundle.save()
    r = in_private_mount_ns(rt, '$RT run --bundle "$1" "$2"', userns_bundle.path, cid)
    assert r.code == 0, r.err
    assert r.out == "behind a root-only directory\n"


def test_userns_bind_source_keeps_the_hosts_locks(rt, userns_bundle, cid, work_dir):
    """Opened with the runtime's rights, a source still carries the locks of the container's copy of the host's
    mount: the container's root cannot remount a read-only source read-write."""
    source = os.path.join(work_dir, "read-only")
    os.mkdir(source)
    os.chmod(source, 0o777)
    os.makedirs(os.path.join(userns_bundle.rootfs, "data"))
    userns_bundle.mount("/data", "bind", source, ["rbind"])
    add_caps(userns_bundle, "CAP_SYS_ADMIN")
    userns_bundle.args("sh", "-c", "mount -o remount,bind,rw /data 2>/dev/null && echo remounted; "
                                   "peatest write /data/new")
    userns_bundle.save()
    script = 'mount --bind "$3" "$3" && mount -o remount,bind,ro "$3" && $RT run --bundle "$1" "$2"'
    r = in_private_mount_ns(rt, script, userns_bundle.path, cid, source)
    assert r.code == 0, r.err
    assert r.out == "EROFS\n"
    assert not os.path.exists(os.path.join(source, "new"))


def test_userns_without_cgroupns_binds_its_own_cgroup(rt, userns_bundle, cid):
    """A user namespace without a cgroup namespace may not mount cgroup2 (EPERM): /sys/fs/cgroup is a bind of the
    container's own cgroup instead (runc binds its cgroup in each v1 hierarchy on this hybrid host)."""
    userns_bundle.config["linux"]["cgroupsPath"] = f"/{cid}"
    userns_bundle.mount("/sys/fs/cgroup", "cgroup", "cgroup", ["nosuid", "noexec", "nodev", "relatime", "ro"])
    userns_bundle.args("cat", "/proc/self/mountinfo")
    userns_bundle.save()
    r = in_private_mount_ns(rt, '$RT run --bundle "$1" "$2"', userns_bundle.path, cid)
    assert r.code == 0, r.err
    cgroup_roots = set()
    for line in r.out.splitlines():
        fields = line.split()
        fstype = fields[fields.index("-") + 1]
        if fields[4].startswith("/sys/fs/cgroup") and fstype in ("cgroup", "cgroup2"):
            cgroup_roots.add(fields[3])
    assert cgroup_roots == {f"/{cid}"}, r.out


# ---- item 4: read-only /dev ---------------------------------------------------------------------------------------

def test_readonly_dev_is_filled_first(rt, bundle, cid):
    """"ro" on the /dev tmpfs: its nodes, links and submounts exist, then it is read-only (its submounts are not)."""
    for m in bundle.config["mounts"]:
        if m["destination"] == "/dev":
            m["options"].append("ro")
    bundle.args("sh", "-c", "test -c /dev/null && echo null; test -L /dev/fd && echo fd-link; "
                            "grep -c ' /dev/pts .* - devpts ' /proc/self/mountinfo; echo x > /dev/null && echo writes; "
                            "peatest write /dev/new; peatest write /dev/shm/new")
    bundle.save()
    r = in_private_mount_ns(rt, '$RT run --bundle "$1" "$2"', bundle.path, cid)
    assert r.code == 0, r.err
    assert r.out.splitlines() == ["null", "fd-link", "1", "writes", "EROFS", "ok"], r.out


def test_readonly_dev_with_a_terminal(run, bundle, cid):
    """The console is bound onto /dev/console before /dev turns read-only."""
    shutil.which("script") or pytest.skip("needs script(1)")
    for m in bundle.config["mounts"]:
        if m["destination"] == "/dev":
            m["options"].append("ro")
    bundle.process["terminal"] = True
    bundle.args("sh", "-c", "test -c /dev/console && echo console; peatest write /dev/new")
    bundle.save()
    r = in_private_mount_ns(run, 'script -qec "$RT run --bundle $1 $2" /dev/null', bundle.path, cid)
    assert r.code == 0, r.err
    # script(1), at EOF of its own stdin, writes its EOF character into the terminal, whose echo ("^@") may land
    # before the container's last line.
    last = r.out.replace("\r", "").replace("^@", "").splitlines()[-2:]
    assert last[0].endswith("console") and last[1] == "EROFS", r.out
