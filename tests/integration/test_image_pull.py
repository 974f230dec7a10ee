"""pea image pull: from Debian's docker-registry over TLS with a CA the test makes (given as podman takes it, a
--cert-dir holding ca.crt), open, with htpasswd auth (--authfile, ${XDG_RUNTIME_DIR}/containers/auth.json,
--creds) and with token auth; an OCI index resolved to the host's platform; from a fake registry that tampers,
stalls and holds clients together, for concurrent pulls and a pull killed midway. Images are made offline from
busybox-static; every registry listens on 127.0.0.1."""
import json
import os
import pty
import signal
import subprocess
import threading

import pytest

import registries as reg

pytestmark = pytest.mark.pea_only

USERS = {"alice": "s3cret-pass"}


def clean_env(home, **extra):
    """An environment where the only credential files are the test's own."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "DOCKER_CONFIG")}
    env["HOME"] = str(home)
    env.update(extra)
    return env


class Store:
    def __init__(self, runtime, root):
        self.runtime = runtime
        self.root = str(root)
        self.data = os.path.join(self.root, "data")
        self.path = os.path.join(self.data, "images")
        self.env = clean_env(self.root)

    def command(self, *args):
        return [self.runtime, "image", args[0], "--data-root", self.data, *args[1:]]

    def run(self, *args, env=None, check=True, timeout=120):
        r = subprocess.run(self.command(*args), capture_output=True, text=True, timeout=timeout,
                           env=env or self.env)
        if check:
            assert r.returncode == 0, r.stderr
        return r

    def pull(self, *args, **kw):
        return self.run("pull", *args, **kw)

    def inspect(self, what):
        return json.loads(self.run("inspect", what).stdout)[0]

    def images(self):
        return json.loads(self.run("ls", "-o", "json").stdout)

    def listdir(self, *parts):
        path = os.path.join(self.path, *parts)
        return sorted(os.listdir(path)) if os.path.isdir(path) else []


@pytest.fixture
def store(runtime, tmp_path):
    return Store(runtime, tmp_path)


def assert_fails(r, store, *words):
    """Exit 1, one line on stderr holding words, no image and no work directory left."""
    assert r.returncode == 1, f"exit {r.returncode}: {r.stderr[:500]!r}"
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr[:1000]
    for word in words:
        assert word in lines[0], lines[0]
    assert r.stdout == ""
    assert store.images() == []
    assert store.listdir("tmp") == []
    return lines[0]


def busybox():
    with open("/bin/busybox", "rb") as f:
        return f.read()


def assert_holds_busybox(image, arch):
    base, top = image["LayerDirs"]
    with open(os.path.join(base, "bin", "busybox"), "rb") as f:
        assert f.read() == busybox()
    assert os.readlink(os.path.join(base, "bin", "sh")) == "busybox"
    with open(os.path.join(top, "etc", "pea-arch")) as f:
        assert f.read() == arch + "\n"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Certificates, images, and an open TLS registry holding pea/multi:1 (an OCI index of linux/amd64 and
    linux/arm64/v8), pea/single:latest (an OCI image) and pea/docker:1 (the same, Docker schema 2)."""
    yield from reg.seeded_registry(str(tmp_path_factory.mktemp("pull")), "latest")


def test_index_resolves_to_the_host_platform_and_the_image_is_unpacked(world, store):
    host = world["registry"].host
    images = world["images"]
    r = store.pull(*world["cert_dir"], f"{host}/pea/multi:1")
    assert r.stderr == "", "progress is shown only on a terminal"
    image = store.inspect(f"{host}/pea/multi:1")
    assert r.stdout == image["Id"] + "\n"
    assert image["Digest"] == images["amd64"]["digest"]
    assert image["IndexDigests"] == [images["index"]["digest"]]
    assert image["Names"] == [f"{host}/pea/multi:1"]
    assert sorted(image["RepoDigests"]) == sorted(f"{host}/pea/multi@{d}"
                                                  for d in (images["amd64"]["digest"], images["index"]["digest"]))
    assert (image["Os"], image["Architecture"], image["Config"]["Cmd"]) == ("linux", "amd64", ["/bin/sh"])
    assert_holds_busybox(image, "amd64")  # the base layer was gzip, the top one zstd
    # Found by the index's digest, and pulled by it: the same image, nothing fetched or unpacked twice.
    assert store.inspect(f"{host}/pea/multi@{images['index']['digest']}")["Id"] == image["Id"]
    layers = store.listdir("layers", "sha256")
    r = store.pull(*world["cert_dir"], f"{host}/pea/multi@{images['index']['digest']}")
    assert r.stdout == image["Id"] + "\n"
    assert store.listdir("layers", "sha256") == layers
    assert store.listdir("tmp") == []
    assert len(store.images()) == 1


