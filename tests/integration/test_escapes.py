"""Attacks from inside a container that earlier runtimes fell to; each must fail here."""
import hashlib
import os
import subprocess
import sys

import pytest

import helpers

pytestmark = pytest.mark.pea_only


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


# Every capability but CAP_SYS_RESOURCE, which the bounding set of the machine running the tests may lack.
ALL_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
            "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_SYS_CHROOT",
            "CAP_SYS_PTRACE", "CAP_SYS_ADMIN", "CAP_MKNOD", "CAP_AUDIT_WRITE", "CAP_SETFCAP",
            "CAP_IPC_LOCK", "CAP_SYS_NICE", "CAP_LINUX_IMMUTABLE", "CAP_NET_ADMIN", "CAP_SYS_MODULE",
            "CAP_SYS_RAWIO", "CAP_SYS_PACCT", "CAP_SYS_BOOT", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_LEASE",
            "CAP_AUDIT_CONTROL", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
            "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
            "CAP_IPC_OWNER", "CAP_NET_BROADCAST"]


def with_every_capability(bundle):
    """A container of /bin/true whose processes (exec'd ones too) hold every capability."""
    caps = bundle.config["process"]["capabilities"]
    for kind in ("bounding", "effective", "permitted"):
        caps[kind] = ALL_CAPS
    bundle.args("true")


def proc_1_exe_after_write_attempts(run, cid):
    """Exec into the created container and try to open and write /proc/1/exe; both must fail. Where it leads."""
    r = run("exec", cid, "sh", "-c", "readlink /proc/1/exe; (: >> /proc/1/exe) && echo EXE-OPENED;"
                                     " (echo x > /proc/1/exe) && echo EXE-WRITTEN; echo done")
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert "EXE-OPENED" not in r.out and "EXE-WRITTEN" not in r.out, r.out
    assert lines[-1] == "done"
    return lines[0]


def test_runtime_binary_cannot_be_reached_through_proc_exe(run, runtime, bundle, cid):
    """CVE-2019-5736 class: until `start`, the container's PID 1 is a copy of pea waiting to exec. A process exec'd
    into the container with every capability (CAP_SYS_PTRACE sees through non-dumpable processes) finds only a
    sealed in-memory copy behind /proc/1/exe, which cannot be written, never the host's binary."""
    before = sha256(runtime)
    with_every_capability(bundle)
    run.ok("create", "--bundle", bundle, cid)
    exe = proc_1_exe_after_write_attempts(run, cid)
    assert exe.startswith("/memfd:pea"), f"/proc/1/exe leads to {exe}"
    run.ok("delete", "--force", cid)
    assert sha256(runtime) == before, "the runtime binary changed"


def test_runtime_on_a_read_only_mount_runs_in_place_and_stays_unwritable(run, runtime, bundle, cid):
    """A binary on a read-only mount needs no sealed copy (pea skips the copy and the second start): /proc/1/exe
    leads to the binary itself, and opening it for writing still fails, with every capability."""
    before = sha256(runtime)
    with_every_capability(bundle)
    bundle.save()
    # The read-only bind lives in a private mount namespace that ends with `create`; the container's PID 1 keeps
    # its exe, and with it the mount, until it is deleted.
    script = 'mount --bind -o ro "$1" "$1" && exec "$2" --root "$3" create --bundle "$4" "$5"'
    err_path = os.path.join(run.work_dir, "create-ro.err")
    with open(err_path, "w") as err:  # a file, not a pipe: the created init keeps create's stdio
        p = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
                            os.path.dirname(runtime), runtime, run.root, bundle.path, cid],
                           stdin=subprocess.DEVNULL, stdout=err, stderr=err, env=run.env, timeout=30)
    assert p.returncode == 0, helpers.read(err_path)
    exe = proc_1_exe_after_write_attempts(run, cid)
    # The binary itself, named from the root of its mount (which the container cannot reach): not a memfd.
    assert exe == "/" + os.path.basename(runtime), f"/proc/1/exe leads to {exe}"
    run.ok("delete", "--force", cid)
    assert sha256(runtime) == before, "the runtime binary changed"


