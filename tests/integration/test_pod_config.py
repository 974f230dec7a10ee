"""Where a pod's values come from, checked inside its containers: env valueFrom of every kind, envFrom, $(VAR)
expansion as the kubelet does it, configMap/secret/downwardAPI/projected volumes in the kubelet's atomic layout
(updated in place by a re-apply), hostPath types, and ConfigMaps and Secrets from the manifest's own file or from
--configmap / --secret."""
import json
import os
import re
import socket
import subprocess

import pytest

import helpers
from pods import container

pytestmark = pytest.mark.pea_only

SECRET = "s3cr3t-Value"  # base64: czNjcjN0LVZhbHVl
SECRET_B64 = "czNjcjN0LVZhbHVl"


def pod(pods, containers, volumes=None, name=None, metadata=None, **spec):
    """A Pod document (a dict) with the test mark in every container's env."""
    name = name or pods.name()
    meta = {"name": name}
    meta.update(metadata or {})
    doc = {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
           "spec": dict({"restartPolicy": "Never", "terminationGracePeriodSeconds": 1, "containers": containers},
                        **spec)}
    if volumes:
        doc["spec"]["volumes"] = volumes
    for c in containers:
        c.setdefault("env", []).append({"name": "PEA_IT_MARK", "value": pods.mark})
    return doc


def config_map(name, data=None, binary=None, immutable=None):
    doc = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data or {}}
    if binary:
        doc["binaryData"] = binary
    if immutable is not None:
        doc["immutable"] = immutable
    return doc


def secret(name, data=None, string_data=None):
    doc = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "type": "Opaque"}
    if data:
        doc["data"] = data
    if string_data:
        doc["stringData"] = string_data
    return doc


def write(pods, filename, *docs):
    """A multi-document file: the first document as JSON, the others as YAML documents after "---" (JSON text is a
    YAML flow mapping)."""
    path = os.path.join(pods.work_dir, filename)
    with open(path, "w") as f:
        f.write(json.dumps(docs[0]) + "\n")
        for d in docs[1:]:
            f.write("---\n" + json.dumps(d) + "\n")
    return path


def run(pods, path, *extra):
    return pods.cli("pod", "run", "-f", path, "--data-root", pods.data, *extra)


def lines(out):
    return [line[len("[a] "):] for line in out.splitlines() if line.startswith("[a] ")]


def env_of(out):
    return dict(line.split("=", 1) for line in lines(out) if "=" in line)


