"""Pods whose images come from a registry (issue 15, item 5): `pea pod apply` pulls with `pea image pull` as
imagePullPolicy says — IfNotPresent pulls only what the store lacks, Always asks the registry every time (its
blobs are not fetched again), Never refuses an absent image — and the container runs the pulled image. The
registry is registries.py's plain-HTTP one on loopback, serving an OCI layout made offline from busybox."""
import json
import os

import pytest

import helpers
import registries as reg

pytestmark = pytest.mark.pea_only


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    images = reg.build_images(str(tmp_path_factory.mktemp("pod-pull")))
    server = reg.fake_registry(images["single"])
    try:
        yield server
    finally:
        server.close()


def requests(server, kind):
    return [p for p, _ in server.requests if f"/{kind}/" in p]


def pod(pods, image, policy=None):
    c = {"name": "c", "image": image, "command": ["sh", "-c", "cat /etc/pea-single; exec sleep 300"]}
    if policy:
        c["imagePullPolicy"] = policy
    return pods.manifest([c])


def logs(pods, name):
    return pods.cli("pod", "logs", name)[1]


def test_pull_policies_against_a_registry(pods, registry):
    image = f"localhost:{registry.server_port}/pea/single:single"
    # IfNotPresent (the default for a tag other than latest) with the image absent: pulled, then run.
    first = pod(pods, image)
    code, out, err = pods.apply(first)
    assert code == 0, err
    name = json.load(open(first))["metadata"]["name"]
    helpers.wait_until(lambda: "1" in logs(pods, name), 20, "the pulled image's file in the log")
    manifests, blobs = len(requests(registry, "manifests")), len(requests(registry, "blobs"))
    assert manifests >= 1 and blobs == 3, registry.requests  # the config and two layers
    # IfNotPresent with the image present: the registry is not asked.
    code, _, err = pods.apply(pod(pods, image, "IfNotPresent"))
    assert code == 0, err
    assert len(requests(registry, "manifests")) == manifests, registry.requests
    # Always: the registry is asked again, but nothing the store has is fetched again.
    code, _, err = pods.apply(pod(pods, image, "Always"))
    assert code == 0, err
    assert len(requests(registry, "manifests")) > manifests, registry.requests
    assert len(requests(registry, "blobs")) == blobs, registry.requests
    # Never, with a tag the store lacks: refused before anything runs, without asking the registry.
    before = len(registry.requests)
    code, _, err = pods.apply(pod(pods, f"localhost:{registry.server_port}/pea/single:other", "Never"))
    assert code != 0 and "ErrImageNeverPull" in err, err
    assert len(registry.requests) == before
    # A tag the registry lacks: ErrImagePull, naming the container and the image.
    code, _, err = pods.apply(pod(pods, f"localhost:{registry.server_port}/pea/single:missing"))
    assert code != 0 and "ErrImagePull" in err and "container c" in err, err
    for n in list(pods.names):
        pods.cli("pod", "rm", "--force", n)
    assert pods.leftovers() == []
