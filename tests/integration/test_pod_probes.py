"""Probes and lifecycle hooks with the kubelet's semantics: readiness in `pod ps`/`pod ls`, a failed liveness probe
restarting the container with Unhealthy and Killing events, httpGet and tcpSocket against servers in the container,
startup gating, postStart and preStop, the stop signal and the grace deadline. Timings are short (periodSeconds 1)
with generous margins; state the test reads goes through volumes, never the shared rootfs."""
import os
import signal
import subprocess
import time

import pytest

import helpers
from pods import Events, container, ls, ps

pytestmark = pytest.mark.pea_only

WORK = [{"name": "w", "emptyDir": {}}]
MOUNT = [{"name": "w", "mountPath": "/w"}]


def applied(pods, manifest):
    code, out, err = pods.apply(manifest)
    assert code == 0, err


def wait_for(pods, name, what, predicate, timeout=20):
    helpers.wait_until(lambda: predicate(ps(pods, name)), timeout, what)
    return ps(pods, name)


def exec_in(pods, name, *argv):
    code, out, err = pods.cli("pod", "exec", name, "--", *argv)
    assert code == 0, err
    return out


def removed(pods, name):
    code, out, err = pods.cli("pod", "rm", name)
    assert code == 0, err


def test_readiness_follows_an_exec_probe_in_ps_and_ls(pods):
    name = pods.name()
    c = container("a", pods.rootfs, "touch /w/ready; exec sleep 300", volumeMounts=MOUNT,
                  readinessProbe={"exec": {"command": ["cat", "/w/ready"]}, "periodSeconds": 1,
                                  "failureThreshold": 1})
    applied(pods, pods.manifest([c], volumes=WORK, name=name))
    got = wait_for(pods, name, "ready", lambda p: p["a"]["ready"])
    assert got["a"]["started"] is True
    assert ls(pods)[name]["ready"] == "1/1"
    code, out, err = pods.cli("pod", "ps", name)
    assert out.splitlines()[0].split()[:3] == ["CONTAINER", "STATE", "READY"]
    assert out.splitlines()[1].split()[:3] == ["a", "running", "true"], out
    exec_in(pods, name, "rm", "/w/ready")
    wait_for(pods, name, "not ready", lambda p: not p["a"]["ready"])
    assert ls(pods)[name]["ready"] == "0/1"
    code, out, err = pods.cli("pod", "ls")
    assert [line.split()[2] for line in out.splitlines() if line.startswith(name)] == ["0/1"], out
    exec_in(pods, name, "touch", "/w/ready")
    got = wait_for(pods, name, "ready again", lambda p: p["a"]["ready"])
    assert got["a"]["restarts"] == 0 and got["a"]["state"] == "running", "readiness never restarts"
    removed(pods, name)


def test_failed_liveness_probe_restarts_the_container_with_events(pods):
    name = pods.name()
    # Healthy for a second, then sick for good (until a new instance clears the mark).
    c = container("a", pods.rootfs, "rm -f /w/sick; echo run >> /w/runs; sleep 1; touch /w/sick; exec sleep 300",
                  volumeMounts=MOUNT,
                  livenessProbe={"exec": {"command": ["sh", "-c", "test ! -e /w/sick || { echo sick; exit 1; }"]},
                                 "periodSeconds": 1, "failureThreshold": 2})
    applied(pods, pods.manifest([c], volumes=WORK, name=name, spec={"restartPolicy": "Always"}))
    events = Events(pods, name)
    try:
        got = wait_for(pods, name, "a restart", lambda p: p["a"]["restarts"] >= 1 and p["a"]["state"] == "running")
        helpers.wait_until(lambda: events.reasons("Killing"), 10, "a Killing event")
        assert "Liveness probe failed: sick" in events.reasons("Unhealthy")
        assert events.reasons("Killing")[0] == "Container a failed liveness probe, will be restarted"
        assert ls(pods)[name]["restarts"] >= 1
        assert got["a"]["exitCode"] == 137 or got["a"]["exitCode"] == 143
    finally:
        events.close()
    assert int(exec_in(pods, name, "sh", "-c", "wc -l < /w/runs").strip()) >= 2
    removed(pods, name)