def test_env_value_from_every_kind(pods):
    c = container("a", pods.rootfs, "env", env=[
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "UID", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.uid"}}},
        {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        {"name": "NOTE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['example.com/note']"}}},
        {"name": "NONE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['absent']"}}},
        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "SA", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
        {"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
        {"name": "HOST_IPS", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIPs"}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
        {"name": "MCPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}}},
        {"name": "MEM_MI", "valueFrom": {"resourceFieldRef": {"containerName": "a", "resource": "limits.memory",
                                                               "divisor": "1Mi"}}},
        {"name": "REQ_MEM", "valueFrom": {"resourceFieldRef": {"resource": "requests.memory"}}},
        {"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "color"}}},
        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "password"}}},
        {"name": "USER", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "user"}}},
        {"name": "OPT_MAP", "valueFrom": {"configMapKeyRef": {"name": "missing", "key": "k", "optional": True}}},
        {"name": "OPT_KEY", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "missing", "optional": True}}},
    ])
    doc = pod(pods, [c], metadata={"namespace": "team", "labels": {"app": "web"},
                                   "annotations": {"example.com/note": "a \"quoted\" note"}},
              serviceAccountName="builder")
    path = write(pods, "pod.yaml", doc, config_map("cfg", {"color": "blue"}),
                 secret("sec", {"password": SECRET_B64}, {"user": "admin"}))
    code, out, err = run(pods, path)
    assert code == 0, err
    env = env_of(out)
    assert env["POD"] == doc["metadata"]["name"]
    assert env["NS"] == "team"
    assert re.fullmatch(r"[0-9a-f]{16}", env["UID"]), env["UID"]
    assert env["APP"] == "web" and env["NOTE"] == "a \"quoted\" note" and env["NONE"] == ""
    assert env["NODE"] == socket.gethostname().lower()
    assert env["SA"] == "builder"
    assert env["HOST_IP"] == env["HOST_IPS"]
    assert env["POD_IP"] == ""  # loopback only: the pod has no address
    # No limits: the node's allocatable, as the kubelet gives it; 1 core is 1000m.
    assert env["CPU"] == str(os.sysconf("SC_NPROCESSORS_ONLN"))
    assert env["MCPU"] == str(1000 * os.sysconf("SC_NPROCESSORS_ONLN"))
    mem_total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert env["MEM_MI"] == str(-(-mem_total // (1 << 20))), "rounded up"
    assert env["REQ_MEM"] == "0"
    assert env["COLOR"] == "blue" and env["PASSWORD"] == SECRET and env["USER"] == "admin"
    assert "OPT_MAP" not in env and "OPT_KEY" not in env


def test_env_from_with_prefix_and_binary_data_left_out(pods):
    c = container("a", pods.rootfs, "env", envFrom=[
        {"prefix": "CFG_", "configMapRef": {"name": "cfg"}},
        {"secretRef": {"name": "sec"}},
        {"configMapRef": {"name": "absent", "optional": True}},
    ], env=[{"name": "CFG_color", "value": "overridden by env, which comes after envFrom"}])
    path = write(pods, "pod.yaml", pod(pods, [c]),
                 config_map("cfg", {"color": "blue", "size": "9"}, binary={"blob": "AAEC"}),
                 secret("sec", {"token": SECRET_B64}))
    code, out, err = run(pods, path)
    assert code == 0, err
    env = env_of(out)
    assert env["CFG_size"] == "9" and env["token"] == SECRET
    assert env["CFG_color"] == "overridden by env, which comes after envFrom"
    assert "CFG_blob" not in env and "blob" not in env, "binaryData is never an environment variable"


def test_dollar_expansion_as_kubernetes_does_it(pods):
    # Single quotes keep the shell from reading what the kubelet's expansion leaves in place.
    # "$(A" is last: the reference runs to the first ")" after it, wherever that is.
    script = "printf '<%s>\\n' '$(B)' '$$(A)' '$(UNDEFINED)' 'a$b' '$(LATER)' '$' '$(A'"
    c = container("a", pods.rootfs, script, env=[
        {"name": "A", "value": "x"},
        {"name": "B", "value": "$(A)-y"},
        {"name": "C", "value": "$$(A) $$$(A) $(LATER) $(UNDEFINED) $(A $"},
        {"name": "LATER", "value": "z"},
        {"name": "FROM_CM", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}},
        {"name": "D", "value": "$(FROM_CM)/$(PFX_k)"},
        {"name": "E", "value": "$(PATH)"},
    ], envFrom=[{"prefix": "PFX_", "configMapRef": {"name": "cfg"}}])
    c["command"][2] += "; env"
    path = write(pods, "pod.yaml", pod(pods, [c]), config_map("cfg", {"k": "$(A)"}))
    code, out, err = run(pods, path)
    assert code == 0, err
    printed = [line for line in lines(out) if line.startswith("<")]
    # command and args expand from the whole environment, LATER included.
    assert printed == ["<x-y>", "<$(A)>", "<$(UNDEFINED)>", "<a$b>", "<z>", "<$>", "<$(A>"]
    env = env_of(out)
    assert env["B"] == "x-y"
    # Only what is defined earlier counts; $$ is $; unknown and unterminated references stay as written.
    assert env["C"] == "$(A) $x $(LATER) $(UNDEFINED) $(A $"
    # Values from a ConfigMap are not expanded themselves, but expand into later values.
    assert env["FROM_CM"] == "$(A)" and env["D"] == "$(A)/$(A)"
    assert env["E"] == "$(PATH)", "PATH is the runtime's, not a variable of the manifest"


def test_config_map_secret_and_downward_api_volumes(pods):
    script = ("cd /cfg && ls -a . && readlink color && readlink ..data && stat -c '%a %n' ..data/color ..data/app.sh; "
              "cat color; echo; ./app.sh; stat -c '%a' /sec/..data/creds/pw /sec/..data/user; cat /sec/creds/pw; "
              "echo; cat /info/labels; echo; cat /info/name /info/cpu; echo; "
              "grep -E ' /(cfg|sec|info) ' /proc/mounts | cut -d' ' -f2,3,4; "
              "touch /cfg/new 2>/dev/null || echo cfg read-only; touch /sec/new 2>/dev/null || echo sec read-only")
    c = container("a", pods.rootfs, script, volumeMounts=[
        {"name": "cfg", "mountPath": "/cfg"}, {"name": "sec", "mountPath": "/sec", "readOnly": False},
        {"name": "info", "mountPath": "/info"}])
    volumes = [
        {"name": "cfg", "configMap": {"name": "cfg", "items": [{"key": "color", "path": "color"},
                                                              {"key": "script", "path": "app.sh", "mode": 0o755}]}},
        {"name": "sec", "secret": {"secretName": "sec", "defaultMode": 0o400,
                                   "items": [{"key": "password", "path": "creds/pw", "mode": 0o600},
                                             {"key": "user", "path": "user"}]}},
        {"name": "info", "downwardAPI": {"items": [
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
            {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
            {"path": "cpu", "resourceFieldRef": {"containerName": "a", "resource": "requests.cpu",
                                                  "divisor": "1m"}}]}},
    ]
    doc = pod(pods, [c], volumes, metadata={"labels": {"app": "web", "tier": "front"}})
    path = write(pods, "pod.yaml", doc, config_map("cfg", {"color": "blue", "script": "#!/bin/sh\necho ran\n",
                                                          "unused": "x"}),
                 secret("sec", {"password": SECRET_B64}, {"user": "admin"}))
    code, out, err = run(pods, path)
    assert code == 0, err
    got = lines(out)
    names = got[:6]
    assert names[:2] == [".", ".."] and re.fullmatch(r"\.\.\d{4}_\d\d_\d\d_\d\d_\d\d_\d\d\.\d{10}", names[2]), got
    assert names[3:] == ["..data", "app.sh", "color"], got
    rest = got[len(names):]
    assert rest[0] == "..data/color" and rest[1] == names[2], "key -> ..data/key, ..data -> the timestamped dir"
    assert rest[2:4] == ["644 ..data/color", "755 ..data/app.sh"]
    assert rest[4:6] == ["blue", "ran"]
    assert rest[6:8] == ["600", "400"]
    assert rest[8] == SECRET
    assert rest[9:11] == ['app="web"', 'tier="front"']
    assert rest[11] == doc["metadata"]["name"] + "0"
    mounts = {line.split()[0]: line.split()[1:] for line in rest[12:15]}
    assert mounts["/sec"][0] == "tmpfs" and mounts["/info"][0] == "tmpfs", "secrets never touch the disk"
    assert all(m[1].startswith("ro,") for m in mounts.values()), mounts
    assert rest[15:] == ["cfg read-only", "sec read-only"]
    assert pods.leftovers() == []


def test_projected_volume_and_service_account_token_refused(pods):
    c = container("a", pods.rootfs, "cd /p && ls && cat cm/color s/pw name && stat -c %a ..data/name",
                  volumeMounts=[{"name": "p", "mountPath": "/p"}])
    volumes = [{"name": "p", "projected": {"defaultMode": 0o440, "sources": [
        {"configMap": {"name": "cfg", "items": [{"key": "color", "path": "cm/color"}]}},
        {"secret": {"name": "sec", "items": [{"key": "password", "path": "s/pw"}]}},
        {"downwardAPI": {"items": [{"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}},
        {"secret": {"name": "absent", "optional": True}},
    ]}}]
    doc = pod(pods, [c], volumes)
    path = write(pods, "pod.yaml", doc, config_map("cfg", {"color": "blue\n"}), secret("sec", {"password": SECRET_B64}))
    code, out, err = run(pods, path)
    assert code == 0, err
    assert lines(out) == ["cm", "name", "s", "blue", SECRET + doc["metadata"]["name"] + "440"]

    volumes[0]["projected"]["sources"].append({"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}})
    path = write(pods, "token.yaml", pod(pods, [container("a", pods.rootfs, "true")], volumes),
                 config_map("cfg", {"color": "blue"}), secret("sec", {"password": SECRET_B64}))
    code, out, err = run(pods, path)
    assert code == 1
    assert err.strip() == (f"pea: {path}: spec.volumes[0].projected.sources[4].serviceAccountToken: not supported: "
                           "pea has no API server to issue it (project a secret holding it instead)")


def exec_out(pods, name, script):
    code, out, err = pods.cli("pod", "exec", name, "--", "sh", "-c", script)
    assert code == 0, err
    return out


def test_reapplied_config_map_updates_files_in_place_but_not_env(pods):
    name = pods.name()
    c = container("a", pods.rootfs, "exec sleep 300",
                  env=[{"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "color"}}}],
                  volumeMounts=[{"name": "cfg", "mountPath": "/cfg"},
                                {"name": "cfg", "mountPath": "/pinned", "subPath": "color"}])
    doc = pod(pods, [c], [{"name": "cfg", "configMap": {"name": "cfg"}}], name=name, restartPolicy="Always")
    path = write(pods, "pod.yaml", doc)
    cm = os.path.join(pods.work_dir, "cm.json")
    with open(cm, "w") as f:
        json.dump(config_map("cfg", {"color": "blue", "old": "1"}), f)
    code, out, err = pods.apply(path, "--configmap", cm)
    assert code == 0, err
    script = "cat /cfg/color; echo; cat /pinned; echo; echo $COLOR; readlink /cfg/..data; ls /cfg"
    before = exec_out(pods, name, script).splitlines()
    assert before[:3] == ["blue", "blue", "blue"] and before[4:] == ["color", "old"], before
    pid = json.loads(pods.cli("pod", "ps", "--output", "json", name)[1])[0]["pid"]

    with open(cm, "w") as f:
        f.write("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  color: green\n  new: '2'\n")
    code, out, err = pods.apply(path, "--configmap", cm)
    assert code == 0, err
    after = exec_out(pods, name, script).splitlines()
    # Files swap at once (a new ..data target, names added and removed); a subPath mount and env keep what the
    # container started with, as in Kubernetes.
    assert after[:3] == ["green", "blue", "blue"], after
    assert after[3] != before[3] and after[4:] == ["color", "new"], after
    ps = json.loads(pods.cli("pod", "ps", "--output", "json", name)[1])[0]
    assert (ps["pid"], ps["restarts"]) == (pid, 0), "the container was not restarted"
    assert exec_out(pods, name, "ls -a /cfg | grep -c '^\\.\\.2'").strip() == "1", "the old version is removed"

    code, out, err = pods.cli("pod", "rm", name)
    assert code == 0, err


def test_immutable_config_map_cannot_change(pods):
    name = pods.name()
    c = container("a", pods.rootfs, "exec sleep 300", volumeMounts=[{"name": "cfg", "mountPath": "/cfg"}])
    doc = pod(pods, [c], [{"name": "cfg", "configMap": {"name": "cfg"}}], name=name)
    path = write(pods, "pod.yaml", doc, config_map("cfg", {"k": "1"}, immutable=True))
    code, out, err = pods.apply(path)
    assert code == 0, err
    path = write(pods, "pod.yaml", doc, config_map("cfg", {"k": "2"}, immutable=True))
    code, out, err = pods.apply(path)
    assert code == 1
    assert err.strip() == ("pea: ConfigMap cfg is immutable: its data cannot change (apply --recreate makes the "
                           "pod anew)"), err
    assert exec_out(pods, name, "cat /cfg/k") == "1"
    code, out, err = pods.cli("pod", "rm", name)
    assert code == 0, err


def test_secret_values_stay_out_of_events_logs_and_errors(pods):
    name = pods.name()
    c = container("a", pods.rootfs, "echo started; exec sleep 300",
                  env=[{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "password"}}}],
                  volumeMounts=[{"name": "sec", "mountPath": "/sec"}])
    doc = pod(pods, [c], [{"name": "sec", "secret": {"secretName": "sec"}}], name=name)
    path = write(pods, "pod.yaml", doc, secret("sec", {"password": SECRET_B64}))
    code, out, err = pods.apply(path)
    assert code == 0, err
    assert exec_out(pods, name, "echo $PW; cat /sec/password") == SECRET + "\n" + SECRET
    # An apply that fails on the Secret names it and the key, never a value.
    bad = write(pods, "bad.yaml", pod(pods, [container("a", pods.rootfs, "true", env=[
        {"name": "X", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "nope"}}}])], name=name),
        secret("sec", {"password": SECRET_B64}))
    code, out, err = pods.apply(bad)
    assert code == 1 and 'key "nope" not found in Secret "sec"' in err and SECRET not in err, err
    # Events come as they happen: watch while a changed env recreates the container.
    events = subprocess.Popen(pods.argv("pod", "events", "--output", "json", name), stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True, env=pods.env)
    try:
        c["env"].append({"name": "MORE", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "password"}}})
        code, out, err = pods.apply(write(pods, "pod.yaml", doc, secret("sec", {"password": SECRET_B64})))
        assert code == 0 and SECRET not in out + err, err
        seen = []
        for line in events.stdout:
            seen.append(line)
            if json.loads(line).get("message", "").startswith("started"):
                break
    finally:
        events.kill()
        events.wait()
    text = "".join(seen)
    assert "started" in text and SECRET not in text and SECRET_B64 not in text, text
    code, logs, err = pods.cli("pod", "logs", name)
    assert code == 0 and "started" in logs and SECRET not in logs, err
    # On the host the Secret's files are on a tmpfs only.
    volume = os.path.join(pods.data, "pods", name, "volumes", "sec")
    assert any(line.split()[1] == volume and line.split()[2] == "tmpfs" for line in open("/proc/mounts")), volume
    code, out, err = pods.cli("pod", "rm", name)
    assert code == 0, err


def test_missing_config_map_secret_or_key_fails_at_once(pods):
    cases = [
        ({"env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "absent"}}}]},
         'spec.containers[0].env[0].valueFrom: key "absent" not found in ConfigMap "cfg"'),
        ({"envFrom": [{"secretRef": {"name": "nosuch"}}]}, 'spec.containers[0].envFrom[0]: Secret "nosuch" not found'),
        ({"env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "bin"}}}]},
         'spec.containers[0].env[0].valueFrom: key "bin" not found in ConfigMap "cfg"'),
    ]
    for extra, message in cases:
        c = container("a", pods.rootfs, "true", **extra)
        path = write(pods, "pod.yaml", pod(pods, [c]), config_map("cfg", {"k": "v"}, binary={"bin": "AAEC"}))
        code, out, err = run(pods, path)
        assert code == 1
        assert err.strip() == (f"pea: {path}: {message} (the kubelet would keep the container waiting "
                               "(CreateContainerConfigError); pea fails at once)"), err
    volumes = [{"name": "v", "configMap": {"name": "cfg", "items": [{"key": "nope", "path": "p"}]}}]
    path = write(pods, "pod.yaml", pod(pods, [container("a", pods.rootfs, "true")], volumes),
                 config_map("cfg", {"k": "v"}))
    code, out, err = run(pods, path)
    assert code == 1 and 'spec.volumes[0] (v): key "nope" not found in ConfigMap "cfg"' in err, err
    assert pods.leftovers() == []


def test_multi_document_yaml_and_config_options(pods):
    name = pods.name()
    text = f"""# a ConfigMap, a Secret and the Pod in one file, as kubectl users write them
apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg
data:
  color: blue
  multi: |
    line one
    line two
---
apiVersion: v1
kind: Secret
metadata:
  name: sec
stringData:
  user: admin
---
apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  restartPolicy: Never
  volumes:
    - name: cfg
      configMap:
        name: cfg
        defaultMode: 0400
  containers:
    - name: a
      image: {pods.rootfs}
      command: ["sh", "-c", "echo $COLOR $USER $EXTRA $TOKEN; cat /cfg/multi; stat -c %a /cfg/..data/color"]
      volumeMounts: [{{name: cfg, mountPath: /cfg}}]
      env:
        - {{name: PEA_IT_MARK, value: "{pods.mark}"}}
        - name: COLOR
          valueFrom: {{configMapKeyRef: {{name: cfg, key: color}}}}
        - name: USER
          valueFrom: {{secretKeyRef: {{name: sec, key: user}}}}
        - name: EXTRA
          valueFrom: {{configMapKeyRef: {{name: extra, key: x}}}}
        - name: TOKEN
          valueFrom: {{secretKeyRef: {{name: token, key: t}}}}
"""
    path = os.path.join(pods.work_dir, "all.yaml")
    with open(path, "w") as f:
        f.write(text)
    extra = os.path.join(pods.work_dir, "extra.yaml")
    with open(extra, "w") as f:
        f.write("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: extra}\ndata: {x: from-option}\n")
    token = os.path.join(pods.work_dir, "token.json")
    with open(token, "w") as f:
        json.dump(secret("token", {"t": "dG9r"}), f)
    code, out, err = run(pods, path, "--configmap", extra, "--secret", token)
    assert code == 0, err
    assert lines(out) == ["blue admin from-option tok", "line one", "line two", "400"]

    code, out, err = run(pods, path, "--configmap", extra)
    assert code == 1 and 'Secret "token" not found' in err, err
    code, out, err = run(pods, path, "--configmap", token, "--secret", token)
    assert (code, err.strip()) == (1, f"pea: {token}: document 1: kind must be ConfigMap (given with --configmap)")
    code, out, err = run(pods, path, "--configmap", extra, "--configmap", extra, "--secret", token)
    assert (code, err.strip()) == (1, f'pea: {extra}: document 1: ConfigMap "extra" is given twice')
    with open(extra, "w") as f:
        f.write("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: extra}\ndata:\n  x: 1\n")
    code, out, err = run(pods, path, "--configmap", extra, "--secret", token)
    assert (code, err.strip()) == (1, f"pea: {extra}: ConfigMap extra: data.x: must be a string")
    assert pods.leftovers() == []


def test_host_path_types(pods, tmp_path):
    sock_path = tmp_path / "app.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock_path))
    (tmp_path / "file").write_text("x")
    try:
        made_dir, made_file = tmp_path / "made" / "deep", tmp_path / "made-file"
        volumes = [
            {"name": "dir", "hostPath": {"path": str(made_dir), "type": "DirectoryOrCreate"}},
            {"name": "file", "hostPath": {"path": str(made_file), "type": "FileOrCreate"}},
            {"name": "sock", "hostPath": {"path": str(sock_path), "type": "Socket"}},
            {"name": "null", "hostPath": {"path": "/dev/null", "type": "CharDevice"}},
            {"name": "any", "hostPath": {"path": str(tmp_path / "file"), "type": ""}},
        ]
        mounts = [{"name": v["name"], "mountPath": "/v/" + v["name"]} for v in volumes]
        c = container("a", pods.rootfs, "stat -c '%F' /v/dir /v/file /v/sock /v/null /v/any", volumeMounts=mounts)
        code, out, err = run(pods, write(pods, "pod.yaml", pod(pods, [c], volumes)))
        assert code == 0, err
        assert lines(out) == ["directory", "regular empty file", "socket", "character special file",
                              "regular file"]
        assert oct(os.stat(made_dir).st_mode & 0o777) == "0o755" and oct(os.stat(made_file).st_mode & 0o777) == "0o644"
        for path, kind in [(tmp_path / "file", "Directory"), (tmp_path, "File"), ("/dev/null", "BlockDevice"),
                           (tmp_path / "file", "Socket"), (tmp_path / "no-parent" / "f", "FileOrCreate")]:
            volumes = [{"name": "h", "hostPath": {"path": str(path), "type": kind}}]
            c = container("a", pods.rootfs, "true", volumeMounts=[{"name": "h", "mountPath": "/h"}])
            code, out, err = run(pods, write(pods, "bad.yaml", pod(pods, [c], volumes)))
            assert code == 1, (path, kind, out, err)
            assert f"volume h: " in err and str(path) in err, err
        assert not (tmp_path / "no-parent").exists(), "FileOrCreate does not make the parent directory"
    finally:
        server.close()
    assert pods.leftovers() == []
