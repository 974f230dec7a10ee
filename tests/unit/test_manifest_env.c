/* Env lists that the YAML parse reads entry by entry instead of into the tree: the same model, the same first error
 * and the same comparisons as the parse of the same manifest written as JSON, whose env stays in the tree. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pea/pod_manifest.h"
#include "pea/pod_workload.h"
#include "pea/util.h"
#include "../../sandbox/manifest_sources.h"

#ifndef __has_feature
#define __has_feature(x) 0
#endif

#define POD "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n"

/* The same manifest as JSON (its env lists are parsed from the tree): YAML → tree → JSON text. */
static char *as_json(const char *yaml)
{
    struct pea_error err = {0};
    AUTO_JSON json_t *tree = manifest_yaml_to_json(yaml, strlen(yaml), &err);
    cr_assert_not_null(tree, "%s", err.msg);
    return json_dumps(tree, JSON_COMPACT);
}

/* Both parses fail, with exactly want. */
static void expect_error(const char *yaml, const char *want)
{
    AUTO_FREE char *json = as_json(yaml);
    struct pea_error from_yaml = {0}, from_json = {0};
    AUTO_MANIFEST struct pea_pod_manifest *a = manifest_parse(yaml, strlen(yaml), &from_yaml);
    AUTO_MANIFEST struct pea_pod_manifest *b = manifest_parse(json, strlen(json), &from_json);
    cr_assert_null(a, "expected a failure for:\n%s", yaml);
    cr_assert_null(b, "expected a failure for:\n%s", json);
    cr_expect_str_eq(from_yaml.msg, want, "YAML:\n%s", yaml);
    cr_expect_str_eq(from_json.msg, want, "JSON:\n%s", json);
}

Test(manifest_env, the_first_error_is_the_one_the_tree_parse_finds_first)
{
    /* In the list. */
    expect_error(POD "spec:\n  containers:\n  - {name: c, image: /i, args: [x], env: [{name: A}, x]}\n",
                 "spec.containers[0].env[1]: must be an object");
    expect_error(POD "spec:\n  containers:\n  - {name: c, image: /i, args: [x], env: [{name: A}, {name: B, valu: x},"
                     " {name: 'C=D'}]}\n",
                 "spec.containers[0].env[1].valu: unknown field");
    expect_error(POD "spec:\n  containers:\n  - {name: c, image: /i, args: [x], env: [{name: A, value: x, valueFrom: "
                     "{fieldRef: {fieldPath: metadata.name}}}]}\n",
                 "spec.containers[0].env[0].valueFrom: may not be given when value is not empty");
    expect_error(POD "spec:\n  containers:\n  - {name: c, image: /i, args: [x], env: [{name: A, valueFrom: "
                     "{fieldRef: {fieldPath: status.phase}}}]}\n",
                 "spec.containers[0].env[0].valueFrom.fieldRef.fieldPath: \"status.phase\" is not supported "
                 "(metadata.name, metadata.namespace, metadata.uid, metadata.labels['KEY'], "
                 "metadata.annotations['KEY'], spec.nodeName, spec.serviceAccountName, status.hostIP, "
                 "status.hostIPs, status.podIP, status.podIPs)");
    expect_error(POD "spec:\n  containers:\n  - {name: c, image: /i, args: [x], env: [{name: A, value: 1}]}\n",
                 "spec.containers[0].env[0].value: must be a string");
    /* Before the list: the pod's fields, the containers before it, its own fields read first, envFrom. */
    expect_error("apiVersion: v1\nkind: Pod\nmetadata: {}\nspec:\n  containers:\n  - {name: c, image: /i, args: [x], "
                 "env: [x]}\n",
                 "metadata.name: missing");
    expect_error(POD "spec:\n  containers:\n  - {name: c, image: /i, args: [x], env: [x]}\nstatus: {}\n",
                 "status: unknown field");
    expect_error(POD "spec:\n  containers:\n  - {name: c, image: /i, args: [x], env: [x]}\n"
                     "  initContainers:\n  - {name: I, image: /i, args: [x]}\n",
                 "spec.initContainers[0].name: must be a DNS label ([a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63), "
                 "not \"I\"");
    expect_error(POD "spec:\n  containers:\n  - {name: c, image: ./i, args: [x]}\n  - {name: d, image: /i, args: [x], "
                     "env: [x]}\n",
                 "spec.containers[0].image: \"./i\": a directory must be an absolute path");
    expect_error(POD "spec:\n  containers:\n  - {name: c, image: /i, args: [x], env: [x], envFrom: [{}]}\n",
                 "spec.containers[0].envFrom[0]: needs exactly one of configMapRef, secretRef");
    expect_error(POD "spec:\n  containers:\n  - {name: c, image: /i, env: [x]}\n",
                 "spec.containers[0].command: missing (a directory image has no entrypoint: give command or args)");
    /* After it: the next containers, then the references checked across documents. */
    expect_error(POD "spec:\n  initContainers:\n  - {name: i, image: /i, args: [x], env: [{name: A, valueFrom: {}}]}\n"
                     "  containers:\n  - {name: C, image: /i, args: [x]}\n",
                 "spec.initContainers[0].env[0].valueFrom: must have one of fieldRef, resourceFieldRef, "
                 "configMapKeyRef, secretKeyRef");
    expect_error(POD "spec:\n  containers:\n  - {name: c, image: /i, args: [x], env: [{name: A, valueFrom: "
                     "{configMapKeyRef: {name: cm, key: k}}}]}\n",
                 "spec.containers[0].env[0].valueFrom: ConfigMap \"cm\" not found (the kubelet would keep the "
                 "container waiting (CreateContainerConfigError); pea fails at once)");
}

