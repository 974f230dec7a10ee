"""A pod's securityContext as the kubelet applies it, checked from inside the containers: the identity and groups
of the process (runAsGroup's default 0, fsGroup, supplementalGroups with the Merge and Strict policies), runAsNonRoot
in the kubelet's words, fsGroup on an emptyDir and a secret volume, namespaced sysctls read back and host ones
refused, seccompProfile RuntimeDefault / Unconfined / Localhost (below DATA_ROOT/seccomp), appArmorProfile on a host
without AppArmor, and procMount: Unmasked refused without hostUsers: false (test_pod_userns.py has hostUsers)."""
import json
import os

import pytest

from pods import container

pytestmark = pytest.mark.pea_only


def pod(pods, containers, volumes=None, **spec):
    name = pods.name()
    doc = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
           "spec": dict({"restartPolicy": "Never", "terminationGracePeriodSeconds": 1, "containers": containers},
                        **spec)}
    if volumes:
        doc["spec"]["volumes"] = volumes
    for c in containers:
        c.setdefault("env", []).append({"name": "PEA_IT_MARK", "value": pods.mark})
    path = os.path.join(pods.work_dir, f"{name}.json")
    with open(path, "w") as f:
        json.dump(doc, f)
    return path


def run(pods, path):
    return pods.cli("pod", "run", "-f", path, "--data-root", pods.data)


def lines(out, name="a"):
    prefix = f"[{name}] "
    return [line[len(prefix):] for line in out.splitlines() if line.startswith(prefix)]


def status_field(out, field, name="a"):
    return [line.split(":", 1)[1].strip() for line in lines(out, name) if line.startswith(field + ":")]


ID = "id -u; id -g; grep '^Groups:' /proc/self/status"


def test_run_as_group_defaults_to_0_and_container_overrides_pod(pods):
    path = pod(pods, [container("a", pods.rootfs, ID),
                      container("b", pods.rootfs, ID, securityContext={"runAsUser": 2000, "runAsGroup": 2001})],
               securityContext={"runAsUser": 1000})
    code, out, err = run(pods, path)
    assert code == 0, err
    # Kubernetes: without runAsGroup the primary group is root's, 0 -- not the uid.
    assert lines(out, "a")[:2] == ["1000", "0"], out
    assert lines(out, "b")[:2] == ["2000", "2001"], out
    assert pods.leftovers() == []


def layer_with_accounts(pods):
    """An image layer over the busybox rootfs: user 1000 is alice, a member of group 50000 in /etc/group."""
    top = os.path.join(pods.work_dir, "accounts")
    os.makedirs(os.path.join(top, "etc"), exist_ok=True)
    with open(os.path.join(pods.rootfs, "etc", "passwd")) as f:
        passwd = f.read()
    with open(os.path.join(top, "etc", "passwd"), "w") as f:
        f.write(passwd + "alice:x:1000:1000::/home:/bin/sh\n")
    with open(os.path.join(top, "etc", "group"), "w") as f:
        f.write("root:x:0:\nstaff:x:50000:bob,alice\nother:x:50001:bob\n")
    return [pods.rootfs, top]


@pytest.mark.parametrize("policy, extra", [("Merge", ["50000"]), ("Strict", [])])
def test_fs_group_and_supplemental_groups(pods, policy, extra):
    script = ("id -u; id -g; grep '^Groups:' /proc/self/status; stat -c '%g %A' /data; touch /data/f; "
              "stat -c '%g' /data/f; stat -c '%g %a' /sec/..data/pw")
    c = container("a", layer_with_accounts(pods), script,
                  volumeMounts=[{"name": "data", "mountPath": "/data"}, {"name": "sec", "mountPath": "/sec"}])
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"pw": "x"}}
    path = pod(pods, [c], [{"name": "data", "emptyDir": {}},
                           {"name": "sec", "secret": {"secretName": "s", "defaultMode": 0o400}}],
               securityContext={"runAsUser": 1000, "runAsGroup": 3000, "fsGroup": 2000,
                                "supplementalGroups": [4000], "supplementalGroupsPolicy": policy})
    with open(path, "a") as f:
        f.write("\n---\n" + json.dumps(secret) + "\n")
    code, out, err = run(pods, path)
    assert code == 0, err
    got = lines(out)
    assert got[:2] == ["1000", "3000"], out
    assert sorted(got[2].split()[1:]) == sorted(["2000", "4000"] + extra), out
    # fsGroup: the emptyDir is the group's, setgid, and what is made in it inherits the group; the secret's files
    # get the group and its read bit, so that user 1000 reads a 0400 secret.
    assert got[3] == "2000 drwxrwsrwx", out
    assert got[4] == "2000", out
    assert got[5] == "2000 440", out
    assert pods.leftovers() == []