@pytest.mark.parametrize("fd", range(3, 31))
def test_cwd_through_a_leaked_fd_never_reaches_the_host(run, bundle, cid, fd):
    """CVE-2024-21626 class: process.cwd of /proc/self/fd/N must not land in a host directory."""
    bundle.config["process"]["cwd"] = f"/proc/self/fd/{fd}"
    bundle.args("sh", "-c", "pwd; ls")
    r = run("run", "--bundle", bundle, cid)
    if r.code == 0:
        cwd = r.out.splitlines()[0]
        assert cwd.startswith("/proc/self/fd/") or cwd == "/", cwd
        assert "(unreachable)" not in r.out
    else:
        assert "cwd" in r.err


def test_masking_refuses_a_fake_dev_null(run, bundle, cid, assert_no_leaks):
    """CVE-2025-31133 class: with /dev from the image, /dev/null may be anything; masking must not bind it."""
    bundle.config["mounts"] = [m for m in bundle.config["mounts"] if not m["destination"].startswith("/dev")]
    dev = os.path.join(bundle.rootfs, "dev")
    os.makedirs(dev, exist_ok=True)
    os.symlink("/proc/sys/kernel/core_pattern", os.path.join(dev, "null"))
    bundle.config["linux"]["maskedPaths"] = ["/proc/kcore", "/proc/keys"]
    bundle.args("true")
    r = run("run", "--bundle", bundle, cid)
    assert r.code == 1
    assert "not the null device" in r.err
    assert_no_leaks()


def test_mount_destination_symlink_to_proc_is_refused(run, bundle, cid, work_dir):
    """A bind mount whose destination leads onto procfs would redirect writes pea or the host make there."""
    os.symlink("/proc/self", os.path.join(bundle.rootfs, "sneaky"))
    bundle.mount("/sneaky/attr", None, work_dir, ["bind"])
    bundle.args("true")
    r = run("run", "--bundle", bundle, cid)
    assert r.code == 1
    assert "resolves onto procfs: refused" in r.err


# ---- mount destinations (CVE-2021-30465 class) --------------------------------------------------------------------

@pytest.fixture
def mount_source(tmp_path):
    """A directory to bind into containers, holding a marker file."""
    d = tmp_path / "source"
    d.mkdir()
    (d / "marker").write_text("from the mount\n")
    return str(d)


def host_view_hook(log):
    """A createContainer hook: it runs in the container's mount namespace after pea's mounts and before pivot_root,
    the one moment a mount that escaped the rootfs is still visible. It appends that namespace's mountinfo to LOG."""
    return {"path": "/bin/sh", "args": ["sh", "-c", f"cat /proc/self/mountinfo >> {log}"]}


def mount_points_in(mountinfo_text):
    return {helpers.unescape_mount_field(line.split()[4]) for line in mountinfo_text.splitlines() if line.strip()}


@pytest.mark.parametrize("link", ["/etc", "../../..", "HOST"], ids=["etc", "dotdot", "absolute-host-path"])
def test_mount_destination_symlink_lands_in_the_rootfs(run, bundle, cid, tmp_path, work_dir, mount_source, link):
    """A destination whose first component is a symlink in the image, to /etc, up and out with .., or to a host
    directory by its absolute path: the mount is resolved inside the rootfs and lands there."""
    host_dir = tmp_path / "host-target"
    host_dir.mkdir()
    target = str(host_dir) if link == "HOST" else link
    os.symlink(target, os.path.join(bundle.rootfs, "link"))
    name = f"pea-target-{os.path.basename(work_dir)}"
    bundle.mount(f"/link/{name}", None, mount_source, ["bind"])
    log = os.path.join(work_dir, "mountinfo")
    bundle.config["hooks"] = {"createContainer": [host_view_hook(log)]}
    # Inside the rootfs the symlink leads to /etc/NAME, /NAME (.. stops at the root) or HOST_DIR/NAME; followed on
    # the host it would lead to OUTSIDE.
    inside = os.path.join("/" if link == "../../.." else target, name)
    outside = os.path.normpath(os.path.join(bundle.rootfs, link, name)) if link == "../../.." else inside
    bundle.args("cat", f"{inside}/marker")
    try:
        r = run("run", "--bundle", bundle, cid)
        assert not os.path.exists(outside), f"the runtime created {outside} on the host"
    finally:
        if os.path.isdir(outside) and not outside.startswith(str(tmp_path)):
            os.rmdir(outside)
    assert r.code == 0, r.err
    assert r.out == "from the mount\n"
    points = mount_points_in(helpers.read(log))
    assert os.path.join(bundle.rootfs, inside.lstrip("/")) in points
    assert outside not in points, f"the mount landed on the host at {outside}"
    assert os.listdir(host_dir) == []


