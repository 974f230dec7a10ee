"""The pod commands as a kubectl user types them: options before or after the arguments, `--`, one -o vocabulary
(and -o on the runc-style list/ps/state), rm --force at once, apply and exec naming a container that cannot start,
pea through a symlink on PATH finding pea-pause, Ctrl-C on a foreground pod run, --dry-run."""
import json
import os
import pty
import select
import shutil
import subprocess
import time

import pytest

import helpers
from pods import container

pytestmark = pytest.mark.pea_only


def sleeper(pods, name="a"):
    return container(name, pods.rootfs, f"echo {name} up; exec sleep 300")


def applied(pods, manifest, *extra):
    code, out, err = pods.apply(manifest, *extra)
    assert code == 0, err
    return out


def ok(pods, *args):
    code, out, err = pods.cli(*args)
    assert code == 0, f"pea {' '.join(args)}: {err}"
    return out


def test_options_go_before_or_after_the_arguments_and_dashes_end_them(pods):
    name = pods.name()
    applied(pods, pods.manifest([sleeper(pods, "a"), sleeper(pods, "b")], name=name))
    helpers.wait_until(lambda: "b up" in ok(pods, "pod", "logs", name, "-c", "b"), 15, "b's output")

    # logs: -c after the name (it failed before), --tail=N, -- before the name, pod/NAME as kubectl takes it.
    assert ok(pods, "pod", "logs", name, "-c", "a") == "a up\n"
    assert ok(pods, "pod", "logs", "-c", "a", name, "--tail=1") == "a up\n"
    assert ok(pods, "pod", "logs", "-ca", "--", f"pod/{name}") == "a up\n"
    # ps, ls, events: -o after the name.
    assert {c["name"] for c in json.loads(ok(pods, "pod", "ps", name, "-o", "json"))} == {"a", "b"}
    assert name in {p["name"] for p in json.loads(ok(pods, "pod", "ls", "--output=json"))}
    # exec: options before and after NAME; the command's own options stay its own, with "--" or without.
    assert ok(pods, "pod", "exec", name, "-c", "b", "--", "echo", "-c", "x") == "-c x\n"
    assert ok(pods, "pod", "exec", "-c", "b", name, "echo", "-e", "y") == "y\n"
    assert ok(pods, "pod", "exec", name, "-e", "K=v", "-c", "a", "sh", "-c", "echo $K") == "v\n"
    # wait: --for after the name.
    assert ok(pods, "pod", "wait", name, "--for", "running", "-c", "a") == ""

    code, out, err = pods.cli("pod", "logs", name, "--bogus")
    assert code == 1 and "pod logs: unknown option --bogus" in err, err
    code, out, err = pods.cli("pod", "logs", name, "-c")
    assert code == 1 and "-c needs a value" in err, err
    # After "--" nothing is an option: "-o" is a (second, unwanted) argument.
    code, out, err = pods.cli("pod", "ps", name, "--", "-o")
    assert code == 1 and "one pod name is required" in err, err

    # stop: --grace-period after the names.
    code, out, err = pods.cli("pod", "stop", name, "--grace-period", "1")
    assert code == 0, err
    assert pods.leftovers() == []