def test_liveness_kill_under_never_does_not_restart(pods):
    name = pods.name()
    c = container("a", pods.rootfs, "exec sleep 300", livenessProbe={"exec": {"command": ["false"]},
                                                                      "periodSeconds": 1, "failureThreshold": 1})
    m = pods.manifest([c], name=name)
    run = pods.start(m)
    code = run.proc.wait(20)
    run.stop()
    assert code in (137, 143), run.err  # sleep as PID 1 ignores SIGTERM: SIGKILL after the grace period
    assert "pea: pod: a: Killing: Container a failed liveness probe" in run.err
    assert "will be restarted" not in run.err and "restarting" not in run.err
    assert pods.leftovers() == []


def test_http_and_tcp_probes_against_servers_in_the_container(pods):
    name = pods.name()
    # httpd serves /w/www; a one-shot nc loop on 9090 records each request it gets and answers 204.
    script = ("mkdir -p /w/www && echo ok > /w/www/ok.html && httpd -p 8080 -h /w/www && "
              "while true; do printf 'HTTP/1.0 204 No Content\\r\\n\\r\\n' | nc -l -p 9090 >> /w/requests; done")
    c = container("a", pods.rootfs, script, volumeMounts=MOUNT,
                  ports=[{"name": "web", "containerPort": 8080}, {"name": "recorder", "containerPort": 9090}],
                  readinessProbe={"httpGet": {"port": "web", "path": "/ok.html"}, "periodSeconds": 1,
                                  "failureThreshold": 1},
                  livenessProbe={"tcpSocket": {"port": 8080}, "periodSeconds": 1},
                  startupProbe={"httpGet": {"port": "recorder", "path": "/healthz?x=1",
                                            "httpHeaders": [{"name": "X-Probe", "value": "yes"}]},
                                "periodSeconds": 1, "failureThreshold": 10})
    applied(pods, pods.manifest([c], volumes=WORK, name=name))
    events = Events(pods, name)
    try:
        wait_for(pods, name, "ready", lambda p: p["a"]["ready"])
        # Read as bytes: text mode would fold the CRLFs.
        requests = subprocess.run(pods.argv("pod", "exec", name, "--", "cat", "/w/requests"), capture_output=True,
                                  env=pods.env, check=True).stdout
        assert b"GET /healthz?x=1 HTTP/1.1\r\n" in requests
        assert b"\r\nX-Probe: yes\r\n" in requests and b"\r\nUser-Agent: kube-probe/" in requests
        assert b"\r\nHost: 127.0.0.1:9090\r\n" in requests
        exec_in(pods, name, "rm", "/w/www/ok.html")
        wait_for(pods, name, "not ready", lambda p: not p["a"]["ready"])
        helpers.wait_until(lambda: events.reasons("Unhealthy"), 10, "an Unhealthy event")
        assert events.reasons("Unhealthy")[0] == "Readiness probe failed: HTTP probe failed with statuscode: 404"
        # The tcp liveness probe still passes: no restart.
        assert ps(pods, name)["a"]["restarts"] == 0
    finally:
        events.close()
    removed(pods, name)


def test_tcp_probe_failure_names_the_address(pods):
    name = pods.name()
    c = container("a", pods.rootfs, "exec sleep 300",
                  livenessProbe={"tcpSocket": {"port": 7}, "periodSeconds": 1, "failureThreshold": 1})
    run = pods.start(pods.manifest([c], name=name))
    code = run.proc.wait(20)
    run.stop()
    assert code in (137, 143), run.err  # sleep as PID 1 ignores SIGTERM: SIGKILL after the grace period
    assert "Unhealthy: Liveness probe failed: dial tcp 127.0.0.1:7: connect: Connection refused" in run.err
    assert pods.leftovers() == []


