"""Registries for the pull tests, all on 127.0.0.1 with random ports and nothing from the internet: images built
offline from busybox-static, Debian's docker-registry behind a CA the test makes (open, htpasswd, or token auth
with a small token server), and a fake registry in Python that misbehaves on purpose."""
import base64
import contextlib
import gzip
import hashlib
import http.server
import io
import json
import os
import shutil
import socket
import ssl
import subprocess
import tarfile
import threading
import time
import urllib.parse
import uuid
import warnings

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
REF_NAME = "org.opencontainers.image.ref.name"


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, proc=None, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


# ---- images, made offline ----

def tar_layer(files):
    """A layer tar of {path: bytes | ("symlink", target)}, reproducible (owner 0, mtime 0)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = sorted({os.path.dirname(p) for p in files if os.path.dirname(p)})
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for path, content in sorted(files.items()):
            info = tarfile.TarInfo(path)
            if isinstance(content, tuple):
                info.type, info.linkname = tarfile.SYMTYPE, content[1]
                tar.addfile(info)
            else:
                info.size, info.mode = len(content), 0o755
                tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def compress(tar, kind):
    if kind == "gzip":
        return gzip.compress(tar, mtime=0)
    return subprocess.run(["zstd", "-q", "-c", "-3"], input=tar, capture_output=True, check=True).stdout


class Layout:
    """An OCI image layout written by hand."""

    def __init__(self, path):
        self.path = path
        os.makedirs(os.path.join(path, "blobs", "sha256"), exist_ok=True)
        with open(os.path.join(path, "oci-layout"), "w") as f:
            f.write('{"imageLayoutVersion":"1.0.0"}')
        self.entries = []

    def blob(self, data, media_type):
        digest = sha256(data)
        with open(os.path.join(self.path, "blobs", "sha256", digest[7:]), "wb") as f:
            f.write(data)
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    def image(self, arch, layers):
        """layers: [(files, "gzip"|"zstd")]. Returns the manifest's descriptor."""
        descs, diff_ids = [], []
        for files, kind in layers:
            tar = tar_layer(files)
            diff_ids.append(sha256(tar))
            descs.append(self.blob(compress(tar, kind), LAYER_GZIP if kind == "gzip" else LAYER_ZSTD))
        config = {"architecture": arch, "os": "linux", "config": {"Cmd": ["/bin/sh"]},
                  "rootfs": {"type": "layers", "diff_ids": diff_ids}}
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                    "config": self.blob(json.dumps(config).encode(), OCI_CONFIG), "layers": descs}
        return self.blob(json.dumps(manifest).encode(), OCI_MANIFEST)

    def tag(self, desc, name, platform=None):
        entry = dict(desc, annotations={REF_NAME: name})
        if platform:
            entry["platform"] = platform
        self.entries.append(entry)
        with open(os.path.join(self.path, "index.json"), "w") as f:
            json.dump({"schemaVersion": 2, "manifests": self.entries}, f)


def busybox_files(arch):
    with open("/bin/busybox", "rb") as f:
        busybox = f.read()
    return {"bin/busybox": busybox, "bin/sh": ("symlink", "busybox")}, {"etc/pea-arch": arch.encode() + b"\n"}


def build_images(root):
    """Two layouts: "multi" (an index of linux/amd64 with a gzip and a zstd layer, and linux/arm64) and
    "single" (one linux/amd64 image of gzip layers, which Docker schema 2 can carry)."""
    multi = Layout(os.path.join(root, "multi"))
    base, amd64 = busybox_files("amd64")
    _, arm64 = busybox_files("arm64")
    m_amd64 = multi.image("amd64", [(base, "gzip"), (amd64, "zstd")])
    m_arm64 = multi.image("arm64", [(base, "gzip"), (arm64, "gzip")])
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        dict(m_arm64, platform={"os": "linux", "architecture": "arm64", "variant": "v8"}),
        dict(m_amd64, platform={"os": "linux", "architecture": "amd64"})]}
    multi.tag(multi.blob(json.dumps(index).encode(), OCI_INDEX), "multi")
    single = Layout(os.path.join(root, "single"))
    m_single = single.image("amd64", [(base, "gzip"), ({"etc/pea-single": b"1\n"}, "gzip")])
    single.tag(m_single, "single")
    return {"multi": multi.path, "single": single.path, "amd64": m_amd64, "arm64": m_arm64,
            "index": multi.entries[0], "single_manifest": m_single}


