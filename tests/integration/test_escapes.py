"""Attacks from inside a container that earlier runtimes fell to; each must fail here."""
import hashlib
import os

import pytest

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


def test_runtime_binary_cannot_be_reached_through_proc_exe(run, runtime, bundle, cid):
    """CVE-2019-5736 class: until `start`, the container's PID 1 is a copy of pea waiting to exec. A process exec'd
    into the container with every capability (CAP_SYS_PTRACE sees through non-dumpable processes) finds only a
    sealed in-memory copy behind /proc/1/exe, which cannot be written, never the host's binary."""
    before = sha256(runtime)
    caps = bundle.config["process"]["capabilities"]
    for kind in ("bounding", "effective", "permitted"):
        caps[kind] = ALL_CAPS
    bundle.args("true")
    run.ok("create", "--bundle", bundle, cid)
    r = run("exec", cid, "sh", "-c", "readlink /proc/1/exe; (: >> /proc/1/exe) && echo EXE-OPENED;"
                                     " (echo x > /proc/1/exe) && echo EXE-WRITTEN; echo done")
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[0].startswith("/memfd:pea"), f"/proc/1/exe leads to {lines[0]}"
    assert "EXE-OPENED" not in r.out and "EXE-WRITTEN" not in r.out, r.out
    assert lines[-1] == "done"
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