def test_startup_probe_gates_liveness_and_readiness(pods):
    name = pods.name()
    record = {"exec": {"command": ["sh", "-c", "echo probed >> /w/probed"]}, "periodSeconds": 1}
    c = container("a", pods.rootfs, "exec sleep 300", volumeMounts=MOUNT,
                  startupProbe={"exec": {"command": ["test", "-e", "/w/go"]}, "periodSeconds": 1,
                                "failureThreshold": 60},
                  livenessProbe=record, readinessProbe=record)
    applied(pods, pods.manifest([c], volumes=WORK, name=name))
    wait_for(pods, name, "running", lambda p: p["a"]["state"] == "running")
    time.sleep(3)
    got = ps(pods, name)["a"]
    assert (got["started"], got["ready"]) == (False, False)
    assert exec_in(pods, name, "sh", "-c", "cat /w/probed 2>/dev/null || true") == "", \
        "liveness and readiness ran before the startup probe passed"
    exec_in(pods, name, "touch", "/w/go")
    got = wait_for(pods, name, "started and ready", lambda p: p["a"]["started"] and p["a"]["ready"])
    helpers.wait_until(lambda: exec_in(pods, name, "sh", "-c", "cat /w/probed 2>/dev/null || true").count("probed")
                       >= 2, 10, "both probes running")
    assert got["a"]["restarts"] == 0
    removed(pods, name)


def test_post_start_runs_after_the_start_and_before_ready(pods):
    name = pods.name()
    c = container("a", pods.rootfs, "while [ ! -e /w/hook ]; do sleep 0.1; done; echo saw $(cat /w/hook); "
                  "exec sleep 300", volumeMounts=MOUNT,
                  lifecycle={"postStart": {"exec": {"command": ["sh", "-c", "sleep 1; echo hook > /w/hook"]}}})
    applied(pods, pods.manifest([c], volumes=WORK, name=name))
    got = wait_for(pods, name, "running", lambda p: p["a"]["state"] == "running")
    assert not got["a"]["ready"], "ready before its postStart hook finished"
    wait_for(pods, name, "ready", lambda p: p["a"]["ready"])
    helpers.wait_until(lambda: pods.cli("pod", "logs", name)[1] == "saw hook\n", 10, "the container saw the file")
    removed(pods, name)


def test_failed_post_start_kills_the_container(pods):
    name = pods.name()
    c = container("a", pods.rootfs, "exec sleep 300",
                  lifecycle={"postStart": {"exec": {"command": ["sh", "-c", "echo broken; exit 3"]}}})
    run = pods.start(pods.manifest([c], name=name))
    code = run.proc.wait(20)
    run.stop()
    assert code in (137, 143), run.err  # sleep as PID 1 ignores SIGTERM: SIGKILL after the grace period
    assert "pea: pod: a: FailedPostStartHook: postStart hook failed: broken" in run.err
    assert pods.leftovers() == []


def order_volume(work_dir):
    path = os.path.join(work_dir, "out")
    os.makedirs(path, exist_ok=True)
    return path, [{"name": "out", "hostPath": {"path": path}}], [{"name": "out", "mountPath": "/out"}]


def test_pre_stop_runs_before_the_stop_signal_on_pod_stop(pods, work_dir):
    name = pods.name()
    path, volumes, mounts = order_volume(work_dir)
    # The shell runs its trap between two short sleeps; the stop signal is the spec's, not SIGTERM.
    c = container("a", pods.rootfs, "trap 'echo usr1 >> /out/order; exit 0' USR1; trap 'echo term >> /out/order' "
                  "TERM; echo up; while true; do sleep 0.1; done", volumeMounts=mounts,
                  lifecycle={"preStop": {"exec": {"command": ["sh", "-c", "echo prestop >> /out/order; sleep 1"]}},
                             "stopSignal": "SIGUSR1"})
    applied(pods, pods.manifest([c], volumes=volumes, name=name, spec={"terminationGracePeriodSeconds": 10}))
    wait_for(pods, name, "running", lambda p: p["a"]["state"] == "running")
    start = time.monotonic()
    removed(pods, name)
    took = time.monotonic() - start
    with open(os.path.join(path, "order")) as f:
        assert f.read() == "prestop\nusr1\n"
    assert 1.0 <= took < 8, f"pod rm took {took:.1f}s: the hook's second, not the grace period"


