/* The pod manifest parser: YAML and JSON giving the same result, every error's exact words, quantities. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pea/pod_manifest.h"
#include "pea/pod_workload.h"
#include "pea/util.h"
#include "manifest_expect.h"

/* JSON written as C tokens: the preprocessor adds the quoting. */
#define JSON_TEXT(...) #__VA_ARGS__

static const char full_yaml[] =
    "apiVersion: v1\n"
    "kind: Pod\n"
    "metadata:\n"
    "  name: web\n"
    "  namespace: default\n"
    "  labels:\n"
    "    app: web\n"
    "  annotations:\n"
    "    note: \"quoted: yes\"\n"
    "spec:\n"
    "  hostname: web-1\n"
    "  shareProcessNamespace: true\n"
    "  restartPolicy: OnFailure\n"
    "  terminationGracePeriodSeconds: 5\n"
    "  securityContext:\n"
    "    runAsUser: 1000\n"
    "    runAsGroup: 1000\n"
    "    sysctls:\n"
    "      - name: net.ipv4.ip_unprivileged_port_start\n"
    "        value: \"0\"\n"
    "  dnsConfig:\n"
    "    nameservers: [198.18.0.1]\n"
    "    searches: [example.test]\n"
    "  volumes:\n"
    "    - name: data\n"
    "      emptyDir:\n"
    "        medium: Memory\n"
    "        sizeLimit: 64Mi\n"
    "    - name: logs\n"
    "      hostPath:\n"
    "        path: /var/log/web\n"
    "        type: DirectoryOrCreate\n"
    "  initContainers:\n"
    "    - name: proxy\n"
    "      image: /images/proxy\n"
    "      command: [/bin/proxy]\n"
    "      restartPolicy: Always\n"
    "  containers:\n"
    "    - name: app\n"
    "      image:\n"
    "        - /images/base\n"
    "        - /images/app\n"
    "      imagePullPolicy: Never\n"
    "      command: [\"/bin/sh\", \"-c\"]\n"
    "      args:\n"
    "        - |\n"
    "          echo hello\n"
    "          sleep 1\n"
    "      env:\n"
    "        - name: MODE\n"
    "          value: production\n"
    "        - name: EMPTY\n"
    "      workingDir: /srv\n"
    "      ports:\n"
    "        - containerPort: 8080\n"
    "          name: http\n"
    "          protocol: TCP\n"
    "      volumeMounts:\n"
    "        - name: data\n"
    "          mountPath: /data\n"
    "        - name: logs\n"
    "          mountPath: /var/log\n"
    "          subPath: app\n"
    "          readOnly: true\n"
    "      resources:\n"
    "        limits:\n"
    "          cpu: 1.5\n"
    "          memory: 128Mi\n"
    "        requests:\n"
    "          cpu: 500m\n"
    "          memory: 1e6\n"
    "      securityContext:\n"
    "        runAsUser: 0\n"
    "        readOnlyRootFilesystem: true\n"
    "        allowPrivilegeEscalation: false\n"
    "        capabilities:\n"
    "          add: [NET_ADMIN]\n"
    "          drop: [ALL]\n"
    "        seccompProfile:\n"
    "          type: Localhost\n"
    "          localhostProfile: /etc/pea/seccomp.json\n"
    "pea:\n"
    "  network:\n"
    "    mode: bridge\n"
    "    bridge: pea0\n"
    "    address: 198.18.0.2/24\n"
    "    gateway: 198.18.0.1\n";

