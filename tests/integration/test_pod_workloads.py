"""More than kind: Pod (issue 16, items 7 and 8): Deployments, ReplicaSets, StatefulSets, DaemonSets and Jobs run
their pod template as pods NAME-0, NAME-1, ...; kind: List and multi-document files apply every object; and a file's
errors are all reported at once, in document order, with nothing applied."""
import json
import os

import pytest

import helpers
from pods import ls

pytestmark = pytest.mark.pea_only


def write(pods, name, docs):
    """A multi-document manifest file (JSON documents one after another, which the reader takes as YAML does)."""
    path = os.path.join(pods.work_dir, f"{name}.json")
    with open(path, "w") as f:
        f.write("\n".join(json.dumps(d) for d in docs))
    return path


def template(pods, command, labels=None, restart=None, **spec):
    pod_spec = {"terminationGracePeriodSeconds": 0,
                "containers": [{"name": "main", "image": pods.rootfs, "command": ["sh", "-c", command],
                                "env": [{"name": "PEA_IT_MARK", "value": pods.mark}]}]}
    if restart:
        pod_spec["restartPolicy"] = restart
    pod_spec.update(spec)
    return {"metadata": {"labels": labels or {}}, "spec": pod_spec}


def controller(kind, name, tmpl, api="apps/v1", **spec):
    body = {"template": tmpl}
    if kind != "Job":
        body["selector"] = {"matchLabels": tmpl["metadata"]["labels"]}
    body.update(spec)
    return {"apiVersion": api, "kind": kind, "metadata": {"name": name}, "spec": body}


def applied(pods, path):
    code, out, err = pods.apply(path)
    assert code == 0, err
    return out, err


def owned(pods, owner):
    return sorted(n for n, p in ls(pods).items() if p.get("owner") == owner)


def get_json(pods, what):
    code, out, err = pods.cli("pod", "get", "-o", "json", what)
    assert code == 0, err
    return json.loads(out)


def wait_running(pods, names, timeout=20):
    helpers.wait_until(lambda: all(ls(pods).get(n, {}).get("status") == "running" for n in names), timeout,
                       f"pods {names} running")


def removed(pods, what):
    code, out, err = pods.cli("pod", "rm", what)
    assert code == 0, err
    assert pods.leftovers() == []


def test_deployment_runs_its_replicas_scales_and_goes_by_its_name(pods):
    name = pods.name()
    tmpl = template(pods, "exec sleep 300", labels={"app": name})
    path = write(pods, name, [controller("Deployment", name, tmpl, replicas=3, strategy={"type": "Recreate"},
                                         revisionHistoryLimit=2)])
    out, err = applied(pods, path)
    want = [f"{name}-0", f"{name}-1", f"{name}-2"]
    assert f"deployment.apps/{name} applied: 3 pods" in out
    # Each field without meaning on one node: one notice, naming it.
    assert err.count("spec.strategy: accepted, without effect on a single node") == 1, err
    assert err.count("spec.revisionHistoryLimit: accepted") == 1, err
    wait_running(pods, want)
    assert owned(pods, f"Deployment/{name}") == want
    assert all(ls(pods)[n]["labels"] == {"app": name} for n in want)
    code, out, _ = pods.cli("pod", "ls", "-l", f"app={name}", "-o", "name")
    assert out.split() == [f"pod/{n}" for n in want]
    assert get_json(pods, f"deploy/{name}")["ready"] == "3/3"

    path = write(pods, name, [controller("Deployment", name, tmpl, replicas=1)])
    out, _ = applied(pods, path)
    assert f"pod {name}-2 removed" in out and f"pod {name}-1 removed" in out, out
    assert out.index(f"{name}-2 removed") < out.index(f"{name}-1 removed")
    assert owned(pods, f"Deployment/{name}") == [f"{name}-0"]

    removed(pods, f"deployment/{name}")
    code, _, err = pods.cli("pod", "rm", f"deployment/{name}")
    assert code == 1 and "does not exist" in err


