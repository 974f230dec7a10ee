"""pea-shim: detached pods that outlive their clients, CRI log files, exec with and without a tty, restarts, declarative
apply, a killed shim, a hostile control socket, and fifty pods at once."""
import fcntl
import json
import os
import pty
import re
import select
import signal
import socket
import subprocess
import sys
import time
import uuid

import pytest

import helpers
from pods import container, ps, ls

pytestmark = pytest.mark.pea_only

CRI_RECORD = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z (stdout|stderr) ([FP]) (.*)$")


def sleeper(pods, name="a", **extra):
    return container(name, pods.rootfs, "echo up; exec sleep 300", **extra)


def applied(pods, manifest, *extra, **kw):
    code, out, err = pods.apply(manifest, *extra, **kw)
    assert code == 0, err
    return out


def wait_running(pods, name, containers=("a",), timeout=15):
    def running():
        got = ps(pods, name)
        return all(got.get(c, {}).get("state") == "running" for c in containers)
    helpers.wait_until(running, timeout, f"containers {containers} of {name} running")
    return ps(pods, name)


def log_dir(pods, name):
    return os.path.join(pods.data, "pods", name, "logs")


def shim_pid(pods, name):
    return pods.state(name)["shim"]["pid"]


def removed(pods, name):
    code, out, err = pods.cli("pod", "rm", name)
    assert code == 0, err
    assert pods.leftovers() == []


def test_detached_pod_outlives_its_client(pods):
    name = pods.name()
    out = applied(pods, pods.manifest([sleeper(pods)], name=name))
    assert out.strip() == f"pod {name} applied"
    pid = shim_pid(pods, name)
    # Not in our session, not our child's child: a new session, reparented to the subreaper (us) or init.
    assert os.getsid(pid) != os.getsid(0)
    assert helpers._proc_stat(pid)[1] in (os.getpid(), 1)
    assert all(os.readlink(f"/proc/{pid}/fd/{fd}") == "/dev/null" for fd in (0, 1, 2))
    record = wait_running(pods, name)["a"]
    assert ls(pods)[name]["status"] == "running"
    # A client killed mid-stream costs the pod nothing.
    follower = subprocess.Popen(pods.argv("pod", "logs", "-f", name), stdout=subprocess.DEVNULL, env=pods.env)
    time.sleep(0.3)
    follower.kill()
    follower.wait()
    assert ps(pods, name)["a"]["pid"] == record["pid"]
    removed(pods, name)


def test_logs_in_cri_format_with_streams_partial_lines_and_tail(pods):
    name = pods.name()
    applied(pods, pods.manifest([container("a", pods.rootfs, "printf 'a\\nb'; sleep 0.3; echo err >&2; "
                                           "exec sleep 300")], name=name))
    path = os.path.join(log_dir(pods, name), "a.log")
    helpers.wait_until(lambda: os.path.exists(path) and open(path).read().count("\n") >= 3, 10, "three records")
    records = [CRI_RECORD.match(line).groups() for line in open(path).read().splitlines()]
    assert records == [("stdout", "F", "a"), ("stdout", "P", "b"), ("stderr", "F", "err")]
    code, out, err = pods.cli("pod", "logs", name)
    assert (code, out, err) == (0, "a\nb\n", "err\n")
    # The unfinished line comes last, as it stands.
    code, out, err = pods.cli("pod", "logs", "--tail", "1", name)
    assert (code, out, err) == (0, "b\n", "")
    code, out, err = pods.cli("pod", "logs", "-c", "a", "--tail", "2", name)
    assert (code, out, err) == (0, "b\n", "err\n")
    code, out, err = pods.cli("pod", "logs", "-c", "nope", name)
    assert code == 1 and err.strip() == f"pea: no container nope in pod {name}"
    removed(pods, name)