def test_grace_deadline_counts_the_hook_then_sigkill(pods, work_dir):
    name = pods.name()
    path, volumes, mounts = order_volume(work_dir)
    c = container("a", pods.rootfs, "trap 'echo term >> /out/order' TERM; echo up; while true; do sleep 0.1; done",
                  volumeMounts=mounts, lifecycle={"preStop": {"sleep": {"seconds": 1}}})
    run = pods.start(pods.manifest([c], volumes=volumes, name=name, spec={"terminationGracePeriodSeconds": 4}))
    run.wait_for_line("[a] up")
    start = time.monotonic()
    run.proc.send_signal(signal.SIGTERM)
    code = run.stop()
    took = time.monotonic() - start
    # A second of hook, then SIGTERM (ignored but for the note), then SIGKILL at the end of the 4 s.
    assert 3.5 <= took < 12, f"stop took {took:.1f}s"
    assert "pea: pod: a: exited with code 137" in run.err, run.err
    with open(os.path.join(path, "order")) as f:
        assert "term\n" in f.read()
    assert pods.leftovers() == []


def test_pre_stop_cut_off_at_the_grace_deadline(pods):
    name = pods.name()
    c = container("a", pods.rootfs, "echo up; exec sleep 300",
                  lifecycle={"preStop": {"exec": {"command": ["sleep", "60"]}}})
    run = pods.start(pods.manifest([c], name=name, spec={"terminationGracePeriodSeconds": 2}))
    run.wait_for_line("[a] up")
    start = time.monotonic()
    run.proc.send_signal(signal.SIGTERM)
    run.stop()
    took = time.monotonic() - start
    # 2 s of hook, then the stop signal (sleep dies of it): far from the hook's 60 s.
    assert took < 10, f"stop took {took:.1f}s"
    assert "FailedPreStopHook" in run.err, run.err
    assert pods.leftovers() == []


# ---- HTTPS and gRPC: servers the test runs in the pod's network namespace (busybox has neither) ----

GRPC_SERVER = r'''
import socket, struct, sys
# A gRPC health server over HTTP/2 cleartext, enough for one Check per connection: service "" is SERVING, "down"
# NOT_SERVING, any other is unknown (a trailers-only answer with grpc-status 5, NOT_FOUND).
def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload
def literal(name, value):  # HPACK: literal without indexing, new name, no Huffman
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", int(sys.argv[1])))
listener.listen()
print("listening", flush=True)
while True:
    conn, _ = listener.accept()
    data = b""
    with conn:
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
            body, pos, request = data[24:], 0, None
            while pos + 9 <= len(body):
                length = int.from_bytes(body[pos:pos + 3], "big")
                if pos + 9 + length > len(body):
                    break
                if body[pos + 3] == 0:  # DATA
                    request = body[pos + 9:pos + 9 + length]
                pos += 9 + length
            if request is not None:
                break
        if request is None:
            continue
        message = request[5:]
        service = message[2:2 + message[1]].decode() if message else ""
        out = frame(4, 0, 0)
        if service in ("", "down"):
            status = 1 if service == "" else 2
            out += frame(1, 4, 1, b"\x88" + literal(b"content-type", b"application/grpc"))
            out += frame(0, 0, 1, b"\x00\x00\x00\x00\x02\x08" + bytes([status]))
            out += frame(1, 5, 1, literal(b"grpc-status", b"0"))
        else:
            out += frame(1, 5, 1, b"\x88" + literal(b"grpc-status", b"5"))
        conn.sendall(out)
'''