/* Entries of every kind, and a list given twice in one container, as YAML and as JSON. */
Test(manifest_env, yaml_and_json_give_the_same_entries)
{
    static const char yaml[] =
        POD "spec:\n"
            "  containers:\n"
            "  - name: c\n"
            "    image: /i\n"
            "    args: [x]\n"
            "    env:\n"
            "    - name: PLAIN\n"
            "      value: v\n"
            "    - {name: ABSENT}\n"
            "    - {name: 'NULL', value: null}\n"
            "    - {name: FIELD, valueFrom: {fieldRef: {apiVersion: v1, fieldPath: metadata.name}}}\n"
            "    - {name: CM, valueFrom: {configMapKeyRef: {name: cm, key: k, optional: true}}}\n"
            "    - {name: MEM, valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}}\n"
            "  - {name: d, image: /i, args: [x], env: []}\n"
            "  - {name: e, image: /i, args: [x], env: null}\n";
    AUTO_FREE char *json = as_json(yaml);
    struct pea_error err = {0};
    AUTO_MANIFEST struct pea_pod_manifest *a = manifest_parse(yaml, strlen(yaml), &err);
    cr_assert_not_null(a, "%s", err.msg);
    AUTO_MANIFEST struct pea_pod_manifest *b = manifest_parse(json, strlen(json), &err);
    cr_assert_not_null(b, "%s", err.msg);
    const struct pea_pod_container *c = &a->containers[0];
    cr_assert_eq(c->n_env, 6);
    cr_assert_str_eq(c->env[0].name, "PLAIN");
    cr_assert_str_eq(c->env[0].value, "v");
    cr_assert_null(c->env[0].entry_json);
    cr_assert_str_eq(c->env[1].value, "");
    cr_assert_str_eq(c->env[1].entry_json, "{\"name\":\"ABSENT\"}");
    cr_assert_str_eq(c->env[2].value, "");
    cr_assert_str_eq(c->env[2].entry_json, "{\"name\":\"NULL\",\"value\":null}");
    cr_assert_null(c->env[3].value);
    cr_assert_eq(c->env[3].from.source, PEA_VALUE_FIELD);
    cr_assert_str_eq(c->env[3].from.key, "metadata.name");
    cr_assert_eq(c->env[4].from.source, PEA_VALUE_CONFIG_MAP_KEY);
    cr_assert(c->env[4].from.is_optional);
    cr_assert_eq(c->env[5].from.divisor, 1 << 20);
    for (size_t i = 0; i < a->n_containers; i++) {
        const struct pea_pod_container *x = &a->containers[i], *y = &b->containers[i];
        cr_assert_eq(x->n_env, y->n_env);
        cr_assert_str_eq(x->identity, y->identity);
        for (size_t k = 0; k < x->n_env; k++) {
            cr_assert_str_eq(x->env[k].name, y->env[k].name);
            cr_assert_eq(!x->env[k].value, !y->env[k].value);
            if (x->env[k].value)
                cr_assert_str_eq(x->env[k].value, y->env[k].value);
            cr_assert_eq(!x->env[k].entry_json, !y->env[k].entry_json);
            if (x->env[k].entry_json)
                cr_assert_str_eq(x->env[k].entry_json, y->env[k].entry_json);
        }
        cr_assert(manifest_container_same_but_resources(x, y), "container %zu", i);
    }
    /* `env: []`, `env: null` and no env at all are told apart, as their canonical JSON does. */
    cr_assert_eq(a->containers[1].n_env, 0);
    cr_assert_eq(a->containers[2].n_env, 0);
    cr_assert_not(manifest_container_same_but_resources(&a->containers[1], &a->containers[2]));
}