# ---- certificates ----

def make_certs(root):
    """A CA, a server certificate for 127.0.0.1 and localhost signed by it, and a self-signed key pair that
    signs registry tokens (python3-cryptography). Returns paths; certs/ is a --cert-dir holding only the CA."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def cert(subject, key, issuer, issuer_key, extensions):
        b = (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(name(issuer))
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=2)))
        for ext, critical in extensions:
            b = b.add_extension(ext, critical=critical)
        return b.sign(issuer_key, hashes.SHA256())

    def write(path, *items):
        with open(path, "wb") as f:
            for item in items:
                if isinstance(item, x509.Certificate):
                    f.write(item.public_bytes(serialization.Encoding.PEM))
                else:
                    f.write(item.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))

    os.makedirs(os.path.join(root, "certs"))
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = cert("pea test CA", ca_key, "pea test CA", ca_key, [
        (x509.BasicConstraints(ca=True, path_length=None), True),
        (x509.KeyUsage(False, False, False, False, False, True, True, False, False), True)])
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = cert("127.0.0.1", server_key, "pea test CA", ca_key, [
        (x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                      x509.DNSName("localhost")]), False),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)])
    token_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = cert("pea test token signer", token_key, "pea test token signer", token_key, [])
    paths = {n: os.path.join(root, n) for n in ("certs", "server.crt", "server.key", "token.key", "token.crt")}
    paths["ca"] = os.path.join(root, "certs", "ca.crt")
    write(paths["ca"], ca)
    write(paths["server.crt"], server)
    write(paths["server.key"], server_key)
    write(paths["token.crt"], token)
    write(paths["token.key"], token_key)
    return paths


# ---- docker-registry ----

class Registry:
    """/usr/bin/docker-registry on 127.0.0.1:<random port>, TLS with the test CA, storage in storage (default
    root/storage: registries sharing one serve the same images)."""

    def __init__(self, root, name, certs, auth=None, storage=None):
        self.dir = os.path.join(root, name)
        os.makedirs(self.dir)
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        config = {"version": 0.1, "log": {"level": "warn", "accesslog": {"disabled": True}},
                  "storage": {"filesystem": {"rootdirectory": storage or os.path.join(root, "storage")}},
                  "http": {"addr": self.host, "secret": uuid.uuid4().hex,
                           "tls": {"certificate": certs["server.crt"], "key": certs["server.key"]}}}
        if auth:
            config["auth"] = auth
        path = os.path.join(self.dir, "config.yml")
        with open(path, "w") as f:
            json.dump(config, f)  # YAML reads JSON
        self.log = open(os.path.join(self.dir, "log"), "wb")
        self.proc = subprocess.Popen(["/usr/bin/docker-registry", "serve", path], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        try:
            wait_for_port(self.port, self.proc)
        except Exception:
            self.stop()
            raise

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def seeded_registry(root, single_tag):
    """Certificates, images, and an open TLS registry holding pea/multi:1 (an OCI index of linux/amd64 and
    linux/arm64/v8), pea/single:SINGLE_TAG (an OCI image) and pea/docker:1 (the same, Docker schema 2). A generator
    for a module fixture (`yield from`): the registry stops when the fixture ends."""
    certs = make_certs(root)
    images = build_images(os.path.join(root, "images"))
    registry = Registry(root, "open", certs)
    try:
        dest = ["--dest-cert-dir", certs["certs"], "--preserve-digests"]
        skopeo_copy(f"oci:{images['multi']}:multi", f"docker://{registry.host}/pea/multi:1", "--all", *dest)
        skopeo_copy(f"oci:{images['single']}:single", f"docker://{registry.host}/pea/single:{single_tag}", *dest)
        skopeo_copy(f"oci:{images['single']}:single", f"docker://{registry.host}/pea/docker:1",
                    "--dest-cert-dir", certs["certs"], "--format", "v2s2")
        yield {"root": root, "storage": os.path.join(root, "storage"), "certs": certs, "images": images,
               "registry": registry, "cert_dir": ["--cert-dir", certs["certs"]]}
    finally:
        registry.stop()


@contextlib.contextmanager
def basic_auth_registry(world, root, users):
    """A second registry over seeded_registry's storage, asking for HTTP basic auth (htpasswd of users)."""
    path = os.path.join(root, "htpasswd")
    htpasswd(path, users)
    registry = Registry(root, "basic", world["certs"], auth={"htpasswd": {"realm": "pea-test", "path": path}},
                        storage=world["storage"])
    try:
        yield registry
    finally:
        registry.stop()


