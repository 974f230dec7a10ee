"""Pod fields about mounts and the pod's files, as the kubelet applies them: spec.hostAliases in /etc/hosts,
volumeMounts[].mountPropagation (None, HostToContainer, Bidirectional) seen working across a shared mount the test
makes, volumeMounts[].recursiveReadOnly on a hostPath with a submount, emptyDir.mode, and a pod data directory
reached through a symlink refused. Every mount a test makes on the host is undone, pass or fail."""
import os
import subprocess

import pytest

import helpers
from pods import container

pytestmark = pytest.mark.pea_only


def sh(*argv):
    subprocess.run(argv, check=True, capture_output=True)


@pytest.fixture
def shared_dir(tmp_path):
    """A directory made a shared mount of its own (a bind onto itself, then --make-shared): what it holds later
    propagates to every copy of it. Unmounted with everything below it at the end."""
    d = tmp_path / "shared"
    (d / "sub").mkdir(parents=True)
    sh("mount", "--bind", str(d), str(d))
    try:
        sh("mount", "--make-shared", str(d))
        yield d
    finally:
        subprocess.run(["umount", "-R", "-l", str(d)], capture_output=True)
    assert not [p for p in helpers.mount_points() if p.startswith(str(d))]


def mount_error(pods, mounts, volumes, privileged=False):
    sc = {"securityContext": {"privileged": True}} if privileged else {}
    code, out, err = pods.run(pods.manifest([container("a", pods.rootfs, "true", volumeMounts=mounts, **sc)],
                                            volumes=volumes))
    assert code != 0
    return err


# ---- hostAliases -----------------------------------------------------------------------------------------------

ALIASES = [{"ip": "127.0.0.1", "hostnames": ["foo.local", "bar.local"]},
           {"ip": "10.1.2.3", "hostnames": ["foo.remote", "bar.remote"]}]
ALIAS_LINES = "\n# Entries added by HostAliases.\n127.0.0.1\tfoo.local\tbar.local\n10.1.2.3\tfoo.remote\tbar.remote\n"


def test_host_aliases_are_appended_to_etc_hosts_as_the_kubelet_writes_them(pods):
    name = pods.name()
    code, out, err = pods.run(pods.manifest([container("a", pods.rootfs, "cat /etc/hosts")], name=name,
                                            spec={"hostAliases": ALIASES}))
    assert code == 0, err
    hosts = "".join(line[len("[a] "):] + "\n" for line in out.splitlines())
    assert hosts == ("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"
                     "::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\n"
                     f"fe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n127.0.1.1\t{name}\n" + ALIAS_LINES), out


def test_host_aliases_follow_the_hosts_file_of_a_host_network_pod(pods, test_netns):
    code, out, err = pods.run(pods.manifest([container("a", pods.rootfs, "cat /etc/hosts")],
                                            spec={"hostNetwork": True, "hostAliases": ALIASES}), netns=test_netns)
    assert code == 0, err
    with open("/etc/hosts") as f:
        node = f.read()
    hosts = "".join(line[len("[a] "):] + "\n" for line in out.splitlines())
    assert hosts == "# Kubernetes-managed hosts file (host network).\n" + node + ALIAS_LINES


@pytest.mark.parametrize("alias, message", [
    ({"ip": "10.0.0.300", "hostnames": ["a"]}, 'spec.hostAliases[0].ip: must be a valid IP address, not "10.0.0.300"'),
    ({"ip": "10.0.0.3", "hostnames": ["ok", "Not_A\tName"]},
     'spec.hostAliases[0].hostnames[1]: must be a DNS subdomain, not "Not_A\\tName"'),
    ({"hostnames": ["a"]}, "spec.hostAliases[0].ip: missing"),
    ({"ip": "::1", "names": ["a"]}, "spec.hostAliases[0].names: unknown field"),
])
def test_host_alias_errors_name_the_field(pods, alias, message):
    code, _, err = pods.run(pods.manifest([container("a", pods.rootfs, "true")], spec={"hostAliases": [alias]}))
    assert code != 0
    assert message in err, err


# ---- mountPropagation ----------------------------------------------------------------------------------------------

def test_host_to_container_sees_the_hosts_later_mount_and_none_does_not(pods, shared_dir):
    script = ("echo started; for i in $(seq 300); do [ -e /h/sub/marker ] && break; sleep 0.1; done; "
              "cat /h/sub/marker; [ -e /n/sub/marker ] && echo none-sees-it || echo none-does-not; "
              "grep -c ' /h/sub ' /proc/mounts")
    m = pods.manifest([container("a", pods.rootfs, script, volumeMounts=[
        {"name": "host", "mountPath": "/h", "mountPropagation": "HostToContainer"},
        {"name": "host", "mountPath": "/n", "mountPropagation": "None"}])],
        volumes=[{"name": "host", "hostPath": {"path": str(shared_dir)}}])
    run = pods.start(m)
    try:
        run.wait_for_line("[a] started", timeout=30)
        sh("mount", "-t", "tmpfs", "-o", "size=1m", "later", str(shared_dir / "sub"))
        (shared_dir / "sub" / "marker").write_text("mounted on the host after the start\n")
        run.wait_for_line("[a] mounted on the host after the start", timeout=40)
        run.wait_for_line("[a] none-does-not", timeout=10)
        run.wait_for_line("[a] 1", timeout=10)
    finally:
        assert run.stop() == 0, run.err


