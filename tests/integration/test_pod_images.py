"""Pods from images of the store (`image: NAME`): the image's Entrypoint and Cmd under Kubernetes' command/args rules,
its Env merged under the container's, WorkingDir, User looked up in the image's own /etc/passwd, StopSignal,
imagePullPolicy, holds that keep a used image from `pea image rm`, many-layer images, layers shared between pods.

Images are made offline (images.py's OCI layout writer, the pod tests' busybox rootfs) and
imported with `pea image import`. Here a pull is only ever asked of a loopback port where nothing listens;
test_pod_images_pull.py pulls from a registry."""
import json
import os
import tarfile

import pytest

import helpers
from pods import container
from images import Store, entry, tar_bytes, tar_tree, write_layout

pytestmark = pytest.mark.pea_only

ACCOUNTS = (b"root:x:0:0:root:/root:/bin/sh\napp:x:1234:2345:app:/home/app:/bin/sh\n",
            b"root:x:0:\nstaff:x:2345:\ncrew:x:3456:\n")


@pytest.fixture(scope="module")
def base_layer(pod_rootfs):
    """The pod tests' busybox rootfs as one layer (bytes)."""
    return tar_tree(pod_rootfs)


def accounts_layer(passwd=ACCOUNTS[0], group=ACCOUNTS[1]):
    """/etc/passwd and /etc/group replacing the base's (the lookup must see this layer's), and /work."""
    return tar_bytes([entry("etc/passwd", data=passwd), entry("etc/group", data=group),
                      entry("work", tarfile.DIRTYPE, mode=0o777)])


@pytest.fixture
def store(pods):
    return Store(pods.runtime, pods.data)


def load(store, tmp_path, name, layers, config):
    """Import an image of LAYERS (tar bytes, base first) with CONFIG (merged into the image config) as NAME."""
    layout = write_layout(str(tmp_path / f"layout-{len(os.listdir(tmp_path))}"), [(None, layers, False, config)])
    store.run("import", layout, name)


def pod_container(name, image, **extra):
    c = {"name": name, "image": image}
    c.update(extra)
    return c


# ---- the image's process ------------------------------------------------------------------------------------------

def test_entrypoint_and_cmd_under_kubernetes_command_and_args_rules(pods, store, base_layer, tmp_path):
    load(store, tmp_path, "example.com/echo:1", [base_layer],
         {"Entrypoint": ["/bin/echo", "entry"], "Cmd": ["from-cmd"]})
    m = pods.manifest([
        pod_container("neither", "example.com/echo:1"),
        pod_container("args", "example.com/echo:1", args=["from-args"]),
        pod_container("command", "example.com/echo:1", command=["/bin/echo", "own"]),
        pod_container("both", "example.com/echo:1", command=["/bin/echo", "own"], args=["and-args"]),
    ])
    code, out, err = pods.run(m)
    assert code == 0, err
    lines = set(out.splitlines())
    assert {"[neither] entry from-cmd", "[args] entry from-args", "[command] own",
            "[both] own and-args"} <= lines, out


def test_image_without_entrypoint_or_cmd_and_no_command_is_refused(pods, store, base_layer, tmp_path):
    load(store, tmp_path, "example.com/empty:1", [base_layer], {"Cmd": None})
    code, out, err = pods.apply(pods.manifest([pod_container("c", "example.com/empty:1")]))
    assert code != 0
    assert "container c" in err and "no command specified" in err, err


