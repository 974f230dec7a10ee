"""containerd-shim-pea-v2's OOM event, run inside the VM (every cgroup v2 controller) by shim-oom.sh: the shim is
started as containerd starts it, with TTRPC_ADDRESS naming a stand-in for containerd's events service (this
script); a task past its memory.max is OOM-killed, and the shim forwards /tasks/oom (TaskOOM{container_id}) before
the task's /tasks/exit. Usage: shim_oom.py BUILD_DIR. Prints "shim-oom: N passed, N failed" last."""
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time

build = os.path.abspath(sys.argv[1])
shim = os.path.join(build, "shim", "v2", "containerd-shim-pea-v2")
work = "/tmp/pea-vm-shim-oom"
namespace = "vm-shim-oom"
task = "oom1"
results = {"passed": 0, "failed": 0}


def check(ok, what, detail=""):
    results["passed" if ok else "failed"] += 1
    print(("ok   " if ok else "FAIL ") + what + ("" if ok else f": {detail}"), flush=True)


def varint(n):
    out = b""
    while True:
        out += bytes([(n & 0x7f) | (0x80 if n > 0x7f else 0)])
        n >>= 7
        if not n:
            return out


def field(number, data):
    if isinstance(data, str):
        data = data.encode()
    return varint(number << 3 | 2) + varint(len(data)) + data


def parse(data):
    fields, i = {}, 0
    while i < len(data):
        key, i = read_varint(data, i)
        if key & 7 == 0:
            value, i = read_varint(data, i)
        else:
            size, i = read_varint(data, i)
            value, i = data[i:i + size], i + size
        fields.setdefault(key >> 3, []).append(value)
    return fields


def read_varint(data, i):
    n, shift = 0, 0
    while True:
        b = data[i]
        n |= (b & 0x7f) << shift
        i, shift = i + 1, shift + 7
        if not b & 0x80:
            return n, i


def read_frame(sock):
    """(stream id, type, body) of one ttrpc message, or None at the end."""
    head = b""
    while len(head) < 10:
        chunk = sock.recv(10 - len(head))
        if not chunk:
            return None
        head += chunk
    length, stream, kind, _flags = struct.unpack(">IIBB", head)
    body = b""
    while len(body) < length:
        body += sock.recv(length - len(body))
    return stream, kind, body


def frame(stream, kind, body):
    return struct.pack(">IIBB", len(body), stream, kind, 0) + body


forwarded = []  # (topic, event type URL, event fields)


def serve_events(listener):
    """containerd's Events/Forward: record each envelope, answer with an empty success."""
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        while True:
            msg = read_frame(conn)
            if msg is None:
                break
            stream, _kind, body = msg
            request = parse(body)
            if request[1][0] == b"containerd.services.events.ttrpc.v1.Events" and request[2][0] == b"Forward":
                envelope = parse(parse(request[3][0])[1][0])
                event = parse(envelope[4][0])
                forwarded.append((envelope[3][0].decode(), event[1][0].decode(), parse(event[2][0]) if 2 in event else {}))
            conn.sendall(frame(stream, 2, b""))


def call(sock, stream, method, payload):
    sock.sendall(frame(stream, 1, field(1, "containerd.task.v2.Task") + field(2, method) + field(3, payload)))
    got_stream, _kind, body = read_frame(sock)
    response = parse(body)
    assert got_stream == stream
    if 1 in response:
        status = parse(response[1][0])
        raise AssertionError(f"{method}: {status.get(2, [b''])[0].decode()}")
    return parse(response.get(2, [b""])[0])


shutil.rmtree(work, ignore_errors=True)
bundle = os.path.join(work, "bundle")
rootfs = os.path.join(bundle, "rootfs")
for d in ("bin", "proc", "dev", "tmp"):
    os.makedirs(os.path.join(rootfs, d))
shutil.copy("/bin/busybox", os.path.join(rootfs, "bin", "busybox"))
shutil.copy(os.path.join(build, "tests", "peatest"), os.path.join(rootfs, "bin", "peatest"))
os.symlink("busybox", os.path.join(rootfs, "bin", "sh"))
os.symlink("busybox", os.path.join(rootfs, "bin", "sleep"))
with open(os.path.join(bundle, "config.json"), "w") as f:
    json.dump({"ociVersion": "1.2.0", "root": {"path": "rootfs"},
               "process": {"args": ["sh", "-c", "sleep 0.5; exec peatest alloc 128"], "cwd": "/",
                           "env": ["PATH=/bin"]},
               "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
               "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}],
                         "cgroupsPath": f"/{namespace}/{task}",
                         "resources": {"memory": {"limit": 33554432, "swap": 33554432}}}}, f)

events_socket = os.path.join(work, "ttrpc.sock")
listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
listener.bind(events_socket)
listener.listen(4)
threading.Thread(target=serve_events, args=(listener,), daemon=True).start()

env = dict(os.environ, TTRPC_ADDRESS=events_socket,
           PATH=os.path.join(build, "runtime") + ":" + os.environ.get("PATH", "/usr/bin:/bin"))
start = subprocess.run([shim, "-namespace", namespace, "-address", os.path.join(work, "containerd.sock"),
                        "-publish-binary", "/bin/false", "-id", task, "start"],
                       cwd=bundle, env=env, capture_output=True, text=True, timeout=60)
check(start.returncode == 0 and start.stdout.startswith("unix://"), "start prints the shim's address", start)
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.connect(start.stdout[len("unix://"):])
sock.settimeout(60)
try:
    call(sock, 1, "Create", field(1, task) + field(2, bundle))
    call(sock, 3, "Start", field(1, task))
    wait = call(sock, 5, "Wait", field(1, task))
    check(wait.get(1, [0])[0] == 137, "the task is OOM-killed (137)", wait)
    for _ in range(50):
        if any(topic == "/tasks/exit" for topic, _, _ in forwarded):
            break
        time.sleep(0.1)
    topics = [topic for topic, _, _ in forwarded]
    ooms = [(url, fields) for topic, url, fields in forwarded if topic == "/tasks/oom"]
    check(len(ooms) == 1 and ooms[0][0] == "containerd.events.TaskOOM" and ooms[0][1].get(1) == [task.encode()],
          "/tasks/oom forwarded with TaskOOM{container_id}", forwarded)
    check("/tasks/oom" in topics and "/tasks/exit" in topics and topics.index("/tasks/oom") < topics.index("/tasks/exit"),
          "/tasks/oom comes before /tasks/exit", topics)
    call(sock, 7, "Delete", field(1, task))
    call(sock, 9, "Shutdown", field(1, task))
finally:
    sock.close()
deadline = time.time() + 10
while os.path.exists(start.stdout[len("unix://"):]) and time.time() < deadline:
    time.sleep(0.1)
check(not os.path.exists(start.stdout[len("unix://"):]), "the shim exits after Shutdown")
left = [p for p in (f"/sys/fs/cgroup/{namespace}/{task}", f"/run/containerd/pea/{namespace}/{task}") if os.path.exists(p)]
check(not left, "nothing left of the task", left)
if os.path.isdir(f"/sys/fs/cgroup/{namespace}"):
    os.rmdir(f"/sys/fs/cgroup/{namespace}")
listener.close()
shutil.rmtree(work, ignore_errors=True)
print(f"shim-oom: {results['passed']} passed, {results['failed']} failed")