@contextlib.contextmanager
def token_auth_registry(world, root, users, field="token"):
    """A second registry over seeded_registry's storage, with bearer tokens from token_server (service
    "pea-registry"): yields the registry and the token server, whose requests the test may check."""
    certs = world["certs"]
    tokens = token_server(certs, "pea-registry", "pea-issuer", users, field=field)
    try:
        auth = {"token": {"realm": f"https://127.0.0.1:{tokens.server_port}/token", "service": "pea-registry",
                          "issuer": "pea-issuer", "rootcertbundle": certs["token.crt"]}}
        registry = Registry(root, "token", certs, auth=auth, storage=world["storage"])
        try:
            yield registry, tokens
        finally:
            registry.stop()
    finally:
        tokens.close()


def single_top_layer(images):
    """The digest of the top layer of build_images' single image (what the fake registry tampers with)."""
    with open(os.path.join(images["single"], "blobs", "sha256", images["single_manifest"]["digest"][7:]), "rb") as f:
        return json.load(f)["layers"][1]["digest"]


def htpasswd(path, users):
    with warnings.catch_warnings():  # crypt is deprecated, and still the one bcrypt in the standard library
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt
    with open(path, "w") as f:
        for user, password in users.items():
            # bcrypt at the lowest cost: the registry checks it on every request.
            f.write(f"{user}:{crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))}\n")


def write_auth_file(path, entries):
    """entries: {key: (user, password)} as podman and docker write them."""
    auths = {key: {"auth": base64.b64encode(f"{u}:{p}".encode()).decode()} for key, (u, p) in entries.items()}
    with open(path, "w") as f:
        json.dump({"auths": auths}, f)
    return path


# ---- HTTP servers in threads ----

class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


@contextlib.contextmanager
def serve(handler_class, certs=None):
    """Run handler_class on 127.0.0.1:<random port> (TLS with the test CA's server certificate when certs)."""
    server = _Server(("127.0.0.1", 0), handler_class)
    if certs:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(certs["server.crt"], certs["server.key"])
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


class _QuietHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def token_server(certs, service, issuer, users, field="token"):
    """A bearer token realm for docker-registry's token auth: basic credentials from users, tokens signed with
    the test's key (x5c names the certificate the registry trusts). server.requests records (user, scope)."""
    import jwt  # python3-jwt, only needed here

    with open(certs["token.key"], "rb") as f:
        key = f.read()
    with open(certs["token.crt"]) as f:
        pem = f.read()
    der = ssl.PEM_cert_to_DER_cert(pem)
    requests = []

    class Handler(_QuietHandler):
        def do_GET(self):
            query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
            user = None
            auth = self.headers.get("Authorization", "")
            if auth.startswith("Basic "):
                u, _, p = base64.b64decode(auth[6:]).decode().partition(":")
                if users.get(u) != p:
                    return self.reply(401, b'{"details":"bad credentials"}')
                user = u
            scopes = query.get("scope", [])
            requests.append((user, scopes, query.get("service", [None])[0]))
            if user is None:
                return self.reply(401, b'{"details":"credentials required"}')
            access = []
            for scope in scopes:
                kind, name, actions = scope.split(":")
                access.append({"type": kind, "name": name, "actions": actions.split(",")})
            now = int(time.time())
            claims = {"iss": issuer, "sub": user, "aud": service, "exp": now + 300, "nbf": now - 10, "iat": now,
                      "jti": uuid.uuid4().hex, "access": access}
            token = jwt.encode(claims, key, algorithm="RS256",
                               headers={"x5c": [base64.b64encode(der).decode()]})
            self.reply(200, json.dumps({field: token, "expires_in": 300}).encode(),
                       [("Content-Type", "application/json")])

    ctx = serve(Handler, certs)
    server = ctx.__enter__()
    server.requests = requests
    server.close = lambda: ctx.__exit__(None, None, None)
    return server


