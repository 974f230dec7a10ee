/* Where a container's values come from: $(VAR) expansion exactly as Kubernetes does it, base64 as Secret data is
 * read, files of several documents, ConfigMap and Secret checks, env and volume references, resource values with
 * the kubelet's rounding. */
#include <criterion/criterion.h>
#include <string.h>

#include "pea/pod.h"
#include "pea/pod_env.h"
#include "pea/pod_manifest.h"
#include "pea/util.h"

static char *expand(const char *input)
{
    AUTO_JSON json_t *vars = json_pack("{s:s, s:s, s:s}", "A", "x", "EMPTY", "", "B", "$(A)");
    return pod_env_expand(input, vars);
}

Test(pod_env, expansion_follows_kubernetes)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"$(A)", "x"},
        {"pre-$(A)-post", "pre-x-post"},
        {"$(A)$(A)", "xx"},
        {"$$(A)", "$(A)"},          /* escaped */
        {"$$$(A)", "$x"},           /* an escaped $, then a reference */
        {"$$$$(A)", "$$(A)"},
        {"$(UNDEFINED)", "$(UNDEFINED)"},
        {"$(EMPTY)", ""},
        {"$(B)", "$(A)"},           /* a value is not expanded again */
        {"$()", "$()"},
        {"$(A", "$(A"},              /* unterminated */
        {"$(A $(A)", "$(A $(A)"},   /* the name runs to the first ")": "A $(A" is undefined */
        {"$A", "$A"},
        {"a$", "a$"},
        {"$", "$"},
        {"$$", "$"},
        {"$$$", "$$"},
        {"(A)", "(A)"},
        {"", ""},
        {"é$(A)ü", "éxü"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        AUTO_FREE char *got = expand(cases[i].in);
        cr_expect_str_eq(got, cases[i].out, "expand(%s)", cases[i].in);
    }
}

/* A subPathExpr as the kubelet expands it: every reference must have a value that is not empty (each one missing
 * named, sorted), "$$" escapes, and a result that is absolute or climbs is refused. */
Test(pod_env, sub_path_expr_follows_the_kubelet)
{
    AUTO_JSON json_t *vars = json_pack("{s:s, s:s, s:s, s:s}", "A", "x", "EMPTY", "", "UP", "..", "ROOT", "/etc");
    static const struct {
        const char *in, *out, *error;
    } cases[] = {
        {"$(A)/logs", "x/logs", NULL},
        {"$$(A)/$(A)", "$(A)/x", NULL},
        {"plain", "plain", NULL},
        {"$(Z)/$(EMPTY)/$(B)/$(Z)", NULL, "subPathExpr $(Z)/$(EMPTY)/$(B)/$(Z): missing value for B, EMPTY, Z"},
        {"$(ROOT)", NULL, "subPathExpr $(ROOT) expands to /etc, an absolute path: refused"},
        {"a/$(UP)/b", NULL, "subPathExpr a/$(UP)/b expands to a/../b, which contains \"..\": refused"},
        {"$(UP)", NULL, "subPathExpr $(UP) expands to .., which contains \"..\": refused"},
        {"x$(UP)", "x..", NULL},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct pea_error err = {0};
        AUTO_FREE char *got = NULL;
        int r = pod_env_expand_sub_path(cases[i].in, vars, &got, &err);
        if (cases[i].out) {
            cr_expect_eq(r, 0, "%s: %s", cases[i].in, err.msg);
            cr_expect_str_eq(got ? got : "(null)", cases[i].out, "%s", cases[i].in);
        } else {
            cr_expect_eq(r, -1, "%s", cases[i].in);
            cr_expect_str_eq(err.msg, cases[i].error, "%s", cases[i].in);
        }
    }
}