def test_logs_rotate_by_size(pods):
    name = pods.name()
    env = dict(pods.env, PEA_SHIM_LOG_MAX_BYTES="4000")
    script = "i=0; while [ $i -lt 400 ]; do echo line-$i-................................; i=$((i+1)); done; " \
             "exec sleep 300"
    applied(pods, pods.manifest([container("a", pods.rootfs, script)], name=name), env=env)
    d = log_dir(pods, name)
    helpers.wait_until(lambda: "line-399-" in subprocess.run(pods.argv("pod", "logs", "--tail", "1", name),
                                                             capture_output=True, text=True).stdout, 10, "last line")
    assert sorted(os.listdir(d)) == ["a.log", "a.log.1", "a.log.2"]
    for f in os.listdir(d):
        assert os.path.getsize(os.path.join(d, f)) <= 4000
    code, out, err = pods.cli("pod", "logs", name)
    numbers = [int(line.split("-")[1]) for line in out.splitlines()]
    assert numbers[-1] == 399 and numbers == list(range(numbers[0], 400)) and numbers[0] > 0, "rotated files read"
    code, out, err = pods.cli("pod", "logs", "--tail", "3", name)
    assert [int(line.split("-")[1]) for line in out.splitlines()] == [397, 398, 399]
    removed(pods, name)


def test_logs_follow_ends_when_the_container_exits(pods):
    name = pods.name()
    applied(pods, pods.manifest([container("a", pods.rootfs, "for i in 1 2 3; do echo tick $i; sleep 0.3; done"),
                                 sleeper(pods, "b")], name=name))
    p = subprocess.run(pods.argv("pod", "logs", "-f", "-c", "a", name), capture_output=True, text=True,
                       env=pods.env, timeout=20)
    assert p.returncode == 0 and p.stdout == "tick 1\ntick 2\ntick 3\n", p.stderr
    removed(pods, name)