def fake_registry(layout, tamper=None, redirect_host=None, basic=None, oversize=None, barrier=None, stall=None):
    """Plain HTTP registry serving an OCI layout. tamper: a digest whose content is altered (same size);
    oversize: a digest served with extra bytes; redirect_host: blobs redirect to http://HOST:PORT/storage/;
    basic: (user, password) the registry (not the storage) requires; barrier: a threading.Barrier every manifest
    request waits at (so that clients go on together); stall: a digest of which half is sent, the rest only once
    server.release is set. server.requests records (path, auth); server.stalled is set once the half is sent."""
    requests = []
    release, stalled = threading.Event(), threading.Event()

    def read_blob(digest):
        with open(os.path.join(layout, "blobs", "sha256", digest[7:]), "rb") as f:
            return f.read()

    class Handler(_QuietHandler):
        def do_GET(self):
            auth = self.headers.get("Authorization")
            requests.append((self.path, auth))
            parts = self.path.split("/")
            if self.path.startswith("/storage/"):
                return self.reply(200, read_blob(parts[2]))
            if basic and auth != "Basic " + base64.b64encode(f"{basic[0]}:{basic[1]}".encode()).decode():
                return self.reply(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}',
                                  [("WWW-Authenticate", 'Basic realm="fake"')])
            if self.path == "/v2/":
                return self.reply(200, b"{}")
            if len(parts) >= 5 and parts[-2] == "manifests":
                if barrier:
                    barrier.wait(30)
                with open(os.path.join(layout, "index.json")) as f:
                    index = json.load(f)
                for entry in index["manifests"]:
                    if parts[-1] in (entry["digest"], entry.get("annotations", {}).get(REF_NAME)):
                        return self.reply(200, read_blob(entry["digest"]), [("Content-Type", entry["mediaType"])])
                return self.reply(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}')
            if len(parts) >= 5 and parts[-2] == "blobs":
                digest = parts[-1]
                if redirect_host:
                    return self.reply(307, b"", [("Location", f"http://{redirect_host}:{self.server.server_port}"
                                                              f"/storage/{digest}")])
                data = read_blob(digest)
                if digest == tamper:
                    data = data[:-1] + bytes([data[-1] ^ 0xff])
                if digest == oversize:
                    data += b"\0" * 4096
                if digest == stall:
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data[:len(data) // 2])
                    self.wfile.flush()
                    stalled.set()
                    release.wait(60)
                    with contextlib.suppress(OSError):
                        self.wfile.write(data[len(data) // 2:])
                    return None
                return self.reply(200, data)
            self.reply(404)

    ctx = serve(Handler)
    server = ctx.__enter__()
    server.requests, server.release, server.stalled = requests, release, stalled

    def close():
        release.set()
        ctx.__exit__(None, None, None)

    server.close = close
    return server


def skopeo_copy(src, dest, *args, timeout=120):
    subprocess.run(["skopeo", "--insecure-policy", "copy", "-q", *args, src, dest], check=True, capture_output=True,
                   timeout=timeout)


def layout_blobs(path):
    """{digest: bytes} of an OCI layout's blobs."""
    out = {}
    blobs = os.path.join(path, "blobs", "sha256")
    for name in os.listdir(blobs):
        with open(os.path.join(blobs, name), "rb") as f:
            out["sha256:" + name] = f.read()
    return out


def rmtree(path):
    shutil.rmtree(path, ignore_errors=True)