def test_env_working_dir_and_user_by_name_from_the_image(pods, store, base_layer, tmp_path):
    load(store, tmp_path, "example.com/app:1", [base_layer, accounts_layer()],
         {"Env": ["PATH=/opt/bin:/bin", "FROM_IMAGE=image", "BOTH=image"], "WorkingDir": "/work", "User": "app"})
    script = "echo $PATH $FROM_IMAGE $BOTH; pwd; id -u; id -g"
    m = pods.manifest([
        pod_container("app", "example.com/app:1", command=["/bin/sh", "-c", script],
                      env=[{"name": "BOTH", "value": "pod"}]),
        pod_container("own", "example.com/app:1", command=["/bin/sh", "-c", script], workingDir="/tmp",
                      securityContext={"runAsUser": 4242, "runAsGroup": 4343}),
        pod_container("group", "example.com/app:1", command=["/bin/sh", "-c", "id -u; id -g"],
                      securityContext={"runAsGroup": 77}),
    ])
    code, out, err = pods.run(m)
    assert code == 0, err
    lines = out.splitlines()
    app = [line[len("[app] "):] for line in lines if line.startswith("[app] ")]
    own = [line[len("[own] "):] for line in lines if line.startswith("[own] ")]
    group = [line[len("[group] "):] for line in lines if line.startswith("[group] ")]
    assert app == ["/opt/bin:/bin image pod", "/work", "1234", "2345"], out
    assert own == ["/opt/bin:/bin image image", "/tmp", "4242", "4343"], out
    assert group == ["1234", "77"], out


@pytest.mark.parametrize("user, expected", [("1234", "1234 2345"), ("4000", "4000 0"), ("app:crew", "1234 3456"),
                                            ("5000:6000", "5000 6000")])
def test_image_user_forms(pods, store, base_layer, tmp_path, user, expected):
    load(store, tmp_path, "example.com/user:1", [base_layer, accounts_layer()], {"User": user})
    code, out, err = pods.run(pods.manifest([pod_container("c", "example.com/user:1",
                                                           command=["/bin/sh", "-c", "echo $(id -u) $(id -g)"])]))
    assert code == 0, err
    assert out.splitlines() == [f"[c] {expected}"], out


def test_image_user_unknown_to_the_image_is_refused(pods, store, base_layer, tmp_path):
    load(store, tmp_path, "example.com/nouser:1", [base_layer, accounts_layer()], {"User": "ghost"})
    code, out, err = pods.apply(pods.manifest([pod_container("c", "example.com/nouser:1", command=["true"])]))
    assert code != 0
    assert 'container c: image user "ghost": no user ghost in the image\'s /etc/passwd' in err, err


def test_image_user_is_looked_up_inside_the_image_never_on_the_host(pods, store, base_layer, tmp_path):
    """The image's /etc/passwd is a symlink to the absolute path of a host file naming the user: resolved inside
    the image's root, it leads nowhere there, and the user stays unknown."""
    host_passwd = tmp_path / "host-passwd"
    host_passwd.write_text("intruder:x:4321:4321::/:/bin/sh\n")
    layer = tar_bytes([entry("etc/passwd", tarfile.SYMTYPE, linkname=str(host_passwd))])
    load(store, tmp_path, "example.com/sneaky:1", [base_layer, layer], {"User": "intruder"})
    code, out, err = pods.apply(pods.manifest([pod_container("c", "example.com/sneaky:1", command=["id", "-u"])]))
    assert code != 0, out
    assert "no user intruder in the image's /etc/passwd" in err, err


def test_run_as_non_root_against_the_image_user(pods, store, base_layer, tmp_path):
    load(store, tmp_path, "example.com/named:1", [base_layer, accounts_layer()], {"User": "app"})
    load(store, tmp_path, "example.com/numeric:1", [base_layer, accounts_layer()], {"User": "1234"})
    load(store, tmp_path, "example.com/root:1", [base_layer], {})
    non_root = {"runAsNonRoot": True}
    code, out, err = pods.run(pods.manifest([pod_container("c", "example.com/numeric:1", command=["id", "-u"],
                                                           securityContext=non_root)]))
    assert code == 0 and out.splitlines() == ["[c] 1234"], (out, err)
    code, out, err = pods.apply(pods.manifest([pod_container("c", "example.com/named:1", command=["id", "-u"],
                                                             securityContext=non_root)]))
    assert code != 0
    assert "container has runAsNonRoot and image has non-numeric user (app), cannot verify user is non-root" in err
    code, out, err = pods.apply(pods.manifest([pod_container("c", "example.com/root:1", command=["id", "-u"],
                                                             securityContext=non_root)]))
    assert code != 0
    assert "container has runAsNonRoot and image will run as root" in err, err


