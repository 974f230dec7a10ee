"""The root filesystem: each mount type, default /dev, masked and read-only paths, a read-only root."""
import os
import uuid

import pytest

from helpers import parse_kv


def mountinfo(text):
    """Container mountinfo → {mount point: (fs type, per-mount options set, super options set)}; last one wins."""
    mounts = {}
    for line in text.splitlines():
        fields = line.split()
        sep = fields.index("-")
        mounts[fields[4]] = (fields[sep + 1], set(fields[5].split(",")), set(fields[sep + 3].split(",")))
    return mounts


def run_sh(run, bundle, cid, script):
    bundle.args("sh", "-c", script)
    r = run("run", "--bundle", bundle, cid)
    assert r.code == 0, f"exit {r.code}: {r.err}"
    return r.out


def container_mounts(run, bundle, cid):
    return mountinfo(run_sh(run, bundle, cid, "cat /proc/self/mountinfo"))


@pytest.fixture
def host_dir(tmp_path):
    d = tmp_path / "host"
    d.mkdir()
    (d / "from-host").write_text("host data\n")
    return d


def test_bind_rw(run, bundle, cid, host_dir):
    bundle.mount("/data", "bind", str(host_dir), ["rbind", "rw"])
    out = run_sh(run, bundle, cid, "cat /data/from-host; echo written > /data/from-container")
    assert out == "host data\n"
    assert (host_dir / "from-container").read_text() == "written\n"


def test_bind_ro(run, bundle, cid, host_dir):
    bundle.mount("/data", "bind", str(host_dir), ["bind", "ro"])
    out = run_sh(run, bundle, cid, "cat /data/from-host; peatest write /data/new")
    assert out == "host data\nEROFS\n"
    assert not (host_dir / "new").exists()


def test_bind_of_a_file(run, bundle, cid, host_dir):
    bundle.mount("/etc/injected", "bind", str(host_dir / "from-host"), ["bind", "ro"])
    assert run_sh(run, bundle, cid, "cat /etc/injected") == "host data\n"


def test_tmpfs_size_and_mode(run, bundle, cid):
    bundle.mount("/scratch", "tmpfs", "tmpfs", ["nosuid", "nodev", "size=1m", "mode=0710"])
    out = run_sh(run, bundle, cid,
                 "stat -c '%a' /scratch; cat /proc/self/mountinfo > /tmp/mi;"
                 "dd if=/dev/zero of=/scratch/big bs=1k count=2048 2>/dev/null && echo fits || echo full")
    mode, verdict = out.split()
    assert mode == "710"
    assert verdict == "full", "a 1m tmpfs must not hold 2 MiB"
    fstype, opts, super_opts = mountinfo(open(os.path.join(bundle.rootfs, "tmp", "mi")).read())["/scratch"]
    assert fstype == "tmpfs"
    assert {"nosuid", "nodev"} <= opts
    assert "size=1024k" in super_opts and "mode=710" in super_opts


def test_missing_destinations_are_created(run, bundle, cid):
    bundle.mount("/new/deep/dir", "tmpfs", "tmpfs", ["size=1m"])
    mounts = container_mounts(run, bundle, cid)
    assert mounts["/new/deep/dir"][0] == "tmpfs"
    assert os.path.isdir(os.path.join(bundle.rootfs, "new", "deep", "dir"))


def test_mounts_apply_in_order(run, bundle, cid, host_dir):
    bundle.mount("/layer", "tmpfs", "tmpfs", ["size=1m"])
    bundle.mount("/layer/inner", "bind", str(host_dir), ["bind"])
    assert run_sh(run, bundle, cid, "cat /layer/inner/from-host") == "host data\n"


def test_proc(run, bundle, cid):
    bundle.args("peatest", "pid")
    assert parse_kv(run.ok("run", "--bundle", bundle, cid).out)["pid"] == "1", "proc shows the container's pids"
    assert container_mounts(run, bundle, cid + "-2")["/proc"][0] == "proc"


def test_sysfs_read_only(run, bundle, cid):
    mounts = container_mounts(run, bundle, cid)
    fstype, opts, _ = mounts["/sys"]
    assert fstype == "sysfs" and "ro" in opts


def test_devpts_and_mqueue(run, bundle, cid):
    mounts = container_mounts(run, bundle, cid)
    fstype, _, super_opts = mounts["/dev/pts"]
    assert fstype == "devpts"
    assert "ptmxmode=666" in super_opts and "mode=620" in super_opts and "gid=5" in super_opts
    assert mounts["/dev/mqueue"][0] == "mqueue"
    assert mounts["/dev/shm"][0] == "tmpfs"