/* Two containers differ exactly when their canonical JSON (with env) would. */
Test(manifest_env, containers_compare_as_their_canonical_json)
{
    static const char *const envs[] = {
        "[{name: A, value: v}]",
        "[{name: A, value: w}]",
        "[{name: B, value: v}]",
        "[{name: A}]",
        "[{name: A, value: ''}]",
        "[{name: A, value: null}]",
        "[{name: A, value: v}, {name: A, value: v}]",
        "[{name: A, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]",
        "[{name: A, valueFrom: {fieldRef: {fieldPath: metadata.name, apiVersion: v1}}}]",
        "[{name: A, valueFrom: {secretKeyRef: {name: s, key: k, optional: true}}}]",
        "[{name: A, valueFrom: {secretKeyRef: {name: s, key: k, optional: false}}}]",
        "[]",
        "null",
    };
    struct pea_pod_manifest *parsed[ARRAY_SIZE(envs)];
    for (size_t i = 0; i < ARRAY_SIZE(envs); i++) {
        struct pea_error err = {0};
        AUTO_FREE char *text = xasprintf(POD "spec:\n  containers:\n  - {name: c, image: /i, args: [x], env: %s}\n"
                                         "---\n{kind: Secret, apiVersion: v1, metadata: {name: s}, data: {k: dg==}}\n",
                                         envs[i]);
        parsed[i] = manifest_parse(text, strlen(text), &err);
        cr_assert_not_null(parsed[i], "%s: %s", envs[i], err.msg);
    }
    for (size_t i = 0; i < ARRAY_SIZE(envs); i++)
        for (size_t k = 0; k < ARRAY_SIZE(envs); k++)
            cr_expect_eq(manifest_container_same_but_resources(&parsed[i]->containers[0], &parsed[k]->containers[0]),
                         i == k, "%s against %s", envs[i], envs[k]);
    for (size_t i = 0; i < ARRAY_SIZE(envs); i++)
        manifest_free(parsed[i]);
}

/* A tree whose env lists the YAML parse took is no manifest by itself: dumped and parsed again without them, it
 * fails, where an empty list would have run the container without its env. */
