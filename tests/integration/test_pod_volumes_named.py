"""persistentVolumeClaim volumes: named volumes under the data root (DATA_ROOT/volumes-named/NAME/data) that are made
on first use and outlive the pod, readOnly, shared by pods at once, a kind: PersistentVolumeClaim document beside the
Pod, `pea volume ls` and `pea volume rm` (refused while a pod uses the volume), hostile claim names, and a symlink
planted below volumes-named that is never followed."""
import json
import os

import pytest

from pods import container

pytestmark = pytest.mark.pea_only


def claim_pod(pods, command, claim="shared", read_only=None, name=None, restart="Never"):
    source = {"claimName": claim}
    if read_only is not None:
        source["readOnly"] = read_only
    c = container("a", pods.rootfs, command, volumeMounts=[{"name": "store", "mountPath": "/store"}])
    return pods.manifest([c], volumes=[{"name": "store", "persistentVolumeClaim": source}], name=name,
                         spec={"restartPolicy": restart})


def run(pods, path):
    return pods.cli("pod", "run", "-f", path, "--data-root", pods.data)


def volume(pods, *args):
    return pods.cli("volume", *args, "--data-root", pods.data)


def volumes_json(pods):
    code, out, err = volume(pods, "ls", "-o", "json")
    assert code == 0, err
    return {v["name"]: v for v in json.loads(out)}


def lines(out):
    return [line[len("[a] "):] for line in out.splitlines() if line.startswith("[a] ")]


def test_data_outlives_the_pod_and_a_new_pod_sees_it(pods):
    name = pods.name()
    code, out, err = run(pods, claim_pod(pods, "echo kept > /store/file; ls -ld /store", name=name))
    assert code == 0, err
    assert lines(out)[0].startswith("drwxrwxrwx"), out
    data = os.path.join(pods.data, "volumes-named", "shared")
    assert os.stat(data).st_mode & 0o777 == 0o700
    assert os.stat(os.path.join(pods.data, "volumes-named")).st_mode & 0o777 == 0o700
    with open(os.path.join(data, "data", "file")) as f:
        assert f.read() == "kept\n"
    # The same pod applied again after it was removed, and another pod: both see the file.
    code, out, err = run(pods, claim_pod(pods, "cat /store/file", name=name))
    assert code == 0 and lines(out) == ["kept"], (out, err)
    code, out, err = run(pods, claim_pod(pods, "cat /store/file"))
    assert code == 0 and lines(out) == ["kept"], (out, err)
    assert volumes_json(pods)["shared"]["pods"] == []


def test_read_only_claim_cannot_be_written(pods):
    code, out, err = run(pods, claim_pod(pods, "echo x > /store/seed"))
    assert code == 0, err
    code, out, err = run(pods, claim_pod(pods, "cat /store/seed; echo y > /store/other && echo WROTE; true",
                                         read_only=True))
    assert code == 0, err
    assert lines(out)[0] == "x" and "WROTE" not in out, out
    assert "Read-only file system" in out + err
    assert not os.path.exists(os.path.join(pods.data, "volumes-named", "shared", "data", "other"))


def test_two_pods_share_a_claim_and_rm_is_refused_while_used(pods):
    writer = pods.name()
    code, _, err = pods.apply(claim_pod(pods, "echo from-writer > /store/w; sleep 300", name=writer,
                                        restart="Always"))
    assert code == 0, err
    try:
        code, out, err = run(pods, claim_pod(pods, "sleep 0.2; cat /store/w"))
        assert code == 0 and lines(out) == ["from-writer"], (out, err)
        listed = volumes_json(pods)["shared"]
        assert listed["pods"] == [writer] and listed["created"].endswith("Z"), listed
        code, out, err = volume(pods, "ls")
        assert code == 0 and out.splitlines()[0].split() == ["NAME", "CREATED", "PODS"], out
        assert out.splitlines()[1].split()[0] == "shared" and out.splitlines()[1].split()[2] == writer, out
        # Options after the argument too; --force does not remove a volume in use.
        for argv in (["rm", "shared"], ["rm", "shared", "--force"]):
            code, out, err = volume(pods, *argv)
            assert code != 0 and f"volume shared is in use by pod {writer}" in err, (out, err)
        assert os.path.exists(os.path.join(pods.data, "volumes-named", "shared", "data", "w"))
    finally:
        code, _, err = pods.cli("pod", "rm", "--force", writer)
        assert code == 0, err
    code, out, err = volume(pods, "rm", "shared")
    assert code == 0 and out.strip() == "shared", err
    assert volumes_json(pods) == {}
    assert not os.path.exists(os.path.join(pods.data, "volumes-named", "shared"))
    code, out, err = volume(pods, "rm", "shared")
    assert code != 0 and "volume shared: no such volume" in err, err
    assert volume(pods, "rm", "-f", "shared")[0] == 0
    # Made anew on next use, empty.
    code, out, err = run(pods, claim_pod(pods, "ls /store | wc -l"))
    assert code == 0 and lines(out) == ["0"], (out, err)


