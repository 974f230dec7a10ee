"""Oversized manifests (issue 19): a manifest at Kubernetes' object size limit (1.5 MiB, nearly all env entries) is
applied, runs and hands its environment to the container, and can be applied again (it is larger than one datagram
of the shim's protocol); one byte more, or a field over one of Kubernetes' limits, fails with one line naming the
limit or the field, and leaves nothing behind. Speed and memory are measured by tests/bench (--only manifest), not
asserted here."""
import json
import os

import pytest

import helpers

pytestmark = pytest.mark.pea_only

LIMIT = 3 << 19  # 1.5 MiB


def limit_manifest(pods, name, size=LIMIT, changed=None):
    """YAML of exactly `size` bytes: one sleeping container whose env entries E000000, E000001, ... fill it (a
    trailing comment pads the last bytes). changed: {index: value} for entries whose value differs."""
    changed = changed or {}
    head = (f"apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  restartPolicy: Never\n"
            f"  terminationGracePeriodSeconds: 0\n  containers:\n  - name: c\n    image: {pods.rootfs}\n"
            f"    command: [sleep, '300']\n    env:\n    - {{name: PEA_IT_MARK, value: '{pods.mark}'}}\n")
    parts, used, n = [head], len(head), 0
    while True:
        entry = f"    - {{name: E{n:06d}, value: {changed.get(n, f'v{n}')}}}\n"
        if used + len(entry) + 2 > size:
            break
        parts.append(entry)
        used += len(entry)
        n += 1
    parts.append("#" * (size - used - 1) + "\n")
    text = "".join(parts)
    assert len(text) == size
    path = os.path.join(pods.work_dir, f"{name}.yaml")
    with open(path, "w") as f:
        f.write(text)
    return path, n


def container_env(pods, name):
    code, out, err = pods.cli("pod", "ps", "--output", "json", name)
    assert code == 0, err
    pid = {c["name"]: c for c in json.loads(out)}["c"]["pid"]
    assert pid > 0, out
    with open(f"/proc/{pid}/environ", "rb") as f:
        entries = [e.decode() for e in f.read().split(b"\0") if e]
    return dict(e.split("=", 1) for e in entries), pid


def running_env(pods, name, previous_pid=None):
    def started():
        code, out, _ = pods.cli("pod", "ps", "--output", "json", name)
        rows = json.loads(out) if code == 0 else []
        return any(r["state"] == "running" and r["pid"] not in (0, previous_pid) for r in rows)
    helpers.wait_until(started, 30, f"pod {name} running")
    return container_env(pods, name)


def test_manifest_at_the_size_limit_runs_with_its_env(pods):
    name = pods.name()
    path, n = limit_manifest(pods, name)
    code, out, err = pods.apply(path)
    assert code == 0, err
    env, pid = running_env(pods, name)
    # Every entry reached the container, in order after PATH and HOSTNAME; a few spot-checked by value.
    assert len([k for k in env if k.startswith("E")]) == n
    for i in (0, 1, n // 2, n - 1):
        assert env[f"E{i:06d}"] == f"v{i}"
    assert env["HOSTNAME"] == name and env["PEA_IT_MARK"] == pods.mark

    # Applied again as it is: it travels to the shim whole (it is far larger than one protocol datagram).
    code, out, err = pods.apply(path)
    assert code == 0 and out.strip() == f"pod {name} unchanged", (out, err)
    # One value changed: the container is made again, with it.
    path, _ = limit_manifest(pods, name, changed={n - 1: "changed"})
    code, out, err = pods.apply(path)
    assert code == 0 and out.strip() == "recreated: c", (out, err)
    env, _ = running_env(pods, name, previous_pid=pid)
    assert env[f"E{n - 1:06d}"] == "changed" and env["E000000"] == "v0"

    code, out, err = pods.cli("pod", "rm", "--force", name)
    assert code == 0, err
    assert pods.leftovers() == []


def test_manifest_over_the_size_limit_is_refused_in_one_line(pods):
    name = pods.name()
    path, _ = limit_manifest(pods, name, size=LIMIT + 1)
    code, out, err = pods.apply(path)
    assert code == 1
    assert err == f"pea: {path}: {LIMIT + 1} bytes, larger than {LIMIT} (1.5 MiB, Kubernetes' object size limit)\n"
    assert pods.leftovers() == []


LONG = "a" * 64
FIELD_CASES = [
    # (what the manifest's metadata and first container get, the one line expected after "pea: FILE: ")
    ({"metadata": {"labels": {"app": LONG}}},
     "metadata.labels.app: value must be empty or at most 63 of [A-Za-z0-9._-], beginning and ending alphanumeric"),
    ({"metadata": {"labels": {f"{LONG}": "x"}}},
     f"metadata.labels.{LONG}: key must be [DNS subdomain of at most 253/]name of at most 63 of [A-Za-z0-9._-], "
     "beginning and ending alphanumeric"),
    ({"metadata": {"annotations": {"a": "x" * (256 * 1024)}}},
     "metadata.annotations: 262145 bytes of keys and values, more than Kubernetes' 262144"),
    ({"metadata": {"namespace": LONG}},
     f"metadata.namespace: must be a DNS label ([a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63), not \"{LONG}\""),
    ({"container": {"name": LONG}},
     f"spec.containers[0].name: must be a DNS label ([a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63), not \"{LONG}\""),
    ({"container": {"env": [{"name": "TAB\tNAME", "value": "x"}]}},
     "spec.containers[0].env[0].name: must be printable ASCII characters other than '=', at least one"),
    ({"container": {"env": [{"name": "BIG", "value": "x" * (os.sysconf("SC_PAGESIZE") * 32)}]}},
     f"spec.containers[0].env[0]: NAME=VALUE longer than {os.sysconf('SC_PAGESIZE') * 32 - 1} bytes, the kernel's "
     "limit for one environment entry"),
    ({"spec": {"dnsConfig": {"nameservers": ["198.18.0.1", "198.18.0.2", "198.18.0.3", "198.18.0.4"]}}},
     "spec.dnsConfig.nameservers: 4 entries, more than Kubernetes' 3"),
]


@pytest.mark.parametrize("change,message", FIELD_CASES, ids=[m.split(":")[0] for _, m in FIELD_CASES])
def test_field_over_its_limit_is_refused_naming_it(pods, change, message):
    from pods import container
    name = pods.name()
    entry = container("c", pods.rootfs, "sleep 300")
    entry.update(change.get("container", {}))
    path = pods.manifest([entry], name=name, spec=change.get("spec"))
    if "metadata" in change:
        with open(path) as f:
            m = json.load(f)
        m["metadata"].update(change["metadata"])
        with open(path, "w") as f:
            json.dump(m, f)
    code, out, err = pods.apply(path)
    assert code == 1 and err == f"pea: {path}: {message}\n", err
    assert pods.leftovers() == []


def test_new_pod_from_stdin_runs_the_manifest_the_client_checked(pods):
    """The shim gets the very text the client read and checked, not the file's name to read again: a manifest on
    stdin (`-f -`) makes a pod too."""
    import subprocess
    from pods import container
    name = pods.name()
    path = pods.manifest([container("c", pods.rootfs, "sleep 300")], name=name)
    with open(path) as f:
        p = subprocess.run(pods.argv("pod", "apply", "-f", "-", "--data-root", pods.data), stdin=f,
                           capture_output=True, text=True, env=pods.env, timeout=60)
    assert p.returncode == 0 and p.stdout.strip() == f"pod {name} applied", p.stderr
    code, out, err = pods.cli("pod", "rm", "--force", name)
    assert code == 0, err
    assert pods.leftovers() == []