def test_output_formats_of_the_listing_commands(pods):
    name = pods.name()
    applied(pods, pods.manifest([sleeper(pods, "a")], name=name))

    assert ok(pods, "pod", "ls", "-o", "name") == f"pod/{name}\n"
    table = ok(pods, "pod", "ls").splitlines()
    assert table[0].split() == ["NAME", "STATUS", "READY", "CONTAINERS", "RESTARTS", "AGE"]
    wide = ok(pods, "pod", "ls", "-o", "wide").splitlines()
    assert wide[0].split() == ["NAME", "STATUS", "READY", "CONTAINERS", "RESTARTS", "AGE", "IP", "SHIM", "OWNER"]
    assert wide[1].split()[0] == name and wide[1].split()[-2:] == [str(pods.state(name)["shim"]["pid"]), "-"]
    listed = json.loads(ok(pods, "pod", "ls", "-o", "json"))
    assert [(p["name"], p["status"]) for p in listed] == [(name, "running")]

    assert ok(pods, "pod", "ps", name, "-o", "name") == "a\n"
    assert ok(pods, "pod", "ps", name).splitlines()[0].split() == ["CONTAINER", "STATE", "READY", "PID", "EXITCODE",
                                                                   "RESTARTS"]
    assert ok(pods, "pod", "ps", "-o", "wide", name).splitlines()[0].split()[-2:] == ["STARTED", "REASON"]
    assert json.loads(ok(pods, "pod", "ps", name, "-o", "json"))[0]["state"] == "running"

    # YAML as kubectl writes it: block style, strings that would read as something else quoted.
    assert f"- name: {name}\n  status: running\n" in ok(pods, "pod", "ls", "-o", "yaml")
    code, out, err = pods.cli("pod", "ls", "-o", "xml")
    assert code == 1 and 'pod ls: -o takes table|wide|json|yaml|name, not "xml"' in err, err
    code, out, err = pods.cli("pod", "events", name, "-o", "name")
    assert code == 1 and "-o takes table|json" in err, err

    events = subprocess.Popen(pods.argv("pod", "events", name, "-o", "json"), stdout=subprocess.PIPE, text=True,
                              env=pods.env)
    try:
        code, out, err = pods.cli("pod", "rm", name, "--grace-period", "1")
        assert code == 0, err
        out, _ = events.communicate(timeout=30)
    finally:
        if events.poll() is None:
            events.kill()
            events.wait()
    seen = [json.loads(line) for line in out.splitlines()]
    assert any(e.get("container") == "a" and e.get("record", {}).get("state") == "exited" for e in seen), out
    assert pods.leftovers() == []


def test_runc_style_commands_take_o_as_format(run, bundle, cid):
    bundle.args("peatest", "sleep", "100")
    run.ok("create", "--bundle", bundle, cid)
    pid = run.state(cid)["pid"]
    assert [e["id"] for e in json.loads(run.ok("list", "-o", "json").out)] == [cid]
    assert [e["id"] for e in json.loads(run.ok("list", "--output", "json").out)] == [cid]
    assert pid in json.loads(run.ok("ps", "-o", "json", cid).out)
    assert json.loads(run.ok("state", "-o", "json", cid).out)["id"] == cid
    assert json.loads(run.ok("state", "--format", "json", cid).out)["pid"] == pid
    r = run("state", "-o", "table", cid)
    assert r.code == 1 and 'unknown format "table"' in r.err, r
    run.ok("delete", "--force", cid)


def stubborn(pods, name="a"):
    """A container that ignores SIGTERM: only SIGKILL ends it."""
    return container(name, pods.rootfs, f"trap '' TERM; echo {name} up; while true; do sleep 1; done")


def test_rm_force_kills_a_detached_pod_at_once(pods):
    name = pods.name()
    path = pods.manifest([stubborn(pods)], name=name, spec={"terminationGracePeriodSeconds": 30})
    applied(pods, path)
    helpers.wait_until(lambda: "a up" in ok(pods, "pod", "logs", name), 15, "a's output")
    start = time.monotonic()
    code, out, err = pods.cli("pod", "rm", name, "--force")
    took = time.monotonic() - start
    assert code == 0, err
    assert took < 8, f"pod rm --force took {took:.1f}s with a 30s grace period"
    assert pods.leftovers() == []

    # --grace-period N instead of the manifest's 30 s; a stop already under way is hurried by rm --force.
    name = pods.name()
    applied(pods, pods.manifest([stubborn(pods)], name=name, spec={"terminationGracePeriodSeconds": 30}))
    helpers.wait_until(lambda: "a up" in ok(pods, "pod", "logs", name), 15, "a's output")
    start = time.monotonic()
    code, out, err = pods.cli("pod", "rm", "--grace-period", "2", name)
    took = time.monotonic() - start
    assert code == 0, err
    assert 1.5 < took < 12, f"pod rm --grace-period 2 took {took:.1f}s"
    assert pods.leftovers() == []

    name = pods.name()
    applied(pods, pods.manifest([stubborn(pods)], name=name, spec={"terminationGracePeriodSeconds": 30}))
    helpers.wait_until(lambda: "a up" in ok(pods, "pod", "logs", name), 15, "a's output")
    stop = subprocess.Popen(pods.argv("pod", "stop", name), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=pods.env)
    try:
        helpers.wait_until(lambda: [p["status"] for p in json.loads(ok(pods, "pod", "ls", "-o", "json"))]
                           == ["stopping"], 15, "the pod stopping")
        start = time.monotonic()
        code, out, err = pods.cli("pod", "rm", "-f", name)
        took = time.monotonic() - start
        assert code == 0, err
        assert stop.wait(30) == 0, stop.stderr.read()
        assert took < 8, f"pod rm -f during a 30s stop took {took:.1f}s"
    finally:
        if stop.poll() is None:
            stop.kill()
            stop.wait()
    assert pods.leftovers() == []