# Swaps the directory REAL and a symlink to HOST back and forth with renameat2(RENAME_EXCHANGE), so that REAL is
# always one or the other and never missing, until STOP exists.
SWAPPER = r"""
import ctypes, os, sys
real, link, host, stop = sys.argv[1:]
os.symlink(host, link)
libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD, RENAME_EXCHANGE = -100, 2
while not os.path.exists(stop):
    for _ in range(1000):
        if libc.renameat2(AT_FDCWD, real.encode(), AT_FDCWD, link.encode(), RENAME_EXCHANGE) != 0:
            sys.exit(f"renameat2: {os.strerror(ctypes.get_errno())}")
"""


def test_racing_rename_cannot_move_a_mount_out(run, bundle, cid, tmp_path, work_dir, mount_source):
    """While containers are created, another process keeps swapping a directory on the destination's path for a
    symlink to a host directory. No run may put the mount on the host directory: each one either runs with the
    mount inside its rootfs or fails with one clean line."""
    host_dir = tmp_path / "host-victim"
    (host_dir / "target").mkdir(parents=True)
    real = os.path.join(bundle.rootfs, "a", "b")
    os.makedirs(os.path.join(real, "target"))
    bundle.mount("/a/b/target", None, mount_source, ["bind"])
    log = os.path.join(work_dir, "mountinfo")
    bundle.config["hooks"] = {"createContainer": [host_view_hook(log)]}
    bundle.args("sh", "-c", "grep -c ' /[^ ]*target ' /proc/self/mountinfo; exit 0")
    bundle.save()
    stop = os.path.join(work_dir, "stop")
    swapper = subprocess.Popen([sys.executable, "-c", SWAPPER, real, real + ".link", str(host_dir), stop])
    outcomes = {"ran": 0, "refused": 0}
    try:
        for i in range(50):
            r = run("run", "--bundle", bundle.path, f"{cid}-{i}")
            if r.code == 0:
                assert r.out == "1\n", f"run {i}: the mount is not inside the container: {r.out!r}"
                outcomes["ran"] += 1
            else:
                lines = [line for line in r.err.splitlines() if line.strip()]
                assert r.code == 1 and len(lines) == 1 and lines[0].startswith("pea: "), f"run {i}: {r}"
                outcomes["refused"] += 1
                run("delete", "--force", f"{cid}-{i}")
            assert not os.path.exists(host_dir / "target" / "marker"), f"run {i}: the mount reached the host dir"
    finally:
        open(stop, "w").close()
        code = swapper.wait(timeout=10)
    assert code == 0, "the swapper stopped early: the race was not run"
    assert sorted(os.listdir(host_dir)) == ["target"] and os.listdir(host_dir / "target") == []
    points = mount_points_in(helpers.read(log))
    assert str(host_dir / "target") not in points, "a mount landed on the host directory"
    assert outcomes["ran"] > 0, f"no run got through the race: {outcomes}"


# ---- writes into procfs (CVE-2025-52881 class) --------------------------------------------------------------------

FAKE_PROC_FILES = ["oom_score_adj", "self/oom_score_adj", "1/oom_score_adj", "thread-self/attr/current",
                   "self/attr/exec", "self/attr/apparmor/exec", "sys/net/ipv4/ip_forward", "sys/kernel/domainname"]


def make_fake_proc(path):
    for name in FAKE_PROC_FILES:
        os.makedirs(os.path.dirname(os.path.join(path, name)), exist_ok=True)
        with open(os.path.join(path, name), "w") as f:
            f.write(f"fake {name}\n")


def fake_proc_contents(path):
    return {name: helpers.read(os.path.join(path, name)) for name in FAKE_PROC_FILES}


