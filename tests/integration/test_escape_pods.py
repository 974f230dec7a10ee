"""Escapes through the pod sandbox on the host side (issue 13, items 5 to 7): pod data and state other local users
could read and write, a joined network namespace pea changed for good, and host bridges pea attached pods to.
Network tests stay in namespaces they make; pea is pointed at those, never at the machine's own."""
import errno
import json
import os
import shutil
import subprocess
import tempfile
import uuid

import pytest

import pods as pods_module
from pods import container

pytestmark = pytest.mark.pea_only

NOBODY = 65534

def reached_paths(paths):
    """For every (path, is_dir): try to read it, write it and, for a directory, list it and plant a file and a
    symlink in it. What did not fail with EACCES."""
    reached = []

    def expect_denied(what, path, call):
        try:
            r = call()
            if isinstance(r, int):
                os.close(r)
            reached.append(f"{what} {path}: allowed")
        except PermissionError:
            pass
        except OSError as e:
            reached.append(f"{what} {path}: {errno.errorcode.get(e.errno, e.errno)}, not EACCES")

    for path, is_dir in paths:
        expect_denied("read", path, lambda: os.open(path, os.O_RDONLY | os.O_NONBLOCK))
        if is_dir:
            expect_denied("list", path, lambda: os.listdir(path))
            expect_denied("create in", path, lambda: os.open(os.path.join(path, "planted-by-nobody"),
                                                             os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            expect_denied("symlink in", path, lambda: os.symlink("/", os.path.join(path, "link-by-nobody")))
        else:
            expect_denied("write", path, lambda: os.open(path, os.O_WRONLY | os.O_NONBLOCK))
    return reached


def probe_as_nobody(paths):
    """What of PATHS an unprivileged user (nobody, no groups) could reach: empty when nothing. Checked in a forked
    child that drops to nobody for good."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(read_end)
            os.setgroups([])
            os.setresgid(NOBODY, NOBODY, NOBODY)
            os.setresuid(NOBODY, NOBODY, NOBODY)
            with os.fdopen(write_end, "w") as out:
                json.dump(reached_paths(paths), out)
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as f:
        text = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0 and text, "the probe as nobody failed"
    return json.loads(text)


def every_entry(top):
    """Every path under TOP, TOP included, as (path, is_dir), walked as root without following symlinks."""
    entries = [(top, True)]
    for dirpath, dirnames, filenames in os.walk(top):
        entries += [(os.path.join(dirpath, d), not os.path.islink(os.path.join(dirpath, d))) for d in dirnames]
        entries += [(os.path.join(dirpath, f), False) for f in filenames]
    return entries


@pytest.fixture
def open_base():
    """A directory every local user can search (as /var/lib is), for a --root and --data-root that nothing above
    hides: only pea's own modes can keep other users out of them."""
    base = tempfile.mkdtemp(prefix="pea-esc-", dir="/tmp")
    os.chmod(base, 0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def open_pods(runtime, open_base, pod_rootfs, test_mark):
    yield from pods_module.checked_pods(runtime, open_base, pod_rootfs, test_mark)


# ---- item 5: pod data and state are the user's alone ---------------------------------------------------------------

def test_nothing_under_root_or_data_root_is_reachable_by_another_user(open_pods, open_base):
    pods = open_pods
    # As an older pea (0711) or a user (0755) left them: pea makes them private.
    os.mkdir(pods.root, 0o755)
    os.makedirs(os.path.join(pods.data, "pods"), 0o711)
    os.chmod(pods.data, 0o711)
    layer = os.path.join(open_base, "layer")
    os.makedirs(os.path.join(layer, "etc"))
    with open(os.path.join(layer, "etc", "layer"), "w") as f:
        f.write("top layer\n")
    shared = [{"name": "shared", "mountPath": "/shared"}]
    user = {"runAsUser": 1000, "runAsGroup": 1000}
    m = pods.manifest(
        [container("app", [pods.rootfs, layer],
                   "cat /shared/from-init; cat /etc/layer; echo written > /tmp/secret && cat /tmp/secret; "
                   "echo secret > /shared/secret && ln -s /etc /shared/inside-link && echo ready; exec sleep 60",
                   volumeMounts=shared, securityContext=user),
         container("root", pods.rootfs, "echo root-wrote > /shared/root; exec sleep 60", volumeMounts=shared)],
        init=[container("init", pods.rootfs, "id -u > /shared/from-init", volumeMounts=shared, securityContext=user)],
        volumes=[{"name": "shared", "emptyDir": {}}])
    run = pods.start(m)
    try:
        # The pod still works for its own non-root users: the init and the app reach the emptyDir and the overlay.
        run.wait_for_line("[app] ready")
        assert "[app] 1000" in run.lines and "[app] top layer" in run.lines and "[app] written" in run.lines
        entries = every_entry(pods.root) + every_entry(pods.data)
        paths = {p for p, _ in entries}
        name = json.load(open(m))["metadata"]["name"]
        data_dir = os.path.join(pods.data, "pods", name)
        for written in ("volumes/shared/secret", "volumes/shared/inside-link", "volumes/shared/root",
                        "containers/app/upper/tmp/secret"):
            assert os.path.join(data_dir, written) in paths, f"the walk misses {written}"
        assert os.path.join(pods.root, "pods", name, "pod.json") in paths
        assert probe_as_nobody(entries) == []
    finally:
        assert run.stop() == 0, run.err
    assert "state root " + pods.root + " was mode 0755; made it 0700" in run.err
    assert "data root " + pods.data + " was mode 0711; made it 0700" in run.err
    for top in (pods.root, pods.data, os.path.join(pods.data, "pods")):
        assert os.stat(top).st_mode & 0o7777 == 0o700, top
    assert pods.leftovers() == []


@pytest.mark.parametrize("case", ["owned by another user", "writable by others", "a symlink to an open directory"])
def test_a_data_root_pea_cannot_keep_private_is_refused(open_pods, open_base, case):
    pods = open_pods
    target = pods.data
    if case == "a symlink to an open directory":
        # Whoever could plant the symlink would have pea chmod what it names: pea only checks, and refuses.
        target = os.path.join(open_base, "elsewhere")
        os.symlink(target, pods.data)
    os.mkdir(target, 0o700)
    if case == "owned by another user":
        os.chown(target, NOBODY, NOBODY)
        expected = f"pea: pod {{}}: data root {pods.data} belongs to uid {NOBODY}, not to uid 0 running pea: refused"
    elif case == "writable by others":
        os.chmod(target, 0o777)
        expected = (f"pea: pod {{}}: data root {pods.data} is writable by other users (mode 0777): refused, give pea "
                    "a directory of its own")
    else:
        os.chmod(target, 0o755)
        expected = (f"pea: pod {{}}: data root {pods.data} is a symlink to a directory other users can reach (mode "
                    "0755): refused, make it 0700")
    mode = os.stat(target).st_mode
    name = pods.name()
    code, out, err = pods.run(pods.manifest([container("a", pods.rootfs, "echo ran")], name=name))
    assert code == 1 and err.strip() == expected.format(name), err
    assert "ran" not in out
    assert os.listdir(target) == [], "nothing written into a data root that was refused"
    assert os.stat(target).st_mode == mode, "its mode left as it was"
    assert pods.leftovers() == []


# ---- item 6: a joined network namespace is left as pea found it ----------------------------------------------------

@pytest.fixture
def joined_netns():
    name = f"pea-esc-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    yield name
    subprocess.run(["ip", "netns", "delete", name], check=False)


SYSCTLS = ("net/ipv4/ip_unprivileged_port_start", "net/ipv4/ping_group_range", "net/core/somaxconn")


def netns_snapshot(netns):
    """The namespace's sysctls that pea used to write, and the state of its lo."""
    values = {}
    for sysctl in SYSCTLS:
        p = subprocess.run(["nsenter", f"--net=/run/netns/{netns}", "cat", f"/proc/sys/{sysctl}"],
                           capture_output=True, text=True, check=True)
        values[sysctl] = p.stdout.strip()
    link = subprocess.run(["ip", "-n", netns, "-o", "link", "show", "lo"], capture_output=True, text=True,
                          check=True).stdout
    values["lo"] = link.split("<", 1)[1].split(">", 1)[0]
    return values


def test_a_netns_pod_changes_nothing_in_the_namespace_it_joins(pods, joined_netns):
    before = netns_snapshot(joined_netns)
    assert before["net/ipv4/ip_unprivileged_port_start"] == "1024" and "UP" not in before["lo"].split(",")
    m = pods.manifest([container("a", pods.rootfs, "cat /proc/sys/net/ipv4/ip_unprivileged_port_start")],
                      pea={"network": {"mode": "netns", "path": f"/run/netns/{joined_netns}"}})
    code, out, err = pods.run(m)
    assert code == 0, err
    assert out.strip() == "[a] 1024"
    assert netns_snapshot(joined_netns) == before
    assert pods.leftovers() == []


def test_a_net_sysctl_for_a_joined_namespace_is_refused(pods, joined_netns):
    before = netns_snapshot(joined_netns)
    name = pods.name()
    m = pods.manifest([container("a", pods.rootfs, "echo ran")], name=name,
                      spec={"securityContext": {"sysctls": [{"name": "net.core.somaxconn", "value": "77"}]}},
                      pea={"network": {"mode": "netns", "path": f"/run/netns/{joined_netns}"}})
    code, out, err = pods.run(m)
    assert code == 1 and "ran" not in out
    assert err.strip() == (f"pea: {m}: spec.securityContext.sysctls[0]: net.core.somaxconn: the pod's network "
                           "namespace is not pea's (pea.network.mode netns): pea sets no sysctl in it")
    assert netns_snapshot(joined_netns) == before
    assert pods.leftovers() == []
    assert not os.path.exists(os.path.join(pods.root, "pods", name))


# ---- item 7: only bridges pea made, unless the manifest adopts one -------------------------------------------------

def links_in(netns):
    out = subprocess.run(["ip", "-n", netns, "-o", "link"], capture_output=True, text=True, check=True).stdout
    return {line.split(": ")[1].split("@")[0]: line for line in out.splitlines()}


def bridge_pod(pods, address, name=None, adopt=None, command="ip -4 addr show eth0 | grep -o 'inet [0-9./]*'"):
    net = {"mode": "bridge", "bridge": "peaesc0", "address": address, "gateway": "198.18.11.1"}
    if adopt is not None:
        net["adoptBridge"] = adopt
    return pods.manifest([container("a", pods.rootfs, command)], name=name, pea={"network": net})


def test_an_existing_bridge_is_refused_unless_adopted(pods, joined_netns):
    subprocess.run(["ip", "-n", joined_netns, "link", "add", "peaesc0", "type", "bridge"], check=True)
    before = links_in(joined_netns)
    name = pods.name()
    code, out, err = pods.run(bridge_pod(pods, "198.18.11.2/24", name=name), netns=joined_netns)
    assert code == 1, (out, err)
    assert err.strip() == (f"pea: pod {name}: bridge peaesc0 exists and was not created by pea; set "
                           "pea.network.adoptBridge: true to adopt it")
    assert links_in(joined_netns) == before, "the bridge untouched (still down), no veth"
    assert pods.leftovers() == []
    code, out, err = pods.run(bridge_pod(pods, "198.18.11.2/24", adopt=False), netns=joined_netns)
    assert code == 1 and "set pea.network.adoptBridge: true" in err

    code, out, err = pods.run(bridge_pod(pods, "198.18.11.3/24", adopt=True), netns=joined_netns)
    assert code == 0, err
    assert "[a] inet 198.18.11.3/24" in out
    after = links_in(joined_netns)
    assert set(after) == {"lo", "peaesc0"}, "the adopted bridge stays, the veth goes"
    assert pods.leftovers() == []


def test_a_bridge_pea_made_is_reused_but_not_one_that_took_its_name(pods, joined_netns):
    first = pods.start(bridge_pod(pods, "198.18.11.2/24", command="echo up; exec sleep 60"), netns=joined_netns)
    try:
        first.wait_for_line("[a] up")
        code, out, err = pods.run(bridge_pod(pods, "198.18.11.3/24"), netns=joined_netns)
        assert code == 0, err
        assert "[a] inet 198.18.11.3/24" in out, "the bridge pea made is used again without adoptBridge"
        # The caller replaces pea's bridge with one of its own under the same name: pea's mark is not for it.
        subprocess.run(["ip", "-n", joined_netns, "link", "delete", "peaesc0"], check=True)
        subprocess.run(["ip", "-n", joined_netns, "link", "add", "peaesc0", "type", "bridge"], check=True)
        name = pods.name()
        code, out, err = pods.run(bridge_pod(pods, "198.18.11.4/24", name=name), netns=joined_netns)
        assert code == 1, (out, err)
        assert err.strip() == (f"pea: pod {name}: bridge peaesc0 exists and was not created by pea; set "
                               "pea.network.adoptBridge: true to adopt it")
    finally:
        assert first.stop() == 0, first.err
    assert "peaesc0" in links_in(joined_netns), "the caller's bridge outlives the pod that found pea's mark"
    assert not os.path.exists(os.path.join(pods.root, "bridges", "peaesc0")), "the stale mark is gone"
    assert pods.leftovers() == []