def test_apply_and_exec_name_a_container_that_cannot_start(pods):
    name = pods.name()
    bad = {"name": "bad", "image": pods.rootfs, "command": ["/no/such/binary"]}
    path = pods.manifest([sleeper(pods, "a"), bad], name=name)
    code, out, err = pods.apply(path)
    assert code == 1, (out, err)
    assert "applied" not in out
    assert f"pea: pod {name}: container bad failed to start: " in err and "/no/such/binary" in err, err
    assert "no such file or directory" in err, err
    # The pod stays, as in Kubernetes: its other containers run and ps says why bad is not running.
    got = {c["name"]: c for c in json.loads(ok(pods, "pod", "ps", "-o", "json", name))}
    assert got["a"]["state"] == "running" and "/no/such/binary" in got["bad"]["startError"], got
    assert "/no/such/binary" in ok(pods, "pod", "ps", "-o", "wide", name)

    code, out, err = pods.cli("pod", "exec", name, "-c", "bad", "--", "true")
    assert code == 1
    assert f"pod exec {name}: container bad failed to start: " in err and "/no/such/binary" in err, err
    assert "does not exist" not in err, err

    # Applying a fixed manifest replaces it; then apply succeeds.
    fixed = pods.manifest([sleeper(pods, "a"), sleeper(pods, "bad")], name=name)
    code, out, err = pods.apply(fixed)
    assert (code, out) == (0, "recreated: bad\n"), err
    # Broken again by an apply to the running pod: named as well (the manifest's file is written anew).
    code, out, err = pods.apply(pods.manifest([sleeper(pods, "a"), bad], name=name))
    assert code == 1 and f"pea: pod {name}: container bad failed to start: " in err, (out, err)
    code, out, err = pods.cli("pod", "rm", name)
    assert code == 0, err
    assert pods.leftovers() == []


