"""Kubernetes 1.34/1.35 container restart rules in `pea pod run`: a container's own restartPolicy, restartPolicyRules
with Restart (by exit code) and RestartAllContainers (the whole pod again, same sandbox and volumes), and
securityContext.cgroupOptions. Exit codes are chosen by the containers; the back-off starts at 1 s."""

import pytest

import helpers
from pods import Events, container, ps

pytestmark = pytest.mark.pea_only

VOLUME = [{"name": "d", "emptyDir": {}}]
MOUNT = [{"name": "d", "mountPath": "/d"}]


def exec_in(pods, name, *argv):
    code, out, err = pods.cli("pod", "exec", name, "--", *argv)
    assert code == 0, err
    return out


def rule(action, operator, values):
    return {"action": action, "exitCodes": {"operator": operator, "values": values}}


def test_rule_restarts_on_listed_exit_codes_only(pods):
    # Pod and container say Never: 42 restarts it (twice), 7 is not listed and ends it.
    script = "echo run >> /d/runs; n=$(wc -l < /d/runs); echo attempt $n; [ $n -ge 3 ] && exit 7; exit 42"
    c = container("worker", pods.rootfs, script, volumeMounts=MOUNT, restartPolicy="Never",
                  restartPolicyRules=[rule("Restart", "In", [42])])
    code, out, err = pods.run(pods.manifest([c], volumes=VOLUME))
    assert code == 7, err
    assert [l for l in out.splitlines() if "attempt" in l] == ["[worker] attempt 1", "[worker] attempt 2",
                                                                 "[worker] attempt 3"]
    assert "exit code 42 matches restartPolicyRules[0]: restart" in err
    assert "restarting in 1.000s" in err and "restarting in 2.000s" in err


def test_not_in_rule_and_container_policy_override_the_pod(pods):
    # The pod says Never. "flaky" says OnFailure for itself; "once" keeps the pod's Never; "picky" restarts on any
    # code but 0 and 5 (NotIn), and 5 ends it.
    flaky = container("flaky", pods.rootfs, "echo f >> /d/f; n=$(wc -l < /d/f); echo flaky $n; [ $n -ge 2 ]",
                      volumeMounts=MOUNT, restartPolicy="OnFailure")
    once = container("once", pods.rootfs, "echo once; exit 3")
    picky = container("picky", pods.rootfs, "echo p >> /d/p; n=$(wc -l < /d/p); echo picky $n; "
                      "[ $n -ge 2 ] && exit 5; exit 9", volumeMounts=MOUNT, restartPolicy="Never",
                      restartPolicyRules=[rule("Restart", "NotIn", [0, 5])])
    code, out, err = pods.run(pods.manifest([flaky, once, picky], volumes=VOLUME))
    lines = out.splitlines()
    assert [l for l in lines if l.startswith("[flaky]")] == ["[flaky] flaky 1", "[flaky] flaky 2"]
    assert [l for l in lines if l.startswith("[once]")] == ["[once] once"]
    assert [l for l in lines if l.startswith("[picky]")] == ["[picky] picky 1", "[picky] picky 2"]
    assert code in (3, 5), err  # the first app container to fail for good sets the pod's exit code


def test_init_container_rule_retries_until_it_succeeds(pods):
    prep = container("prep", pods.rootfs, "echo r >> /d/r; n=$(wc -l < /d/r); echo prep $n; [ $n -ge 2 ] || exit 3",
                     volumeMounts=MOUNT, restartPolicy="Never", restartPolicyRules=[rule("Restart", "In", [3])])
    app = container("app", pods.rootfs, "echo app ran")
    code, out, err = pods.run(pods.manifest([app], init=[prep], volumes=VOLUME))
    assert code == 0, err
    assert out.splitlines() == ["[prep] prep 1", "[prep] prep 2", "[app] app ran"]


def test_restart_all_containers_from_a_sidecar(pods):
    # The shape of Kubernetes' restart-all-containers.yaml example: a watcher sidecar exits 88 once (when the test
    # says so); the pod's containers, init containers first, run again in the same sandbox, and the emptyDir keeps its
    # files. Run by pea-shim, so that `pea pod events` shows what happened.
    setup = container("setup", pods.rootfs, "echo s >> /d/s", volumeMounts=MOUNT)
    watcher = container("watcher", pods.rootfs, "[ -e /d/done ] && exec sleep 300; "
                        "while [ ! -e /d/go ]; do sleep 0.1; done; touch /d/done; exit 88",
                        volumeMounts=MOUNT, restartPolicy="Always",
                        restartPolicyRules=[rule("RestartAllContainers", "In", [88])])
    main = container("main", pods.rootfs, "echo m >> /d/main; exec sleep 300", volumeMounts=MOUNT)
    name = pods.name()
    code, out, err = pods.apply(pods.manifest([main], init=[setup, watcher], volumes=VOLUME, name=name))
    assert code == 0, err
    events = Events(pods, name)
    try:
        # The sidecar starts before main: apply may return while main is still on its way.
        helpers.wait_until(lambda: ps(pods, name)["main"]["state"] == "running", 15, "main to run")
        network = exec_in(pods, name, "readlink", "/proc/self/ns/net")
        first_pid = ps(pods, name)["main"]["pid"]
        exec_in(pods, name, "touch", "/d/go")
        helpers.wait_until(lambda: ps(pods, name)["main"]["restarts"] == 1 and
                           ps(pods, name)["main"]["state"] == "running", 15, "main runs again")
        got = ps(pods, name)
        assert {n: c["restarts"] for n, c in got.items()} == {"setup": 1, "watcher": 1, "main": 1}, got
        assert got["main"]["pid"] != first_pid
        assert exec_in(pods, name, "cat", "/d/s", "/d/main") == "s\ns\nm\nm\n", "init ran again, volume kept"
        assert exec_in(pods, name, "readlink", "/proc/self/ns/net") == network, "the same sandbox"
        helpers.wait_until(lambda: events.reasons("RestartAllContainers"), 5, "the event")
        assert events.reasons("RestartAllContainers") == [
            "exited with code 88, matching restartPolicyRules[0]: restarting all containers"]
        assert events.reasons("Killing") == ["Stopping container main: all containers restart"]
        messages = [e.get("message") for e in list(events.events)]
        assert "restarting all containers in 1.000s" in messages and "starting all containers again" in messages
    finally:
        events.close()
        code, out, err = pods.cli("pod", "rm", "--force", name)
        assert code == 0, err
    assert pods.leftovers() == []


def test_cgroup_options_read_write(pods):
    probe = "mkdir /sys/fs/cgroup/pea-sub && echo made && rmdir /sys/fs/cgroup/pea-sub"
    code, out, err = pods.run(pods.manifest([container("ro", pods.rootfs, probe + " || echo refused")]))
    assert code == 0 and out.splitlines() == ["[ro] refused"], out + err
    rw = container("rw", pods.rootfs, probe, securityContext={"cgroupOptions": {"mountMode": "ReadWrite"}})
    code, out, err = pods.run(pods.manifest([rw]))
    with open("/proc/self/mountinfo") as f:
        is_delegated = any(" - cgroup2 " in l and "nsdelegate" in l.split()[-1].split(",") for l in f)
    if is_delegated:
        assert code == 0 and out.splitlines() == ["[rw] made"], out + err
    else:
        assert code != 0
        assert ("container rw: securityContext.cgroupOptions.mountMode ReadWrite needs the host's cgroup2 mounted "
                "with nsdelegate (without it the container could raise its own limits); this host's is not") in err
    assert pods.leftovers() == []
