"""The pod sandbox through `pea pod run`: shared namespaces, init containers, sidecars, volumes, overlay roots,
bridge networking in test namespaces, teardown that leaves nothing, manifest errors."""
import json
import os
import signal
import subprocess

import pytest

import helpers
from pods import container

pytestmark = pytest.mark.pea_only


def test_containers_share_network_and_talk_over_localhost(pods):
    page = "served over the pod loopback"
    m = pods.manifest([
        container("web", pods.rootfs, f"mkdir -p /tmp/www && echo '{page}' > /tmp/www/index.html && "
                  "exec httpd -f -p 127.0.0.1:8080 -h /tmp/www"),
        container("client", pods.rootfs, "for i in $(seq 50); do wget -qO- http://127.0.0.1:8080/ && break; "
                  "sleep 0.1; done; ls /sys/class/net | tr '\\n' ' '; echo"),
    ])
    run = pods.start(m)
    try:
        run.wait_for_line(f"[client] {page}")
        run.wait_for_line("[client] lo")
    finally:
        assert run.stop() == 0, run.err
    assert pods.leftovers() == []


def test_containers_share_ipc_and_hostname(pods):
    m = pods.manifest([
        container("maker", pods.rootfs, "touch /dev/mqueue/pea-q && hostname && sleep 30"),
        container("reader", pods.rootfs, "for i in $(seq 50); do [ -e /dev/mqueue/pea-q ] && break; sleep 0.1; "
                  "done; ls /dev/mqueue; hostname"),
    ], spec={"hostname": "shared-host"})
    run = pods.start(m)
    try:
        run.wait_for_line("[reader] pea-q")
        run.wait_for_line("[reader] shared-host")
        run.wait_for_line("[maker] shared-host")
    finally:
        run.stop()


def test_hostname_defaults_to_the_pod_name(pods):
    name = pods.name()
    code, out, err = pods.run(pods.manifest([container("a", pods.rootfs, "hostname; cat /etc/hostname")],
                                            name=name))
    assert code == 0, err
    assert out.splitlines() == [f"[a] {name}", f"[a] {name}"]


def test_shared_process_namespace(pods):
    m = pods.manifest([
        container("sleeper", pods.rootfs, "exec sleep 31"),
        container("looker", pods.rootfs, "for i in $(seq 50); do ps | grep -q 'sleep 31' && break; sleep 0.1; "
                  "done; ps -o pid,args | grep -E 'pea-pause|sleep 31' | grep -v grep"),
    ], spec={"shareProcessNamespace": True})
    run = pods.start(m)
    try:
        run.wait_for_line("sleep 31")
        run.wait_for_line("/pea-pause")
        pause = [l for l in run.lines if "/pea-pause" in l][0]
        assert pause.split()[1] == "1", "the infra is PID 1 of the shared pid namespace"
    finally:
        run.stop()


def test_own_process_namespace_by_default(pods):
    code, out, err = pods.run(pods.manifest([container("a", pods.rootfs, "ps -o pid,args | grep -v ps")]))
    assert code == 0, err
    assert "pea-pause" not in out


def test_init_containers_run_in_order_before_apps(pods):
    vol = [{"name": "data", "mountPath": "/data"}]
    stamp = "$(cut -d' ' -f1 /proc/uptime)"
    m = pods.manifest(
        [container("app", pods.rootfs, f"echo app {stamp} >> /data/order; cat /data/order", volumeMounts=vol)],
        init=[container("first", pods.rootfs, f"echo first {stamp} >> /data/order; sleep 0.2", volumeMounts=vol),
              container("second", pods.rootfs, f"echo second {stamp} >> /data/order", volumeMounts=vol)],
        volumes=[{"name": "data", "emptyDir": {}}])
    code, out, err = pods.run(m)
    assert code == 0, err
    lines = [l.split()[1:] for l in out.splitlines()]
    assert [l[0] for l in lines] == ["first", "second", "app"], out
    stamps = [float(l[1]) for l in lines]
    assert stamps == sorted(stamps)


def test_failing_init_container_stops_the_pod(pods):
    m = pods.manifest([container("app", pods.rootfs, "echo app ran")],
                      init=[container("broken", pods.rootfs, "echo broken; exit 7"),
                            container("never", pods.rootfs, "echo never ran")])
    code, out, err = pods.run(m)
    assert code == 1
    assert "[broken] broken" in out
    assert "app ran" not in out and "never ran" not in out
    assert "broken: exited with code 7" in err
    assert "init container failed" in err


