"""Fields only a cluster gives meaning to (scheduling, Services, API-server tokens, termination messages, cluster
DNS) are accepted so that manifests from Kubernetes' documentation run, each with one notice naming it: never an
error, never dropped without a word (issue 16)."""
import json
import os

import pytest

from pods import ls

pytestmark = pytest.mark.pea_only

SCHEDULING = {
    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "disktype", "operator": "In", "values": ["ssd"]}]}]}}},
    "nodeSelector": {"disktype": "ssd"},
    "tolerations": [{"key": "example-key", "operator": "Exists", "effect": "NoSchedule"}],
    "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}],
    "schedulingGates": [{"name": "example.com/foo"}],
    "priorityClassName": "high-priority",
    "enableServiceLinks": False,
    "imagePullSecrets": [{"name": "regcred"}],
    "dnsPolicy": "ClusterFirst",
}


def write(pods, name, doc):
    path = os.path.join(pods.work_dir, f"{name}.json")
    with open(path, "w") as f:
        json.dump(doc, f)
    return path


def pod_doc(pods, name, **spec):
    body = {"terminationGracePeriodSeconds": 0,
            "containers": [{"name": "main", "image": pods.rootfs, "command": ["sleep", "300"],
                            "terminationMessagePath": "/dev/termination-log",
                            "terminationMessagePolicy": "FallbackToLogsOnError",
                            "env": [{"name": "PEA_IT_MARK", "value": pods.mark}]}]}
    body.update(spec)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": body}


def test_a_pod_with_scheduling_fields_runs_and_names_each_once(pods):
    name = pods.name()
    code, out, err = pods.apply(write(pods, name, pod_doc(pods, name, **SCHEDULING)))
    assert code == 0, err
    for field in [f for f in SCHEDULING if f != "dnsPolicy"]:
        assert err.count(f"spec.{field}: accepted, without effect on a single node") == 1, (field, err)
    assert err.count("spec.containers[0].terminationMessagePath: accepted") == 1, err
    assert err.count("spec.containers[0].terminationMessagePolicy: accepted") == 1, err
    assert err.count("spec.dnsPolicy: there is no cluster DNS") == 1, err
    assert ls(pods)[name]["status"] == "running"
    code, _, err = pods.cli("pod", "rm", "--force", name)
    assert code == 0, err


def test_pod_run_dry_run_says_the_same(pods):
    name = pods.name()
    code, out, err = pods.cli("pod", "run", "--dry-run", "-f", write(pods, name, pod_doc(pods, name, nodeName="n1")))
    assert code == 0, err
    assert err.count("spec.nodeName: accepted, without effect on a single node (a scheduler's field)") == 1, err


def test_a_template_notice_is_said_once_not_per_replica(pods):
    name = pods.name()
    tmpl = pod_doc(pods, name, affinity=SCHEDULING["affinity"])
    del tmpl["apiVersion"], tmpl["kind"], tmpl["metadata"]["name"]
    tmpl["metadata"]["labels"] = {"app": name}
    doc = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
           "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}}, "template": tmpl}}
    code, out, err = pods.apply(write(pods, name, doc), "--dry-run")
    assert code == 0, err
    assert err.count("spec.template.spec.affinity: accepted, without effect on a single node") == 1, err


def test_dns_policy_none_needs_dns_config_and_unknown_policies_are_refused(pods):
    name = pods.name()
    code, _, err = pods.apply(write(pods, name, pod_doc(pods, name, dnsPolicy="None")), "--dry-run")
    assert code == 1 and "spec.dnsConfig: must be given when spec.dnsPolicy is None" in err, err
    code, _, err = pods.apply(write(pods, name, pod_doc(pods, name, dnsPolicy="Cluster")), "--dry-run")
    assert code == 1 and "spec.dnsPolicy" in err, err
    code, _, err = pods.apply(write(pods, name, pod_doc(pods, name, dnsPolicy="None",
                                                        dnsConfig={"nameservers": ["198.18.0.53"]})), "--dry-run")
    assert code == 0 and "dnsPolicy" not in err, err


def test_pod_level_resources_are_read_and_checked(pods):
    name = pods.name()
    good = pod_doc(pods, name, resources={"limits": {"cpu": "1", "memory": "200Mi", "pids": "2048"},
                                          "requests": {"cpu": "500m", "memory": "100Mi"}})
    code, _, err = pods.apply(write(pods, name, good), "--dry-run")
    assert code == 0, err
    for resources, message in [
            ({"limits": {"pids": "0"}}, "spec.resources.limits.pids: must be at least 1"),
            ({"limits": {"hugepages-2Mi": "10Mi"}}, "spec.resources.limits.hugepages-2Mi: unknown field"),
            ({"requests": {"pids": "10"}}, "spec.resources.requests.pids: unknown field"),
            ({"limits": {"memory": "100Mi"}, "requests": {"memory": "200Mi"}},
             "spec.resources.requests.memory: must not exceed limits.memory")]:
        code, _, err = pods.apply(write(pods, name, pod_doc(pods, name, resources=resources)), "--dry-run")
        assert code == 1 and message in err, (resources, err)
