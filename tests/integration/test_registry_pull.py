"""The registry client (runtime/registry*.c) through tests/helper/registry-fetch: pulls from Debian's
docker-registry over TLS (open, htpasswd, token auth) compared with what skopeo pulls from the same registry, and
from a fake registry that tampers, oversends and redirects. Everything runs on 127.0.0.1; images are made offline."""
import json
import os
import pty
import subprocess

import pytest

import registries as reg

pytestmark = pytest.mark.pea_only

BUILD_DIR = os.environ.get("PEA_BUILD_DIR") or os.path.join(os.path.dirname(__file__), "..", "..", "build")
FETCH = os.path.join(BUILD_DIR, "tests", "registry-fetch")
USERS = {"alice": "s3cret-pass"}


def fetch(layout, registry, repository, *args, tag=None, digest=None, timeout=120):
    cmd = [FETCH, "--registry", registry, "--repository", repository]
    cmd += ["--tag", tag] if tag else ["--digest", digest]
    r = subprocess.run([*cmd, *args, layout], capture_output=True, text=True, timeout=timeout)
    info = dict(line.split(" ", 1) for line in r.stdout.splitlines()) if r.returncode == 0 else {}
    return r, info


def assert_fails(r, layout, *words):
    """Exit 1, one line on stderr naming words, and no layout left behind."""
    assert r.returncode == 1, f"exit {r.returncode}: {r.stderr[:500]!r}"
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr[:1000]
    for word in words:
        assert word in lines[0], lines[0]
    assert not os.path.exists(layout), "a failed pull left its layout behind"
    return lines[0]


