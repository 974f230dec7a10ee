"""The mount options idmap and ridmap in a user namespace: the runtime clones the source with its own rights in the
container's mount namespace and shows it through the container's id mappings, so a host file of uid N is uid N
inside; an idmapped bind on "/" becomes the root, reached through the fd the runtime sends even when the mapped
root could not search the path to it."""
import os

import pytest

import helpers

pytestmark = pytest.mark.pea_only

HOST_START = 100000


@pytest.fixture
def idmap_bundle(work_dir, binaries, test_mark):
    """A bundle below a 0700 directory (the container's mapped root cannot search it), uid/gid 0 → 100000."""
    private = os.path.join(work_dir, "private")
    os.makedirs(private, mode=0o700)
    os.chmod(private, 0o700)
    bundle = helpers.Bundle(os.path.join(private, "bundle"), binaries, test_mark)
    bundle.add_namespace("user")
    for key in ("uidMappings", "gidMappings"):
        bundle.config["linux"][key] = [{"containerID": 0, "hostID": HOST_START, "size": 65536}]
    bundle.config["mounts"].insert(0, {"destination": "/", "type": "bind", "source": bundle.rootfs,
                                       "options": ["rbind", "ridmap"]})
    return bundle


def test_idmapped_root_and_bind_show_host_owners(run, idmap_bundle, cid, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "alice").write_text("a\n")
    os.chown(data / "alice", 1000, 1000)
    idmap_bundle.mount("/data", "bind", str(data), ["rbind", "ridmap"])
    idmap_bundle.args("sh", "-c", "cat /proc/self/uid_map; stat -c '%u %g' /bin/busybox /data/alice; "
                                  "echo x > /data/new; echo done")
    r = run("run", "--bundle", idmap_bundle, cid)
    assert r.code == 0, r.err
    out = r.out.splitlines()
    assert [int(x) for x in out[0].split()] == [0, HOST_START, 65536], r.out
    # The rootfs belongs to host root: root inside, through the idmapped root mount.
    assert out[1:] == ["0 0", "1000 1000", "done"], r.out
    st = os.stat(data / "new")
    assert (st.st_uid, st.st_gid) == (0, 0)


def test_without_idmap_the_root_is_not_reachable_from_the_user_namespace(run, idmap_bundle, cid):
    """The same bundle with a plain root: the mapped root cannot search the 0700 directory above it."""
    idmap_bundle.config["mounts"].pop(0)
    idmap_bundle.args("true")
    r = run("run", "--bundle", idmap_bundle, cid)
    assert r.code != 0
    assert "Permission denied" in r.err, r.err


def test_a_filesystem_that_cannot_be_idmapped_fails_closed(run, idmap_bundle, cid):
    """What a pod's tmpfs volumes meet on Linux before 6.3: no bind without the ids asked for."""
    idmap_bundle.mount("/k", "bind", "/sys/kernel", ["rbind", "ridmap"])
    idmap_bundle.args("true")
    r = run("run", "--bundle", idmap_bundle, cid)
    assert r.code != 0
    assert ("mount bind on /k: idmap /sys/kernel (its filesystem cannot be idmapped on this kernel): "
            "Invalid argument") in r.err, r.err
