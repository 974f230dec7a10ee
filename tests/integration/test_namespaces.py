"""Namespaces: new ones, the host's when one is left out, joined by path, user namespaces with id maps, time."""
import os

import pytest

import helpers
from helpers import parse_kv


def host_ns(kind):
    return os.readlink(f"/proc/self/ns/{kind}")


def run_ns(run, bundle, cid):
    bundle.args("peatest", "ns")
    r = run("run", "--bundle", bundle, cid)
    assert r.code == 0, r.err
    return parse_kv(r.out)


def test_listed_namespaces_are_new(run, bundle, cid):
    seen = run_ns(run, bundle, cid)
    for kind in ("pid", "net", "mnt", "ipc", "uts"):
        assert seen[kind] != host_ns(kind), kind


def test_unlisted_namespaces_are_the_hosts(run, bundle, cid):
    bundle.config["linux"]["namespaces"] = [{"type": "pid"}, {"type": "mount"}]
    del bundle.config["hostname"]  # a hostname needs a private uts namespace
    seen = run_ns(run, bundle, cid)
    for kind in ("net", "ipc", "uts", "user"):
        assert seen[kind] == host_ns(kind), kind


def test_join_namespaces_by_path(run, bundle, cid, tmp_path, binaries, test_mark, wait_for_status):
    bundle.args("peatest", "sleep", "100")
    run.ok("create", "--bundle", bundle, cid)
    first_pid = run.state(cid)["pid"]

    second = helpers.Bundle(str(tmp_path / "second"), binaries, test_mark)
    second.config["linux"]["namespaces"] = [
        {"type": "pid"}, {"type": "mount"},
        {"type": "network", "path": f"/proc/{first_pid}/ns/net"},
        {"type": "ipc", "path": f"/proc/{first_pid}/ns/ipc"},
        {"type": "uts", "path": f"/proc/{first_pid}/ns/uts"},
    ]
    seen = run_ns(run, second, cid + "-second")
    for kind in ("net", "ipc", "uts"):
        assert seen[kind] == os.readlink(f"/proc/{first_pid}/ns/{kind}"), kind
    assert seen["pid"] != os.readlink(f"/proc/{first_pid}/ns/pid")


@pytest.fixture
def userns_bundle(session_dir, work_dir, binaries, test_mark):
    """A bundle whose path a mapped (unprivileged on the host) root can traverse, with uid/gid 0 → 100000."""
    for d in (session_dir, work_dir):
        os.chmod(d, 0o711)
    bundle = helpers.Bundle(os.path.join(work_dir, "bundle"), binaries, test_mark)
    os.chmod(bundle.path, 0o711)
    bundle.add_namespace("user")
    bundle.config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    bundle.config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    return bundle


def test_user_namespace_with_id_maps(run, userns_bundle, cid):
    userns_bundle.args("sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map; peatest ids; stat -c %u /bin/busybox")
    r = run("run", "--bundle", userns_bundle, cid)
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[0].split() == ["0", "100000", "65536"]
    assert lines[1].split() == ["0", "100000", "65536"]
    ids = parse_kv("\n".join(lines[2:-1]))
    assert (ids["uid"], ids["gid"]) == ("0", "0")
    assert lines[-1] == "65534", "host root's files show as the overflow uid inside"


def test_user_namespace_process_is_unprivileged_on_the_host(run, userns_bundle, cid, wait_for_status):
    userns_bundle.args("peatest", "sleep", "100")
    run.ok("create", "--bundle", userns_bundle, cid)
    pid = run.state(cid)["pid"]
    run.ok("start", cid)
    wait_for_status(cid, "running")
    with open(f"/proc/{pid}/status") as f:
        status = f.read()
    uids = [line for line in status.splitlines() if line.startswith("Uid:")][0].split()[1:]
    assert uids == ["100000"] * 4
    assert os.readlink(f"/proc/{pid}/ns/user") != host_ns("user")


@pytest.mark.pea_only  # runc 1.1 has no time namespace support
def test_time_namespace_offsets(run, bundle, cid):
    bundle.add_namespace("time")
    bundle.config["linux"]["timeOffsets"] = {"monotonic": {"secs": 10 * 365 * 86400, "nanosecs": 0},
                                             "boottime": {"secs": 10 * 365 * 86400, "nanosecs": 0}}
    bundle.args("cat", "/proc/uptime")
    r = run("run", "--bundle", bundle, cid)
    assert r.code == 0, r.err
    assert float(r.out.split()[0]) > 9 * 365 * 86400
