"""spec.hostUsers: false as the kubelet makes it: the pod in a user namespace of its own, 65536 ids from a block no
other pod on the machine holds, root inside an unprivileged uid on the host, every volume idmapped (a host file of uid N shows as
N inside), the block given back with the pod, and procMount: Unmasked allowed only there."""
import json
import os

import pytest

from pods import container, ps

pytestmark = pytest.mark.pea_only

BLOCKS = "/run/pea/userns"


def pod(pods, containers, volumes=None, **spec):
    name = pods.name()
    doc = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
           "spec": dict({"restartPolicy": "Never", "terminationGracePeriodSeconds": 1, "containers": containers,
                         "hostUsers": False}, **spec)}
    if volumes:
        doc["spec"]["volumes"] = volumes
    for c in containers:
        c.setdefault("env", []).append({"name": "PEA_IT_MARK", "value": pods.mark})
    path = os.path.join(pods.work_dir, f"{name}.json")
    with open(path, "w") as f:
        json.dump(doc, f)
    return name, path


def run(pods, path):
    return pods.cli("pod", "run", "-f", path, "--data-root", pods.data)


def lines(out, name="a"):
    prefix = f"[{name}] "
    return [line[len(prefix):] for line in out.splitlines() if line.startswith(prefix)]


def mapping(text):
    return [int(x) for x in text.split()]


def test_root_inside_is_an_unprivileged_uid_outside(pods):
    _, path = pod(pods, [container("a", pods.rootfs, "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map")])
    code, out, err = run(pods, path)
    assert code == 0, err
    got = lines(out)
    assert got[:2] == ["0", "0"], out
    uid_inside, uid_host, uid_size = mapping(got[2])
    gid_inside, gid_host, gid_size = mapping(got[3])
    # Kubernetes: 65536 ids, starting at a multiple of 65536, never host root's.
    assert (uid_inside, uid_size) == (0, 65536) and (gid_inside, gid_size) == (0, 65536), out
    assert uid_host > 0 and uid_host % 65536 == 0 and gid_host > 0 and gid_host % 65536 == 0, out
    assert pods.leftovers() == []


def test_idmapped_host_path_shows_host_owners_and_root_inside_is_not_host_root(pods, tmp_path):
    host = tmp_path / "shared"
    host.mkdir()
    (host / "alice").write_text("alice\n")
    os.chown(host / "alice", 1000, 1000)
    # Outside the pod's 65536 ids: host root may read it, the pod's root may not.
    (host / "outsider").write_text("secret\n")
    os.chown(host / "outsider", 100000, 100000)
    os.chmod(host / "outsider", 0o600)
    script = ("stat -c '%u %g %n' /h/alice /h/outsider; cat /h/outsider && echo READ; "
              "echo x >> /h/outsider && echo WROTE; echo mine > /h/new; echo done")
    _, path = pod(pods, [container("a", pods.rootfs, script,
                                   volumeMounts=[{"name": "h", "mountPath": "/h"}])],
                  volumes=[{"name": "h", "hostPath": {"path": str(host), "type": "Directory"}}])
    code, out, err = run(pods, path)
    assert code == 0, err
    got = lines(out)
    assert "1000 1000 /h/alice" in got, out
    assert "65534 65534 /h/outsider" in got, out
    assert "READ" not in got and "WROTE" not in got and got[-1] == "done", out
    assert (host / "outsider").read_text() == "secret\n"
    # Written as root inside: root's on the host disk, through the idmapped mount.
    st = os.stat(host / "new")
    assert (st.st_uid, st.st_gid) == (0, 0)
    assert pods.leftovers() == []