def test_bidirectional_sends_a_privileged_containers_mount_to_the_host(pods, shared_dir):
    script = ("mount -t tmpfs -o size=1m from-the-container /b/sub && echo made-in-container > /b/sub/marker && "
              "echo mounted; sleep 60")
    m = pods.manifest([container("a", pods.rootfs, script, securityContext={"privileged": True}, volumeMounts=[
        {"name": "host", "mountPath": "/b", "mountPropagation": "Bidirectional"}])],
        volumes=[{"name": "host", "hostPath": {"path": str(shared_dir)}}])
    run = pods.start(m)
    try:
        run.wait_for_line("[a] mounted", timeout=30)
        assert (shared_dir / "sub" / "marker").read_text() == "made-in-container\n"
        assert str(shared_dir / "sub") in helpers.mount_points()
    finally:
        run.stop()
        # The container's mount lives on in the host's namespace, as in Kubernetes: it is the test's to undo.
        subprocess.run(["umount", "-l", str(shared_dir / "sub")], capture_output=True)


def test_bidirectional_needs_a_privileged_container(pods, tmp_path):
    err = mount_error(pods, [{"name": "h", "mountPath": "/h", "mountPropagation": "Bidirectional"}],
                      [{"name": "h", "hostPath": {"path": str(tmp_path)}}])
    assert ("spec.containers[0].volumeMounts[0].mountPropagation: Bidirectional mount propagation is available only "
            "to privileged containers") in err, err


def test_propagation_from_a_private_source_is_refused(pods, tmp_path):
    err = mount_error(pods, [{"name": "h", "mountPath": "/h", "mountPropagation": "HostToContainer"}],
                      [{"name": "h", "hostPath": {"path": str(tmp_path)}}])
    assert ("volumeMounts[0].mountPropagation: HostToContainer needs the volume's source on a shared or slave mount, "
            "and it is not") in err, err
    err = mount_error(pods, [{"name": "h", "mountPath": "/h", "mountPropagation": "Bidirectional"}],
                      [{"name": "h", "hostPath": {"path": str(tmp_path)}}], privileged=True)
    assert "Bidirectional needs the volume's source on a shared mount, and it is not" in err, err
    assert pods.leftovers() == []


def test_unknown_propagation_is_refused(pods, tmp_path):
    err = mount_error(pods, [{"name": "h", "mountPath": "/h", "mountPropagation": "Both"}],
                      [{"name": "h", "hostPath": {"path": str(tmp_path)}}])
    assert ('spec.containers[0].volumeMounts[0].mountPropagation: must be one of "None", "HostToContainer", '
            '"Bidirectional", not "Both"') in err, err


# ---- recursiveReadOnly ---------------------------------------------------------------------------------------------

def test_recursive_read_only_makes_the_submount_read_only_too(pods, tmp_path):
    host = tmp_path / "host"
    (host / "sub").mkdir(parents=True)
    sh("mount", "-t", "tmpfs", "-o", "size=1m", "submount", str(host / "sub"))
    try:
        script = ("touch /rro/sub/x 2>/dev/null && echo rro-writable || echo rro-read-only; "
                  "touch /rro/top 2>/dev/null && echo rro-top-writable || echo rro-top-read-only; "
                  "touch /ro/sub/y 2>/dev/null && echo ro-sub-writable || echo ro-sub-read-only; "
                  "touch /ip/sub/z 2>/dev/null && echo ifpossible-writable || echo ifpossible-read-only")
        code, out, err = pods.run(pods.manifest([container("a", pods.rootfs, script, volumeMounts=[
            {"name": "h", "mountPath": "/rro", "readOnly": True, "mountPropagation": "None",
             "recursiveReadOnly": "Enabled"},
            {"name": "h", "mountPath": "/ro", "readOnly": True},
            {"name": "h", "mountPath": "/ip", "readOnly": True, "recursiveReadOnly": "IfPossible"}])],
            volumes=[{"name": "h", "hostPath": {"path": str(host)}}]))
        assert code == 0, err
        assert out.splitlines() == ["[a] rro-read-only", "[a] rro-top-read-only", "[a] ro-sub-writable",
                                    "[a] ifpossible-read-only"], out
    finally:
        subprocess.run(["umount", "-l", str(host / "sub")], capture_output=True)