def test_platform_option_and_no_matching_platform(world, store):
    host = world["registry"].host
    store.pull(*world["cert_dir"], "--platform", "linux/arm64", f"{host}/pea/multi:1")
    image = store.inspect(f"{host}/pea/multi:1")
    assert image["Digest"] == world["images"]["arm64"]["digest"]
    assert_holds_busybox(image, "arm64")
    other = Store(store.runtime, os.path.join(store.root, "other"))
    r = other.pull(*world["cert_dir"], "--platform", "linux/s390x", f"{host}/pea/multi:1", check=False)
    assert_fails(r, other, f"{host}/pea/multi: no manifest for linux/s390x in the index "
                 "(it has linux/arm64/v8, linux/amd64)")


def test_short_names_are_normalised_and_docker_schema2_is_taken(world, store):
    host = world["registry"].host
    store.pull(*world["cert_dir"], f"{host}/pea/single")
    assert store.images()[0]["Names"] == [f"{host}/pea/single:latest"]
    store.pull(*world["cert_dir"], f"{host}/pea/docker:1")
    image = store.inspect(f"{host}/pea/docker:1")
    assert image["Manifest"]["mediaType"] == reg.DOCKER_MANIFEST
    assert os.path.isfile(os.path.join(image["LayerDirs"][1], "etc", "pea-single"))
    # The two share their layers: nothing unpacked twice.
    assert len(store.listdir("layers", "sha256")) == 2


def test_unknown_manifest_and_tls_without_the_ca(world, store):
    host = world["registry"].host
    r = store.pull(*world["cert_dir"], f"{host}/pea/multi:nope", check=False)
    assert_fails(r, store, f"manifest {host}/pea/multi:nope", "404 MANIFEST_UNKNOWN")
    r = store.pull(f"{host}/pea/single", check=False)
    assert_fails(r, store, "certificate")
    # --tls-verify=false names the registry insecure, as podman's does.
    store.pull("--tls-verify=false", f"{host}/pea/single")
    r = store.pull("--tls-verify=no", f"{host}/pea/single", check=False)
    assert r.returncode == 1 and "--tls-verify takes true or false" in r.stderr


def test_plain_http_only_for_loopback_or_with_tls_verify_false(world, store):
    server = reg.fake_registry(world["images"]["single"])
    try:
        port = server.server_port
        # 127.1 is the same server, but not a loopback name.
        r = store.pull(f"127.1:{port}/pea/single:single", check=False)
        assert_fails(r, store, "plain HTTP is used only for loopback addresses and registries named insecure")
        store.pull("--tls-verify=false", f"127.1:{port}/pea/single:single")
        store.pull(f"localhost:{port}/pea/single:single")
        # Everything the store had was not fetched again.
        fetched = [p for p, _ in server.requests if "/blobs/" in p]
        assert len(fetched) == 3, fetched  # config and two layers, once
    finally:
        server.close()


def test_htpasswd_auth_from_authfile_xdg_runtime_dir_and_creds(world, store, tmp_path):
    with reg.basic_auth_registry(world, str(tmp_path), USERS) as registry:
        ref = f"{registry.host}/pea/single"
        r = store.pull(*world["cert_dir"], ref, check=False)
        assert_fails(r, store, f"{registry.host} requires credentials and the credential files have none for it")
        wrong = reg.write_auth_file(str(tmp_path / "wrong.json"), {registry.host: ("alice", "WRONGpw")})
        r = store.pull(*world["cert_dir"], "--authfile", wrong, ref, check=False)
        line = assert_fails(r, store, "401")
        assert "WRONGpw" not in line and "alice" not in line
        good = reg.write_auth_file(str(tmp_path / "auth.json"), {registry.host: ("alice", USERS["alice"])})
        store.pull(*world["cert_dir"], "--authfile", good, ref)
        store.run("rm", ref)
        # podman's own file, where podman login writes it.
        run_dir = tmp_path / "run"
        (run_dir / "containers").mkdir(parents=True)
        reg.write_auth_file(str(run_dir / "containers" / "auth.json"), {registry.host: ("alice", USERS["alice"])})
        store.pull(*world["cert_dir"], ref, env=clean_env(tmp_path, XDG_RUNTIME_DIR=str(run_dir)))
        store.run("rm", ref)
        store.pull(*world["cert_dir"], "--creds", f"alice:{USERS['alice']}", ref)
        assert store.images()[0]["Names"] == [f"{ref}:latest"]