@pytest.mark.parametrize("how", ["symlink", "bind"])
def test_procfs_writes_cannot_be_redirected(run, bundle, cid, tmp_path, how):
    """The image's /proc is a symlink to a fake tree, or the config binds a fake tree over /proc: oomScoreAdj and
    sysctls must still reach the kernel for the container's process, and the fake files stay untouched."""
    bundle.config["mounts"] = [m for m in bundle.config["mounts"] if m["destination"] != "/proc"]
    if how == "symlink":
        fake = os.path.join(bundle.rootfs, "fakeproc")
        os.rmdir(os.path.join(bundle.rootfs, "proc"))
        os.symlink("/fakeproc", os.path.join(bundle.rootfs, "proc"))
    else:
        fake = str(tmp_path / "fakeproc")
        bundle.mount("/proc", None, fake, ["rbind"])
    make_fake_proc(fake)
    before = fake_proc_contents(fake)
    bundle.config["linux"]["readonlyPaths"] = []  # a read-only /proc/sys would blunt the redirection
    bundle.process["oomScoreAdj"] = 123
    bundle.config["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.domainname": "real.example"}
    bundle.args("true")
    run.ok("create", "--bundle", bundle, cid)
    pid = run.state(cid)["pid"]
    assert helpers.read(f"/proc/{pid}/oom_score_adj") == "123\n"
    seen = subprocess.run(["nsenter", "-t", str(pid), "--net", "--uts", "cat", "/proc/sys/net/ipv4/ip_forward",
                           "/proc/sys/kernel/domainname"], capture_output=True, text=True, timeout=10)
    assert seen.stdout == "1\nreal.example\n", seen.stderr
    run.ok("delete", "--force", cid)
    assert fake_proc_contents(fake) == before, "pea wrote into the fake /proc"


# ---- AppArmor and SELinux ------------------------------------------------------------------------------------------

def is_apparmor_enabled():
    try:
        return helpers.read("/sys/module/apparmor/parameters/enabled").startswith("Y") and \
            os.path.exists("/sys/kernel/security/apparmor")
    except OSError:
        return False


def is_selinux_enabled():
    return os.path.exists("/sys/fs/selinux/enforce")


LSM_FIELDS = [
    ("apparmor", lambda c: c["process"].update(apparmorProfile="pea-test-profile"), is_apparmor_enabled,
     'apparmorProfile "pea-test-profile" ignored: AppArmor is not enabled on this host'),
    ("selinux", lambda c: c["process"].update(selinuxLabel="system_u:system_r:container_t:s0"), is_selinux_enabled,
     'selinuxLabel "system_u:system_r:container_t:s0" ignored: SELinux is not enabled on this host'),
    ("mount-label", lambda c: c["linux"].update(mountLabel="system_u:object_r:container_file_t:s0"),
     is_selinux_enabled, 'mountLabel "system_u:object_r:container_file_t:s0" ignored: SELinux is not enabled'
                         ' on this host'),
]


@pytest.mark.parametrize("edit,is_enabled,warning", [c[1:] for c in LSM_FIELDS], ids=[c[0] for c in LSM_FIELDS])
def test_lsm_label_without_the_lsm_warns_once_and_runs(run, bundle, cid, edit, is_enabled, warning):
    """As runc: a label for an LSM the host does not run is not applied, with one warning, and the container runs."""
    if is_enabled():
        pytest.skip("the LSM is enabled on this host")
    edit(bundle.config)
    bundle.args("echo", "ran")
    r = run("run", "--bundle", bundle, cid)
    assert r.code == 0, r.err
    assert r.out == "ran\n"
    assert r.err == f"pea: warning: {warning}\n"


def test_missing_apparmor_profile_fails_create(run, bundle, cid, assert_no_leaks):
    if not is_apparmor_enabled():
        pytest.skip("AppArmor is not enabled on this host")
    bundle.config["process"]["apparmorProfile"] = "pea-no-such-profile"
    bundle.args("true")
    r = run("create", "--bundle", bundle, cid)
    assert r.code == 1
    lines = r.err.splitlines()
    assert len(lines) == 1 and "pea-no-such-profile" in lines[0], r.err
    assert_no_leaks()