static const char full_json[] = JSON_TEXT({
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"},
                 "annotations": {"note": "quoted: yes"}},
    "spec": {
        "hostname": "web-1", "shareProcessNamespace": true, "restartPolicy": "OnFailure",
        "terminationGracePeriodSeconds": 5,
        "securityContext": {"runAsUser": 1000, "runAsGroup": 1000,
                            "sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}]},
        "dnsConfig": {"nameservers": ["198.18.0.1"], "searches": ["example.test"]},
        "volumes": [{"name": "data", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
                    {"name": "logs", "hostPath": {"path": "/var/log/web", "type": "DirectoryOrCreate"}}],
        "initContainers": [{"name": "proxy", "image": "/images/proxy", "command": ["/bin/proxy"],
                            "restartPolicy": "Always"}],
        "containers": [{
            "name": "app", "image": ["/images/base", "/images/app"], "imagePullPolicy": "Never",
            "command": ["/bin/sh", "-c"], "args": ["echo hello\nsleep 1\n"],
            "env": [{"name": "MODE", "value": "production"}, {"name": "EMPTY"}], "workingDir": "/srv",
            "ports": [{"containerPort": 8080, "name": "http", "protocol": "TCP"}],
            "volumeMounts": [{"name": "data", "mountPath": "/data"},
                             {"name": "logs", "mountPath": "/var/log", "subPath": "app", "readOnly": true}],
            "resources": {"limits": {"cpu": 1.5, "memory": "128Mi"}, "requests": {"cpu": "500m", "memory": 1e6}},
            "securityContext": {"runAsUser": 0, "readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false,
                                "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]},
                                "seccompProfile": {"type": "Localhost",
                                                   "localhostProfile": "/etc/pea/seccomp.json"}}}]},
    "pea": {"network": {"mode": "bridge", "bridge": "pea0", "address": "198.18.0.2/24", "gateway": "198.18.0.1"}}
});

static struct pea_pod_manifest *parse_text(const char *text, struct pea_error *err)
{
    return manifest_parse(text, strlen(text), err);
}

static void expect_full_pod(const struct pea_pod_manifest *m)
{
    cr_assert_str_eq(m->name, "web");
    cr_assert_str_eq(json_string_value(json_object_get(m->labels, "app")), "web");
    cr_assert_str_eq(json_string_value(json_object_get(m->annotations, "note")), "quoted: yes");
    cr_assert_str_eq(m->hostname, "web-1");
    cr_assert(m->share_process_namespace);
    cr_assert_eq(m->restart_policy, PEA_RESTART_ON_FAILURE);
    cr_assert_eq(m->termination_grace_seconds, 5);
    cr_assert_eq(m->n_sysctls, 1);
    cr_assert_str_eq(m->sysctls[0].name, "net.ipv4.ip_unprivileged_port_start");
    cr_assert_str_eq(m->sysctls[0].value, "0");
    cr_assert_str_eq(m->dns_nameservers[0], "198.18.0.1");
    cr_assert_null(m->dns_nameservers[1]);
    cr_assert_str_eq(m->dns_searches[0], "example.test");

    cr_assert_eq(m->n_volumes, 2);
    cr_assert_eq(m->volumes[0].type, PEA_VOLUME_EMPTY_DIR);
    cr_assert(m->volumes[0].is_memory && m->volumes[0].has_size_limit);
    cr_assert_eq(m->volumes[0].size_limit_bytes, 64 << 20);
    cr_assert_eq(m->volumes[1].type, PEA_VOLUME_HOST_PATH);
    cr_assert_str_eq(m->volumes[1].host_path, "/var/log/web");
    cr_assert_eq(m->volumes[1].host_path_type, PEA_HOST_PATH_DIRECTORY_OR_CREATE);

    cr_assert_eq(m->n_init_containers, 1);
    const struct pea_pod_container *init = &m->init_containers[0];
    cr_assert(init->is_sidecar);
    cr_assert_eq(init->n_image_layers, 1);
    cr_assert_str_eq(init->image_layers[0], "/images/proxy");
    cr_assert_null(init->args);
    /* The pod's identity applies where the container sets none. */
    cr_assert(init->security.has_run_as_user && init->security.run_as_user == 1000);
    cr_assert(init->security.has_run_as_group && init->security.run_as_group == 1000);
    cr_assert(!init->security.has_seccomp_profile);
    cr_assert_null(init->security.capabilities_add[0]);

    cr_assert_eq(m->n_containers, 1);
    const struct pea_pod_container *c = &m->containers[0];
    cr_assert_str_eq(c->name, "app");
    cr_assert(!c->is_sidecar);
    cr_assert_eq(c->n_image_layers, 2);
    cr_assert_str_eq(c->image_layers[0], "/images/base");
    cr_assert_str_eq(c->image_layers[1], "/images/app");
    cr_assert_null(c->image_layers[2]);
    cr_assert_str_eq(c->command[1], "-c");
    cr_assert_str_eq(c->args[0], "echo hello\nsleep 1\n");
    cr_assert_eq(c->n_env, 2);
    cr_assert_str_eq(c->env[0].value, "production");
    cr_assert_str_eq(c->env[1].name, "EMPTY");
    cr_assert_str_eq(c->env[1].value, "");
    cr_assert_str_eq(c->working_dir, "/srv");
    cr_assert_eq(c->n_volume_mounts, 2);
    cr_assert(!c->volume_mounts[0].read_only);
    cr_assert_null(c->volume_mounts[0].sub_path);
    cr_assert_str_eq(c->volume_mounts[1].mount_path, "/var/log");
    cr_assert_str_eq(c->volume_mounts[1].sub_path, "app");
    cr_assert(c->volume_mounts[1].read_only);
    const struct pea_pod_resources *r = &c->resources;
    cr_assert(r->has_cpu_limit && r->cpu_limit_millis == 1500);
    cr_assert(r->has_cpu_request && r->cpu_request_millis == 500);
    cr_assert(r->has_memory_limit && r->memory_limit_bytes == 128 << 20);
    cr_assert(r->has_memory_request && r->memory_request_bytes == 1000000);
    const struct pea_pod_security *s = &c->security;
    cr_assert(s->has_run_as_user && s->run_as_user == 0);
    cr_assert(s->has_run_as_group && s->run_as_group == 1000);
    cr_assert(s->read_only_root_filesystem && !s->privileged);
    cr_assert(s->has_allow_privilege_escalation && !s->allow_privilege_escalation);
    cr_assert_str_eq(s->capabilities_add[0], "NET_ADMIN");
    cr_assert_str_eq(s->capabilities_drop[0], "ALL");
    cr_assert(s->has_seccomp_profile && s->seccomp_profile == PEA_SECCOMP_PROFILE_LOCALHOST);
    cr_assert_str_eq(s->seccomp_localhost_profile, "/etc/pea/seccomp.json");
    cr_assert(strstr(c->identity, "\"imagePullPolicy\":\"Never\""), "%s", c->identity);
    cr_assert_null(strstr(c->identity, "\"resources\""), "%s", c->identity);
    cr_assert_not_null(c->resources_json);

    cr_assert_eq(m->network_mode, PEA_NETWORK_BRIDGE);
    cr_assert_str_eq(m->bridge, "pea0");
    cr_assert_str_eq(m->address, "198.18.0.2/24");
    cr_assert_str_eq(m->gateway, "198.18.0.1");
    cr_assert_null(m->netns_path);
}

Test(manifest, full_pod_in_yaml_and_json_gives_the_same_result)
{
    struct pea_error err = {0};
    AUTO_MANIFEST struct pea_pod_manifest *from_yaml = parse_text(full_yaml, &err);
    cr_assert_not_null(from_yaml, "%s", err.msg);
    AUTO_MANIFEST struct pea_pod_manifest *from_json = parse_text(full_json, &err);
    cr_assert_not_null(from_json, "%s", err.msg);
    expect_full_pod(from_yaml);
    expect_full_pod(from_json);
    cr_assert_null(manifest_sandbox_change(from_yaml, from_json));
    for (size_t i = 0; i < from_yaml->n_containers; i++) {
        cr_assert(manifest_container_same_but_resources(&from_yaml->containers[i], &from_json->containers[i]));
        cr_assert(manifest_container_same_resources(&from_yaml->containers[i], &from_json->containers[i]));
    }
}

#define MINIMAL_POD "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n"

Test(manifest, defaults)
{
    struct pea_error err = {0};
    AUTO_MANIFEST struct pea_pod_manifest *m =
        parse_text(MINIMAL_POD "spec:\n  containers:\n  - name: c\n    image: /img\n    args: [sh]\n", &err);
    cr_assert_not_null(m, "%s", err.msg);
    cr_assert_eq(m->restart_policy, PEA_RESTART_ALWAYS);
    cr_assert_eq(m->termination_grace_seconds, 30);
    cr_assert_eq(m->network_mode, PEA_NETWORK_NONE);
    cr_assert_null(m->hostname);
    cr_assert_eq(json_object_size(m->labels), 0);
    cr_assert_eq(json_object_size(m->annotations), 0);
    cr_assert_null(m->dns_nameservers[0]);
    cr_assert_null(m->dns_searches[0]);
    cr_assert_eq(m->n_init_containers, 0);
    cr_assert_null(m->containers[0].command);
    cr_assert(!m->containers[0].security.has_run_as_user);
    cr_assert(!m->containers[0].resources.has_cpu_limit);
}

Test(manifest, host_network_and_netns)
{
    struct pea_error err = {0};
    AUTO_MANIFEST struct pea_pod_manifest *host =
        parse_text(MINIMAL_POD "spec:\n  hostNetwork: true\n  containers: [{name: c, image: /i, args: [x]}]\n", &err);
    cr_assert_not_null(host, "%s", err.msg);
    cr_assert_eq(host->network_mode, PEA_NETWORK_HOST);
    AUTO_MANIFEST struct pea_pod_manifest *netns =
        parse_text(MINIMAL_POD "spec:\n  containers: [{name: c, image: /i, args: [x]}]\n"
                               "pea: {network: {mode: netns, path: /run/netns/a}}\n",
                   &err);
    cr_assert_not_null(netns, "%s", err.msg);
    cr_assert_eq(netns->network_mode, PEA_NETWORK_NETNS);
    cr_assert_str_eq(netns->netns_path, "/run/netns/a");
    AUTO_MANIFEST struct pea_pod_manifest *v6 =
        parse_text(MINIMAL_POD "spec:\n  containers: [{name: c, image: /i, args: [x]}]\n"
                               "pea: {network: {mode: bridge, address: 'fd00::2/64', gateway: 'fd00::1'}}\n",
                   &err);
    cr_assert_not_null(v6, "%s", err.msg);
    cr_assert_str_eq(v6->bridge, "pea0");
    cr_assert(!v6->adopt_bridge, "pea adopts no bridge unless asked");
    AUTO_MANIFEST struct pea_pod_manifest *adopting =
        parse_text(MINIMAL_POD "spec:\n  containers: [{name: c, image: /i, args: [x]}]\n"
                               "pea: {network: {mode: bridge, bridge: cni0, address: 10.0.0.2/24,\n"
                               "                adoptBridge: true}}\n",
                   &err);
    cr_assert_not_null(adopting, "%s", err.msg);
    cr_assert(adopting->adopt_bridge);
    AUTO_MANIFEST struct pea_pod_manifest *netns_kernel_sysctl =
        parse_text(MINIMAL_POD "spec:\n  securityContext: {sysctls: [{name: kernel.shm_rmid_forced, value: '1'}]}\n"
                               "  containers: [{name: c, image: /i, args: [x]}]\n"
                               "pea: {network: {mode: netns, path: /run/netns/a}}\n",
                   &err);
    cr_assert_not_null(netns_kernel_sysctl, "%s: the IPC namespace is the pod's own", err.msg);
}

struct error_case {
    const char *text; /* appended to MINIMAL_POD */
    const char *message;
};

#define ONE_CONTAINER "spec:\n  containers:\n  - name: c\n    image: /img\n    args: [sh]\n"
#define NETWORK(fields) ONE_CONTAINER "pea:\n  network: {" fields "}\n"

static const struct error_case error_cases[] = {
    {"spec:\n  containers:\n  - {name: a, image: /i, args: [x]}\n  - name: b\n    image: /i\n    args: [x]\n"
     "    volumeMounts:\n    - {name: v, mountpath: /x}\n  volumes: [{name: v, emptyDir: {}}]\n",
     "spec.containers[1].volumeMounts[0].mountpath: unknown field"},
    {"spec:\n  containers:\n  - {name: c, image: /i, args: [x, 3]}\n", "spec.containers[0].args[1]: must be a string"},
    {"spec:\n  containers: []\n", "spec.containers: must hold at least one element"},
    {"spec: {}\n", "spec.containers: must hold at least one element"},
    {"spec:\n  containers:\n  - {image: /i, args: [x]}\n", "spec.containers[0].name: missing"},
    {"spec:\n  containers:\n  - {name: c, image: /i, args: [x], tty: yes please}\n",
     "spec.containers[0].tty: must be a boolean"},
    {"spec:\n  containers:\n  - {name: c, image: /i, args: [x], stdinOnce: 1}\n",
     "spec.containers[0].stdinOnce: must be a boolean"},
    {"spec:\n  containers:\n  - {name: c, image: /i, args: [x], resources: {limits: {memory: 12Q}}}\n",
     "spec.containers[0].resources.limits.memory: invalid quantity \"12Q\""},
    {"spec:\n  containers:\n  - {name: c, image: /i, args: [x], resources: {requests: {cpu: -1}}}\n",
     "spec.containers[0].resources.requests.cpu: quantity \"-1\" must not be negative"},
    {"spec:\n  containers:\n  - {name: c, image: /i, args: [x], resources: {requests: {cpu: 2}, limits: {cpu: 1}}}\n",
     "spec.containers[0].resources.requests.cpu: must not exceed limits.cpu"},
    {"spec:\n  restartPolicy: Sometimes\n  containers: [{name: c, image: /i, args: [x]}]\n",
     "spec.restartPolicy: must be one of \"Always\", \"OnFailure\", \"Never\", not \"Sometimes\""},
    {"spec:\n  terminationGracePeriodSeconds: -1\n  containers: [{name: c, image: /i, args: [x]}]\n",
     "spec.terminationGracePeriodSeconds: must be between 0 and 2147483647"},
    {"spec:\n  initContainers: [{name: c, image: /i, args: [x]}]\n  containers: [{name: c, image: /i, args: [x]}]\n",
     "spec.containers[0].name: duplicate container name \"c\""},
    {"spec:\n  containers:\n  - {name: c, image: /i, args: [x], volumeMounts: [{name: v, mountPath: /v}]}\n",
     "spec.containers[0].volumeMounts[0].name: no volume named \"v\" in spec.volumes"},
    {"spec:\n  volumes: [{name: v, emptyDir: {}}]\n  containers:\n  - {name: c, image: /i, args: [x], volumeMounts: "
     "[{name: v, mountPath: /v}, {name: v, mountPath: /v/}]}\n",
     "spec.containers[0].volumeMounts[1].mountPath: \"/v/\" is already mounted by volumeMounts[0]"},
    {"spec:\n  volumes: [{name: v, emptyDir: {}}]\n  containers:\n  - {name: c, image: /i, args: [x], volumeMounts: "
     "[{name: v, mountPath: /v, subPath: a/../..}]}\n",
     "spec.containers[0].volumeMounts[0].subPath: must be a relative path without \"..\""},
    {"spec:\n  volumes: [{name: v}]\n  containers: [{name: c, image: /i, args: [x]}]\n",
     "spec.volumes[0]: needs exactly one of emptyDir, hostPath, configMap, secret, downwardAPI, projected, "
     "persistentVolumeClaim, image"},
    {"spec:\n  volumes: [{name: v, persistentVolumeClaim: {claimName: ../x}}]\n  containers: [{name: c, image: /i, "
     "args: [x]}]\n",
     "spec.volumes[0].persistentVolumeClaim.claimName: must be a DNS subdomain, not \"../x\""},
    {"spec:\n  volumes: [{name: v, persistentVolumeClaim: {claimName: a/b}}]\n  containers: [{name: c, image: /i, "
     "args: [x]}]\n",
     "spec.volumes[0].persistentVolumeClaim.claimName: must be a DNS subdomain, not \"a/b\""},
    {"spec:\n  volumes: [{name: v, persistentVolumeClaim: {readOnly: yes}}]\n  containers: [{name: c, image: /i, "
     "args: [x]}]\n",
     "spec.volumes[0].persistentVolumeClaim.claimName: missing"},
    {"spec:\n  volumes: [{name: v, hostPath: {path: rel}}]\n  containers: [{name: c, image: /i, args: [x]}]\n",
     "spec.volumes[0].hostPath.path: must be an absolute path"},
    /* hostAliases, mountPropagation, recursiveReadOnly and emptyDir.mode, in Kubernetes' words where it has them. */
    {ONE_CONTAINER "  hostAliases: [{ip: 10.0.0.300, hostnames: [a]}]\n",
     "spec.hostAliases[0].ip: must be a valid IP address, not \"10.0.0.300\""},
    {ONE_CONTAINER "  hostAliases: [{ip: '::1', hostnames: [ok, \"a b\"]}]\n",
     "spec.hostAliases[0].hostnames[1]: must be a DNS subdomain, not \"a b\""},
    {ONE_CONTAINER "  hostAliases: [{hostnames: [a]}]\n", "spec.hostAliases[0].ip: missing"},
    {ONE_CONTAINER "  hostAliases: {ip: 10.0.0.1}\n", "spec.hostAliases: must be a list"},
    {"spec:\n  volumes: [{name: v, emptyDir: {mode: 02000}}]\n  containers: [{name: c, image: /i, args: [x]}]\n",
     "spec.volumes[0].emptyDir.mode: must be between 0000 and 01777 (octal), not 1024"},
    {"spec:\n  volumes: [{name: v, emptyDir: {mode: '0755'}}]\n  containers: [{name: c, image: /i, args: [x]}]\n",
     "spec.volumes[0].emptyDir.mode: must be an integer"},
    {"spec:\n  volumes: [{name: v, hostPath: {path: /h}}]\n  containers:\n  - {name: c, image: /i, args: [x], "
     "volumeMounts: [{name: v, mountPath: /v, mountPropagation: Both}]}\n",
     "spec.containers[0].volumeMounts[0].mountPropagation: must be one of \"None\", \"HostToContainer\", "
     "\"Bidirectional\", not \"Both\""},
    {"spec:\n  volumes: [{name: v, hostPath: {path: /h}}]\n  containers:\n  - {name: c, image: /i, args: [x], "
     "volumeMounts: [{name: v, mountPath: /w}, {name: v, mountPath: /v, mountPropagation: Bidirectional}]}\n",
     "spec.containers[0].volumeMounts[1].mountPropagation: Bidirectional mount propagation is available only to "
     "privileged containers"},
    {"spec:\n  volumes: [{name: v, hostPath: {path: /h}}]\n  containers:\n  - {name: c, image: /i, args: [x], "
     "volumeMounts: [{name: v, mountPath: /v, recursiveReadOnly: Enabled}]}\n",
     "spec.containers[0].volumeMounts[0].recursiveReadOnly: may only be specified when readOnly is true"},
    {"spec:\n  volumes: [{name: v, hostPath: {path: /h}}]\n  containers:\n  - {name: c, image: /i, args: [x], "
     "volumeMounts: [{name: v, mountPath: /v, readOnly: true, recursiveReadOnly: IfPossible, "
     "mountPropagation: HostToContainer}]}\n",
     "spec.containers[0].volumeMounts[0].recursiveReadOnly: may only be specified when mountPropagation is None or "
     "not specified"},
    {"spec:\n  volumes: [{name: v, hostPath: {path: /h}}]\n  containers:\n  - {name: c, image: /i, args: [x], "
     "volumeMounts: [{name: v, mountPath: /v, readOnly: true, recursiveReadOnly: Always}]}\n",
     "spec.containers[0].volumeMounts[0].recursiveReadOnly: must be one of \"Disabled\", \"IfPossible\", "
     "\"Enabled\", not \"Always\""},
    {"spec:\n  containers:\n  - {name: c, image: [/a, b], args: [x]}\n",
     "spec.containers[0].image[1]: must be an absolute path"},
    {"spec:\n  containers:\n  - {name: c, image: [], args: [x]}\n",
     "spec.containers[0].image: must hold at least one element"},
    {"spec:\n  containers:\n  - {name: c, image: /i}\n",
     "spec.containers[0].command: missing (a directory image has no entrypoint: give command or args)"},
    {"spec:\n  containers:\n  - {name: c, image: /i, args: [x], restartPolicy: Sometimes}\n",
     "spec.containers[0].restartPolicy: must be one of \"Always\", \"OnFailure\", \"Never\", not \"Sometimes\""},
    {"spec:\n  containers:\n  - {name: c, image: /i, args: [x],\n"
     "     restartPolicyRules: [{action: Restart, exitCodes: {operator: In, values: [42]}}]}\n",
     "spec.containers[0].restartPolicy: missing (restartPolicyRules need the container's own restartPolicy)"},
    {"spec:\n  containers:\n  - {name: c, image: /i, args: [x], restartPolicy: Never,\n"
     "     restartPolicyRules: [{action: Reboot, exitCodes: {operator: In, values: [42]}}]}\n",
     "spec.containers[0].restartPolicyRules[0].action: must be one of \"Restart\", \"RestartAllContainers\", not "
     "\"Reboot\""},
    {"spec:\n  containers:\n  - {name: c, image: /i, args: [x], restartPolicy: Never,\n"
     "     restartPolicyRules: [{exitCodes: {operator: In, values: [42]}}]}\n",
     "spec.containers[0].restartPolicyRules[0].action: missing"},
    {"spec:\n  containers:\n  - {name: c, image: /i, args: [x], restartPolicy: Never,\n"
     "     restartPolicyRules: [{action: Restart}]}\n",
     "spec.containers[0].restartPolicyRules[0].exitCodes: missing"},
    {"spec:\n  containers:\n  - {name: c, image: /i, args: [x], restartPolicy: Never,\n"
     "     restartPolicyRules: [{action: Restart, exitCodes: {operator: Is, values: [42]}}]}\n",
     "spec.containers[0].restartPolicyRules[0].exitCodes.operator: must be one of \"In\", \"NotIn\", not \"Is\""},
    {"spec:\n  containers:\n  - {name: c, image: /i, args: [x], restartPolicy: Never,\n"
     "     restartPolicyRules: [{action: Restart, exitCodes: {values: [42]}}]}\n",
     "spec.containers[0].restartPolicyRules[0].exitCodes.operator: missing"},
    {"spec:\n  containers:\n  - {name: c, image: /i, args: [x], restartPolicy: Never,\n"
     "     restartPolicyRules: [{action: Restart, exitCodes: {operator: In, values: [1, x]}}]}\n",
     "spec.containers[0].restartPolicyRules[0].exitCodes.values[1]: must be a 32-bit integer"},
    {"spec:\n  containers:\n  - {name: c, image: /i, args: [x], restartPolicy: Never,\n"
     "     restartPolicyRules: [{action: Restart, when: {}, exitCodes: {operator: In, values: [1]}}]}\n",
     "spec.containers[0].restartPolicyRules[0].when: unknown field"},
    {"spec:\n  initContainers:\n  - {name: s, image: /i, args: [x], restartPolicy: Always,\n"
     "     restartPolicyRules: [{action: Restart, exitCodes: {operator: In, values: [1]}}]}\n"
     "  containers: [{name: c, image: /i, args: [x]}]\n",
     "spec.initContainers[0].restartPolicyRules[0].action: a sidecar (restartPolicy Always) always restarts: only "
     "\"RestartAllContainers\" may be used"},
    {"spec:\n  containers:\n  - {name: c, image: /i, args: [x], securityContext: {cgroupOptions: {mountMode: Rw}}}\n",
     "spec.containers[0].securityContext.cgroupOptions.mountMode: must be one of \"ReadOnly\", \"ReadWrite\", not "
     "\"Rw\""},
    {"spec:\n  containers:\n  - {name: Web, image: /i, args: [x]}\n",
     "spec.containers[0].name: must be a DNS label ([a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63), not \"Web\""},
    {"spec:\n  containers:\n  - {name: c, image: /i, args: [x],\n"
     "     securityContext: {seccompProfile: {type: Localhost}}}\n",
     "spec.containers[0].securityContext.seccompProfile.localhostProfile: missing (type is Localhost)"},
    {"spec:\n  containers:\n  - {name: c, image: /i, args: [x], securityContext: {runAsUser: '0'}}\n",
     "spec.containers[0].securityContext.runAsUser: must be an integer"},
    {"spec:\n  hostNetwork: true\n  containers: [{name: c, image: /i, args: [x]}]\npea: {network: {mode: bridge, "
     "address: 10.0.0.2/24}}\n",
     "spec.hostNetwork: conflicts with pea.network.mode \"bridge\""},
    {NETWORK("mode: bridge"), "pea.network.address: missing"},
    {NETWORK("mode: bridge, address: 10.0.0.2/24, gateway: 10.0.1.1"),
     "pea.network.gateway: 10.0.1.1 is outside 10.0.0.2/24"},
    {NETWORK("mode: bridge, address: 10.0.0.2/24, gateway: 'fd00::1'"),
     "pea.network.gateway: must be IPv4 like the address"},
    {NETWORK("mode: bridge, address: 'fd00::2/64', gateway: 'fd00:1::1'"),
     "pea.network.gateway: fd00:1::1 is outside fd00::2/64"},
    {NETWORK("mode: bridge, address: 10.0.0.2/24, gateway: 10.0.0.2"),
     "pea.network.gateway: must differ from the address"},
    {NETWORK("mode: bridge, address: 10.0.0.2"),
     "pea.network.address: must be ADDRESS/PREFIX (IPv4 or IPv6), not \"10.0.0.2\""},
    {NETWORK("mode: bridge, address: 10.0.0.2/24, bridge: a-very-long-bridge"),
     "pea.network.bridge: must be 1 to 15 of [A-Za-z0-9_.-], not \"a-very-long-bridge\""},
    {NETWORK("mode: netns"), "pea.network.path: missing"},
    {NETWORK("mode: none, adoptBridge: true"), "pea.network.adoptBridge: only valid with mode bridge"},
    {NETWORK("mode: bridge, address: 10.0.0.2/24, adoptBridge: 'yes'"), "pea.network.adoptBridge: must be a boolean"},
    {"spec:\n  securityContext: {sysctls: [{name: kernel.shm_rmid_forced, value: '1'}, {name: net.core.somaxconn, "
     "value: '1024'}]}\n  containers: [{name: c, image: /i, args: [x]}]\npea: {network: {mode: netns, path: /n}}\n",
     "spec.securityContext.sysctls[1]: net.core.somaxconn: the pod's network namespace is not pea's (pea.network.mode "
     "netns): pea sets no sysctl in it"},
    {"spec:\n  hostNetwork: true\n  securityContext: {sysctls: [{name: net.ipv4.ip_forward, value: '1'}]}\n"
     "  containers: [{name: c, image: /i, args: [x]}]\n",
     "spec.securityContext.sysctls[0]: net.ipv4.ip_forward: the pod's network namespace is not pea's (hostNetwork): "
     "pea sets no sysctl in it"},
    {NETWORK("mode: none, address: 10.0.0.2/24"), "pea.network.address: only valid with mode bridge"},
    {NETWORK("mode: wifi"), "pea.network.mode: must be one of \"none\", \"host\", \"netns\", \"bridge\", not \"wifi\""},
    {ONE_CONTAINER "status: {}\n", "status: unknown field"},
    {ONE_CONTAINER "  dnsConfig: {nameservers: [dns.example]}\n",
     "spec.dnsConfig.nameservers[0]: must be an IP address, not \"dns.example\""},
    {ONE_CONTAINER "  securityContext: {sysctls: [{name: kernel.x}]}\n",
     "spec.securityContext.sysctls[0].value: missing"},
    /* Kubernetes' limits, each naming its field. */
    {"spec:\n  containers:\n  - {name: c, image: /i, args: [x], env: [{name: A, value: '1'}, {name: 'B=C'}]}\n",
     "spec.containers[0].env[1].name: must be printable ASCII characters other than '=', at least one"},
    {"spec:\n  containers:\n  - {name: c, image: /i, args: [x], env: [{name: \"A\\tB\"}]}\n",
     "spec.containers[0].env[0].name: must be printable ASCII characters other than '=', at least one"},
    {"spec:\n  containers:\n  - {name: c, image: /i, args: [x], env: [{name: ''}]}\n",
     "spec.containers[0].env[0].name: must be printable ASCII characters other than '=', at least one"},
    {"spec:\n  containers:\n  - {name: a123456789a123456789a123456789a123456789a123456789a123456789abcd, image: /i, "
     "args: [x]}\n",
     "spec.containers[0].name: must be a DNS label ([a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63), not "
     "\"a123456789a123456789a123456789a123456789a123456789a123456789abcd\""},
    {"spec:\n  volumes: [{name: a123456789a123456789a123456789a123456789a123456789a123456789abcd, emptyDir: {}}]\n"
     "  containers: [{name: c, image: /i, args: [x]}]\n",
     "spec.volumes[0].name: must be a DNS label, not \"a123456789a123456789a123456789a123456789a123456789a123456789abcd\""},
    {"spec:\n  volumes: [{name: v, emptyDir: {}}, {name: w, emptyDir: {}}, {name: v, emptyDir: {}}]\n"
     "  containers: [{name: c, image: /i, args: [x]}]\n",
     "spec.volumes[2].name: duplicate volume name \"v\""},
    {ONE_CONTAINER "  dnsConfig: {nameservers: [198.18.0.1, 198.18.0.2, 198.18.0.3, 198.18.0.4]}\n",
     "spec.dnsConfig.nameservers: 4 entries, more than Kubernetes' 3"},
    {ONE_CONTAINER "  dnsConfig: {searches: [a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p, q, r, s, t, u, v, w, x, y, "
                   "z, aa, ab, ac, ad, ae, af, ag]}\n",
     "spec.dnsConfig.searches: 33 entries, more than Kubernetes' 32"},
    {ONE_CONTAINER "  dnsConfig: {searches: [\"example.test\\nnameserver 1.2.3.4\"]}\n",
     "spec.dnsConfig.searches[0]: must be a DNS subdomain, not \"example.test\nnameserver 1.2.3.4\""},
};

Test(manifest, errors_name_the_field)
{
    for (size_t i = 0; i < ARRAY_SIZE(error_cases); i++) {
        struct pea_error err = {0};
        AUTO_FREE char *text = xasprintf(MINIMAL_POD "%s", error_cases[i].text);
        AUTO_MANIFEST struct pea_pod_manifest *m = parse_text(text, &err);
        cr_assert_null(m, "expected a failure for:\n%s", text);
        cr_expect_str_eq(err.msg, error_cases[i].message, "for:\n%s", text);
    }
}

static const struct error_case document_cases[] = {
    {"kind: Pod\nmetadata: {name: p}\n", "apiVersion: missing"},
    {"apiVersion: v2\n", "apiVersion: must be \"v1\", not \"v2\""},
    {"apiVersion: v1\nkind: Deployment\n", "kind: must be \"Pod\", not \"Deployment\""},
    {"apiVersion: v1\nkind: Pod\nspec: {}\n", "metadata: missing"},
    {"apiVersion: v1\nkind: Pod\nmetadata: {}\n", "metadata.name: missing"},
    {"apiVersion: v1\nkind: Pod\nmetadata: {name: Big_Name}\n",
     "metadata.name: must be a DNS subdomain (lower case letters, digits, '-' and '.', at most 63), not \"Big_Name\""},
    {"apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {a: 1}}\n", "metadata.labels.a: must be a string"},
    {"apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: My_Space}\n",
     "metadata.namespace: must be a DNS label ([a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63), not \"My_Space\""},
    {"apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {example.com/app: web, 'a b': c}}\n",
     "metadata.labels.a b: key must be [DNS subdomain of at most 253/]name of at most 63 of [A-Za-z0-9._-], beginning "
     "and ending alphanumeric"},
    {"apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {app: web-}}\n",
     "metadata.labels.app: value must be empty or at most 63 of [A-Za-z0-9._-], beginning and ending alphanumeric"},
    {"apiVersion: v1\nkind: Pod\nmetadata: {name: p, annotations: {Example.com/note: x}}\n",
     "metadata.annotations.Example.com/note: key must be [DNS subdomain of at most 253/]name of at most 63 of "
     "[A-Za-z0-9._-], beginning and ending alphanumeric"},
    {"- a\n", "manifest: must be an object (a mapping)"},
    {"", "manifest: must be an object (a mapping)"},
    {"a: &x 1\n", "line 1: YAML anchors are not supported"},
    {"a: 1\nb: *x\n", "line 2: YAML aliases are not supported"},
    {"a: 1\n---\nb: 2\n", "document 1: must be an object with a kind"},
    {"a: 1\na: 2\n", "line 2: duplicate key \"a\""},
    {"1: a\n", "line 1: mapping key 1 is not a string"},
    {"? [a]\n: b\n", "line 1: mapping keys must be strings"},
    {"a: !custom x\n", "line 1: YAML tag !custom is not supported"},
    {"a: !!int x\n", "line 1: \"x\" does not match its tag tag:yaml.org,2002:int"},
    {"a: .inf\n", "line 1: number .inf is not finite"},
    {"a: 99999999999999999999\n", "line 1: integer 99999999999999999999 is out of range"},
    {"a: [b\n", "line 2: did not find expected ',' or ']'"},
    {"{\"apiVersion\": \"v1\",\n \"apiVersion\": \"v1\"}",
     "line 2 column 13: duplicate object key near '\"apiVersion\"'"},
};

Test(manifest, document_errors)
{
    for (size_t i = 0; i < ARRAY_SIZE(document_cases); i++) {
        struct pea_error err = {0};
        AUTO_MANIFEST struct pea_pod_manifest *m = parse_text(document_cases[i].text, &err);
        cr_assert_null(m, "expected a failure for:\n%s", document_cases[i].text);
        cr_expect_str_eq(err.msg, document_cases[i].message, "for:\n%s", document_cases[i].text);
    }
}

Test(manifest, nesting_is_bounded)
{
    struct pea_error err = {0};
    char deep[200];
    memset(deep, '[', 100);
    memset(deep + 100, ']', 100);
    json_t *j = manifest_yaml_to_json(deep, sizeof deep, &err);
    cr_assert_null(j);
    cr_assert_str_eq(err.msg, "line 1: nested deeper than 64 levels");
    j = manifest_yaml_to_json(deep + 36, sizeof deep - 72, &err);
    cr_assert_not_null(j, "%s", err.msg);
    json_decref(j);
}

Test(manifest, yaml_scalars_follow_the_core_schema)
{
    static const char text[] = "a: [~, null, '', true, False, 'true', yes, on, 12, -3, 0x1f, 0o17, 012, 1.5, 1e3,\n"
                               "    \"7\", !!str 8, 0.5.1, 0x, +7]\nb: |\n  x\n  y\nc: >\n  x\n  y\nd:\n";
    struct pea_error err = {0};
    AUTO_JSON json_t *got = manifest_yaml_to_json(text, strlen(text), &err);
    cr_assert_not_null(got, "%s", err.msg);
    json_error_t jerr;
    /* 012 is octal (10), as Kubernetes reads YAML integers: modes are written so. */
    AUTO_JSON json_t *want = json_loads(
        JSON_TEXT({"a": [null, null, "", true, false, "true", "yes", "on", 12, -3, 31, 15, 10, 1.5, 1000.0, "7",
                          "8", "0.5.1", "0x", 7],
                   "b": "x\ny\n", "c": "x y\n", "d": null}),
        0, &jerr);
    cr_assert_not_null(want, "%s", jerr.text);
    AUTO_FREE char *dump = json_dumps(got, JSON_COMPACT);
    cr_assert(json_equal(got, want), "%s", dump);
    cr_assert(json_is_integer(json_array_get(json_object_get(got, "a"), 8)));
    cr_assert(json_is_real(json_array_get(json_object_get(got, "a"), 14)));
}

struct quantity_case {
    const char *text;
    int result;
    uint64_t value;
    const char *message;
};

static const struct quantity_case cpu_cases[] = {
    {"500m", 0, 500, NULL},
    {"1", 0, 1000, NULL},
    {"0.5", 0, 500, NULL},
    {"1.5", 0, 1500, NULL},
    {"+2", 0, 2000, NULL},
    {".25", 0, 250, NULL},
    {"2.000000000000000000000000", 0, 2000, NULL},
    {"1e-3", 0, 1, NULL},
    {"1k", 0, 1000000, NULL},
    {"0", 0, 0, NULL},
    {"-1", -1, 0, "quantity \"-1\" must not be negative"},
    {"0.0001", -1, 0, "quantity \"0.0001\" is finer than a millicore"},
    {"0.5m", -1, 0, "quantity \"0.5m\" is finer than a millicore"},
    {"abc", -1, 0, "invalid quantity \"abc\""},
    {"", -1, 0, "invalid quantity \"\""},
    {".", -1, 0, "invalid quantity \".\""},
    {"1 ", -1, 0, "invalid quantity \"1 \""},
    {"1mm", -1, 0, "invalid quantity \"1mm\""},
    {"18446744073709552", -1, 0, "quantity \"18446744073709552\" is out of range"},
    {"99999999999999999999999", -1, 0, "quantity \"99999999999999999999999\" is out of range"},
};

static const struct quantity_case byte_cases[] = {
    {"128Mi", 0, 134217728, NULL},
    {"1Ki", 0, 1024, NULL},
    {"1Gi", 0, 1ULL << 30, NULL},
    {"1.5Gi", 0, 3ULL << 29, NULL},
    {"15Ei", 0, 15ULL << 60, NULL},
    {"1k", 0, 1000, NULL},
    {"1M", 0, 1000000, NULL},
    {"2G", 0, 2000000000, NULL},
    {"1T", 0, 1000000000000ULL, NULL},
    {"1P", 0, 1000000000000000ULL, NULL},
    {"1E", 0, 1000000000000000000ULL, NULL},
    {"1e3", 0, 1000, NULL},
    {"1E3", 0, 1000, NULL},
    {"12345", 0, 12345, NULL},
    {"18446744073709551615", 0, UINT64_MAX, NULL},
    {"0e99999999", 0, 0, NULL},
    {"18446744073709551616", -1, 0, "quantity \"18446744073709551616\" is out of range"},
    {"16Ei", -1, 0, "quantity \"16Ei\" is out of range"},
    {"1e20", -1, 0, "quantity \"1e20\" is out of range"},
    {"100m", -1, 0, "invalid quantity \"100m\""},
    {"0.5", -1, 0, "quantity \"0.5\" is finer than a byte"},
    {"1K", -1, 0, "invalid quantity \"1K\""},
    {"12Q", -1, 0, "invalid quantity \"12Q\""},
    {"1e", -1, 0, "invalid quantity \"1e\""},
    {"Mi", -1, 0, "invalid quantity \"Mi\""},
    {"-1Mi", -1, 0, "quantity \"-1Mi\" must not be negative"},
};

static void check_quantities(const struct quantity_case *cases, size_t n, bool is_cpu)
{
    for (size_t i = 0; i < n; i++) {
        struct pea_error err = {0};
        uint64_t v = 7777;
        int r = is_cpu ? manifest_parse_cpu(cases[i].text, &v, &err) : manifest_parse_bytes(cases[i].text, &v, &err);
        cr_expect_eq(r, cases[i].result, "\"%s\": %s", cases[i].text, err.msg);
        if (r == 0 && cases[i].result == 0)
            cr_expect_eq(v, cases[i].value, "\"%s\" gave %llu", cases[i].text, (unsigned long long)v);
        if (cases[i].message)
            cr_expect_str_eq(err.msg, cases[i].message);
    }
}

Test(manifest, cpu_quantities) { check_quantities(cpu_cases, ARRAY_SIZE(cpu_cases), true); }

Test(manifest, byte_quantities) { check_quantities(byte_cases, ARRAY_SIZE(byte_cases), false); }

Test(manifest, load_reads_regular_files_only)
{
    struct pea_error err = {0};
    char dir[] = "/tmp/pea-manifest-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    AUTO_FREE char *file = xasprintf("%s/pod.yaml", dir);
    AUTO_FREE char *fifo = xasprintf("%s/fifo", dir);
    FILE *f = fopen(file, "w");
    cr_assert_not_null(f);
    fputs(MINIMAL_POD ONE_CONTAINER, f);
    fclose(f);
    cr_assert_eq(mkfifo(fifo, 0600), 0);

    AUTO_MANIFEST struct pea_pod_manifest *m = manifest_load(file, &err);
    cr_assert_not_null(m, "%s", err.msg);
    cr_assert_str_eq(m->containers[0].name, "c");

    cr_assert_null(manifest_load(fifo, &err));
    AUTO_FREE char *want = xasprintf("%s: not a regular file", fifo);
    cr_assert_str_eq(err.msg, want);
    cr_assert_null(manifest_load("/dev/zero", &err));
    cr_assert_str_eq(err.msg, "/dev/zero: not a regular file");
    cr_assert_null(manifest_load(dir, &err));
    free(want);
    want = xasprintf("%s: not a regular file", dir);
    cr_assert_str_eq(err.msg, want);
    cr_assert_null(manifest_load("/nonexistent/pod.yaml", &err));
    cr_assert_str_eq(err.msg, "open /nonexistent/pod.yaml: No such file or directory");

    /* Errors inside the document carry the file's name. */
    f = fopen(file, "w");
    fputs("apiVersion: v2\n", f);
    fclose(f);
    cr_assert_null(manifest_load(file, &err));
    free(want);
    want = xasprintf("%s: apiVersion: must be \"v1\", not \"v2\"", file);
    cr_assert_str_eq(err.msg, want);

    /* Larger than the limit: refused before reading. */
    cr_assert_eq(truncate(file, PEA_MANIFEST_MAX_SIZE + 1), 0);
    cr_assert_null(manifest_load(file, &err));
    free(want);
    want = xasprintf("%s: 1572865 bytes, larger than 1572864 (1.5 MiB, Kubernetes' object size limit)", file);
    cr_assert_str_eq(err.msg, want);

    unlink(file);
    unlink(fifo);
    rmdir(dir);
}

/* "-" reads stdin, which may be a pipe but not a device. */
/* stdin, stdinOnce and tty as the kubelet reads them: each false unless set. */
Test(manifest, container_stdin_and_tty)
{
    struct pea_error err = {0};
    AUTO_MANIFEST struct pea_pod_manifest *m =
        parse_text(MINIMAL_POD "spec:\n  containers:\n  - {name: a, image: /i, args: [x], stdin: true, stdinOnce: true, "
                               "tty: true}\n  - {name: b, image: /i, args: [x]}\n", &err);
    cr_assert_not_null(m, "%s", err.msg);
    cr_assert(m->containers[0].has_stdin && m->containers[0].is_stdin_once && m->containers[0].has_tty);
    cr_assert(!m->containers[1].has_stdin && !m->containers[1].is_stdin_once && !m->containers[1].has_tty);
}

Test(manifest, load_from_stdin)
{
    struct pea_error err = {0};
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    static const char text[] = MINIMAL_POD ONE_CONTAINER;
    cr_assert_eq(write(fds[1], text, sizeof text - 1), (ssize_t)(sizeof text - 1));
    close(fds[1]);
    cr_assert_eq(dup2(fds[0], STDIN_FILENO), STDIN_FILENO);
    close(fds[0]);
    AUTO_MANIFEST struct pea_pod_manifest *m = manifest_load("-", &err);
    cr_assert_not_null(m, "%s", err.msg);
    cr_assert_str_eq(m->name, "p");

    int zero = open("/dev/zero", O_RDONLY | O_CLOEXEC);
    cr_assert_geq(zero, 0);
    cr_assert_eq(dup2(zero, STDIN_FILENO), STDIN_FILENO);
    close(zero);
    cr_assert_null(manifest_load("-", &err));
    cr_assert_str_eq(err.msg, "stdin: not a regular file or a pipe");
}

/* A manifest of Kubernetes' largest size parses; one byte more is refused before parsing, naming the limit. */
Test(manifest, object_size_limit)
{
    static const char head[] = MINIMAL_POD "spec:\n  containers:\n  - name: c\n    image: /i\n    args: [x]\n"
                                           "    env:\n";
    size_t size = PEA_MANIFEST_MAX_SIZE;
    cr_assert_eq(size, 1572864);
    char *text = xmalloc(size + 2);
    size_t used = strlen(head), n = 0;
    memcpy(text, head, used);
    for (;; n++) {
        char entry[64];
        int len = snprintf(entry, sizeof entry, "    - {name: E%zu, value: v%zu}\n", n, n);
        if (used + (size_t)len > size)
            break;
        memcpy(text + used, entry, (size_t)len);
        used += (size_t)len;
    }
    /* Padded to the exact size with a comment line. */
    memset(text + used, '#', size - used);
    if (size > used)
        text[size - 1] = '\n';
    struct pea_error err = {0};
    AUTO_MANIFEST struct pea_pod_manifest *m = manifest_parse(text, size, &err);
    cr_assert_not_null(m, "%s", err.msg);
    cr_assert_eq(m->containers[0].n_env, n);
    cr_assert_str_eq(m->containers[0].env[n - 1].value, xasprintf("v%zu", n - 1));

    text[size] = '\n';
    cr_assert_null(manifest_parse(text, size + 1, &err));
    cr_assert_str_eq(err.msg, "manifest: 1572865 bytes, larger than 1572864 (1.5 MiB, Kubernetes' object size limit)");
    free(text);
}

/* The kernel takes no argument or environment string of 32 pages or more: refused with the field's path. */
Test(manifest, exec_string_limit)
{
    size_t limit = (size_t)sysconf(_SC_PAGESIZE) * 32;
    AUTO_FREE char *long_value = xmalloc(limit + 1);
    memset(long_value, 'x', limit);
    long_value[limit] = '\0';
    struct pea_error err = {0};
    /* NAME=VALUE, with its NUL, one byte too long; then one byte shorter, which fits. */
    AUTO_FREE char *env = xasprintf(MINIMAL_POD "spec:\n  containers:\n  - {name: c, image: /i, args: [x], env: "
                                                "[{name: A, value: %s}]}\n", long_value + 2);
    cr_assert_null(parse_text(env, &err));
    AUTO_FREE char *want = xasprintf("spec.containers[0].env[0]: NAME=VALUE longer than %zu bytes, the kernel's limit "
                                     "for one environment entry", limit - 1);
    cr_assert_str_eq(err.msg, want);
    AUTO_FREE char *fits = xasprintf(MINIMAL_POD "spec:\n  containers:\n  - {name: c, image: /i, args: [x], env: "
                                                 "[{name: A, value: %s}]}\n", long_value + 3);
    AUTO_MANIFEST struct pea_pod_manifest *m = parse_text(fits, &err);
    cr_assert_not_null(m, "%s", err.msg);

    AUTO_FREE char *args = xasprintf(MINIMAL_POD "spec:\n  containers:\n  - {name: c, image: /i, args: [x, %s]}\n",
                                     long_value);
    cr_assert_null(parse_text(args, &err));
    free(want);
    want = xasprintf("spec.containers[0].args[1]: longer than %zu bytes, the kernel's limit for one argument",
                     limit - 1);
    cr_assert_str_eq(err.msg, want);
}

/* Annotations: at most 256 KiB of keys and values together, as in Kubernetes. */
Test(manifest, annotations_size_limit)
{
    AUTO_FREE char *value = xmalloc(128 * 1024);
    memset(value, 'a', 128 * 1024 - 1);
    value[128 * 1024 - 1] = '\0';
    struct pea_error err = {0};
    /* 2 + 131071 + 2 + 131071 = 262146 bytes: over 262144. */
    AUTO_FREE char *over = xasprintf("apiVersion: v1\nkind: Pod\nmetadata: {name: p, annotations: {k1: %s, k2: %s}}\n"
                                     ONE_CONTAINER, value, value);
    cr_assert_null(parse_text(over, &err));
    cr_assert_str_eq(err.msg, "metadata.annotations: 262146 bytes of keys and values, more than Kubernetes' 262144");
    value[128 * 1024 - 2] = '\0';
    AUTO_FREE char *at = xasprintf("apiVersion: v1\nkind: Pod\nmetadata: {name: p, annotations: {k1: %s, k2: %s}}\n"
                                   ONE_CONTAINER, value, value);
    AUTO_MANIFEST struct pea_pod_manifest *m = parse_text(at, &err);
    cr_assert_not_null(m, "%s", err.msg);
}

/* Two manifests compared without their parse trees: what needs a new sandbox, and what changed in a container. */
Test(manifest, comparisons)
{
    struct pea_error err = {0};
#define C_WITH(extra) "{name: c, image: /i, args: [x]" extra "}"
    AUTO_MANIFEST struct pea_pod_manifest *a = parse_text(MINIMAL_POD "spec:\n  containers: [" C_WITH(
        ", env: [{name: A, value: '1'}], resources: {limits: {cpu: 1}}") "]\n", &err);
    cr_assert_not_null(a, "%s", err.msg);
    /* The same in JSON, keys in another order. */
    AUTO_MANIFEST struct pea_pod_manifest *same = parse_text(
        "{\"spec\": {\"containers\": [{\"resources\": {\"limits\": {\"cpu\": 1}}, \"env\": [{\"value\": \"1\", "
        "\"name\": \"A\"}], \"args\": [\"x\"], \"image\": \"/i\", \"name\": \"c\"}]}, \"kind\": \"Pod\", "
        "\"metadata\": {\"name\": \"p\"}, \"apiVersion\": \"v1\"}", &err);
    cr_assert_not_null(same, "%s", err.msg);
    cr_assert_null(manifest_sandbox_change(a, same));
    cr_assert(manifest_container_same_but_resources(&a->containers[0], &same->containers[0]));
    cr_assert(manifest_container_same_resources(&a->containers[0], &same->containers[0]));

    AUTO_MANIFEST struct pea_pod_manifest *env = parse_text(MINIMAL_POD "spec:\n  containers: [" C_WITH(
        ", env: [{name: A, value: '2'}], resources: {limits: {cpu: 1}}") "]\n", &err);
    cr_assert_not_null(env, "%s", err.msg);
    cr_assert_null(manifest_sandbox_change(a, env));
    cr_assert_not(manifest_container_same_but_resources(&a->containers[0], &env->containers[0]));

    AUTO_MANIFEST struct pea_pod_manifest *cpu = parse_text(MINIMAL_POD "spec:\n  containers: [" C_WITH(
        ", env: [{name: A, value: '1'}], resources: {limits: {cpu: 2}}") "]\n", &err);
    cr_assert_not_null(cpu, "%s", err.msg);
    cr_assert(manifest_container_same_but_resources(&a->containers[0], &cpu->containers[0]));
    cr_assert_not(manifest_container_same_resources(&a->containers[0], &cpu->containers[0]));

    AUTO_MANIFEST struct pea_pod_manifest *volume = parse_text(MINIMAL_POD "spec:\n  volumes: [{name: v, emptyDir: {}}]\n"
                                                               "  containers: [" C_WITH(", env: [{name: A, value: '1'}], "
                                                               "resources: {limits: {cpu: 1}}") "]\n", &err);
    cr_assert_not_null(volume, "%s", err.msg);
    cr_assert_str_eq(manifest_sandbox_change(a, volume), "spec.volumes");
    AUTO_MANIFEST struct pea_pod_manifest *with_init = parse_text(MINIMAL_POD "spec:\n  initContainers: [{name: i, image: "
                                                                  "/i, args: [x]}]\n  containers: [" C_WITH(
        ", env: [{name: A, value: '1'}], resources: {limits: {cpu: 1}}") "]\n", &err);
    cr_assert_not_null(with_init, "%s", err.msg);
    cr_assert_str_eq(manifest_sandbox_change(a, with_init), "spec.initContainers");
#undef C_WITH
}

/* `image:` is a directory when it is an absolute path, else an image of the store, whose imagePullPolicy defaults as
 * Kubernetes': Always for :latest written or implied, IfNotPresent for another tag or a digest alone. */
Test(manifest, image_references_and_their_pull_policy_defaults)
{
    static const struct {
        const char *image, *policy;
        enum pea_pull_policy expected;
    } cases[] = {
        {"busybox", NULL, PEA_PULL_ALWAYS},
        {"busybox:latest", NULL, PEA_PULL_ALWAYS},
        {"localhost:5000/app", NULL, PEA_PULL_ALWAYS},
        {"busybox:1.36", NULL, PEA_PULL_IF_NOT_PRESENT},
        {"busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", NULL,
         PEA_PULL_IF_NOT_PRESENT},
        {"busybox", "Never", PEA_PULL_NEVER},
        {"busybox:1.36", "Always", PEA_PULL_ALWAYS},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[512];
        snprintf(text, sizeof text, MINIMAL_POD "spec:\n  containers:\n  - {name: c, image: \"%s\"%s%s}\n", cases[i].image,
                 cases[i].policy ? ", imagePullPolicy: " : "", cases[i].policy ? cases[i].policy : "");
        struct pea_error err = {0};
        struct pea_pod_manifest *m = parse_text(text, &err);
        cr_assert_not_null(m, "%s: %s", cases[i].image, err.msg);
        cr_assert_str_eq(m->containers[0].image_ref, cases[i].image);
        cr_assert_null(m->containers[0].image_layers);
        cr_assert_null(m->containers[0].command, "no command needed: the image has its Entrypoint");
        cr_assert_eq(m->containers[0].pull_policy, cases[i].expected, "%s %s", cases[i].image,
                     cases[i].policy ? cases[i].policy : "");
        manifest_free(m);
        /* An image volume's pullPolicy has the same default. */
        snprintf(text, sizeof text,
                 MINIMAL_POD "spec:\n  volumes: [{name: v, image: {reference: \"%s\"%s%s}}]\n"
                             "  containers: [{name: c, image: /i, args: [x], volumeMounts: [{name: v, mountPath: /v}]}]\n",
                 cases[i].image, cases[i].policy ? ", pullPolicy: " : "", cases[i].policy ? cases[i].policy : "");
        m = parse_text(text, &err);
        cr_assert_not_null(m, "%s: %s", cases[i].image, err.msg);
        cr_assert_eq(m->volumes[0].type, PEA_VOLUME_IMAGE);
        cr_assert_str_eq(m->volumes[0].image_ref, cases[i].image);
        cr_assert(m->volumes[0].is_read_only);
        cr_assert_eq(m->volumes[0].image_pull_policy, cases[i].expected, "volume %s %s", cases[i].image,
                     cases[i].policy ? cases[i].policy : "");
        manifest_free(m);
    }
    struct pea_error err = {0};
    cr_assert_null(parse_text(MINIMAL_POD "spec:\n  containers:\n  - {name: c, image: ./root, args: [x]}\n", &err));
    cr_assert_str_eq(err.msg, "spec.containers[0].image: \"./root\": a directory must be an absolute path");
    cr_assert_null(parse_text(MINIMAL_POD "spec:\n  containers:\n  - {name: c, image: busybox, imagePullPolicy: Sometimes}\n",
                              &err));
    cr_assert(strstr(err.msg, "spec.containers[0].imagePullPolicy"), "%s", err.msg);
}

Test(manifest, reads_host_aliases_propagation_recursive_read_only_and_empty_dir_mode)
{
    struct pea_error err = {0};
    AUTO_MANIFEST struct pea_pod_manifest *m = parse_text(
        MINIMAL_POD "spec:\n  hostAliases:\n  - {ip: 127.0.0.1, hostnames: [foo.local, bar.local]}\n"
                    "  - {ip: 'fd00::1'}\n"
                    "  volumes:\n  - {name: d, emptyDir: {}}\n  - {name: s, emptyDir: {mode: 01777}}\n"
                    "  - {name: h, hostPath: {path: /mnt}}\n"
                    "  containers:\n  - name: c\n    image: /i\n    args: [x]\n"
                    "    securityContext: {privileged: true}\n    volumeMounts:\n"
                    "    - {name: h, mountPath: /rro, readOnly: true, mountPropagation: None, "
                    "recursiveReadOnly: Enabled}\n"
                    "    - {name: h, mountPath: /in, mountPropagation: HostToContainer}\n"
                    "    - {name: h, mountPath: /both, mountPropagation: Bidirectional}\n"
                    "    - {name: d, mountPath: /d}\n",
        &err);
    cr_assert_not_null(m, "%s", err.msg);
    cr_assert_eq(m->n_host_aliases, 2);
    cr_assert_str_eq(m->host_aliases[0].ip, "127.0.0.1");
    cr_assert_str_eq(m->host_aliases[0].hostnames[1], "bar.local");
    cr_assert_null(m->host_aliases[1].hostnames[0]);
    cr_assert_eq(m->volumes[0].empty_dir_mode, 0777);
    cr_assert_eq(m->volumes[1].empty_dir_mode, 01777);
    const struct pea_pod_volume_mount *vm = m->containers[0].volume_mounts;
    cr_assert_eq(vm[0].recursive_read_only, PEA_RECURSIVE_READ_ONLY_ENABLED);
    cr_assert_eq(vm[0].propagation, PEA_MOUNT_PROPAGATION_NONE);
    cr_assert_eq(vm[1].propagation, PEA_MOUNT_PROPAGATION_HOST_TO_CONTAINER);
    cr_assert_eq(vm[2].propagation, PEA_MOUNT_PROPAGATION_BIDIRECTIONAL);
    cr_assert_eq(vm[3].recursive_read_only, PEA_RECURSIVE_READ_ONLY_DISABLED);
}

/* Every error of the pod's securityContext, each a line, in document order, with the checks that need the whole pod
 * (procMount against hostUsers). */
Test(manifest, every_error_of_the_pod_security_context)
{
    static const char text[] =
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n"
        "  containers: [{name: c, image: /i, args: [x], securityContext: {procMount: Unmasked}}]\n"
        "  securityContext:\n"
        "    runAsUser: -1\n"
        "    runAsGroup: x\n"
        "    fsGroup: 1.5\n"
        "    fsGroupChangePolicy: Sometimes\n"
        "    supplementalGroups: [1, -2, x]\n"
        "    seccompProfile: {type: Localhost}\n"
        "    appArmorProfile: {type: Unconfined, localhostProfile: p}\n"
        "    runAsNonRoot: 1\n"
        "    windowsOptions: {}\n"
        "    sysctls: [{name: net.core.somaxconn, value: '1'}, {name: a/b}, 3]\n";
    static const char *const expected[] = {
        "spec.containers[0].securityContext.procMount: Unmasked needs spec.hostUsers: false, as in Kubernetes",
        "spec.securityContext.runAsUser: must be between 0 and 4294967294",
        "spec.securityContext.runAsGroup: must be an integer",
        "spec.securityContext.fsGroup: must be an integer",
        "spec.securityContext.fsGroupChangePolicy: must be one of \"Always\", \"OnRootMismatch\", not \"Sometimes\"",
        "spec.securityContext.supplementalGroups[1]: must be between 0 and 4294967294",
        "spec.securityContext.supplementalGroups[2]: must be an integer",
        "spec.securityContext.seccompProfile.localhostProfile: missing (type is Localhost)",
        "spec.securityContext.appArmorProfile.localhostProfile: only valid with type Localhost",
        "spec.securityContext.runAsNonRoot: must be a boolean",
        "spec.securityContext.windowsOptions: unknown field",
        "spec.securityContext.sysctls[1].name: must be a sysctl name like net.ipv4.ip_forward (at most 253)",
        "spec.securityContext.sysctls[1].value: missing",
        "spec.securityContext.sysctls[2]: must be an object",
    };
    expect_error_lines(text, expected, ARRAY_SIZE(expected));
}

/* The checks of the whole pod report each sysctl that is not the pod's to set. */
Test(manifest, every_sysctl_that_is_not_namespaced)
{
    static const char text[] =
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n"
        "  hostNetwork: true\n"
        "  containers: [{name: c, image: /i, args: [x]}]\n"
        "  securityContext:\n"
        "    sysctls: [{name: vm.swappiness, value: '1'}, {name: kernel.hostname, value: h}, "
        "{name: kernel.panic, value: '1'}]\n";
    static const char *const expected[] = {
        "spec.securityContext.sysctls[0]: vm.swappiness is not a namespaced sysctl (net.*, fs.mqueue.*, kernel.sem, "
        "kernel.shm*, kernel.msg*, kernel.hostname, kernel.domainname): setting it would change the host",
        "spec.securityContext.sysctls[1]: kernel.hostname: the pod shares the host's UTS namespace (host network)",
        "spec.securityContext.sysctls[2]: kernel.panic is not a namespaced sysctl (net.*, fs.mqueue.*, kernel.sem, "
        "kernel.shm*, kernel.msg*, kernel.hostname, kernel.domainname): setting it would change the host",
    };
    expect_error_lines(text, expected, ARRAY_SIZE(expected));
}

/* subPathExpr is read, checked as written (its expansion is checked at each start), and excludes subPath. */
Test(manifest, sub_path_expr)
{
    static const char head[] = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n"
                               "  volumes: [{name: v, emptyDir: {}}]\n"
                               "  containers: [{name: c, image: /i, args: [x], volumeMounts: [";
    struct pea_error err = {0};
    AUTO_FREE char *good = xasprintf("%s{name: v, mountPath: /a, subPathExpr: '$(POD)/x'}, "
                                     "{name: v, mountPath: /b, subPathExpr: ''}]}]\n", head);
    AUTO_MANIFEST struct pea_pod_manifest *m = manifest_parse(good, strlen(good), &err);
    cr_assert_not_null(m, "%s", err.msg);
    cr_expect_str_eq(m->containers[0].volume_mounts[0].sub_path_expr, "$(POD)/x");
    cr_expect_null(m->containers[0].volume_mounts[0].sub_path);
    cr_expect_null(m->containers[0].volume_mounts[1].sub_path_expr, "an empty subPathExpr is unset");
    AUTO_FREE char *bad = xasprintf("%s{name: v, mountPath: /a, subPath: s, subPathExpr: '$(X)'}, "
                                    "{name: v, mountPath: /b, subPathExpr: '/$(X)'}, "
                                    "{name: v, mountPath: /c, subPathExpr: '$(X)/../y'}, "
                                    "{name: v, mountPath: /d, subPathExpr: 3}]}]\n", head);
    static const char *const expected[] = {
        "spec.containers[0].volumeMounts[0].subPathExpr: subPathExpr and subPath are mutually exclusive",
        "spec.containers[0].volumeMounts[1].subPathExpr: must be a relative path without \"..\"",
        "spec.containers[0].volumeMounts[2].subPathExpr: must be a relative path without \"..\"",
        "spec.containers[0].volumeMounts[3].subPathExpr: must be a string",
    };
    expect_error_lines(bad, expected, ARRAY_SIZE(expected));
}