def test_cgroup2_in_a_cgroup_namespace(run, bundle, cid):
    bundle.add_namespace("cgroup")
    bundle.mount("/sys/fs/cgroup", "cgroup2", "cgroup2", ["nosuid", "noexec", "nodev", "ro"])
    out = run_sh(run, bundle, cid, "cat /proc/self/cgroup; cat /proc/self/mountinfo")
    assert "0::/\n" in out, "inside its cgroup namespace the container sees itself at the root"
    mounts = mountinfo("\n".join(line for line in out.splitlines() if " - " in line))
    fstype, opts, _ = mounts["/sys/fs/cgroup"]
    assert fstype == "cgroup2" and "ro" in opts


def test_default_devices(run, bundle, cid):
    out = run_sh(run, bundle, cid,
                 "for d in null zero full random urandom tty; do echo $d $(stat -c '%F %t:%T' /dev/$d); done;"
                 "for l in fd stdin stdout stderr; do readlink /dev/$l; done; echo x > /dev/null && echo null-ok")
    lines = out.splitlines()
    devices = {line.split()[0]: line.split(" ", 1)[1] for line in lines[:6]}
    # stat prints major:minor in hex.
    expected = {"null": "1:3", "zero": "1:5", "full": "1:7", "random": "1:8", "urandom": "1:9", "tty": "5:0"}
    for name, numbers in expected.items():
        assert devices[name] == f"character special file {numbers}", name
    assert lines[6:10] == ["/proc/self/fd", "/proc/self/fd/0", "/proc/self/fd/1", "/proc/self/fd/2"]
    assert lines[10] == "null-ok"


def test_dev_ptmx_reaches_the_container_devpts(run, bundle, cid):
    out = run_sh(run, bundle, cid, "readlink /dev/ptmx || stat -c '%t:%T' /dev/ptmx")
    assert out.strip() in ("pts/ptmx", "/dev/pts/ptmx", "5:2")


def test_linux_devices(run, bundle, cid):
    bundle.config["linux"]["devices"] = [
        {"type": "c", "path": "/dev/extra-null", "major": 1, "minor": 3, "fileMode": 0o640, "uid": 0, "gid": 0}]
    bundle.config["linux"]["resources"]["devices"].append({"allow": True, "type": "c", "major": 1, "minor": 3,
                                                           "access": "rwm"})
    out = run_sh(run, bundle, cid, "stat -c '%F %t:%T %a' /dev/extra-null")
    assert out == "character special file 1:3 640\n"


def test_masked_paths(run, bundle, cid):
    os.makedirs(os.path.join(bundle.rootfs, "secret-dir"))
    for path in ("secret-file", "secret-dir/inside"):
        with open(os.path.join(bundle.rootfs, path), "w") as f:
            f.write("do not read\n")
    bundle.config["linux"]["maskedPaths"] += ["/secret-file", "/secret-dir", "/does/not/exist"]
    out = run_sh(run, bundle, cid, "peatest read /secret-file; ls -A /secret-dir | wc -l; peatest read /proc/keys;"
                                    "ls -A /sys/firmware | wc -l")
    assert out.split() == ["size", "0", "0", "size", "0", "0"]


def test_readonly_paths(run, bundle, cid):
    os.makedirs(os.path.join(bundle.rootfs, "frozen"))
    bundle.config["linux"]["readonlyPaths"] += ["/frozen", "/does/not/exist"]
    out = run_sh(run, bundle, cid, "peatest write /frozen/x; peatest write /tmp/x; peatest write /proc/sys/kernel/domainname")
    assert out.split() == ["EROFS", "ok", "EROFS"]


def test_root_readonly(run, bundle, cid):
    bundle.config["root"]["readonly"] = True
    out = run_sh(run, bundle, cid, "peatest write /x; peatest write /tmp/x; peatest write /dev/shm/x")
    assert out.split() == ["EROFS", "EROFS", "ok"], "the root is read-only, mounts on it are not"


def test_root_path_relative_to_the_bundle(run, bundle, cid):
    os.rename(bundle.rootfs, os.path.join(bundle.path, "other-root"))
    bundle.config["root"]["path"] = "other-root"
    assert run_sh(run, bundle, cid, "echo ok") == "ok\n"


def test_destination_through_a_symlink_stays_in_the_rootfs(run, bundle, cid):
    """A symlink in the image pointing at / must resolve to the container's /, never the host's."""
    name = f"pea-escape-{uuid.uuid4().hex[:8]}"
    os.symlink("/", os.path.join(bundle.rootfs, "evil"))
    bundle.mount(f"/evil/{name}", "tmpfs", "tmpfs", ["size=1m"])
    try:
        mounts = container_mounts(run, bundle, cid)
        assert mounts[f"/{name}"][0] == "tmpfs"
        assert os.path.isdir(os.path.join(bundle.rootfs, name))
    finally:
        assert not os.path.exists(f"/{name}"), f"the runtime created /{name} on the host"


def test_sysctl(run, bundle, cid):
    bundle.config["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.domainname": "sysctl.example"}
    out = run_sh(run, bundle, cid, "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/domainname")
    assert out == "1\nsysctl.example\n"