def test_stop_signal_from_the_image(pods, store, base_layer, tmp_path):
    load(store, tmp_path, "example.com/stop:1", [base_layer], {"StopSignal": "SIGUSR1"})
    script = "trap 'echo got USR1; exit 0' USR1; trap 'echo got TERM; exit 0' TERM; echo ready; " \
             "while true; do sleep 0.1; done"
    m = pods.manifest([pod_container("c", "example.com/stop:1", command=["/bin/sh", "-c", script]),
                       pod_container("spec", "example.com/stop:1", command=["/bin/sh", "-c", script],
                                     lifecycle={"stopSignal": "SIGTERM"})])
    run = pods.start(m)
    try:
        run.wait_for_line("[c] ready")
        run.wait_for_line("[spec] ready")
    finally:
        run.stop()
    assert "[c] got USR1" in run.lines, run.out
    assert "[spec] got TERM" in run.lines, run.out


# ---- pull policies ------------------------------------------------------------------------------------------------

def test_never_with_an_absent_image_names_container_and_image(pods, store):
    m = pods.manifest([pod_container("web", "example.com/absent:2", imagePullPolicy="Never", command=["true"])])
    code, out, err = pods.apply(m)
    assert code != 0
    assert 'container web: image "example.com/absent:2" is not present with pull policy of Never' in err, err
    code, out, err = pods.run(m)
    assert code != 0 and "ErrImageNeverPull" in err, err


def test_if_not_present_uses_the_loaded_image_without_pulling(pods, store, base_layer, tmp_path):
    """The reference names a loopback registry where nothing listens: any pull would fail."""
    load(store, tmp_path, "127.0.0.1:1/app:2", [base_layer], {"Cmd": ["echo", "no pull"]})
    for policy in ("IfNotPresent", "Never", None):
        c = pod_container("c", "127.0.0.1:1/app:2")
        if policy:
            c["imagePullPolicy"] = policy
        code, out, err = pods.run(pods.manifest([c]))
        assert code == 0, (policy, err)
        assert out.splitlines() == ["[c] no pull"], (policy, out)


@pytest.mark.parametrize("image, policy", [("127.0.0.1:1/app", None), ("127.0.0.1:1/app:latest", None),
                                           ("127.0.0.1:1/app:3", "Always"), ("127.0.0.1:1/app:4", None)])
def test_a_needed_pull_that_cannot_happen_fails_naming_container_and_image(pods, store, base_layer, tmp_path,
                                                                          image, policy):
    """No tag or :latest default to Always: pulled even when present. Without a registry the apply fails with one
    clear line: the pull fails (ErrImagePull)."""
    load(store, tmp_path, "127.0.0.1:1/app:latest", [base_layer], {})
    c = pod_container("web", image, command=["true"])
    if policy:
        c["imagePullPolicy"] = policy
    code, out, err = pods.apply(pods.manifest([c]))
    assert code != 0, out
    assert f'container web: ' in err and f'"{image}"' in err, err
    assert "ErrImagePull" in err, err
    assert pods.leftovers() == []


# ---- holds, sharing, many layers ------------------------------------------------------------------------------

def test_image_rm_of_a_used_image_is_refused_naming_the_pods(pods, store, base_layer, tmp_path):
    load(store, tmp_path, "example.com/held:1", [base_layer], {"Cmd": ["sleep", "60"]})
    a, b = pods.name(), pods.name()
    for name in (a, b):
        code, out, err = pods.apply(pods.manifest([pod_container("c", "example.com/held:1")], name=name))
        assert code == 0, err
    result = store.run("rm", "example.com/held:1", check=False)
    assert result.returncode != 0
    assert f"image example.com/held:1 is in use by {a}, {b}: refused" in result.stderr, result.stderr
    assert pods.cli("pod", "rm", "--force", a)[0] == 0
    result = store.run("rm", "example.com/held:1", check=False)
    assert result.returncode != 0 and f"in use by {b}: refused" in result.stderr, result.stderr
    assert pods.cli("pod", "rm", "--force", b)[0] == 0
    store.run("rm", "example.com/held:1")
    assert store.layers() == []