def test_exec_without_tty_passes_stdio_and_the_exit_code(pods):
    name = pods.name()
    applied(pods, pods.manifest([sleeper(pods), sleeper(pods, "b")], name=name))
    wait_running(pods, name, ("a", "b"))
    code, out, err = pods.cli("pod", "exec", "-c", "b", name, "--", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (code, out, err) == (3, "out\n", "err\n")
    p = subprocess.run(pods.argv("pod", "exec", "-i", "-c", "a", name, "--", "sh", "-c", "cat; tty || true"),
                       input="hello\n", capture_output=True, text=True, env=pods.env, timeout=30)
    assert p.returncode == 0 and p.stdout == "hello\nnot a tty\n", p.stderr
    code, out, err = pods.cli("pod", "exec", name, "--", "true")
    assert code == 1 and "has 2 containers: name one with -c" in err
    removed(pods, name)


def test_exec_with_tty(pods):
    name = pods.name()
    applied(pods, pods.manifest([sleeper(pods)], name=name))
    wait_running(pods, name)
    master, slave = pty.openpty()
    proc = subprocess.Popen(pods.argv("pod", "exec", "-it", name, "--", "sh", "-c", "tty; exit 4"),
                            stdin=slave, stdout=slave, stderr=slave, env=pods.env, start_new_session=True)
    os.close(slave)
    output = b""
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                output += chunk
            elif proc.poll() is not None:
                break
        assert proc.wait(10) == 4, output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    assert re.search(rb"/dev/pts/\d+\r?\n", output), output
    removed(pods, name)


def test_restart_policy_always_restarts_with_backoff_and_counts(pods):
    name = pods.name()
    m = pods.manifest([container("crash", pods.rootfs, "echo run; exit 1"), sleeper(pods, "b")], name=name,
                      spec={"restartPolicy": "Always"})
    start = time.monotonic()
    applied(pods, m)
    helpers.wait_until(lambda: ps(pods, name)["crash"]["restarts"] >= 3, 15, "three exits")
    assert time.monotonic() - start >= 2.9, "back-off of 1 s then 2 s"
    assert ls(pods)[name]["restarts"] >= 2
    code, out, err = pods.cli("pod", "ps", name)
    row = [line.split() for line in out.splitlines() if line.startswith("crash ")][0]
    assert int(row[-1]) >= 3
    code, out, err = pods.cli("pod", "logs", "--previous", "-c", "crash", name)
    assert code == 0 and out == "run\n", err
    removed(pods, name)


def pod_address(pods, name, netns):
    code, out, err = pods.cli("pod", "exec", "-c", "b", name, "--", "ip", "-4", "-o", "addr", "show", "eth0",
                              netns=netns)
    assert code == 0, err
    return out.split()[3]


def test_apply_changing_one_env_recreates_only_that_container(pods, test_netns):
    name = pods.name()
    net = {"network": {"mode": "bridge", "bridge": "peait1", "address": "198.18.9.2/24", "gateway": "198.18.9.1"}}
    a = sleeper(pods, env=[{"name": "COLOUR", "value": "red"}])
    path = pods.manifest([a, sleeper(pods, "b")], name=name, pea=net)
    applied(pods, path, netns=test_netns)
    before = wait_running(pods, name, ("a", "b"))
    infra = pods.state(name)["infra"]["pid"]
    netns_before = os.readlink(f"/proc/{infra}/ns/net")
    address = pod_address(pods, name, test_netns)
    assert address == "198.18.9.2/24"

    m = json.load(open(path))
    for env in m["spec"]["containers"][0]["env"]:
        if env["name"] == "COLOUR":
            env["value"] = "blue"
    json.dump(m, open(path, "w"))
    out = applied(pods, path, netns=test_netns)
    assert out.strip() == "recreated: a"
    # apply answers once the new instance runs: what ps says next is the new state.
    after = ps(pods, name)
    assert after["a"]["state"] == "running" and after["a"]["pid"] not in (0, before["a"]["pid"]), after
    assert after["b"]["state"] == "running"
    assert after["b"]["pid"] == before["b"]["pid"] and after["b"]["restarts"] == 0
    assert pods.state(name)["infra"]["pid"] == infra
    assert os.readlink(f"/proc/{infra}/ns/net") == netns_before
    assert pod_address(pods, name, test_netns) == address
    code, out, err = pods.cli("pod", "exec", "-c", "a", name, "--", "sh", "-c", "echo $COLOUR", netns=test_netns)
    assert out == "blue\n", err
    removed(pods, name)
    links = subprocess.run(["ip", "-n", test_netns, "-o", "link"], capture_output=True, text=True).stdout
    assert "peait1" not in links


def test_apply_no_wait_answers_before_the_recreated_container_runs(pods):
    name = pods.name()
    a = sleeper(pods, env=[{"name": "COLOUR", "value": "red"}])
    path = pods.manifest([a], name=name)
    applied(pods, path)
    before = wait_running(pods, name)["a"]
    m = json.load(open(path))
    m["spec"]["containers"][0]["env"][0]["value"] = "blue"
    json.dump(m, open(path, "w"))
    # sleep, the init of its PID namespace, ignores SIGTERM: the stop takes the 2 s grace period, during which the
    # old instance is still the one that runs.
    assert applied(pods, path, "--no-wait").strip() == "recreated: a"
    assert ps(pods, name)["a"]["pid"] == before["pid"]
    helpers.wait_until(lambda: ps(pods, name)["a"]["pid"] not in (0, before["pid"]), 15, "a recreated")
    removed(pods, name)


def test_apply_waits_for_added_containers(pods):
    name = pods.name()
    path = pods.manifest([sleeper(pods)], name=name)
    applied(pods, path)
    wait_running(pods, name)
    m = json.load(open(path))
    m["spec"]["containers"].append(sleeper(pods, "b", env=[{"name": "PEA_IT_MARK", "value": pods.mark}]))
    json.dump(m, open(path, "w"))
    assert applied(pods, path).strip() == "added: b"
    assert ps(pods, name)["b"]["state"] == "running"
    removed(pods, name)


def test_apply_of_a_new_pod_returns_once_its_containers_have_started(pods):
    """Without --no-wait, apply of a new pod answers once each container has started, failed to start (then it
    fails, naming it), or waits behind the init containers; with --no-wait, once the sandbox exists."""
    name = pods.name()
    path = pods.manifest([sleeper(pods, "a"), {"name": "bad", "image": pods.rootfs, "command": ["/no/such/binary"]},
                          sleeper(pods, "b")], name=name)
    code, out, err = pods.apply(path)
    assert code == 1 and f"pod {name}: container bad failed to start" in err, (out, err)
    got = ps(pods, name)
    assert (got["a"]["state"], got["b"]["state"]) == ("running", "running"), got
    assert got["bad"]["state"] == "exited" and got["bad"]["exitCode"] == 128, got["bad"]
    removed(pods, name)

    name = pods.name()
    init = container("slow-init", pods.rootfs, "exec sleep 300")
    path = pods.manifest([sleeper(pods, "a")], init=[init], name=name)
    applied(pods, path)
    got = ps(pods, name)
    assert (got["slow-init"]["state"], got["a"]["state"]) == ("running", "waiting"), got
    code, out, err = pods.cli("pod", "wait", "--for", "started", "-c", "a", name)
    assert code == 0, err
    removed(pods, name)

    name = pods.name()
    applied(pods, pods.manifest([sleeper(pods, "a")], name=name), "--no-wait")
    wait_running(pods, name)
    removed(pods, name)


def test_apply_of_the_same_manifest_changes_nothing(pods):
    name = pods.name()
    path = pods.manifest([sleeper(pods), sleeper(pods, "b")], name=name)
    applied(pods, path)
    before = wait_running(pods, name, ("a", "b"))
    infra = pods.state(name)["infra"]["pid"]
    assert applied(pods, path).strip() == f"pod {name} unchanged"
    after = ps(pods, name)
    assert {c: r["pid"] for c, r in after.items()} == {c: r["pid"] for c, r in before.items()}
    assert pods.state(name)["infra"]["pid"] == infra
    removed(pods, name)


def test_apply_of_resources_only_restarts_nothing(pods):
    name = pods.name()
    path = pods.manifest([sleeper(pods), sleeper(pods, "b")], name=name)
    applied(pods, path)
    before = wait_running(pods, name, ("a", "b"))
    m = json.load(open(path))
    m["spec"]["containers"][0]["resources"] = {"limits": {"memory": "96Mi"}}
    json.dump(m, open(path, "w"))
    code, out, err = pods.apply(path)
    if code == 0:
        # A host whose cgroup2 has the memory controller: the limit changed live.
        assert out.strip() == "updated: a"
    else:
        # This host's cgroup2 hierarchy delegates no controllers: pea's own message comes back whole.
        assert err.startswith("pea: ") and "controller" in err and len(err.strip().splitlines()) == 1, err
    after = ps(pods, name)
    assert {c: (r["pid"], r["restarts"]) for c, r in after.items()} == \
        {c: (r["pid"], r["restarts"]) for c, r in before.items()}
    removed(pods, name)


def test_killed_shim_leaves_containers_running_and_rm_cleans(pods):
    name = pods.name()
    applied(pods, pods.manifest([sleeper(pods)], name=name))
    pid = wait_running(pods, name)["a"]["pid"]
    shim = shim_pid(pods, name)
    os.kill(shim, signal.SIGKILL)
    helpers.wait_until(lambda: not os.path.exists(f"/proc/{shim}") or helpers._proc_stat(shim)[0] == "Z", 5,
                       "the shim dead")
    helpers.reap_orphans()
    time.sleep(0.2)
    assert helpers._proc_stat(pid)[0] != "Z", "the container still runs"
    assert ls(pods)[name]["status"] == "degraded"
    assert ps(pods, name)["a"]["state"] == "running"
    code, out, err = pods.cli("pod", "logs", name)
    assert (code, out) == (0, "up\n"), err
    code, out, err = pods.cli("pod", "exec", name, "--", "true")
    assert code == 1 and "its shim is gone" in err
    removed(pods, name)


def test_a_new_shim_adopts_a_pod_whose_shim_died(pods):
    """The container writes on while no shim reads (its FIFO blocks, no SIGPIPE); apply starts a new shim that
    takes the pod over: same container, its output flows again, and its exit is reported as unknown."""
    name = pods.name()
    ticker = container("a", pods.rootfs, "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.05; done")
    manifest = pods.manifest([ticker, sleeper(pods, "b")], name=name, spec={"restartPolicy": "Always"})
    applied(pods, manifest)
    before = wait_running(pods, name, ("a", "b"))
    infra = pods.state(name)["infra"]["pid"]
    shim = shim_pid(pods, name)
    os.kill(shim, signal.SIGKILL)
    helpers.wait_until(lambda: not os.path.exists(f"/proc/{shim}") or helpers._proc_stat(shim)[0] == "Z", 5,
                       "the shim dead")
    helpers.reap_orphans()
    time.sleep(1)  # the ticker fills its FIFO meanwhile; writers block, they do not die
    assert helpers._proc_stat(before["a"]["pid"])[0] != "Z"
    out = applied(pods, manifest)
    assert f"pod {name} adopted by a new pea-shim" in out and f"pod {name} unchanged" in out
    assert ls(pods)[name]["status"] == "running"
    after = ps(pods, name)
    assert after["a"]["pid"] == before["a"]["pid"] and after["b"]["pid"] == before["b"]["pid"]
    assert pods.state(name)["infra"]["pid"] == infra
    # Output written after the adoption reaches the log again.
    def ticks():
        code, out, err = pods.cli("pod", "logs", "-c", "a", name)
        return [int(l.split()[1]) for l in out.splitlines() if l.startswith("tick ")]
    first = max(ticks())
    helpers.wait_until(lambda: max(ticks()) > first + 5, 10, "ticks after the adoption")
    # An exit the new shim could not reap is not invented: unknown, and restartPolicy still applies.
    os.kill(after["b"]["pid"], signal.SIGKILL)
    helpers.wait_until(lambda: ps(pods, name)["b"]["restarts"] == 1, 15, "b restarted")
    record = ps(pods, name)["b"]
    assert "exitCode" not in record and record["reason"].startswith("unknown"), record
    removed(pods, name)


def shim_socket(pods, name):
    return os.path.join(pods.root, "pods", name, "shim.sock")


def request(sock, payload):
    sock.send(payload)
    return json.loads(sock.recv(1 << 17))


def test_control_socket_rejects_another_user(pods):
    name = pods.name()
    applied(pods, pods.manifest([sleeper(pods)], name=name))
    path = shim_socket(pods, name)
    assert os.stat(path).st_mode & 0o777 == 0o600
    # Open the way (directories and socket) so that the shim's own peer check is what refuses.
    opened = [pods.root, os.path.join(pods.root, "pods"), os.path.dirname(path)]
    modes = {p: os.stat(p).st_mode & 0o777 for p in opened + [path]}
    for p in opened:
        os.chmod(p, 0o711)
    os.chmod(path, 0o666)
    parents = []
    d = os.path.dirname(pods.root)
    while d != "/":
        parents.append((d, os.stat(d).st_mode & 0o777))
        os.chmod(d, parents[-1][1] | 0o011)
        d = os.path.dirname(d)
    script = ("import socket,sys\ns=socket.socket(socket.AF_UNIX,socket.SOCK_SEQPACKET)\ns.connect(sys.argv[1])\n"
              "try:\n s.send(b'{\"v\":1,\"id\":1,\"op\":\"status\"}')\n print(s.recv(65536).decode())\n"
              "except OSError as e:\n print('closed', e)\n")
    try:
        p = subprocess.run([sys.executable, "-c", script, path], user=65534, group=65534, capture_output=True,
                           text=True, timeout=10)
    finally:
        for p_, mode in modes.items():
            os.chmod(p_, mode)
        for d, mode in parents:
            os.chmod(d, mode)
    assert p.returncode == 0, p.stderr
    answer = p.stdout.strip()
    assert answer == "" or answer.startswith("closed") or \
        json.loads(answer) == {"v": 1, "id": 0, "ok": False, "error": "peer uid 65534 is not allowed"}, answer
    assert ps(pods, name)["a"]["state"] == "running"
    removed(pods, name)


def test_control_socket_survives_garbage_truncated_and_huge_requests(pods):
    name = pods.name()
    applied(pods, pods.manifest([sleeper(pods)], name=name))
    wait_running(pods, name)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(shim_socket(pods, name))
    with s:
        reply = request(s, b"\xff\xfe\x00 not json at all")
        assert reply["ok"] is False and reply["id"] == 0 and "invalid JSON" in reply["error"]
        reply = request(s, b'{"v":1,"id":7,"op":"sta')
        assert reply["ok"] is False and "invalid JSON" in reply["error"]
        reply = request(s, b'{"v":1,"id":8,"op":"status","extra":1}')
        assert reply == {"v": 1, "id": 8, "ok": False, "error": "status.extra: unknown argument"}
        reply = request(s, b'{"v":2,"id":9,"op":"status"}')
        assert reply["error"] == "unsupported protocol version 2 (this shim speaks 1)"
        reply = request(s, b'{"v":1,"id":10,"op":"' + b"x" * 70000 + b'"}')
        assert reply["ok"] is False and "too large" in reply["error"]
        reply = request(s, b'{"v":1,"id":11,"op":"stop","container":"nope"}')
        assert reply["ok"] is False and reply["id"] == 11
        reply = request(s, b'{"v":1,"id":12,"op":"logs","container":"a"}')
        assert reply["error"] == "logs are read from the files: use pea pod logs"
        reply = request(s, b'{"v":1,"id":13,"op":"status"}')
        assert reply["ok"] is True and reply["id"] == 13 and reply["result"]["status"] == "running"
    # A client that subscribes and vanishes, and one that leaves mid-request, cost nothing.
    for payload in (b'{"v":1,"id":1,"op":"events"}', b'{"v":1,"id":1,"op":"wait","container":"a"}'):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.connect(shim_socket(pods, name))
        s.send(payload)
        s.close()
    assert ls(pods)[name]["status"] == "running"
    removed(pods, name)


def test_stop_waits_for_the_shim_and_leaves_nothing(pods):
    name = pods.name()
    applied(pods, pods.manifest([sleeper(pods)], name=name))
    shim = shim_pid(pods, name)
    code, out, err = pods.cli("pod", "stop", name)
    assert code == 0, err
    helpers.reap_orphans()
    assert not os.path.exists(f"/proc/{shim}") or helpers._proc_stat(shim)[0] == "Z"
    assert pods.leftovers() == []


def test_fifty_pods_at_once(pods):
    names = [pods.name() for _ in range(50)]
    procs = []
    for n in names:
        m = pods.manifest([sleeper(pods)], name=n, spec={"terminationGracePeriodSeconds": 1})
        p = subprocess.Popen(pods.argv("pod", "apply", "-f", m, "--data-root", pods.data), env=pods.env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        procs.append(p)
    for p in procs:
        out, err = p.communicate(timeout=90)
        assert p.returncode == 0, err
    listed = ls(pods)
    assert sorted(listed) == sorted(names)
    assert all(listed[n]["status"] == "running" for n in names)
    # Each shutdown waits out its container's grace period: ten removers at once.
    removers = [subprocess.Popen(pods.argv("pod", "rm", *names[i::10]), env=pods.env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for i in range(10)]
    for p in removers:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
    assert pods.leftovers() == []


def test_wait_and_events(pods):
    name = pods.name()
    path = pods.manifest([container("a", pods.rootfs, "sleep 1; exit 3"), sleeper(pods, "b")], name=name)
    applied(pods, path)
    events = subprocess.Popen(pods.argv("pod", "events", "--output", "json", name), stdout=subprocess.PIPE,
                              text=True, env=pods.env)
    try:
        code, out, err = pods.cli("pod", "wait", "-c", "a", "--for", "exit", name)
        assert (code, out) == (0, "3\n"), err
        seen = []
        for line in events.stdout:
            seen.append(json.loads(line))
            if seen[-1].get("record", {}).get("state") == "exited":
                break
        assert seen[-1]["container"] == "a" and seen[-1]["record"]["exitCode"] == 3
        assert any(e.get("message") == "exited with code 3" for e in seen)
    finally:
        events.kill()
        events.wait()
    code, out, err = pods.cli("pod", "wait", "--for", "running", "-c", "b", name)
    assert code == 0, err
    removed(pods, name)


def start_time(pid):
    """A process's start time in clock ticks since boot, as pea records it."""
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    return int(text[text.rindex(")") + 2:].split()[19])


def edit_state(pods, name, change):
    path = os.path.join(pods.root, "pods", name, "pod.json")
    state = pods.state(name)
    change(state)
    with open(path, "w") as f:
        json.dump(state, f)


def test_binaries_replaced_on_disk_while_the_pod_runs(pods):
    """A pod started by one set of binaries is managed by the files that replace them; the running shim, re-executed
    from a sealed memfd, does not hold its file, so even rewriting it in place (no ETXTBSY) cannot touch it."""
    build = os.path.dirname(os.path.dirname(os.path.realpath(pods.runtime)))
    bin_dir = os.path.join(pods.work_dir, "bin")
    os.mkdir(bin_dir)
    binaries = {"pea": os.path.join(build, "runtime", "pea"), "pea-shim": os.path.join(build, "shim", "pea-shim"),
                "pea-pause": os.path.join(build, "sandbox", "pea-pause")}
    for b, src in binaries.items():
        subprocess.run(["cp", src, os.path.join(bin_dir, b)], check=True)
    built_runtime, pods.runtime = pods.runtime, os.path.join(bin_dir, "pea")
    try:
        name = pods.name()
        path = pods.manifest([sleeper(pods, env=[{"name": "COLOUR", "value": "red"}]), sleeper(pods, "b")],
                             name=name)
        applied(pods, path)
        before = wait_running(pods, name, ("a", "b"))
        shim = shim_pid(pods, name)
        assert os.readlink(f"/proc/{shim}/exe").startswith("/memfd:")
        # Rewritten in place: truncated, then the bytes written again.
        with open(binaries["pea-shim"], "rb") as f:
            content = f.read()
        with open(os.path.join(bin_dir, "pea-shim"), "r+b") as f:
            f.truncate(0)
            f.write(content)
        # Replaced: a new file renamed over the old path, as a package manager does.
        for b in ("pea", "pea-pause", "pea-shim"):
            subprocess.run(["cp", binaries[b], os.path.join(bin_dir, b + ".new")], check=True)
            os.rename(os.path.join(bin_dir, b + ".new"), os.path.join(bin_dir, b))

        assert ps(pods, name)["a"]["pid"] == before["a"]["pid"]
        code, out, err = pods.cli("pod", "exec", "-c", "b", name, "--", "echo", "hi")
        assert (code, out) == (0, "hi\n"), err
        m = json.load(open(path))
        m["spec"]["containers"][0]["env"][0]["value"] = "blue"
        json.dump(m, open(path, "w"))
        assert applied(pods, path).strip() == "recreated: a"
        after = ps(pods, name)
        assert after["a"]["pid"] != before["a"]["pid"] and after["b"]["pid"] == before["b"]["pid"]
        code, out, err = pods.cli("pod", "logs", "-c", "a", name)
        assert (code, out) == (0, "up\n"), err
        code, out, err = pods.cli("pod", "logs", "--previous", "-c", "a", name)
        assert (code, out) == (0, "up\n"), err
        assert shim_pid(pods, name) == shim
        removed(pods, name)
    finally:
        pods.runtime = built_runtime


F_GET_SEALS, SEALED = 1034, 0x1 | 0x2 | 0x4 | 0x8  # F_SEAL_SEAL, _SHRINK, _GROW, _WRITE


def shim_copy(pid):
    """(device, inode) of the file a shim runs from, after checking it is a sealed copy."""
    fd = os.open(f"/proc/{pid}/exe", os.O_RDONLY)
    try:
        assert fcntl.fcntl(fd, F_GET_SEALS) & SEALED == SEALED, "a sealed copy"
        st = os.fstat(fd)
        return st.st_dev, st.st_ino
    finally:
        os.close(fd)


def test_shims_share_one_sealed_copy_of_their_binary(pods):
    """Shims of one binary share the sealed copy of it another one runs from (its pages held once, not per pod),
    while that one lives; a replaced binary, or a record whose process is gone, gets a copy of its own."""
    def rm(name):
        code, out, err = pods.cli("pod", "rm", name)
        assert code == 0, err

    first, second = pods.name(), pods.name()
    for name in (first, second):
        applied(pods, pods.manifest([sleeper(pods)], name=name))
    shared = shim_copy(shim_pid(pods, first))
    assert shim_copy(shim_pid(pods, second)) == shared

    # The record names the last shim to start, the second: once it is gone, the next shim copies for itself.
    rm(second)
    third = pods.name()
    applied(pods, pods.manifest([sleeper(pods)], name=third))
    own = shim_copy(shim_pid(pods, third))
    assert own != shared

    # The binary replaced on disk (a new file renamed over the old path): the next shim copies the new one.
    build = os.path.dirname(os.path.dirname(os.path.realpath(pods.runtime)))
    bin_dir = os.path.join(pods.work_dir, "bin")
    os.mkdir(bin_dir)
    for b, sub in (("pea", "runtime"), ("pea-shim", "shim"), ("pea-pause", "sandbox")):
        subprocess.run(["cp", os.path.join(build, sub, b), os.path.join(bin_dir, b)], check=True)
    built_runtime, pods.runtime = pods.runtime, os.path.join(bin_dir, "pea")
    try:
        fourth = pods.name()
        applied(pods, pods.manifest([sleeper(pods)], name=fourth))
        assert shim_copy(shim_pid(pods, fourth)) not in (shared, own)
        rm(fourth)
    finally:
        pods.runtime = built_runtime
    for name in (first, third):
        rm(name)
    assert pods.leftovers() == []


def test_state_and_protocol_versions_are_checked(pods):
    name = pods.name()
    applied(pods, pods.manifest([sleeper(pods)], name=name))
    wait_running(pods, name)
    # The shim goes first: it rewrites pod.json whenever something changes, and must not race the edits below.
    shim = shim_pid(pods, name)
    recorded = pods.state(name)["shim"]
    os.kill(shim, signal.SIGKILL)
    helpers.wait_until(lambda: not os.path.exists(f"/proc/{shim}") or helpers._proc_stat(shim)[0] == "Z", 5,
                       "the shim dead")
    helpers.reap_orphans()
    edit_state(pods, name, lambda s: s.update(version=3))
    code, out, err = pods.cli("pod", "ps", name)
    assert code == 1 and err.strip() == \
        f"pea: pod {name} was made by a newer pea (state version 3; this pea reads 2)", err
    assert ls(pods)[name]["status"] == "broken"
    edit_state(pods, name, lambda s: s.update(version=2))

    # A shim that answers in another protocol version: the client says so instead of misreading it.
    pod_dir = os.path.join(pods.root, "pods", name)
    os.unlink(os.path.join(pod_dir, "shim.sock"))
    dir_fd = os.open(pod_dir, os.O_PATH | os.O_DIRECTORY)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        server.bind(f"/proc/self/fd/{dir_fd}/shim.sock")
        server.listen(1)
        edit_state(pods, name, lambda s: s.update(shim={"pid": os.getpid(), "startTime": start_time(os.getpid())}))
        client = subprocess.Popen(pods.argv("pod", "wait", "--for", "running", name), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env=pods.env)
        conn, _ = server.accept()
        req = json.loads(conn.recv(65536))
        conn.send(json.dumps({"v": 2, "id": req["id"], "ok": True, "result": None}).encode())
        out, err = client.communicate(timeout=10)
        conn.close()
        assert client.returncode == 1 and "pea-shim speaks protocol version 2; this pea speaks 1" in err, err
    finally:
        # Never leave our own PID recorded as the shim: rm would shut "it" down.
        edit_state(pods, name, lambda s: s.update(shim=recorded))
        server.close()
        os.close(dir_fd)
    removed(pods, name)


def test_pod_from_an_earlier_boot_is_gone_and_rm_signals_no_recorded_pid(pods):
    """A crash, then a reboot, simulated: every process of the pod SIGKILLed and pod.json's bootId changed. The
    PIDs recorded then name other processes now: a victim of ours takes their place in the state (with its true
    start time) and must survive `pod rm`."""
    name = pods.name()
    applied(pods, pods.manifest([sleeper(pods), sleeper(pods, "b")], name=name))
    running = wait_running(pods, name, ("a", "b"))
    state = pods.state(name)
    for pid in (state["shim"]["pid"], running["a"]["pid"], running["b"]["pid"], state["infra"]["pid"]):
        os.kill(pid, signal.SIGKILL)
    for pid in (state["shim"]["pid"], state["infra"]["pid"]):
        helpers.wait_until(lambda: not os.path.exists(f"/proc/{pid}") or helpers._proc_stat(pid)[0] == "Z", 5,
                           f"{pid} dead")
    helpers.reap_orphans()
    victim = subprocess.Popen(["sleep", "300"])
    try:
        as_victim = {"pid": victim.pid, "startTime": start_time(victim.pid)}
        edit_state(pods, name, lambda s: s.update(bootId=str(uuid.uuid4()), shim=as_victim, infra=as_victim))
        for c in ("a", "_infra"):
            oci_state = os.path.join(pods.root, "pods", name, "oci", c, "state.json")
            st = json.load(open(oci_state))
            st.update(pid=victim.pid, start_time=as_victim["startTime"])
            json.dump(st, open(oci_state, "w"))
        assert ls(pods)[name]["status"] == "gone"
        code, out, err = pods.cli("pod", "rm", name)
        assert code == 0, err
        assert victim.poll() is None, "pod rm signalled a PID recorded before the boot"
        assert pods.leftovers() == []
    finally:
        victim.kill()
        victim.wait()