Test(manifest_env, a_tree_without_its_lists_fails_loudly)
{
    static const char yaml[] = POD "spec:\n  containers:\n  - {name: c, image: /i, args: [x], "
                                   "env: [{name: A, value: v}]}\n";
    struct pea_error err = {0};
    __attribute__((cleanup(manifest_env_lists_free))) struct manifest_env_lists lists = {0};
    AUTO_JSON json_t *docs = manifest_documents(yaml, strlen(yaml), &lists, &err);
    cr_assert_not_null(docs, "%s", err.msg);
    cr_assert_eq(lists.n, 1);
    cr_assert_eq(lists.lists[0]->n_env, 1);
    AUTO_FREE char *text = json_dumps(json_array_get(docs, 0), JSON_COMPACT);
    AUTO_MANIFEST struct pea_pod_manifest *m = manifest_parse(text, strlen(text), &err);
    cr_assert_null(m, "%s", text);
    cr_assert_str_eq(err.msg, "spec.containers[0].env[0]: must be an object");
}

/* Every error of a file, in document order, with want's lines exactly: from the YAML (env entries read as parsed)
 * and from the same manifest as JSON (entries in the tree). */
static void expect_every_error(const char *yaml, const char *const *want, size_t n_want)
{
    AUTO_FREE char *json = as_json(yaml);
    const char *const texts[] = {yaml, json};
    for (size_t t = 0; t < ARRAY_SIZE(texts); t++) {
        struct pea_manifest_errors errors = {0};
        struct pea_error err = {0};
        cr_assert_null(manifest_parse_objects(texts[t], strlen(texts[t]), &errors, &err), "%s", texts[t]);
        for (size_t i = 0; i < errors.n && i < n_want; i++)
            cr_expect_str_eq(errors.lines[i], want[i], "%s line %zu: %s", t ? "JSON" : "YAML", i, errors.lines[i]);
        cr_expect_eq(errors.n, n_want, "%s: %zu lines", t ? "JSON" : "YAML", errors.n);
        manifest_errors_free(&errors);
    }
}

Test(manifest_env, every_error_of_env_and_env_from)
{
    static const char yaml[] =
        POD "spec:\n  containers:\n  - name: c\n    image: /i\n    args: [x]\n"
        "    envFrom:\n"
        "    - {prefix: 'A=', configMapRef: {name: m, extra: 1}, secretRef: {name: s}}\n"
        "    - {secretRef: {name: 3, optional: maybe}}\n"
        "    - x\n"
        "    env:\n"
        "    - {name: 'B=C', value: 1, other: x}\n"
        "    - {name: D, value: set, valueFrom: {fieldRef: {apiVersion: v2, fieldPath: status.phase}}}\n"
        "    - {valueFrom: {configMapKeyRef: {optional: 2}}}\n"
        "    - {name: E, valueFrom: {resourceFieldRef: {resource: limits.cpu, divisor: 3}, junk: 1}}\n"
        "    - {name: F, valueFrom: {fieldRef: {fieldPath: metadata.name}, secretKeyRef: {name: s, key: k}}}\n"
        "    - {name: G, value: fine}\n";
    static const char *const want[] = {
        "spec.containers[0].envFrom[0]: needs exactly one of configMapRef, secretRef",
        "spec.containers[0].envFrom[0].prefix: must be printable ASCII characters other than '='",
        "spec.containers[0].envFrom[1].secretRef.name: must be a string",
        "spec.containers[0].envFrom[1].secretRef.optional: must be a boolean",
        "spec.containers[0].envFrom[2]: must be an object",
        "spec.containers[0].env[0].name: must be printable ASCII characters other than '=', at least one",
        "spec.containers[0].env[0].value: must be a string",
        "spec.containers[0].env[0].other: unknown field",
        "spec.containers[0].env[1].valueFrom: may not be given when value is not empty",
        "spec.containers[0].env[1].valueFrom.fieldRef.apiVersion: must be \"v1\", not \"v2\"",
        "spec.containers[0].env[1].valueFrom.fieldRef.fieldPath: \"status.phase\" is not supported "
        "(metadata.name, metadata.namespace, metadata.uid, metadata.labels['KEY'], metadata.annotations['KEY'], "
        "spec.nodeName, spec.serviceAccountName, status.hostIP, status.hostIPs, status.podIP, status.podIPs)",
        "spec.containers[0].env[2].valueFrom.configMapKeyRef.optional: must be a boolean",
        "spec.containers[0].env[2].valueFrom.configMapKeyRef.name: missing",
        "spec.containers[0].env[2].valueFrom.configMapKeyRef.key: missing",
        "spec.containers[0].env[2].name: missing",
        "spec.containers[0].env[3].valueFrom.resourceFieldRef.divisor: must be 1m or 1 for cpu",
        "spec.containers[0].env[3].valueFrom.junk: unknown field",
        ("spec.containers[0].env[4].valueFrom: may not have more than one of fieldRef, resourceFieldRef, "
         "configMapKeyRef, secretKeyRef"),
    };
    expect_every_error(yaml, want, ARRAY_SIZE(want));
}