def test_a_failed_apply_holds_nothing(pods, store, base_layer, tmp_path):
    load(store, tmp_path, "example.com/ok:1", [base_layer], {"Cmd": ["sleep", "60"]})
    m = pods.manifest([pod_container("a", "example.com/ok:1"),
                       pod_container("b", "example.com/absent:1", imagePullPolicy="Never")])
    assert pods.apply(m)[0] != 0
    store.run("rm", "example.com/ok:1")


def test_apply_of_another_image_releases_the_old_one(pods, store, base_layer, tmp_path):
    load(store, tmp_path, "example.com/v:1", [base_layer], {"Cmd": ["sleep", "60"]})
    load(store, tmp_path, "example.com/v:2", [base_layer, accounts_layer()], {"Cmd": ["sleep", "60"]})
    name = pods.name()
    assert pods.apply(pods.manifest([pod_container("c", "example.com/v:1")], name=name))[0] == 0
    code, out, err = pods.apply(pods.manifest([pod_container("c", "example.com/v:2")], name=name))
    assert code == 0, err
    assert "recreated: c" in out, out
    store.run("rm", "example.com/v:1")
    assert store.run("rm", "example.com/v:2", check=False).returncode != 0
    assert pods.state(name)["images"]["c"].startswith("sha256:")
    assert pods.cli("pod", "rm", "--force", name)[0] == 0


def test_two_pods_share_the_image_layers(pods, store, base_layer, tmp_path):
    load(store, tmp_path, "example.com/shared:1", [base_layer, accounts_layer()], {"Cmd": ["sleep", "60"]})
    names = [pods.name(), pods.name()]
    lowers = []
    for name in names:
        code, out, err = pods.apply(pods.manifest([pod_container("c", "example.com/shared:1")], name=name))
        assert code == 0, err
        with open(os.path.join(pods.root, "pods", name, "bundles", "c", "config.json")) as f:
            options = json.load(f)["mounts"][0]["options"][0]
        lowers.append([o for o in options.split(",") if o.startswith("lowerdir=")][0][len("lowerdir="):].split(":"))
    assert lowers[0] == lowers[1]
    layers_dir = os.path.join(store.path, "layers", "sha256")
    assert len(lowers[0]) == 2 and all(d.startswith(layers_dir) for d in lowers[0]), lowers
    assert len(store.layers()) == 2
    for name in names:
        assert pods.cli("pod", "rm", "--force", name)[0] == 0


def test_an_image_of_sixty_layers(pods, store, base_layer, tmp_path):
    """60 lower directories of ~140 bytes each: past the page mount(2) takes, and past fsconfig's 255 bytes."""
    layers = [base_layer, accounts_layer()]
    for i in range(58):
        layers.append(tar_bytes([entry(f"layers/{i:02d}", data=b"x"), entry("layers/top", data=f"{i}".encode())]))
    load(store, tmp_path, "example.com/tall:1", layers, {"User": "app", "Cmd": None})
    assert sum(len(store.layer_dir(d)) + 1 for d in ["sha256:" + h for h in store.layers()]) > 4096
    code, out, err = pods.run(pods.manifest([pod_container(
        "c", "example.com/tall:1", command=["/bin/sh", "-c", "ls /layers | wc -l; cat /layers/top; echo; id -un"])]))
    assert code == 0, err
    assert [line.strip() for line in out.splitlines()] == ["[c] 59", "[c] 57", "[c] app"], out


def test_directories_and_references_are_told_apart(pods):
    code, out, err = pods.apply(pods.manifest([pod_container("c", "./rootfs", command=["true"])]))
    assert code != 0
    assert 'spec.containers[0].image: "./rootfs": a directory must be an absolute path' in err, err
    code, out, err = pods.apply(pods.manifest([pod_container("c", "Bad/Name", command=["true"])]))
    assert code != 0
    assert "spec.containers[0].image: invalid reference format" in err, err
    code, out, err = pods.run(pods.manifest([container("c", pods.rootfs, "echo directory")]))
    assert code == 0 and out.splitlines() == ["[c] directory"], err