def test_sidecar_init_container_keeps_running(pods):
    vol = [{"name": "shared", "mountPath": "/shared"}]
    sidecar = container("beat", pods.rootfs, "n=0; while true; do n=$((n+1)); echo $n > /shared/beat; sleep 0.1; done",
                        volumeMounts=vol, restartPolicy="Always")
    # "Started" is the sidecar's exec, not its first beat; and a beat is truncated then written: read until a value.
    app = container("app", pods.rootfs,
                    "beat() { v=; while [ -z \"$v\" ]; do v=$(cat /shared/beat 2>/dev/null) || sleep 0.02; "
                    "[ -n \"$v\" ] || sleep 0.02; done; echo $v; }; "
                    "a=$(beat); sleep 0.5; b=$(beat); [ \"$b\" -gt \"$a\" ] && echo sidecar alive", volumeMounts=vol)
    code, out, err = pods.run(pods.manifest([app], init=[sidecar], volumes=[{"name": "shared", "emptyDir": {}}]))
    assert code == 0, err
    assert "[app] sidecar alive" in out


def test_empty_dir_is_shared_and_removed_at_teardown(pods):
    name = pods.name()
    vol = [{"name": "scratch", "mountPath": "/scratch"}]
    m = pods.manifest([
        container("writer", pods.rootfs, "echo from-writer > /scratch/note; sleep 30", volumeMounts=vol),
        container("reader", pods.rootfs, "for i in $(seq 50); do [ -s /scratch/note ] && break; sleep 0.1; done; "
                  "cat /scratch/note", volumeMounts=vol),
    ], volumes=[{"name": "scratch", "emptyDir": {}}], name=name)
    run = pods.start(m)
    try:
        run.wait_for_line("[reader] from-writer")
        on_host = os.path.join(pods.data, "pods", name, "volumes", "scratch", "note")
        assert open(on_host).read() == "from-writer\n"
    finally:
        run.stop()
    assert not os.path.exists(os.path.join(pods.data, "pods", name))


def test_memory_empty_dir_is_a_sized_tmpfs(pods):
    vol = [{"name": "mem", "mountPath": "/mem"}]
    code, out, err = pods.run(pods.manifest(
        [container("a", pods.rootfs, "grep ' /mem ' /proc/mounts", volumeMounts=vol)],
        volumes=[{"name": "mem", "emptyDir": {"medium": "Memory", "sizeLimit": "8Mi"}}]))
    assert code == 0, err
    assert " tmpfs " in out and "size=8192k" in out, out


def test_sub_path_and_read_only_mounts(pods, tmp_path):
    host = tmp_path / "host"
    host.mkdir()
    (host / "conf").mkdir()
    (host / "conf" / "app.conf").write_text("setting=1\n")
    m = pods.manifest([container(
        "a", pods.rootfs, "cat /etc/app/app.conf; touch /etc/app/x 2>/dev/null || echo read-only",
        volumeMounts=[{"name": "h", "mountPath": "/etc/app", "subPath": "conf", "readOnly": True}])],
        volumes=[{"name": "h", "hostPath": {"path": str(host), "type": "Directory"}}])
    code, out, err = pods.run(m)
    assert code == 0, err
    assert out.splitlines() == ["[a] setting=1", "[a] read-only"]


def test_sub_path_through_a_symlink_is_refused(pods, tmp_path):
    host = tmp_path / "vol"
    host.mkdir()
    os.symlink("/etc", host / "escape")
    m = pods.manifest([container("a", pods.rootfs, "ls /x",
                                 volumeMounts=[{"name": "h", "mountPath": "/x", "subPath": "escape"}])],
                      volumes=[{"name": "h", "hostPath": {"path": str(host)}}])
    code, out, err = pods.run(m)
    assert code == 128, (code, out, err)
    assert "subPath escape in volume h" in err, err
    assert "started" not in err


def test_host_path_type_is_checked(pods, tmp_path):
    m = pods.manifest([container("a", pods.rootfs, "true", volumeMounts=[{"name": "h", "mountPath": "/h"}])],
                      volumes=[{"name": "h", "hostPath": {"path": str(tmp_path / "missing"), "type": "Directory"}}])
    code, out, err = pods.run(m)
    assert code == 1
    assert err.strip().splitlines()[-1].startswith("pea: pod ")
    assert "hostPath" in err and "missing" in err