def test_statefulset_daemonset_and_configmap_in_one_file(pods):
    name = pods.name()
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"GREETING": "hello"}}
    sts = controller("StatefulSet", name, template(pods, "echo $GREETING $HOSTNAME; exec sleep 300",
                                                   labels={"app": name}, ),
                     replicas=2, serviceName="web", podManagementPolicy="Parallel")
    sts["spec"]["template"]["spec"]["containers"][0]["envFrom"] = [{"configMapRef": {"name": "settings"}}]
    ds_name = pods.name()
    ds = controller("DaemonSet", ds_name, template(pods, "exec sleep 300", labels={"app": ds_name}))
    out, err = applied(pods, write(pods, name, [sts, cm, ds]))
    assert err.count("spec.serviceName: accepted, without effect") == 1, err
    wait_running(pods, [f"{name}-0", f"{name}-1", f"{ds_name}-0"])
    listed = ls(pods)
    assert listed[f"{name}-1"]["labels"]["statefulset.kubernetes.io/pod-name"] == f"{name}-1"
    assert listed[f"{name}-1"]["labels"]["apps.kubernetes.io/pod-index"] == "1"
    assert owned(pods, f"DaemonSet/{ds_name}") == [f"{ds_name}-0"]
    helpers.wait_until(lambda: "hello" in pods.cli("pod", "logs", f"{name}-1")[1], 10, "the ConfigMap's value")
    # A pod of one owner is never taken over by another.
    clash = controller("Deployment", name, template(pods, "exec sleep 300", labels={"app": name}))
    code, _, err = pods.apply(write(pods, name + "-clash", [clash]))
    assert code == 1 and f"pod {name}-0 belongs to StatefulSet/{name}" in err, err
    removed_all = [pods.cli("pod", "rm", f"sts/{name}"), pods.cli("pod", "rm", f"daemonset/{ds_name}")]
    assert all(r[0] == 0 for r in removed_all), removed_all
    assert pods.leftovers() == []


def wait_job(pods, name, status, timeout=30):
    helpers.wait_until(lambda: get_json(pods, f"job/{name}")["status"] == status, timeout, f"job {name} {status}")
    return get_json(pods, f"job/{name}")


def test_job_runs_its_completions(pods):
    name = pods.name()
    job = controller("Job", name, template(pods, "echo done", restart="Never"), api="batch/v1", completions=2)
    try:
        out, _ = applied(pods, write(pods, name, [job]))
        assert f"job.batch/{name} created" in out
        got = wait_job(pods, name, "Complete")
        assert (got["succeeded"], got["failed"], got["active"]) == (2, 0, 0)
        assert owned(pods, f"Job/{name}") == [f"{name}-0", f"{name}-1"]
        assert all(ls(pods)[n]["status"] == "finished" for n in (f"{name}-0", f"{name}-1"))
        assert ls(pods)[f"{name}-0"]["labels"]["job-name"] == name
        code, out, _ = pods.cli("pod", "get", f"job/{name}")
        assert "Complete" in out and "2/2" in out
        # The same Job again is unchanged; a changed one is refused, as its spec is immutable.
        out, _ = applied(pods, write(pods, name, [job]))
        assert f"job.batch/{name} unchanged" in out
        job["spec"]["completions"] = 3
        code, _, err = pods.apply(write(pods, name, [job]))
        assert code == 1 and "its spec cannot change" in err
    finally:
        pods.cli("pod", "rm", f"job/{name}")
    assert pods.leftovers() == []
    assert os.listdir(os.path.join(pods.root, "jobs")) == []


def test_failing_job_stops_at_its_backoff_limit(pods):
    name = pods.name()
    job = controller("Job", name, template(pods, "exit 3", restart="Never"), api="batch/v1", backoffLimit=1)
    try:
        applied(pods, write(pods, name, [job]))
        got = wait_job(pods, name, "Failed")
        assert got["reason"] == "BackoffLimitExceeded"
        # backoffLimit 1: one retry, so two failed pods, and no third.
        assert (got["succeeded"], got["failed"]) == (0, 2)
        assert owned(pods, f"Job/{name}") == [f"{name}-0", f"{name}-1"]
    finally:
        removed(pods, f"job/{name}")


