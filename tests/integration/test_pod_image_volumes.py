"""Image volumes (`volumes[].image: {reference, pullPolicy}`, Kubernetes 1.31+): an image of the store, pulled as a
container's image is, its layers merged and mounted read-only and noexec into the containers naming the volume,
subPath included; held against `pea image rm` while the pod uses it. Images are made offline (images.py) and
imported, or pulled from registries.py's plain-HTTP registry on loopback."""
import json
import os
import tarfile

import pytest

import helpers
import registries as reg
from images import Store, entry, tar_bytes, write_layout
from pods import container

pytestmark = pytest.mark.pea_only

SCRIPT = b"#!/bin/sh\necho ran\n"


@pytest.fixture
def store(pods):
    return Store(pods.runtime, pods.data)


def load(store, tmp_path, name, layers):
    layout = write_layout(str(tmp_path / f"layout-{len(os.listdir(tmp_path))}"), [(None, layers, False, {})])
    store.run("import", layout, name)


def data_layers():
    """Two layers: the upper one replaces `file` and deletes `gone` (a whiteout), as a container image's would."""
    lower = tar_bytes([entry("dir", tarfile.DIRTYPE, mode=0o755), entry("dir/file", data=b"1\n"),
                       entry("file", data=b"old\n"), entry("gone", data=b"x\n"),
                       entry("run.sh", data=SCRIPT, mode=0o755)])
    upper = tar_bytes([entry("file", data=b"2\n"), entry(".wh.gone", data=b"")])
    return [lower, upper]


PROBE = ("cat /volume/file /volume/dir/file; test -e /volume/gone && echo gone-present || echo gone-absent; "
         "touch /volume/new 2>/dev/null && echo writable || echo read-only; "
         "/volume/run.sh 2>/dev/null || echo not-executed; "
         "grep ' /volume ' /proc/mounts | grep -q noexec && echo noexec; ")


def volume(reference, policy=None):
    image = {"reference": reference}
    if policy:
        image["pullPolicy"] = policy
    return {"name": "data", "image": image}


def test_merged_layers_read_only_noexec_with_sub_path(pods, store, tmp_path):
    load(store, tmp_path, "example.com/data:1", data_layers())
    m = pods.manifest([container("c", pods.rootfs, PROBE + "cat /sub/file",
                                 volumeMounts=[{"name": "data", "mountPath": "/volume"},
                                               {"name": "data", "mountPath": "/sub", "subPath": "dir"}])],
                      volumes=[volume("example.com/data:1")])
    code, out, err = pods.run(m)
    assert code == 0, err
    assert out.splitlines() == ["[c] 2", "[c] 1", "[c] gone-absent", "[c] read-only", "[c] not-executed",
                                "[c] noexec", "[c] 1"], out


def test_single_layer_volume_is_held_and_leaves_the_layer_intact(pods, store, tmp_path):
    """One layer is bound, not an overlay: its removal must unmount it, never delete into the store's layer."""
    load(store, tmp_path, "example.com/one:1", data_layers()[:1])
    name = pods.name()
    m = pods.manifest([container("c", pods.rootfs, PROBE + "exec sleep 300",
                                 volumeMounts=[{"name": "data", "mountPath": "/volume"}])],
                      volumes=[volume("example.com/one:1")], name=name)
    code, out, err = pods.apply(m)
    assert code == 0, err
    assert pods.state(name)["images"]["volumes/data"].startswith("sha256:")
    result = store.run("rm", "example.com/one:1", check=False)
    assert result.returncode != 0 and f"in use by {name}: refused" in result.stderr, result.stderr
    helpers.wait_until(lambda: "noexec" in pods.cli("pod", "logs", name)[1], 20, "the probe's output")
    logs = pods.cli("pod", "logs", name)[1]
    assert "old" in logs and "read-only" in logs and "not-executed" in logs and "noexec" in logs, logs
    # Another image for the volume is another sandbox, as any change of spec.volumes.
    load(store, tmp_path, "example.com/one:2", data_layers()[1:])
    m2 = pods.manifest([container("c", pods.rootfs, PROBE + "exec sleep 300",
                                  volumeMounts=[{"name": "data", "mountPath": "/volume"}])],
                       volumes=[volume("example.com/one:2")], name=name)
    code, out, err = pods.apply(m2)
    assert code != 0 and "spec.volumes: changing it needs a new sandbox (apply --recreate)" in err, err
    store.run("rm", "example.com/one:2")
    assert pods.cli("pod", "rm", "--force", name)[0] == 0
    assert pods.leftovers() == []
    (layer,) = store.layers()
    assert sorted(os.listdir(store.layer_dir("sha256:" + layer))) == ["dir", "file", "gone", "run.sh"]
    store.run("rm", "example.com/one:1")


