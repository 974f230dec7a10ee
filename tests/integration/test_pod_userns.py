"""spec.hostUsers: false as the kubelet makes it: the pod in a user namespace of its own, 65536 ids from a block no
other pod holds, root inside an unprivileged uid on the host, every volume idmapped (a host file of uid N shows as
N inside), the block given back with the pod, and procMount: Unmasked allowed only there."""
import json
import os

import pytest

from pods import container

pytestmark = pytest.mark.pea_only


def pod(pods, containers, volumes=None, **spec):
    name = pods.name()
    doc = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
           "spec": dict({"restartPolicy": "Never", "terminationGracePeriodSeconds": 1, "containers": containers,
                         "hostUsers": False}, **spec)}
    if volumes:
        doc["spec"]["volumes"] = volumes
    for c in containers:
        c.setdefault("env", []).append({"name": "PEA_IT_MARK", "value": pods.mark})
    path = os.path.join(pods.work_dir, f"{name}.json")
    with open(path, "w") as f:
        json.dump(doc, f)
    return name, path


def run(pods, path):
    return pods.cli("pod", "run", "-f", path, "--data-root", pods.data)


def lines(out, name="a"):
    prefix = f"[{name}] "
    return [line[len(prefix):] for line in out.splitlines() if line.startswith(prefix)]


def mapping(text):
    return [int(x) for x in text.split()]


def test_root_inside_is_an_unprivileged_uid_outside(pods):
    _, path = pod(pods, [container("a", pods.rootfs, "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map")])
    code, out, err = run(pods, path)
    assert code == 0, err
    got = lines(out)
    assert got[:2] == ["0", "0"], out
    uid_inside, uid_host, uid_size = mapping(got[2])
    gid_inside, gid_host, gid_size = mapping(got[3])
    # Kubernetes: 65536 ids, starting at a multiple of 65536, never host root's.
    assert (uid_inside, uid_size) == (0, 65536) and (gid_inside, gid_size) == (0, 65536), out
    assert uid_host > 0 and uid_host % 65536 == 0 and gid_host > 0 and gid_host % 65536 == 0, out
    assert pods.leftovers() == []