@pytest.mark.parametrize("mount, message", [
    ({"recursiveReadOnly": "Enabled"}, "recursiveReadOnly: may only be specified when readOnly is true"),
    ({"readOnly": True, "recursiveReadOnly": "IfPossible", "mountPropagation": "HostToContainer"},
     "recursiveReadOnly: may only be specified when mountPropagation is None or not specified"),
    ({"readOnly": True, "recursiveReadOnly": "Always"},
     'recursiveReadOnly: must be one of "Disabled", "IfPossible", "Enabled", not "Always"'),
])
def test_recursive_read_only_errors_in_the_kubelets_words(pods, tmp_path, mount, message):
    err = mount_error(pods, [dict({"name": "h", "mountPath": "/h"}, **mount)],
                      [{"name": "h", "hostPath": {"path": str(tmp_path)}}])
    assert "spec.containers[0].volumeMounts[0]." + message in err, err


# ---- emptyDir.mode -------------------------------------------------------------------------------------------------

def test_empty_dir_mode_sets_the_directorys_bits(pods):
    code, out, err = pods.run(pods.manifest(
        [container("a", pods.rootfs, "stat -c '%n %a' /default /sticky /mem", volumeMounts=[
            {"name": "default", "mountPath": "/default"}, {"name": "sticky", "mountPath": "/sticky"},
            {"name": "mem", "mountPath": "/mem"}])],
        volumes=[{"name": "default", "emptyDir": {}}, {"name": "sticky", "emptyDir": {"mode": 0o1777}},
                 {"name": "mem", "emptyDir": {"medium": "Memory", "mode": 0o750}}]))
    assert code == 0, err
    assert out.splitlines() == ["[a] /default 777", "[a] /sticky 1777", "[a] /mem 750"], out


def test_empty_dir_mode_out_of_range_is_refused(pods):
    code, _, err = pods.run(pods.manifest([container("a", pods.rootfs, "true")],
                                          volumes=[{"name": "d", "emptyDir": {"mode": 0o2777}}]))
    assert code != 0
    assert "spec.volumes[0].emptyDir.mode: must be between 0000 and 01777 (octal), not 1535" in err, err


# ---- the pod's data directory --------------------------------------------------------------------------------------

def test_a_symlinked_pod_data_directory_is_refused(pods, tmp_path):
    """Whatever put a symlink where the pod's data directory goes, pea makes nothing through it: not the containers'
    directory, not the emptyDir (whose mode it would set to 0777)."""
    name = pods.name()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    data_pods = os.path.join(pods.data, "pods")
    os.makedirs(data_pods, mode=0o700, exist_ok=True)
    link = os.path.join(data_pods, name)
    os.symlink(str(elsewhere), link)
    try:
        code, _, err = pods.run(pods.manifest(
            [container("a", pods.rootfs, "true", volumeMounts=[{"name": "d", "mountPath": "/d"}])],
            volumes=[{"name": "d", "emptyDir": {}}], name=name))
        assert code != 0
        assert "data directory" in err and "Too many levels of symbolic links" in err, err
        assert os.listdir(elsewhere) == []
        assert oct(os.stat(elsewhere).st_mode & 0o7777) == oct(0o700)
    finally:
        if os.path.islink(link):
            os.unlink(link)


def test_a_volume_directory_swapped_for_a_symlink_is_not_bound(pods, tmp_path):
    """The emptyDir's directory is checked and made when the pod is; each container start opens it again. Swapped
    for a symlink to a host directory between the two (the deterministic form of the race: the swap happens before
    a re-applied container starts), the host directory must not end up in the container."""
    name = pods.name()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "host-secret").write_text("host only\n")
    vol = [{"name": "d", "mountPath": "/d"}]
    volumes = [{"name": "d", "emptyDir": {}}]
    code, _, err = pods.apply(pods.manifest([container("c", pods.rootfs, "sleep 300", volumeMounts=vol)],
                                            volumes=volumes, name=name))
    assert code == 0, err
    volume_dir = os.path.join(pods.data, "pods", name, "volumes", "d")
    os.rename(volume_dir, volume_dir + ".moved")
    os.symlink(str(outside), volume_dir)
    try:
        code, out, err = pods.apply(pods.manifest(
            [container("c", pods.rootfs, "cat /d/host-secret 2>&1; sleep 300", volumeMounts=vol)],
            volumes=volumes, name=name))
        if code == 0:  # the container started after all: let it show what it sees before failing
            helpers.wait_until(lambda: pods.cli("pod", "logs", name, "-c", "c")[1], 10, "the container's output")
        _, logs, _ = pods.cli("pod", "logs", name, "-c", "c")
        assert "host only" not in logs, "the host directory was bound into the container"
        assert code != 0, (out, err)
        assert "container c failed to start" in err and "volume d" in err, err
        assert "Too many levels of symbolic links" in err, err
    finally:
        os.unlink(volume_dir)
        os.rename(volume_dir + ".moved", volume_dir)
        pods.cli("pod", "rm", "--force", name)
    assert (outside / "host-secret").read_text() == "host only\n"
    assert oct(os.stat(outside).st_mode & 0o7777) != oct(0o777)