def test_pod_volumes_show_as_root_inside(pods):
    script = "stat -c '%u %g %n' /e /c/k /s/k; echo hi > /e/f && stat -c '%u %n' /e/f"
    _, path = pod(pods, [container("a", pods.rootfs, script, volumeMounts=[
        {"name": "e", "mountPath": "/e"}, {"name": "c", "mountPath": "/c"}, {"name": "s", "mountPath": "/s"}])],
        volumes=[{"name": "e", "emptyDir": {}},
                 {"name": "c", "configMap": {"name": "cm"}},
                 {"name": "s", "secret": {"secretName": "sec"}}])
    cm = os.path.join(pods.work_dir, "cm.json")
    with open(cm, "w") as f:
        json.dump({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"k": "v"}}, f)
    sec = os.path.join(pods.work_dir, "sec.json")
    with open(sec, "w") as f:
        json.dump({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sec"}, "stringData": {"k": "v"}}, f)
    code, out, err = pods.cli("pod", "run", "-f", path, "--configmap", cm, "--secret", sec,
                              "--data-root", pods.data)
    assert code == 0, err
    got = lines(out)
    assert got[:3] == ["0 0 /e", "0 0 /c/k", "0 0 /s/k"], out
    assert got[3] == "0 /e/f", out
    assert pods.leftovers() == []


def test_an_image_of_layers_shows_its_owners_and_takes_writes(pods):
    """The root overlay over idmapped lower layers: the image's files are root's (and 1000's) inside, and the
    container's root changes them (copy-up into an upper layer owned by the pod's root)."""
    top = os.path.join(pods.work_dir, "layer")
    os.makedirs(os.path.join(top, "srv"), exist_ok=True)
    with open(os.path.join(top, "srv", "alice"), "w") as f:
        f.write("a\n")
    os.chown(os.path.join(top, "srv", "alice"), 1000, 1000)
    script = ("stat -c '%u %g %n' /bin/busybox /srv/alice; echo changed >> /etc/passwd && echo APPENDED; "
              "touch /srv/new && stat -c '%u %n' /srv/new")
    _, path = pod(pods, [container("a", [pods.rootfs, top], script)])
    code, out, err = run(pods, path)
    assert code == 0, err
    assert lines(out) == ["0 0 /bin/busybox", "1000 1000 /srv/alice", "APPENDED", "0 /srv/new"], out
    # The layers are untouched.
    with open(os.path.join(pods.rootfs, "etc", "passwd")) as f:
        assert "changed" not in f.read()
    assert os.stat(os.path.join(top, "srv", "alice")).st_uid == 1000
    assert pods.leftovers() == []


def test_two_pods_get_disjoint_ranges_released_with_the_pod(pods):
    sleeper = "cat /proc/self/uid_map; sleep 30"
    name1, path1 = pod(pods, [container("a", pods.rootfs, sleeper)])
    name2, path2 = pod(pods, [container("a", pods.rootfs, sleeper)])
    starts = []
    for name, path in ((name1, path1), (name2, path2)):
        code, out, err = pods.cli("pod", "apply", "-f", path, "--data-root", pods.data)
        assert code == 0, err
        state = pods.state(name)
        starts.append(state["userns"]["uidStart"])
        # exec joins the pod's user namespace with the rest.
        code, out, err = pods.cli("pod", "exec", name, "-c", "a", "--", "sh", "-c", "id -u; cat /proc/self/uid_map")
        assert code == 0, err
        got = out.splitlines()
        assert got[0] == "0" and mapping(got[1]) == [0, state["userns"]["uidStart"], 65536], out
        # Seen from the host, the container's root is the block's first uid, with no capability of host root's.
        pid = ps(pods, name)["a"]["pid"]
        with open(f"/proc/{pid}/status") as f:
            status = dict(line.split(":", 1) for line in f.read().splitlines())
        assert status["Uid"].split() == [str(state["userns"]["uidStart"])] * 4, status["Uid"]
        assert status["Gid"].split() == [str(state["userns"]["gidStart"])] * 4, status["Gid"]
    assert starts[0] != starts[1] and abs(starts[0] - starts[1]) >= 65536, starts
    uids = {pods.state(name)["uid"] for name in (name1, name2)}
    assert len(held_blocks(uids)) == 2
    for name in (name1, name2):
        code, out, err = pods.cli("pod", "rm", "--force", name)
        assert code == 0, err
    assert held_blocks(uids) == []
    assert pods.leftovers() == []


def held_blocks(pod_uids):
    """The blocks under /run/pea/userns (one machine-wide register) held by these pods."""
    held = []
    for entry in os.listdir(BLOCKS):
        try:
            with open(os.path.join(BLOCKS, entry)) as f:
                if f.read().strip() in pod_uids:
                    held.append(int(entry))
        except FileNotFoundError:
            pass  # another pod's, released meanwhile
    return held


def test_proc_mount_unmasked_only_with_own_users(pods):
    # maskedPaths and readonlyPaths are mounts over parts of /proc; Unmasked has none.
    probe = "grep -c ' /proc/' /proc/self/mountinfo || true"
    _, path = pod(pods, [container("a", pods.rootfs, probe, securityContext={"procMount": "Unmasked"}),
                         container("b", pods.rootfs, probe)])
    code, out, err = run(pods, path)
    assert code == 0, err
    assert lines(out, "a") == ["0"], out
    assert int(lines(out, "b")[0]) > 0, out
    assert pods.leftovers() == []


def test_each_container_has_its_own_pid_namespace_or_the_pods(pods):
    """A member's own pid namespace belongs to the pod's user namespace (its /proc mounts there); with
    shareProcessNamespace the members share the infra's."""
    # "$$$$": Kubernetes turns "$$" into "$" in a command.
    script = "echo $$$$; ps -o comm | grep -c pea-pause || true"
    _, path = pod(pods, [container("a", pods.rootfs, script), container("b", pods.rootfs, script)])
    code, out, err = run(pods, path)
    assert code == 0, err
    assert lines(out, "a") == ["1", "0"] and lines(out, "b") == ["1", "0"], out
    _, path = pod(pods, [container("a", pods.rootfs, script)], shareProcessNamespace=True)
    code, out, err = run(pods, path)
    assert code == 0, err
    got = lines(out)
    assert got[0] != "1" and got[1] == "1", out
    assert pods.leftovers() == []


def test_a_container_that_cannot_start_is_reported(pods):
    """The init cloned inside the pod's user namespace is still pea's child: its failure comes back, not a hang."""
    c = container("a", pods.rootfs, "true")
    c["command"] = ["/no/such/program"]
    _, path = pod(pods, [c])
    code, out, err = run(pods, path)
    assert code != 0
    assert "container a" in err or "a: failed to start" in err, err
    assert "no/such/program" in err, err
    assert pods.leftovers() == []