def assert_verified_layout(layout, info, tag):
    """Every blob's name is its digest; index.json names the manifest, tagged."""
    blobs = reg.layout_blobs(layout)
    for digest, data in blobs.items():
        assert reg.sha256(data) == digest
    assert not [n for n in os.listdir(os.path.join(layout, "blobs", "sha256")) if n.startswith(".")]
    with open(os.path.join(layout, "index.json")) as f:
        index = json.load(f)
    [entry] = index["manifests"]
    assert entry["digest"] == info["manifest"]
    assert entry["mediaType"] == info["mediaType"]
    assert entry["size"] == len(blobs[info["manifest"]])
    if tag:
        assert entry["annotations"] == {reg.REF_NAME: tag}
    manifest = json.loads(blobs[info["manifest"]])
    for desc in [manifest["config"], *manifest["layers"]]:
        assert len(blobs[desc["digest"]]) == desc["size"]
    return blobs, manifest


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Certificates, images, and an open TLS registry holding pea/multi:1 (an OCI index), pea/single:1 (an OCI
    image) and pea/docker:1 (the same, Docker schema 2)."""
    if not os.access(FETCH, os.X_OK):
        pytest.fail(f"{FETCH} is not built", pytrace=False)
    yield from reg.seeded_registry(str(tmp_path_factory.mktemp("registry")), "1")


@pytest.fixture
def out(tmp_path):
    return str(tmp_path / "layout")


def skopeo_pull(world, image, dest, *args):
    reg.skopeo_copy(f"docker://{world['registry'].host}/{image}", f"oci:{dest}:x", "--src-cert-dir",
                    world["certs"]["certs"], *args)
    return reg.layout_blobs(dest)


def test_index_resolves_to_host_platform_and_matches_skopeo(world, out, tmp_path):
    r, info = fetch(out, world["registry"].host, "pea/multi", "--cert-dir", world["certs"]["certs"], tag="1")
    assert r.returncode == 0, r.stderr
    images = world["images"]
    assert info["index"] == images["index"]["digest"]
    assert info["manifest"] == images["amd64"]["digest"]
    assert info["mediaType"] == reg.OCI_MANIFEST
    blobs, manifest = assert_verified_layout(out, info, "1")
    assert [layer["mediaType"] for layer in manifest["layers"]] == [reg.LAYER_GZIP, reg.LAYER_ZSTD]
    with open(os.path.join(out, "index.json")) as f:
        assert json.load(f)["manifests"][0]["platform"] == {"architecture": "amd64", "os": "linux"}
    # skopeo picks the same platform and fetches the same bytes.
    theirs = skopeo_pull(world, "pea/multi:1", str(tmp_path / "skopeo"))
    assert set(blobs) == set(theirs)
    assert all(blobs[d] == theirs[d] for d in blobs)


def test_other_platform_and_missing_platform(world, out):
    certs = ["--cert-dir", world["certs"]["certs"]]
    r, info = fetch(out, world["registry"].host, "pea/multi", *certs, "--platform", "linux/aarch64", tag="1")
    assert r.returncode == 0, r.stderr
    assert info["manifest"] == world["images"]["arm64"]["digest"]
    r, _ = fetch(out + "2", world["registry"].host, "pea/multi", *certs, "--platform", "linux/s390x", tag="1")
    assert_fails(r, out + "2", "no manifest for linux/s390x in the index (it has linux/arm64/v8, linux/amd64)")


def test_docker_schema2_kept_as_served(world, out, tmp_path):
    r, info = fetch(out, world["registry"].host, "pea/docker", "--cert-dir", world["certs"]["certs"], tag="1")
    assert r.returncode == 0, r.stderr
    assert info["mediaType"] == reg.DOCKER_MANIFEST and info["index"] == "-"
    blobs, manifest = assert_verified_layout(out, info, "1")
    raw = subprocess.run(["skopeo", "inspect", "--raw", "--cert-dir", world["certs"]["certs"],
                          f"docker://{world['registry'].host}/pea/docker:1"], capture_output=True, check=True).stdout
    assert blobs[info["manifest"]] == raw
    # skopeo's dir: transport keeps blobs as served (its oci: one would convert the image).
    theirs = str(tmp_path / "skopeo")
    reg.skopeo_copy(f"docker://{world['registry'].host}/pea/docker:1", f"dir:{theirs}", "--src-cert-dir",
                    world["certs"]["certs"])
    for desc in [manifest["config"], *manifest["layers"]]:
        with open(os.path.join(theirs, desc["digest"][7:]), "rb") as f:
            assert blobs[desc["digest"]] == f.read()
    assert {d for d in blobs if d != info["manifest"]} == {"sha256:" + n for n in os.listdir(theirs)
                                                           if len(n) == 64}


def test_pull_by_digest(world, out):
    digest = world["images"]["amd64"]["digest"]
    r, info = fetch(out, world["registry"].host, "pea/multi", "--cert-dir", world["certs"]["certs"], digest=digest)
    assert r.returncode == 0, r.stderr
    assert info["manifest"] == digest and info["index"] == "-"
    with open(os.path.join(out, "index.json")) as f:
        assert "annotations" not in json.load(f)["manifests"][0]


def test_unknown_tag_and_absurd_blob_size(world, out):
    certs = ["--cert-dir", world["certs"]["certs"]]
    r, _ = fetch(out, world["registry"].host, "pea/multi", *certs, tag="nope")
    assert_fails(r, out, "manifest", "pea/multi:nope", "404 MANIFEST_UNKNOWN")
    r, _ = fetch(out, world["registry"].host, "pea/single", *certs, "--max-blob-size", "1000", tag="1")
    assert_fails(r, out, "manifest.layers[0]: blob sha256:", "exceeds the limit of 1000")


def test_tls_needs_the_ca_unless_insecure(world, out):
    host = world["registry"].host
    r, _ = fetch(out, host, "pea/single", "--auth-file", "", tag="1")
    assert_fails(r, out, "certificate")
    r, info = fetch(out, host, "pea/single", "--insecure", host, tag="1")
    assert r.returncode == 0, r.stderr


def test_htpasswd_basic_auth(world, out, tmp_path):
    with reg.basic_auth_registry(world, str(tmp_path), USERS) as registry:
        certs = ["--cert-dir", world["certs"]["certs"]]
        r, _ = fetch(out, registry.host, "pea/single", *certs, "--auth-file", "", tag="1")
        assert_fails(r, out, "requires credentials")
        # docker's config.json keys are URLs; a wrong password is refused without being shown.
        wrong = reg.write_auth_file(str(tmp_path / "wrong.json"), {f"https://{registry.host}": ("alice", "WRONGpw")})
        r, _ = fetch(out, registry.host, "pea/single", *certs, "--auth-file", wrong, tag="1")
        line = assert_fails(r, out, "401")
        assert "WRONGpw" not in line and "alice" not in line
        # The first file with an entry for the registry wins; podman's files name host:port.
        other = reg.write_auth_file(str(tmp_path / "other.json"), {"elsewhere.example": ("bob", "x")})
        good = reg.write_auth_file(str(tmp_path / "auth.json"), {registry.host: ("alice", USERS["alice"])})
        r, info = fetch(out, registry.host, "pea/single", *certs, "--auth-file", other, "--auth-file", good,
                        "--auth-file", wrong, tag="1")
        assert r.returncode == 0, r.stderr
        assert info["manifest"] == world["images"]["single_manifest"]["digest"]


@pytest.mark.parametrize("field", ["token", "access_token"])
def test_bearer_token_flow(world, out, tmp_path, field):
    with reg.token_auth_registry(world, str(tmp_path), USERS, field=field) as (registry, tokens):
        r, _ = fetch(out, registry.host, "pea/multi", *world["cert_dir"], "--auth-file", "", tag="1")
        assert_fails(r, out, "authenticate to", "anonymously", "401")
        good = reg.write_auth_file(str(tmp_path / "auth.json"), {registry.host: ("alice", USERS["alice"])})
        r, info = fetch(out, registry.host, "pea/multi", *world["cert_dir"], "--auth-file", good, tag="1")
        assert r.returncode == 0, r.stderr
        assert info["manifest"] == world["images"]["amd64"]["digest"]
        assert ("alice", ["repository:pea/multi:pull"], "pea-registry") in tokens.requests


def test_tampered_blob_fails_and_leaves_nothing(world, out):
    images = world["images"]
    layer = reg.single_top_layer(images)
    server = reg.fake_registry(images["single"], tamper=layer)
    try:
        r, _ = fetch(out, f"127.0.0.1:{server.server_port}", "pea/single", tag="single")
        assert_fails(r, out, f"blob {layer}: content has digest sha256:")
    finally:
        server.close()
    server = reg.fake_registry(images["single"], oversize=layer)
    try:
        r, _ = fetch(out, f"127.0.0.1:{server.server_port}", "pea/single", tag="single")
        assert_fails(r, out, f"blob {layer}: the registry sent more than")
    finally:
        server.close()


def test_redirected_blobs_do_not_carry_credentials(world, out, tmp_path):
    basic = ("alice", USERS["alice"])
    server = reg.fake_registry(world["images"]["single"], redirect_host="localhost", basic=basic)
    try:
        host = f"127.0.0.1:{server.server_port}"
        good = reg.write_auth_file(str(tmp_path / "auth.json"), {host: basic})
        r, info = fetch(out, host, "pea/single", "--auth-file", good, tag="single")
        assert r.returncode == 0, r.stderr
        storage = [auth for path, auth in server.requests if path.startswith("/storage/")]
        registry = [auth for path, auth in server.requests if "/blobs/" in path]
        assert len(storage) == 3 and len(registry) >= 3  # config and two layers
        assert storage == [None, None, None]
        assert all(a and a.startswith("Basic ") for a in registry[-3:])
    finally:
        server.close()


def test_plain_http_only_for_loopback_names_or_insecure(world, out):
    server = reg.fake_registry(world["images"]["single"])
    try:
        port = server.server_port
        r, _ = fetch(out, f"127.0.0.1:{port}", "pea/single", tag="single")
        assert r.returncode == 0, r.stderr
        reg.rmtree(out)
        r, _ = fetch(out, f"localhost:{port}", "pea/single", tag="single")
        assert r.returncode == 0, r.stderr
        reg.rmtree(out)
        # 127.1 reaches the same server, but is not a loopback name: HTTPS only, unless named insecure.
        r, _ = fetch(out, f"127.1:{port}", "pea/single", tag="single")
        assert_fails(r, out, f"manifest 127.1:{port}/pea/single:single: TLS handshake failed",
                     "plain HTTP is used only for loopback addresses and registries named insecure")
        r, _ = fetch(out, f"127.1:{port}", "pea/single", "--insecure", f"127.1:{port}", tag="single")
        assert r.returncode == 0, r.stderr
    finally:
        server.close()


def test_progress_only_on_a_terminal(world, out):
    args = [FETCH, "--registry", world["registry"].host, "--repository", "pea/multi", "--tag", "1", "--cert-dir",
            world["certs"]["certs"], "--progress"]
    r = subprocess.run([*args, out], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    reg.rmtree(out)
    parent, child = pty.openpty()
    try:
        r = subprocess.run([*args, out], stdout=subprocess.PIPE, stderr=child, timeout=60)
        os.close(child)
        child = -1
        text = b""
        while True:
            try:
                chunk = os.read(parent, 65536)
            except OSError:  # EIO once the terminal's other side is closed
                break
            if not chunk:
                break
            text += chunk
    finally:
        if child >= 0:
            os.close(child)
        os.close(parent)
    assert r.returncode == 0
    manifest = json.loads(reg.layout_blobs(out)[world["images"]["amd64"]["digest"]])
    for desc in [manifest["config"], *manifest["layers"]]:
        assert f"Fetched {desc['digest'][:19]}".encode() in text, text


def test_blobs_the_caller_holds_are_not_fetched(world, out):
    images = world["images"]
    with open(os.path.join(images["single"], "blobs", "sha256", images["single_manifest"]["digest"][7:]), "rb") as f:
        base = json.load(f)["layers"][0]["digest"]
    server = reg.fake_registry(images["single"])
    try:
        r, info = fetch(out, f"127.0.0.1:{server.server_port}", "pea/single", "--have", base, tag="single")
        assert r.returncode == 0, r.stderr
        assert not [p for p, _ in server.requests if p.endswith(base)]
        blobs = reg.layout_blobs(out)
        assert base not in blobs and len(blobs) == 3  # manifest, config, the other layer
    finally:
        server.close()


def test_registry_names_that_would_climb_out_of_certs_d_are_refused(out):
    for name in ("..", ".", ".hidden:5000"):
        r, _ = fetch(out, name, "pea/single", tag="1")
        assert_fails(r, out, f'registry "{name}": not a host name with an optional port')