/* ---- memory ---- */

/* A Pod of one container whose env fills it to size bytes, as tests/bench/manifest.py writes it. */
static char *env_manifest(size_t size, size_t *len)
{
    static const char head[] = POD "spec:\n  containers:\n  - name: c\n    image: /i\n    args: [x]\n    env:\n";
    char *text = xmalloc(size + 1);
    size_t used = strlen(head);
    memcpy(text, head, used);
    for (size_t i = 0;; i++) {
        char entry[64];
        int n = snprintf(entry, sizeof entry, "    - {name: E%06zu, value: v%zu}\n", i, i);
        if (used + (size_t)n > size)
            break;
        memcpy(text + used, entry, (size_t)n);
        used += (size_t)n;
    }
    text[used] = '\0';
    *len = used;
    return text;
}

static size_t data_segment_bytes(void)
{
    FILE *f = fopen("/proc/self/status", "re");
    cr_assert_not_null(f);
    char line[256];
    size_t kib = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmData: %zu kB", &kib) == 1)
            break;
    fclose(f);
    cr_assert_gt(kib, 0);
    return kib * 1024;
}

/* Whether text parses in a child whose data segment (heap and private mappings: RLIMIT_DATA) may grow by budget
 * bytes at most: a bound on the parse's peak that no timing or other process can move. */
static bool parses_within(const char *text, size_t len, size_t budget)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        struct rlimit limit;
        limit.rlim_cur = limit.rlim_max = data_segment_bytes() + budget;
        if (setrlimit(RLIMIT_DATA, &limit) < 0)
            _exit(2);
        /* Out of memory is an outcome here, not news. */
        int null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (null_fd < 0 || dup2(null_fd, STDERR_FILENO) < 0)
            _exit(2);
        struct pea_error err = {0};
        struct pea_pod_manifest *m = manifest_parse(text, len, &err);
        _exit(m ? 0 : 1);
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(!WIFEXITED(status) || WEXITSTATUS(status) != 2, "setrlimit failed");
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* The parse of a manifest of env entries needs at most 8 times the manifest's size, at 100 KB, 1 MB and the 1.5 MiB
 * limit (a client's peak target is 10 times, with its start-up): about 4.5 here, 19.5 while the entries were held
 * as a parse tree. Not under AddressSanitizer, whose allocator maps its own reserves. */
Test(manifest_env, parse_needs_at_most_8_times_the_manifest)
{
#if defined(__SANITIZE_ADDRESS__) || __has_feature(address_sanitizer)
    cr_skip_test("the data segment of an AddressSanitizer build is its allocator's");
#endif
    static const size_t sizes[] = {100000, 1000000, 3 << 19};
    for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
        size_t len;
        AUTO_FREE char *text = env_manifest(sizes[i], &len);
        cr_expect(parses_within(text, len, 8 * len), "%zu bytes do not parse within 8 times that", len);
        /* The bound bites: the copy of the text alone takes it all. */
        cr_expect_not(parses_within(text, len, len), "%zu bytes parse within their own size", len);
    }
}