def test_overlay_writes_are_isolated_and_layers_untouched(pods, tmp_path):
    top = tmp_path / "top"
    (top / "etc").mkdir(parents=True)
    (top / "etc" / "layer").write_text("top layer\n")
    layers = [pods.rootfs, str(top)]
    before = sorted(os.listdir(pods.rootfs))
    m = pods.manifest([
        container("one", layers, "cat /etc/layer; echo one > /etc/layer; echo one > /mine; sleep 0.5; "
                  "cat /etc/layer; ls /other 2>/dev/null || echo no-other"),
        container("two", layers, "echo two > /other; sleep 0.5; cat /etc/layer; ls /mine 2>/dev/null || "
                  "echo no-mine"),
    ])
    code, out, err = pods.run(m)
    assert code == 0, err
    assert "[one] top layer" in out and "[one] one" in out and "[one] no-other" in out
    assert "[two] top layer" in out and "[two] no-mine" in out
    assert (top / "etc" / "layer").read_text() == "top layer\n"
    assert sorted(os.listdir(pods.rootfs)) == before
    assert sorted(os.listdir(top)) == ["etc"]


def test_read_only_root_filesystem(pods):
    c = container("a", pods.rootfs, "touch /newfile 2>/dev/null || echo refused; touch /tmp/x 2>/dev/null "
                  "|| echo tmp-refused", securityContext={"readOnlyRootFilesystem": True})
    code, out, err = pods.run(pods.manifest([c]))
    assert code == 0, err
    assert "[a] refused" in out