Test(pod_env, base64_as_go_standard_encoding)
{
    static const struct {
        const char *in, *out;
        size_t len;
    } good[] = {
        {"", "", 0}, {"YQ==", "a", 1}, {"YWI=", "ab", 2}, {"YWJj", "abc", 3},
        {"czNj\ncjN0\r\n", "s3cr3t", 6}, {"AAEC", "\0\1\2", 3}, {"+/+/", "\xfb\xff\xbf", 3},
    };
    for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
        char *out = NULL;
        size_t len = 0;
        cr_assert_eq(manifest_base64_decode(good[i].in, strlen(good[i].in), &out, &len), 0, "%s", good[i].in);
        cr_expect_eq(len, good[i].len, "%s", good[i].in);
        cr_expect(memcmp(out, good[i].out, len) == 0, "%s", good[i].in);
        free(out);
    }
    static const char *const bad[] = {"YQ", "YQ=", "Y===", "=YQ=", "YQ==YQ==", "YW-j", "YW_j", "YWJ j", "YQ=a"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        char *out = NULL;
        size_t len = 0;
        cr_expect_eq(manifest_base64_decode(bad[i], strlen(bad[i]), &out, &len), -1, "%s", bad[i]);
    }
}

#define POD_HEAD "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n"

static struct pea_pod_manifest *parse(const char *text, struct pea_error *err)
{
    return manifest_parse(text, strlen(text), err);
}

Test(pod_env, documents_json_then_yaml)
{
    static const char text[] =
        "{\"apiVersion\": \"v1\", \"kind\": \"ConfigMap\", \"metadata\": {\"name\": \"a\"}, \"data\": {\"k\": \"1\"}}\n"
        "{\"apiVersion\": \"v1\", \"kind\": \"Secret\", \"metadata\": {\"name\": \"s\"}, \"data\": {\"k\": \"MQ==\"},"
        " \"stringData\": {\"k\": \"2\", \"l\": \"3\"}}\n"
        "---\n" POD_HEAD "  containers: [{name: c, image: /i, args: [x]}]\n"
        "---\n"
        "---\n"
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\nbinaryData: {bin: AAEC}\nimmutable: true\n";
    struct pea_error err = {0};
    AUTO_MANIFEST struct pea_pod_manifest *m = parse(text, &err);
    cr_assert_not_null(m, "%s", err.msg);
    cr_assert_eq(m->n_configs, 3);
    const struct pea_config_object *s = manifest_config_find(m, "s", true);
    cr_assert_not_null(s);
    cr_assert_null(manifest_config_find(m, "s", false), "a Secret is not a ConfigMap");
    cr_expect_str_eq(manifest_config_entry(s, "k")->value, "2", "stringData wins over data");
    cr_expect_str_eq(manifest_config_entry(s, "l")->value, "3");
    const struct pea_config_object *b = manifest_config_find(m, "b", false);
    cr_assert(b->is_immutable);
    cr_expect_eq(manifest_config_entry(b, "bin")->len, 3);
    cr_expect(manifest_config_entry(b, "bin")->is_binary);
    cr_expect_str_eq(m->namespace, "default");
    cr_expect_str_eq(m->service_account_name, "default");
}

Test(pod_env, claim_document_beside_the_pod_is_accepted)
{
    struct pea_error err = {0};
    AUTO_MANIFEST struct pea_pod_manifest *m = parse(
        POD_HEAD "  volumes: [{name: v, persistentVolumeClaim: {claimName: db.data, readOnly: true}}]\n"
                 "  containers: [{name: c, image: /i, args: [x], volumeMounts: [{name: v, mountPath: /d}]}]\n---\n"
                 "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: db.data, namespace: x}\n"
                 "spec: {accessModes: [ReadWriteOnce], storageClassName: fast,\n"
                 "       resources: {requests: {storage: 1Gi}}}\n",
        &err);
    cr_assert_not_null(m, "%s", err.msg);
    cr_assert_eq(m->volumes[0].type, PEA_VOLUME_PERSISTENT_CLAIM);
    cr_expect_str_eq(m->volumes[0].claim_name, "db.data");
    cr_expect(m->volumes[0].is_read_only);
    cr_expect_eq(m->n_configs, 0);
}