def test_claim_document_beside_the_pod(pods):
    path = claim_pod(pods, "echo ok > /store/f; cat /store/f", claim="db-data")
    with open(path) as f:
        doc = json.load(f)
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "db-data"},
             "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "standard",
                      "resources": {"requests": {"storage": "1Gi"}}}}
    with open(path, "w") as f:
        f.write(json.dumps(doc) + "\n---\n" + json.dumps(claim) + "\n")
    code, out, err = pods.apply(path)
    assert code == 0, err
    assert err.count("does not enforce") == 1, err
    code, out, err = pods.cli("pod", "wait", doc["metadata"]["name"], timeout=60)
    assert code == 0, err
    code, out, err = pods.cli("pod", "rm", "--force", doc["metadata"]["name"])
    assert code == 0, err
    with open(os.path.join(pods.data, "volumes-named", "db-data", "data", "f")) as f:
        assert f.read() == "ok\n"
    claim["spec"]["accessModes"] = ["ReadWriteSometimes"]
    with open(path, "w") as f:
        f.write(json.dumps(doc) + "\n---\n" + json.dumps(claim) + "\n")
    code, out, err = run(pods, path)
    assert code != 0 and "accessModes[0]" in err, err


@pytest.mark.parametrize("claim", ["../x", "a/b", "..", "Upper", ""])
def test_hostile_claim_name_is_refused(pods, claim):
    code, out, err = run(pods, claim_pod(pods, "true", claim=claim))
    assert code != 0 and "claimName" in err, err
    assert not os.path.exists(os.path.join(pods.data, "volumes-named"))
    code, out, err = volume(pods, "rm", claim or "''")
    assert code != 0


def test_symlink_planted_in_volumes_named_is_not_followed(pods):
    outside = os.path.join(pods.work_dir, "outside")
    os.makedirs(os.path.join(outside, "data"))
    with open(os.path.join(outside, "data", "secret"), "w") as f:
        f.write("host secret\n")
    named = os.path.join(pods.data, "volumes-named")
    os.makedirs(named, mode=0o700)
    os.chmod(pods.data, 0o700)
    # Absolute, and relative within the data root (RESOLVE_BENEATH alone would follow that one).
    os.symlink(outside, os.path.join(named, "evil"))
    os.makedirs(os.path.join(pods.data, "pods"), mode=0o700, exist_ok=True)
    os.makedirs(os.path.join(pods.data, "decoy", "data"))
    os.symlink("../decoy", os.path.join(named, "evil2"))
    for claim in ("evil", "evil2"):
        code, out, err = run(pods, claim_pod(pods, "cat /store/secret; ls /store", claim=claim))
        assert code != 0, (out, err)
        assert "host secret" not in out
        assert "named volume " + claim in err, err
    assert os.listdir(os.path.join(outside, "data")) == ["secret"]
    assert os.listdir(os.path.join(pods.data, "decoy", "data")) == []
    # Not listed, and rm does not follow it either.
    assert volumes_json(pods) == {}
    for claim in ("evil", "evil2"):
        assert volume(pods, "rm", claim)[0] != 0
    assert os.path.exists(os.path.join(outside, "data", "secret"))
    os.rmdir(os.path.join(pods.data, "pods"))