def test_security_context_user_and_capabilities(pods):
    c = container("a", pods.rootfs, "id -u; id -g; grep CapEff /proc/self/status",
                  securityContext={"runAsUser": 33, "runAsGroup": 33,
                                   "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}})
    code, out, err = pods.run(pods.manifest([c]))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "[a] 33" and lines[1] == "[a] 33"
    assert lines[2].split()[-1] == "0000000000000000", "a non-root user has no effective capabilities"


def test_restart_policy_on_failure_restarts_with_backoff(pods):
    vol = [{"name": "d", "mountPath": "/d"}]
    c = container("flaky", pods.rootfs, "echo run >> /d/runs; n=$(wc -l < /d/runs); echo attempt $n; "
                  "[ $n -ge 3 ]", volumeMounts=vol)
    code, out, err = pods.run(pods.manifest([c], volumes=[{"name": "d", "emptyDir": {}}],
                                            spec={"restartPolicy": "OnFailure"}))
    assert code == 0, err
    assert [l for l in out.splitlines() if "attempt" in l] == ["[flaky] attempt 1", "[flaky] attempt 2",
                                                                 "[flaky] attempt 3"]
    assert "restarting in 1.000s" in err and "restarting in 2.000s" in err


def test_exit_code_of_the_pod(pods):
    code, out, err = pods.run(pods.manifest([container("ok", pods.rootfs, "true"),
                                             container("bad", pods.rootfs, "exit 5")]))
    assert code == 5


def test_missing_command_fails_the_container_not_pea(pods):
    c = {"name": "a", "image": pods.rootfs, "command": ["/no/such/binary"]}
    code, out, err = pods.run(pods.manifest([c]))
    assert code == 128
    assert "executable file not found" in err or "no such file" in err.lower(), err


def test_ctrl_c_tears_everything_down(pods):
    name = pods.name()
    m = pods.manifest([container("a", pods.rootfs, "echo up; exec sleep 60")],
                      volumes=[{"name": "m", "emptyDir": {"medium": "Memory"}}], name=name)
    run = pods.start(m)
    try:
        run.wait_for_line("[a] up")
        code, out, err = pods.cli("pod", "ps", name)
        assert code == 0 and " running " in out, out + err
        code, out, err = pods.cli("pod", "ls", "--output", "json")
        assert [p["name"] for p in json.loads(out)] == [name]
        assert json.loads(out)[0]["status"] == "running"
    finally:
        run.proc.send_signal(2)
        assert run.proc.wait(30) == 0
        run.stop()
    assert pods.leftovers() == []


def test_pod_rm_cleans_a_pod_whose_supervisor_was_killed(pods):
    name = pods.name()
    run = pods.start(pods.manifest([container("a", pods.rootfs, "echo up; exec sleep 60")], name=name))
    run.wait_for_line("[a] up")
    # The supervisor is the client's child, in a session of its own (a client killed instead has it stop the pod).
    with open(f"/proc/{run.proc.pid}/task/{run.proc.pid}/children") as f:
        supervisor = int(f.read().split()[0])
    os.kill(supervisor, signal.SIGKILL)
    assert run.stop() == 128 + signal.SIGKILL
    code, out, err = pods.cli("pod", "ls")
    assert name in out and "degraded" not in out  # the infra still runs: the pod is up without its supervisor
    code, out, err = pods.cli("pod", "rm", "--force", name)
    assert code == 0, err
    assert pods.leftovers() == []
    code, out, err = pods.cli("pod", "rm", name)
    assert code == 1 and err.strip() == f"pea: pod {name} does not exist"


def test_malformed_manifest_gets_a_field_path_error(pods, work_dir):
    path = os.path.join(work_dir, "bad.yaml")
    with open(path, "w") as f:
        f.write("apiVersion: v1\nkind: Pod\nmetadata:\n  name: bad\nspec:\n  containers:\n  - name: a\n"
                f"    image: {pods.rootfs}\n    command: [sh]\n    volumeMounts:\n    - name: v\n      mountpath: /v\n")
    code, out, err = pods.cli("pod", "run", "-f", path, "--data-root", pods.data)
    assert code == 1
    assert err.strip().splitlines() == [
        f"pea: {path}: spec.containers[0].volumeMounts[0].mountpath: unknown field"]


def test_pod_name_taken(pods):
    name = pods.name()
    run = pods.start(pods.manifest([container("a", pods.rootfs, "echo up; exec sleep 60")], name=name))
    try:
        run.wait_for_line("[a] up")
        code, out, err = pods.run(pods.manifest([container("a", pods.rootfs, "true")], name=name))
        assert code == 1 and f"pod {name} already exists" in err
    finally:
        run.stop()


# ---- bridge networking, in network namespaces the test makes -------------------------------------------------------

def test_bridge_pod_answers_on_its_address(pods, test_netns):
    m = pods.manifest(
        [container("web", pods.rootfs, "mkdir -p /tmp/www && echo bridged > /tmp/www/index.html && "
                   "ip -4 addr show eth0 | grep inet; ip route | grep default; exec httpd -f -p 8080 -h /tmp/www")],
        pea={"network": {"mode": "bridge", "bridge": "peait0", "address": "198.18.7.2/24",
                         "gateway": "198.18.7.1"}})
    run = pods.start(m, netns=test_netns)
    try:
        run.wait_for_line("inet 198.18.7.2/24")
        run.wait_for_line("default via 198.18.7.1")
        got = ""
        for _ in range(50):
            p = subprocess.run(["ip", "netns", "exec", test_netns, "wget", "-qO-", "-T", "2",
                                "http://198.18.7.2:8080/"], capture_output=True, text=True)
            got = p.stdout
            if got:
                break
        assert got == "bridged\n"
        links = subprocess.run(["ip", "-n", test_netns, "-o", "link"], capture_output=True, text=True).stdout
        assert "peait0" in links and "master peait0" in links
    finally:
        assert run.stop() == 0, run.err
    links = subprocess.run(["ip", "-n", test_netns, "-o", "link"], capture_output=True, text=True).stdout
    assert "peait0" not in links, "the bridge pea made is removed with its last pod"
    assert "veth" not in links
    assert pods.leftovers() == []


def test_host_network_pod_sees_the_callers_interfaces(pods, test_netns):
    subprocess.run(["ip", "-n", test_netns, "link", "add", "peadummy0", "type", "veth", "peer", "name", "peadummy1"],
                   check=True)
    m = pods.manifest([container("a", pods.rootfs, "ls /sys/class/net | tr '\\n' ' '; echo")],
                      spec={"hostNetwork": True})
    code, out, err = pods.run(m, netns=test_netns)
    assert code == 0, err
    assert "peadummy0" in out


# ---- the same pod through the OCI command line, as containerd's CRI plugin builds it -------------------------------

def test_pod_through_the_oci_cli(run, binaries, tmp_path, cid):
    """A pause container owning net/ipc/uts, and a member joining them by /proc/PID/ns paths."""
    pause_bin = os.path.join(os.environ.get("PEA_BUILD_DIR") or os.path.join(helpers.REPO, "build"),
                             "sandbox", "pea-pause")
    sandbox = helpers.Bundle(str(tmp_path / "sandbox"), binaries, cid)
    subprocess.run(["cp", pause_bin, os.path.join(sandbox.rootfs, "pause")], check=True)
    sandbox.args("/pause")
    sandbox.config["hostname"] = "oci-pod"
    sandbox.config["linux"]["namespaces"] = [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")]
    r = run("run", "--detach", "--bundle", sandbox, cid + "-sandbox")
    assert r.code == 0, r.err
    try:
        pid = json.loads(run("state", cid + "-sandbox").out)["pid"]
        member = helpers.Bundle(str(tmp_path / "member"), binaries, cid)
        member.config["process"]["args"] = ["sh", "-c", "hostname; readlink /proc/self/ns/net"]
        member.config.pop("hostname", None)
        member.config["linux"]["namespaces"] = [{"type": "pid"}, {"type": "mount"}] + [
            {"type": t, "path": f"/proc/{pid}/ns/{f}"} for t, f in (("network", "net"), ("ipc", "ipc"),
                                                                   ("uts", "uts"))]
        r = run("run", "--bundle", member, cid + "-member")
        assert r.code == 0, r.err
        assert r.out.splitlines() == ["oci-pod", os.readlink(f"/proc/{pid}/ns/net")]
    finally:
        assert run("delete", "--force", cid + "-sandbox").code == 0


def test_same_pod_name_under_two_roots(pods, runtime, work_dir, pod_rootfs, test_mark):
    import pods as pods_module
    other = pods_module.Pods(runtime, os.path.join(work_dir, "second"), pod_rootfs, test_mark)
    os.makedirs(other.work_dir, exist_ok=True)
    name = pods.name()
    first = pods.start(pods.manifest([container("a", pods.rootfs, "echo up; exec sleep 60")], name=name))
    try:
        first.wait_for_line("[a] up")
        code, out, err = other.run(other.manifest([container("a", pods.rootfs, "echo second")], name=name))
        assert code == 0, err
        assert out.strip() == "[a] second"
    finally:
        assert first.stop() == 0, first.err
        assert other.cleanup() == []


def test_a_bridge_pea_made_goes_with_its_last_pod(pods, test_netns):
    def bridge_pod(address):
        return pods.manifest([container("a", pods.rootfs, "echo up; exec sleep 60")],
                             pea={"network": {"mode": "bridge", "bridge": "peait1", "address": address,
                                              "gateway": "198.18.9.1"}})
    one = pods.start(bridge_pod("198.18.9.2/24"), netns=test_netns)
    two = None
    try:
        one.wait_for_line("[a] up")
        two = pods.start(bridge_pod("198.18.9.3/24"), netns=test_netns)
        two.wait_for_line("[a] up")
    finally:
        assert one.stop() == 0, one.err
    links = subprocess.run(["ip", "-n", test_netns, "-o", "link"], capture_output=True, text=True).stdout
    assert "peait1" in links, "still used by the second pod"
    assert two.stop() == 0, two.err
    links = subprocess.run(["ip", "-n", test_netns, "-o", "link"], capture_output=True, text=True).stdout
    assert "peait1" not in links


def test_a_bridge_the_caller_made_stays(pods, test_netns):
    subprocess.run(["ip", "-n", test_netns, "link", "add", "peait2", "type", "bridge"], check=True)
    m = pods.manifest([container("a", pods.rootfs, "ip -4 addr show eth0 | grep -o 'inet [0-9./]*'")],
                      pea={"network": {"mode": "bridge", "bridge": "peait2", "address": "198.18.10.2/24",
                                       "adoptBridge": True}})
    code, out, err = pods.run(m, netns=test_netns)
    assert code == 0, err
    assert "[a] inet 198.18.10.2/24" in out
    links = subprocess.run(["ip", "-n", test_netns, "-o", "link"], capture_output=True, text=True).stdout
    assert "peait2" in links and "veth" not in links


def test_app_containers_are_made_together_and_fail_alone(pods, tmp_path):
    """The app containers are begun together (each child sets up its root while the next is made); one refused
    before its child exists and one whose child fails do not stop the others."""
    host = tmp_path / "vol"
    host.mkdir()
    os.symlink("/etc", host / "escape")
    m = pods.manifest([
        container("a", pods.rootfs, "echo a"),
        container("b", pods.rootfs, "true", volumeMounts=[{"name": "h", "mountPath": "/x", "subPath": "escape"}]),
        {"name": "c", "image": pods.rootfs, "command": ["/no/such/binary"]},
        container("d", pods.rootfs, "echo d"),
    ], volumes=[{"name": "h", "hostPath": {"path": str(host)}}])
    code, out, err = pods.run(m)
    assert code == 128, (code, out, err)
    assert sorted(out.splitlines()) == ["[a] a", "[d] d"], out
    assert "b: failed to start" in err and "subPath escape in volume h" in err, err
    assert "c: failed to start" in err, err
    assert "a: started" in err and "d: started" in err, err