def test_pea_through_a_symlink_on_path_finds_pea_pause(pods, runtime, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "pea").symlink_to(runtime)
    env = dict(pods.env, PATH=f"{bin_dir}:{os.environ['PATH']}")
    name = pods.name()
    path = pods.manifest([container("a", pods.rootfs, "echo through PATH")], name=name)
    p = subprocess.run(["pea", "--root", pods.root, "pod", "run", "-f", path, "--data-root", pods.data],
                       capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "[a] through PATH\n"

    # A copy of pea away from its helpers: the error says where it looked and how to say where pea-pause is.
    shutil.copy(runtime, bin_dir / "pea-alone")
    p = subprocess.run(["pea-alone", "--root", pods.root, "pod", "run", "-f", path, "--data-root", pods.data],
                       capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=60)
    assert p.returncode == 1
    assert f"pea: find pea-pause (beside pea in {bin_dir}" in p.stderr and "--pause" in p.stderr, p.stderr
    assert pods.leftovers() == []


def read_until(fd, buf, predicate, timeout):
    """Read the pty master into buf until predicate(buf) or timeout; False when the terminal hung up."""
    end = time.monotonic() + timeout
    while not predicate(buf) and time.monotonic() < end:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if not ready:
            continue
        try:
            data = os.read(fd, 4096)
        except OSError:
            return False
        if not data:
            return False
        buf.extend(data)
    return True


def test_ctrl_c_on_a_foreground_run_stops_the_pod_in_order(pods):
    """^C on the terminal of `pea pod run`: the terminal's SIGINT goes to its foreground process group; the pod's
    processes are not in it, so the container gets its stop signal (TERM), never the INT, the infra does not die of
    it, and pod run exits 0 (the stop was asked for, as kubectl delete succeeds)."""
    name = pods.name()
    path = pods.manifest([container("a", pods.rootfs, "trap 'echo got INT' INT; trap 'echo got TERM; exit 0' TERM; "
                                    "echo up; while true; do sleep 0.2; done")],
                         name=name, spec={"terminationGracePeriodSeconds": 20})
    pid, fd = pty.fork()
    if pid == 0:
        try:
            argv = pods.argv("pod", "run", "-f", path, "--data-root", pods.data)
            os.execve(argv[0], argv, pods.env)
        finally:
            os._exit(127)
    buf = bytearray()
    try:
        assert read_until(fd, buf, lambda b: b"[a] up" in b, 30), buf.decode(errors="replace")
        assert b"[a] up" in buf, buf.decode(errors="replace")
        os.write(fd, b"\x03")  # the terminal's interrupt character: SIGINT to its foreground process group
        read_until(fd, buf, lambda b: False, 0)
        deadline = time.monotonic() + 30
        status = None
        while status is None and time.monotonic() < deadline:
            read_until(fd, buf, lambda b: False, 0.2)
            done, status_word = os.waitpid(pid, os.WNOHANG)
            if done:
                status = os.waitstatus_to_exitcode(status_word)
        read_until(fd, buf, lambda b: False, 0.5)
    finally:
        if status is None:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        os.close(fd)
    text = buf.decode(errors="replace")
    assert status == 0, text
    assert "Interrupt: stopping the pod" in text, text
    assert "[a] got TERM" in text, text
    assert "got INT" not in text, text
    assert "infra process exited" not in text, text
    assert text.index("stopping the pod") < text.index("[a] got TERM") < text.index("a: exited with code 0"), text
    assert pods.leftovers() == []


def test_dry_run_validates_and_creates_nothing(pods):
    name = pods.name()
    path = pods.manifest([sleeper(pods, "a")], name=name)
    for command in ("apply", "run"):
        code, out, err = pods.cli("pod", command, "--dry-run", "-f", path, "--data-root", pods.data)
        assert (code, out, err) == (0, f"pod/{name} created (dry run)\n", ""), err
    assert not os.path.exists(os.path.join(pods.root, "pods", name))
    assert pods.leftovers() == []

    broken = os.path.join(pods.work_dir, "broken.json")
    with open(broken, "w") as f:
        json.dump({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {"containers": []}}, f)
    code, out, err = pods.cli("pod", "apply", "-f", broken, "--dry-run")
    assert code == 1 and "spec.containers: must hold at least one element" in err, err

    # Against a running pod: what would change, and nothing does.
    applied(pods, path)
    pid = json.loads(ok(pods, "pod", "ps", "-o", "json", name))[0]["pid"]
    changed = pods.manifest([container("a", pods.rootfs, "exec sleep 301"), sleeper(pods, "b")], name=name)
    moved = os.path.join(pods.work_dir, "changed.json")
    os.rename(changed, moved)
    changed = moved
    pods.manifest([sleeper(pods, "a")], name=name)  # the first manifest again, at path
    code, out, err = pods.cli("pod", "apply", "-f", changed, "--dry-run")
    assert (code, out) == (0, f"pod/{name} configured (dry run)\nrecreated: a\nadded: b\n"), err
    assert pods.cli("pod", "apply", "--dry-run", "-f", path)[1] == f"pod/{name} unchanged (dry run)\n"
    got = json.loads(ok(pods, "pod", "ps", "-o", "json", name))
    assert [(c["name"], c["pid"]) for c in got] == [("a", pid)]
    code, out, err = pods.cli("pod", "rm", name)
    assert code == 0, err
    assert pods.leftovers() == []


def test_a_killed_foreground_client_has_its_supervisor_stop_the_pod(pods):
    """SIGKILL reaches only the client; its supervisor (in a session of its own) gets SIGTERM at the client's death
    and stops and removes the pod, rather than go on with nobody to stop it."""
    name = pods.name()
    run = pods.start(pods.manifest([container("a", pods.rootfs, "trap 'echo got TERM; exit 0' TERM; echo up; "
                                              "while true; do sleep 0.2; done")], name=name))
    run.wait_for_line("[a] up")
    run.proc.kill()
    run.stop()
    helpers.wait_until(lambda: not os.path.exists(os.path.join(pods.root, "pods", name)), 20, "the pod removed")
    assert pods.leftovers() == []