Test(pod_env, document_and_reference_errors)
{
    static const struct {
        const char *text, *message;
    } cases[] = {
        {POD_HEAD "  containers: [{name: c, image: /i, args: [x]}]\n---\n" POD_HEAD
                  "  containers: [{name: c, image: /i, args: [x]}]\n",
         "document 2: a second Pod (documents 1 and 2); pea runs one Pod per file"},
        {"kind: Deployment\n---\n" POD_HEAD "  containers: [{name: c, image: /i, args: [x]}]\n",
         "document 1: kind \"Deployment\" is not supported beside a Pod (ConfigMap, Secret and "
         "PersistentVolumeClaim are)"},
        {"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n",
         "no Pod among the 2 documents"},
        {"apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {k: 'not base64'}\n---\n" POD_HEAD
         "  containers: [{name: c, image: /i, args: [x]}]\n",
         "Secret s: data.k: not valid base64"},
        {"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {'a b': x}\n---\n" POD_HEAD
         "  containers: [{name: c, image: /i, args: [x]}]\n",
         "ConfigMap a: data.a b: a key must be at most 253 of [-._a-zA-Z0-9], not \".\", \"..\" or starting with \"..\""},
        {"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {k: x}\nbinaryData: {k: AAEC}\n---\n" POD_HEAD
         "  containers: [{name: c, image: /i, args: [x]}]\n",
         "ConfigMap a: key k is in both data and binaryData"},
        {POD_HEAD "  containers: [{name: c, image: /i, args: [x]}]\n---\napiVersion: v1\nkind: PersistentVolumeClaim\n"
                  "metadata: {name: data}\nspec: {accessModes: [ReadWriteSometimes]}\n",
         "document 2: spec.accessModes[0]: must be one of ReadWriteOnce, ReadOnlyMany, ReadWriteMany, "
         "ReadWriteOncePod"},
        {POD_HEAD "  containers: [{name: c, image: /i, args: [x]}]\n---\napiVersion: v1\nkind: PersistentVolumeClaim\n"
                  "metadata: {name: ../x}\n",
         "document 2: metadata.name: must be a DNS subdomain, not \"../x\""},
        {POD_HEAD "  containers: [{name: c, image: /i, args: [x]}]\n---\napiVersion: v1\nkind: PersistentVolumeClaim\n"
                  "metadata: {name: d}\nspec: {volumeMode: Block}\n",
         "document 2: spec.volumeMode: must be one of \"Filesystem\", not \"Block\""},
        {POD_HEAD "  containers: [{name: c, image: /i, args: [x]}]\n---\napiVersion: v1\nkind: PersistentVolumeClaim\n"
                  "metadata: {name: d}\nspec: {resources: {requests: {storage: 1Gi, cpu: 1}}}\n",
         "document 2: spec.resources.requests.cpu: unknown field"},
        {"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, uid: x}\n---\n" POD_HEAD
         "  containers: [{name: c, image: /i, args: [x]}]\n",
         "document 1: metadata.uid: unknown field"},
        {POD_HEAD "  containers: [{name: c, image: /i, args: [x], envFrom: [{configMapRef: {name: m}}]}]\n",
         "spec.containers[0].envFrom[0]: ConfigMap \"m\" not found (the kubelet would keep the container waiting "
         "(CreateContainerConfigError); pea fails at once)"},
        {POD_HEAD "  containers: [{name: c, image: /i, args: [x], env: [{name: E, value: v, valueFrom: "
                  "{fieldRef: {fieldPath: metadata.name}}}]}]\n",
         "spec.containers[0].env[0].valueFrom: may not be given when value is not empty"},
        {POD_HEAD "  containers: [{name: c, image: /i, args: [x], env: [{name: E, valueFrom: "
                  "{fieldRef: {fieldPath: status.phase}}}]}]\n",
         "spec.containers[0].env[0].valueFrom.fieldRef.fieldPath: \"status.phase\" is not supported (metadata.name, "
         "metadata.namespace, metadata.uid, metadata.labels['KEY'], metadata.annotations['KEY'], spec.nodeName, "
         "spec.serviceAccountName, status.hostIP, status.hostIPs, status.podIP, status.podIPs)"},
        {POD_HEAD "  containers: [{name: c, image: /i, args: [x], env: [{name: E, valueFrom: "
                  "{fieldRef: {fieldPath: metadata.labels}}}]}]\n",
         "spec.containers[0].env[0].valueFrom.fieldRef.fieldPath: \"metadata.labels\" is not supported (metadata.name, "
         "metadata.namespace, metadata.uid, metadata.labels['KEY'], metadata.annotations['KEY'], spec.nodeName, "
         "spec.serviceAccountName, status.hostIP, status.hostIPs, status.podIP, status.podIPs)"},
        {POD_HEAD "  containers: [{name: c, image: /i, args: [x], env: [{name: E, valueFrom: "
                  "{resourceFieldRef: {resource: limits.cpu, divisor: 2}}}]}]\n",
         "spec.containers[0].env[0].valueFrom.resourceFieldRef.divisor: must be 1m or 1 for cpu"},
        {POD_HEAD "  containers: [{name: c, image: /i, args: [x], env: [{name: E, valueFrom: "
                  "{resourceFieldRef: {resource: limits.memory, containerName: other}}}]}]\n",
         "spec.containers[0].env[0].valueFrom.resourceFieldRef.containerName: no container \"other\" in the pod"},
        {POD_HEAD "  volumes: [{name: v, downwardAPI: {items: [{path: x, resourceFieldRef: {resource: limits.cpu}}]}}]\n"
                  "  containers: [{name: c, image: /i, args: [x]}]\n",
         "spec.volumes[0].downwardAPI.items[0].resourceFieldRef.containerName: missing (a volume's resourceFieldRef "
         "must name a container)"},
        {POD_HEAD "  volumes: [{name: v, configMap: {name: m, optional: true, items: [{key: k, path: ../x}]}}]\n"
                  "  containers: [{name: c, image: /i, args: [x]}]\n",
         "spec.volumes[0].configMap.items[0].path: must be a relative path without \"..\" and not starting with \"..\""},
        {POD_HEAD "  volumes: [{name: v, secret: {secretName: s, defaultMode: 01000}}]\n"
                  "  containers: [{name: c, image: /i, args: [x]}]\n",
         "spec.volumes[0].secret.defaultMode: must be between 0 and 511"},
        {POD_HEAD "  volumes: [{name: v, projected: {sources: [{configMap: {name: a, optional: true, items: "
                  "[{key: k, path: p}]}}, {secret: {name: b, optional: true, items: [{key: k, path: p}]}}]}}]\n"
                  "  containers: [{name: c, image: /i, args: [x]}]\n",
         "spec.volumes[0].projected: path \"p\" is given twice"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct pea_error err = {0};
        AUTO_MANIFEST struct pea_pod_manifest *m = parse(cases[i].text, &err);
        cr_assert_null(m, "expected a failure for:\n%s", cases[i].text);
        cr_expect_str_eq(err.msg, cases[i].message, "for:\n%s", cases[i].text);
    }
}

Test(pod_env, immutable_objects_keep_their_data)
{
    static const char one[] = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nimmutable: true\nstringData: {k: a}\n"
                              "---\n" POD_HEAD "  containers: [{name: c, image: /i, args: [x]}]\n";
    static const char two[] = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nimmutable: true\nstringData: {k: b}\n"
                              "---\n" POD_HEAD "  containers: [{name: c, image: /i, args: [x]}]\n";
    static const char gone[] = POD_HEAD "  containers: [{name: c, image: /i, args: [x]}]\n";
    struct pea_error err = {0};
    AUTO_MANIFEST struct pea_pod_manifest *a = parse(one, &err), *b = parse(two, &err), *c = parse(gone, &err);
    cr_assert(a && b && c, "%s", err.msg);
    cr_expect_eq(manifest_check_immutable(a, a, &err), 0);
    cr_expect_eq(manifest_check_immutable(a, c, &err), 0, "deleting is allowed");
    cr_assert_eq(manifest_check_immutable(a, b, &err), -1);
    cr_expect_str_eq(err.msg, "Secret s is immutable: its data cannot change (apply --recreate makes the pod anew)");
}

static char *env_of(const char *text, const char *name, struct pea_error *err)
{
    AUTO_MANIFEST struct pea_pod_manifest *m = parse(text, err);
    cr_assert_not_null(m, "%s", err->msg);
    struct pea_pod pod = {.name = "p", .data_dir = "/", .manifest = m, .infra_pidfd = -1};
    AUTO_JSON json_t *env = NULL, *vars = NULL;
    if (pod_env_build(&pod, &m->containers[0], "/bin", "p", &env, &vars, err) < 0)
        return NULL;
    const json_t *v = json_object_get(vars, name);
    return v ? xstrdup(json_string_value(v)) : NULL;
}

Test(pod_env, resources_round_up_and_requests_default_to_limits)
{
    static const char text[] =
        POD_HEAD "  containers:\n  - name: c\n    image: /i\n    args: [x]\n"
        "    resources: {limits: {cpu: 2500m, memory: 100Mi}, requests: {cpu: 1500m}}\n"
        "    env:\n"
        "    - {name: CPU, valueFrom: {resourceFieldRef: {resource: limits.cpu}}}\n"
        "    - {name: MCPU, valueFrom: {resourceFieldRef: {resource: limits.cpu, divisor: 1m}}}\n"
        "    - {name: REQ_CPU, valueFrom: {resourceFieldRef: {resource: requests.cpu, divisor: '1'}}}\n"
        "    - {name: MEM_G, valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1G}}}\n"
        "    - {name: MEM_K, valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1k}}}\n"
        "    - {name: REQ_MEM, valueFrom: {resourceFieldRef: {resource: requests.memory, divisor: 1Mi}}}\n"
        "    - {name: REQ_DISK, valueFrom: {resourceFieldRef: {resource: requests.ephemeral-storage}}}\n"
        "    - {name: ZERO_DIVISOR, valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 0}}}\n";
    static const struct {
        const char *name, *value;
    } want[] = {
        {"CPU", "3"},       /* 2.5 cores, rounded up */
        {"MCPU", "2500"},   {"REQ_CPU", "2"}, {"MEM_G", "1"}, /* 104857600 / 1e9, rounded up */
        {"MEM_K", "104858"}, {"REQ_MEM", "100"}, /* no request: the limit */
        {"REQ_DISK", "0"},  {"ZERO_DIVISOR", "104857600"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
        struct pea_error err = {0};
        AUTO_FREE char *got = env_of(text, want[i].name, &err);
        cr_assert_not_null(got, "%s: %s", want[i].name, err.msg);
        cr_expect_str_eq(got, want[i].value, "%s", want[i].name);
    }
}

Test(pod_env, labels_and_annotations_as_a_file)
{
    static const char text[] = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  labels: {b: '2', a: '1'}\n"
                               "  annotations: {note: \"say \\\"hi\\\"\\n\\tback\\\\slash\\u0001\"}\n"
                               "spec:\n  containers: [{name: c, image: /i, args: [x]}]\n";
    struct pea_error err = {0};
    AUTO_MANIFEST struct pea_pod_manifest *m = parse(text, &err);
    cr_assert_not_null(m, "%s", err.msg);
    struct pea_pod pod = {.name = "p", .manifest = m, .infra_pidfd = -1};
    AUTO_FREE char *labels = pod_field_value(&pod, m, "metadata.labels");
    cr_expect_str_eq(labels, "a=\"1\"\nb=\"2\"");
    AUTO_FREE char *notes = pod_field_value(&pod, m, "metadata.annotations");
    cr_expect_str_eq(notes, "note=\"say \\\"hi\\\"\\n\\tback\\\\slash\\x01\"");
    AUTO_FREE char *one = pod_field_value(&pod, m, "metadata.labels['b']");
    cr_expect_str_eq(one, "2");
}

Test(pod_env, yaml_modes_are_octal_with_a_leading_zero)
{
    static const char text[] = POD_HEAD "  volumes: [{name: v, configMap: {name: m, optional: true, defaultMode: 0400,"
                                        " items: [{key: k, path: p, mode: 0755}]}},"
                                        " {name: w, secret: {secretName: s, optional: true, defaultMode: 256}}]\n"
                                        "  containers: [{name: c, image: /i, args: [x]}]\n";
    struct pea_error err = {0};
    AUTO_MANIFEST struct pea_pod_manifest *m = parse(text, &err);
    cr_assert_not_null(m, "%s", err.msg);
    cr_expect_eq(m->volumes[0].default_mode, 0400);
    cr_expect_eq(m->volumes[0].projections[0].items[0].mode, 0755);
    cr_expect_eq(m->volumes[1].default_mode, 0400, "decimal 256 is 0400, as in JSON manifests");
}