class NetnsServer:
    """A server process in the pod's network namespace (joined through its infra process), stopped on close."""

    def __init__(self, pods, name, argv, ready_text=None, env=None):
        infra = pods.state(name)["infra"]["pid"]
        self.proc = subprocess.Popen(["nsenter", f"--net=/proc/{infra}/ns/net"] + argv, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, env=env)
        if ready_text:
            line = self.proc.stdout.readline()
            assert ready_text in line, line

    def close(self):
        self.proc.kill()
        self.proc.wait()


def sleeper(pods, name, **extra):
    return container(name, pods.rootfs, "exec sleep 300", **extra)


def test_https_probe_skips_certificate_verification(pods, work_dir):
    name = pods.name()
    key, cert = os.path.join(work_dir, "key.pem"), os.path.join(work_dir, "cert.pem")
    # A configuration of its own: the machine may have none.
    config = os.path.join(work_dir, "openssl.cnf")
    with open(config, "w") as f:
        f.write("[req]\ndistinguished_name = dn\n[dn]\n")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=self-signed"], check=True,
                   capture_output=True, env=dict(os.environ, OPENSSL_CONF=config))
    probe = {"httpGet": {"port": 8443, "scheme": "HTTPS", "path": "/"}, "periodSeconds": 1, "failureThreshold": 1}
    applied(pods, pods.manifest([sleeper(pods, "a", readinessProbe=probe)], name=name))
    wait_for(pods, name, "running", lambda p: p["a"]["state"] == "running")
    time.sleep(1.5)
    assert not ps(pods, name)["a"]["ready"], "ready with nothing listening"
    # s_server -www answers any GET with a 200 status page.
    server = NetnsServer(pods, name, ["openssl", "s_server", "-quiet", "-accept", "127.0.0.1:8443", "-www",
                                      "-cert", cert, "-key", key], env=dict(os.environ, OPENSSL_CONF=config))
    try:
        wait_for(pods, name, "ready over HTTPS", lambda p: p["a"]["ready"])
    finally:
        server.close()
    wait_for(pods, name, "not ready once the server is gone", lambda p: not p["a"]["ready"])
    removed(pods, name)


def test_grpc_probe_asks_the_standard_health_service(pods, work_dir):
    name = pods.name()
    script = os.path.join(work_dir, "grpc_health.py")
    with open(script, "w") as f:
        f.write(GRPC_SERVER)

    def probe(service):
        return {"grpc": {"port": 9090, "service": service}, "periodSeconds": 1, "failureThreshold": 1}
    containers = [sleeper(pods, "serving", readinessProbe=probe("")),
                  sleeper(pods, "down", readinessProbe=probe("down")),
                  sleeper(pods, "unknown", readinessProbe=probe("nosuch"))]
    applied(pods, pods.manifest(containers, name=name))
    server = NetnsServer(pods, name, ["/usr/bin/python3", script, "9090"], ready_text="listening")
    events = Events(pods, name)
    try:
        wait_for(pods, name, "serving ready", lambda p: p["serving"]["ready"])
        helpers.wait_until(lambda: any("NOT_SERVING" in m for m in events.reasons("Unhealthy")) and
                           any("no status" in m for m in events.reasons("Unhealthy")), 15, "both failures")
        by_container = {}
        for e in list(events.events):
            if e.get("reason") == "Unhealthy":
                by_container.setdefault(e["container"], e["message"])
        assert by_container["down"] == 'Readiness probe failed: service unhealthy (responded with "NOT_SERVING")'
        assert by_container["unknown"].startswith("Readiness probe failed: health rpc to \"127.0.0.1:9090\" failed")
        assert "serving" not in by_container
        got = ps(pods, name)
        assert (got["down"]["ready"], got["unknown"]["ready"]) == (False, False)
    finally:
        events.close()
        server.close()
    removed(pods, name)