def test_token_auth(world, store, tmp_path):
    with reg.token_auth_registry(world, str(tmp_path), USERS) as (registry, tokens):
        ref = f"{registry.host}/pea/multi:1"
        r = store.pull(*world["cert_dir"], ref, check=False)
        assert_fails(r, store, f"authenticate to {registry.host} anonymously", "401")
        good = reg.write_auth_file(str(tmp_path / "auth.json"), {registry.host: ("alice", USERS["alice"])})
        store.pull(*world["cert_dir"], "--authfile", good, ref)
        assert store.inspect(ref)["Digest"] == world["images"]["amd64"]["digest"]
        assert ("alice", ["repository:pea/multi:pull"], "pea-registry") in tokens.requests


def test_tampered_blob_fails_and_leaves_nothing(world, store):
    images = world["images"]
    layer = reg.single_top_layer(images)
    server = reg.fake_registry(images["single"], tamper=layer)
    try:
        r = store.pull(f"127.0.0.1:{server.server_port}/pea/single:single", check=False)
        assert_fails(r, store, f"blob {layer}: content has digest sha256:")
        assert store.listdir("layers", "sha256") == []
    finally:
        server.close()


# ---- concurrency and interruption --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def big_layout(tmp_path_factory):
    """pea/big:big, a busybox layer and one of 16 MiB of random bytes (it takes a while to unpack)."""
    layout = reg.Layout(str(tmp_path_factory.mktemp("big") / "layout"))
    base, _ = reg.busybox_files("amd64")
    big = {"data/random": os.urandom(16 << 20)}
    manifest = layout.image("amd64", [(base, "gzip"), (big, "zstd")])
    layout.tag(manifest, "big")
    with open(os.path.join(layout.path, "blobs", "sha256", manifest["digest"][7:])) as f:
        layers = json.load(f)["layers"]
    return {"path": layout.path, "manifest": manifest, "big_blob": layers[1]["digest"]}


def read_all(fd, out):
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO once the terminal's other side is closed
            return
        if not chunk:
            return
        out.append(chunk)


def test_concurrent_pulls_of_one_image_unpack_each_layer_once(store, big_layout):
    # The registry answers the manifest only once both pulls asked for it, so they fetch and unpack together.
    server = reg.fake_registry(big_layout["path"], barrier=threading.Barrier(2))
    ref = f"127.0.0.1:{server.server_port}/pea/big:big"
    procs, terminals = [], []
    try:
        for _ in range(2):
            parent, child = pty.openpty()  # progress lines ("Unpacked layer") are shown on a terminal only
            proc = subprocess.Popen(store.command("pull", ref), stdout=subprocess.PIPE, stderr=child, env=store.env)
            os.close(child)
            out = []
            reader = threading.Thread(target=read_all, args=(parent, out))
            reader.start()
            procs.append(proc)
            terminals.append((parent, reader, out))
        ids = [proc.communicate(timeout=120)[0] for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for parent, reader, _ in terminals:
            reader.join(10)
            os.close(parent)
        server.close()
    texts = [b"".join(out).decode(errors="replace") for _, _, out in terminals]
    assert [p.returncode for p in procs] == [0, 0], texts
    assert ids[0] == ids[1] and len(ids[0]) == 65, ids
    image = store.inspect(ref)
    assert image["Id"] == ids[0].decode().strip()
    assert image["Digest"] == big_layout["manifest"]["digest"]
    assert [i["Id"] for i in store.images()] == [image["Id"]]
    for diff_id in image["RootFS"]["diff_ids"]:
        unpacked = sum(text.count(f"Unpacked layer {diff_id[:19]}") for text in texts)
        assert unpacked == 1, texts
    assert store.listdir("layers", "sha256") == sorted(d[7:] for d in image["RootFS"]["diff_ids"])
    assert os.path.getsize(os.path.join(image["LayerDirs"][1], "data", "random")) == 16 << 20
    assert store.listdir("tmp") == []


def test_a_pull_killed_midway_leaves_nothing_visible_and_the_next_succeeds(store, big_layout):
    server = reg.fake_registry(big_layout["path"], stall=big_layout["big_blob"])
    ref = f"127.0.0.1:{server.server_port}/pea/big:big"
    try:
        proc = subprocess.Popen(store.command("pull", ref), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=store.env)
        try:
            assert server.stalled.wait(60), "the pull never asked for the big layer"
            proc.send_signal(signal.SIGKILL)  # `pea image` executes pea-image: this is the pull itself
        finally:
            proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        # Nothing visible: no image, no layer; what it fetched stays in its work directory, inside the store.
        assert store.images() == []
        assert store.listdir("layers", "sha256") == []
        assert os.listdir(store.data) == ["images"]
        [work] = store.listdir("tmp")
        assert os.listdir(os.path.join(store.path, "tmp", work))
        server.release.set()
        r = store.pull(ref)
        assert store.inspect(ref)["Id"] + "\n" == r.stdout
        assert store.listdir("tmp") == [], "the killed pull's work directory was not swept"
    finally:
        server.close()