def test_run_as_non_root_fails_the_start_in_the_kubelets_words(pods):
    path = pod(pods, [container("a", pods.rootfs, "echo ran"),
                      container("b", pods.rootfs, "echo ran", securityContext={"runAsUser": 0}),
                      container("c", pods.rootfs, "echo ran", securityContext={"runAsUser": 1000})],
               securityContext={"runAsNonRoot": True})
    code, out, err = run(pods, path)
    assert code != 0
    assert "a: failed to start: container has runAsNonRoot and image will run as root (pod: " in err, err
    assert "b: failed to start: container's runAsUser breaks non-root policy (pod: " in err, err
    assert lines(out, "a") == [] and lines(out, "b") == [] and lines(out, "c") == ["ran"], out
    assert pods.leftovers() == []


def test_namespaced_sysctls_are_set_and_host_ones_refused(pods):
    script = "cat /proc/sys/kernel/shm_rmid_forced /proc/sys/net/ipv4/ip_local_port_range"
    path = pod(pods, [container("a", pods.rootfs, script)],
               securityContext={"sysctls": [{"name": "kernel.shm_rmid_forced", "value": "1"},
                                            {"name": "net.ipv4.ip_local_port_range", "value": "20000 30000"}]})
    code, out, err = run(pods, path)
    assert code == 0, err
    assert [line.split() for line in lines(out)] == [["1"], ["20000", "30000"]], out
    path = pod(pods, [container("a", pods.rootfs, "true")],
               securityContext={"sysctls": [{"name": "kernel.panic", "value": "1"}]})
    code, out, err = run(pods, path)
    assert code != 0
    assert "spec.securityContext.sysctls[0]: kernel.panic is not a namespaced sysctl" in err, err
    assert pods.leftovers() == []


def test_seccomp_profiles(pods):
    profiles = os.path.join(pods.data, "seccomp", "team")
    os.makedirs(profiles)
    with open(os.path.join(profiles, "no-mkdir.json"), "w") as f:
        json.dump({"defaultAction": "SCMP_ACT_ALLOW",
                   "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}, f)
    def script(name):
        return f"grep '^Seccomp:' /proc/self/status; mkdir /t/{name} && echo made"
    mounts = [{"name": "t", "mountPath": "/t"}]
    path = pod(pods, [
        container("a", pods.rootfs, script("a"), volumeMounts=mounts),
        container("b", pods.rootfs, script("b"), volumeMounts=mounts,
                  securityContext={"seccompProfile": {"type": "Unconfined"}}),
        container("c", pods.rootfs, script("c"), volumeMounts=mounts, securityContext={
            "seccompProfile": {"type": "Localhost", "localhostProfile": "team/no-mkdir.json"}}),
    ], volumes=[{"name": "t", "emptyDir": {}}], securityContext={"seccompProfile": {"type": "RuntimeDefault"}})
    code, out, err = run(pods, path)
    assert code == 1, err  # c's mkdir fails
    assert lines(out, "a") == ["Seccomp:\t2", "made"], out
    assert lines(out, "b") == ["Seccomp:\t0", "made"], out
    assert lines(out, "c") == ["Seccomp:\t2"], out
    # A profile is looked up below DATA_ROOT/seccomp and never outside it.
    with open(os.path.join(pods.data, "outside.json"), "w") as f:
        json.dump({"defaultAction": "SCMP_ACT_ALLOW"}, f)
    path = pod(pods, [container("a", pods.rootfs, "echo ran", securityContext={
        "seccompProfile": {"type": "Localhost", "localhostProfile": "../outside.json"}})])
    code, out, err = run(pods, path)
    assert code != 0 and lines(out) == [], out
    assert "a: failed to start: container a: seccompProfile Localhost" in err, err
    assert pods.leftovers() == []


def apparmor_enabled():
    try:
        with open("/sys/module/apparmor/parameters/enabled") as f:
            return f.read().startswith("Y")
    except OSError:
        return False


@pytest.mark.skipif(apparmor_enabled(), reason="checks a host without AppArmor")
def test_apparmor_profiles_without_apparmor(pods):
    path = pod(pods, [container("a", pods.rootfs, "echo ran")],
               securityContext={"appArmorProfile": {"type": "RuntimeDefault"}})
    code, out, err = run(pods, path)
    assert code == 0, err
    assert lines(out) == ["ran"]
    assert "container a: appArmorProfile RuntimeDefault: AppArmor is not enabled on this host" in err, err
    path = pod(pods, [container("a", pods.rootfs, "echo ran", securityContext={
        "appArmorProfile": {"type": "Localhost", "localhostProfile": "k8s-apparmor-example-deny-write"}})])
    code, out, err = run(pods, path)
    assert code == 1 and lines(out) == [], out
    assert ("container a: appArmorProfile Localhost \"k8s-apparmor-example-deny-write\": AppArmor is not enabled "
            "on this host") in err, err
    assert pods.leftovers() == []


def test_proc_mount_unmasked_needs_host_users_false(pods):
    path = pod(pods, [container("a", pods.rootfs, "true", securityContext={"procMount": "Unmasked"})])
    code, out, err = run(pods, path)
    assert code == 1
    assert "spec.containers[0].securityContext.procMount: Unmasked needs spec.hostUsers: false" in err, err
    assert pods.leftovers() == []