def test_job_deadline_removes_its_running_pod(pods):
    name = pods.name()
    job = controller("Job", name, template(pods, "exec sleep 300", restart="OnFailure"), api="batch/v1",
                     activeDeadlineSeconds=1)
    try:
        applied(pods, write(pods, name, [job]))
        got = wait_job(pods, name, "Failed")
        assert got["reason"] == "DeadlineExceeded" and got["active"] == 0
        assert owned(pods, f"Job/{name}") == []
    finally:
        removed(pods, f"job/{name}")


def test_job_refuses_restart_policy_always(pods):
    name = pods.name()
    job = controller("Job", name, template(pods, "true", restart="Always"), api="batch/v1")
    code, _, err = pods.apply(write(pods, name, [job]))
    assert code == 1
    assert 'spec.template.spec.restartPolicy: must be "Never" or "OnFailure" for a Job, not "Always"' in err
    assert not os.path.exists(os.path.join(pods.root, "jobs", f"{name}.json"))


def test_kind_list_applies_every_item(pods):
    name, pod_name = pods.name(), pods.name()
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod_name},
           "spec": template(pods, "exec sleep 300")["spec"]}
    rs = controller("ReplicaSet", name, template(pods, "exec sleep 300", labels={"app": name}), replicas=2)
    path = write(pods, name, [{"apiVersion": "v1", "kind": "List", "items": [pod, rs]}])
    applied(pods, path)
    wait_running(pods, [pod_name, f"{name}-0", f"{name}-1"])
    assert ls(pods)[pod_name].get("owner") is None
    assert [pods.cli("pod", "rm", what)[0] for what in (pod_name, f"rs/{name}")] == [0, 0]
    assert pods.leftovers() == []


BAD_FILE = """\
apiVersion: v1
kind: Pod
metadata:
  name: Bad_Name
spec:
  restartPolicy: Sometimes
  containers:
  - name: a
    image: /nowhere
    command: ["true"]
    ports: [{containerPort: 70000}]
  - name: b
    command: ["true"]
  volumes:
  - name: v
    emptyDir: {medium: Disk}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: c, image: /nowhere, command: ["true"], bogus: 1}
"""


def test_every_error_of_the_file_in_document_order(pods):
    path = os.path.join(pods.work_dir, "bad.yaml")
    with open(path, "w") as f:
        f.write(BAD_FILE)
    expected = [
        'document 1: metadata.name: must be a DNS subdomain (lower case letters, digits, \'-\' and \'.\', at most 63), '
        'not "Bad_Name"',
        'document 1: spec.restartPolicy: must be one of "Always", "OnFailure", "Never", not "Sometimes"',
        "document 1: spec.containers[0].ports[0].containerPort: must be between 1 and 65535",
        "document 1: spec.containers[1].image: missing",
        'document 1: spec.volumes[0].emptyDir.medium: must be one of "", "Memory", not "Disk"',
        "document 2: spec.template.spec.containers[0].bogus: unknown field",
    ]
    for extra in ([], ["--dry-run"]):
        code, out, err = pods.apply(path, *extra)
        assert code == 1
        assert err.splitlines() == [f"pea: {path}: {line}" for line in expected], err
        assert out == ""
    assert not os.path.exists(os.path.join(pods.root, "pods")) or os.listdir(os.path.join(pods.root, "pods")) == []


def test_selector_that_does_not_match_the_template_is_an_error(pods):
    name = pods.name()
    deploy = controller("Deployment", name, template(pods, "exec sleep 300", labels={"app": name}))
    deploy["spec"]["selector"] = {"matchLabels": {"app": "other"},
                                  "matchExpressions": [{"key": "app", "operator": "Exists"}]}
    code, out, err = pods.apply(write(pods, name, [deploy]))
    assert code == 1
    assert err.strip().endswith("spec.template.metadata.labels: `selector` does not match template `labels`"), err
    assert ls(pods) == {}
