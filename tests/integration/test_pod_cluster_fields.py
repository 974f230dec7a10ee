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


def test_malformed_cluster_fields_are_refused_all_at_once(pods):
    """Accepted means checked against the API's types: kubernetes/website's pod-with-node-affinity.yaml writes its
    NodeSelector as a list, which the API server refuses; so does pea, with each error's path and no notice."""
    name = pods.name()
    doc = pod_doc(pods, name,
                  affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                      {"weight": 5, "preference": {"matchExpressions": [
                          {"key": "zone", "operator": "In", "values": ["a"]}]}}]}},
                  tolerations=[{"key": "k", "operator": "Exists", "effect": "NoSchedul"}],
                  priorityClassName="high")
    code, out, err = pods.apply(write(pods, name, doc), "--dry-run")
    assert code == 1, err
    lines = [line.split(": ", 2)[2] for line in err.splitlines() if line.startswith("pea: ")]
    assert lines == [
        "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution: must be an object",
        'spec.tolerations[0].effect: must be one of "NoSchedule", "PreferNoSchedule", "NoExecute", not "NoSchedul"',
    ], err
    assert "spec.affinity: accepted" not in err and "spec.tolerations: accepted" not in err, err
    assert name not in ls(pods)


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


def host_resolv_conf():
    """The host's nameservers, last search list and options, as resolv.conf(5) reads them."""
    nameservers, searches, options = [], [], []
    try:
        with open("/etc/resolv.conf") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        lines = []
    for line in lines:
        words = line.split("#")[0].split(";")[0].split()
        if not words:
            continue
        if words[0] == "nameserver" and len(words) > 1 and words[1] not in nameservers:
            nameservers.append(words[1])
        elif words[0] in ("search", "domain"):
            searches = list(dict.fromkeys(words[1:]))
        elif words[0] == "options":
            options += words[1:]
    return nameservers, searches, options


def resolv_conf_of(pods, doc):
    name = doc["metadata"]["name"]
    code, _, err = pods.apply(write(pods, name, doc))
    assert code == 0, err
    code, out, err = pods.cli("pod", "exec", name, "--", "cat", "/etc/resolv.conf")
    assert code == 0, err
    code, _, err = pods.cli("pod", "rm", "--force", name)
    assert code == 0, err
    return out


def test_dns_config_alone_with_policy_none(pods):
    """Kubernetes' custom-dns example: dnsPolicy None gives dnsConfig alone, options as name or name:value."""
    name = pods.name()
    doc = pod_doc(pods, name, dnsPolicy="None", dnsConfig={
        "nameservers": ["198.18.0.53"], "searches": ["ns1.svc.cluster-domain.example", "my.dns.search.suffix"],
        "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]})
    assert resolv_conf_of(pods, doc) == ("nameserver 198.18.0.53\n"
                                         "search ns1.svc.cluster-domain.example my.dns.search.suffix\n"
                                         "options ndots:2 edns0\n")


def test_dns_config_is_added_to_the_hosts_as_the_kubelet_does(pods):
    """With a policy other than None, dnsConfig is appended to the host's resolv.conf without duplicates, its
    options replacing the host's of the same name, and no more than three nameservers kept."""
    host_ns, host_search, host_options = host_resolv_conf()
    name = pods.name()
    extra_ns = ["198.18.0.53", "198.18.0.54"]
    doc = pod_doc(pods, name, dnsPolicy="Default", dnsConfig={
        "nameservers": extra_ns + host_ns[:1], "searches": ["pea.example"] + host_search[:1],
        "options": [{"name": "ndots", "value": "3"}, {"name": "timeout", "value": "1"}]})
    options = []
    for option in host_options + ["ndots:3", "timeout:1"]:
        key = option.split(":")[0]
        same = [i for i, o in enumerate(options) if o.split(":")[0] == key]
        if same:
            options[same[0]] = option
        else:
            options.append(option)
    expected = "".join(f"nameserver {n}\n" for n in list(dict.fromkeys(host_ns + extra_ns))[:3])
    expected += "search " + " ".join(dict.fromkeys(host_search + ["pea.example"])) + "\n"
    expected += "options " + " ".join(options) + "\n"
    assert resolv_conf_of(pods, doc) == expected


def test_dns_config_options_are_checked(pods):
    name = pods.name()
    for dns, message in [
            ({"nameservers": ["198.18.0.53"], "options": [{"value": "2"}]}, "spec.dnsConfig.options[0].name: missing"),
            ({"nameservers": ["198.18.0.53"], "options": [{"name": "nd ots"}]},
             "spec.dnsConfig.options[0].name: must be one word of resolv.conf's options"),
            ({"nameservers": ["198.18.0.53"], "options": [{"name": "ndots", "value": "2 x"}]},
             "spec.dnsConfig.options[0].value: must be one word"),
            ({"searches": ["a.example"]}, "spec.dnsConfig.nameservers: must provide at least one DNS nameserver")]:
        code, _, err = pods.apply(write(pods, name, pod_doc(pods, name, dnsPolicy="None", dnsConfig=dns)),
                                  "--dry-run")
        assert code == 1 and message in err, (dns, err)