def test_an_absent_image_or_sub_path_fails_naming_the_volume(pods, store, tmp_path):
    m = pods.manifest([container("c", pods.rootfs, "true", volumeMounts=[{"name": "data", "mountPath": "/v"}])],
                      volumes=[volume("example.com/absent:1", "Never")])
    code, out, err = pods.run(m)
    assert code != 0
    assert 'volume data: image "example.com/absent:1" is not present with pull policy of Never ' \
           "(ErrImageNeverPull)" in err, err
    load(store, tmp_path, "example.com/data:1", data_layers())
    m = pods.manifest([container("c", pods.rootfs, "true",
                                 volumeMounts=[{"name": "data", "mountPath": "/v", "subPath": "nowhere"}])],
                      volumes=[volume("example.com/data:1")])
    code, out, err = pods.run(m)
    assert code != 0
    assert "container c: subPath nowhere does not exist in image volume data (image example.com/data:1)" in err, err
    assert pods.leftovers() == []


@pytest.mark.parametrize("sub_path", ["escape", "escape/etc", "up"])
def test_a_sub_path_through_an_image_symlink_out_of_the_volume_is_refused(pods, store, tmp_path, sub_path):
    """The image's content is its author's: its symlinks are resolved below the volume, never on the host."""
    layer = tar_bytes([entry("dir", tarfile.DIRTYPE, mode=0o755),
                       entry("escape", tarfile.SYMTYPE, linkname="/"),
                       entry("up", tarfile.SYMTYPE, linkname="../../../../../..")])
    load(store, tmp_path, "example.com/links:1", [layer])
    m = pods.manifest([container("c", pods.rootfs, "ls /v; echo mounted",
                                 volumeMounts=[{"name": "data", "mountPath": "/v", "subPath": sub_path}])],
                      volumes=[volume("example.com/links:1")])
    code, out, err = pods.run(m)
    assert code != 0, out
    assert f"container c: subPath {sub_path} in volume data leads out of the volume: refused" in err, err
    assert "mounted" not in out
    assert pods.leftovers() == []


def test_manifest_checks(pods):
    m = pods.manifest([container("c", pods.rootfs, "true")],
                      volumes=[{"name": "a", "image": {"reference": "/srv/dir"}},
                               {"name": "b", "image": {"reference": "x:1", "pullPolicy": "Sometimes"}},
                               {"name": "c", "image": {"pullPolicy": "Never"}}])
    code, out, err = pods.apply(m, "--dry-run")
    assert code != 0
    for line in ['spec.volumes[0].image.reference: "/srv/dir" is a path, not an image reference (a directory is a '
                 "hostPath volume)",
                 'spec.volumes[1].image.pullPolicy: must be one of "Always", "IfNotPresent", "Never", not '
                 '"Sometimes"',
                 "spec.volumes[2].image.reference: missing"]:
        assert line in err, err


def test_pulled_from_a_registry(pods, tmp_path_factory):
    images = reg.build_images(str(tmp_path_factory.mktemp("image-volume")))
    server = reg.fake_registry(images["single"])
    try:
        reference = f"localhost:{server.server_port}/pea/single:single"
        m = pods.manifest([container("c", pods.rootfs, "cat /volume/etc/pea-single",
                                     volumeMounts=[{"name": "data", "mountPath": "/volume"}])],
                          volumes=[volume(reference)])
        code, out, err = pods.run(m)
        assert code == 0, err
        assert out.splitlines() == ["[c] 1"], out
        asked = sum("/manifests/" in p for p, _ in server.requests)
        assert asked >= 1, server.requests
        # `pod apply` of a pod whose only image is a volume's pulls too: Always asks the registry again.
        name = pods.name()
        m = pods.manifest([container("c", pods.rootfs, "cat /volume/etc/pea-single; exec sleep 300",
                                     volumeMounts=[{"name": "data", "mountPath": "/volume"}])],
                          volumes=[volume(reference, "Always")], name=name)
        code, out, err = pods.apply(m)
        assert code == 0, err
        assert sum("/manifests/" in p for p, _ in server.requests) > asked, server.requests
        helpers.wait_until(lambda: "1" in pods.cli("pod", "logs", name)[1], 20, "the volume's file in the log")
        assert pods.cli("pod", "rm", "--force", name)[0] == 0
    finally:
        server.close()


def test_every_error_of_one_container_is_a_line(pods):
    """Not image volumes, but the same file's checks: three mistakes in one container, three lines, in order."""
    c = container("c", pods.rootfs, "true", ports=[{"containerPort": 70000}], colour="blue")
    m = pods.manifest([c])
    with open(m) as f:
        doc = json.load(f)
    doc["spec"]["containers"][0]["env"].append({"name": "A", "value": 1})
    with open(m, "w") as f:
        json.dump(doc, f)
    code, out, err = pods.apply(m, "--dry-run")
    assert code != 0
    lines = [line for line in err.splitlines() if "spec.containers[0]" in line]
    assert len(lines) == 3, err
    assert lines[0].endswith("spec.containers[0].ports[0].containerPort: must be between 1 and 65535"), err
    assert lines[1].endswith("spec.containers[0].colour: unknown field"), err
    assert lines[2].endswith("spec.containers[0].env[1].value: must be a string"), err
