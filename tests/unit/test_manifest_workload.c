/* Files of several objects: controllers' templates as pods named NAME-N, Kubernetes' checks of selectors, restart
 * policies and Job fields, notices for what means nothing on one node, and every error of a file in document order
 * with its path. */
#include <criterion/criterion.h>
#include <string.h>

#include "pea/pod_workload.h"
#include "pea/util.h"
#include "manifest_expect.h"

#define TEMPLATE(restart)                                                                                             \
    "  template:\n    metadata: {labels: {app: w}}\n    spec:\n" restart                                             \
    "      containers: [{name: c, image: /i, args: [x]}]\n"

Test(manifest_workload, deployment_pods_are_named_and_owned)
{
    struct pea_manifest_errors errors;
    struct pea_manifest_objects *o =
        parse_manifest_objects("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 2\n"
              "  strategy: {type: Recreate}\n  selector: {matchLabels: {app: w}}\n" TEMPLATE(""), &errors);
    cr_assert_not_null(o, "%s", errors.n ? errors.lines[0] : "");
    cr_assert_eq(o->n, 1);
    cr_expect_eq(o->items[0].replicas, 2);
    cr_assert_eq(strv_len(o->notices), 1);
    cr_expect_str_eq(o->notices[0], "manifest: spec.strategy: accepted, without effect on a single node "
                                    "(Deployment web)");
    struct pea_error err = {0};
    struct pea_pod_manifest *m = manifest_workload_pod(o, &o->items[0], 1, &err);
    cr_assert_not_null(m, "%s", err.msg);
    cr_expect_str_eq(m->name, "web-1");
    cr_expect_str_eq(json_string_value(json_object_get(m->annotations, PEA_OWNER_ANNOTATION)), "Deployment/web");
    cr_expect_str_eq(json_string_value(json_object_get(m->labels, "app")), "w");
    manifest_free(m);
    manifest_objects_free(o);
}

Test(manifest_workload, job_defaults_and_statefulset_ordinals)
{
    struct pea_manifest_errors errors;
    struct pea_manifest_objects *o =
        parse_manifest_objects("apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec:\n" TEMPLATE("      restartPolicy: Never\n")
              "---\napiVersion: batch/v1\nkind: Job\nmetadata: {name: q}\nspec:\n  parallelism: 3\n"
              TEMPLATE("      restartPolicy: OnFailure\n")
              "---\napiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: s}\nspec:\n  ordinals: {start: 5}\n"
              "  selector: {matchExpressions: [{key: app, operator: In, values: [w, v]}]}\n" TEMPLATE(""),
              &errors);
    cr_assert_not_null(o, "%s", errors.n ? errors.lines[0] : "");
    cr_assert_eq(o->n, 3);
    cr_expect_eq(o->items[0].completions, 1);
    cr_expect_eq(o->items[0].replicas, 1);
    cr_expect_eq(o->items[0].backoff_limit, 6);
    cr_expect_eq(o->items[0].active_deadline_seconds, -1);
    cr_expect_eq(o->items[1].completions, -1); /* parallelism alone: a work queue */
    cr_expect_eq(o->items[1].replicas, 3);
    cr_expect_eq(o->items[2].first_index, 5);
    struct pea_error err = {0};
    struct pea_pod_manifest *m = manifest_workload_pod(o, &o->items[2], 5, &err);
    cr_assert_not_null(m, "%s", err.msg);
    cr_expect_str_eq(m->name, "s-5");
    cr_expect_str_eq(json_string_value(json_object_get(m->labels, "statefulset.kubernetes.io/pod-name")), "s-5");
    manifest_free(m);
    m = manifest_workload_pod(o, &o->items[0], 0, &err);
    cr_assert_not_null(m, "%s", err.msg);
    cr_expect_str_eq(json_string_value(json_object_get(m->labels, "job-name")), "j");
    manifest_free(m);
    manifest_objects_free(o);
}

Test(manifest_workload, every_error_in_document_order)
{
    /* The Pod parser reads volumes before containers and the spec before pea: the order here is the file's. */
    static const char *const text =
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n"
        "  containers:\n  - {name: a, image: /i, args: [x], ports: [{containerPort: 0}]}\n"
        "  - {name: B, image: /i, args: [x]}\n"
        "  volumes: [{name: v, emptyDir: {medium: Disk}}]\n"
        "  hostname: -x\n"
        "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  replicas: -1\n"
        "  selector: {matchLabels: {app: w}}\n" TEMPLATE("")
        "---\napiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: e}\nspec:\n"
        "  selector: {matchLabels: {app: other}}\n" TEMPLATE("      restartPolicy: Never\n")
        "---\nkind: Service\n";
    static const char *const expected[] = {
        "document 1: spec.containers[0].ports[0].containerPort: must be between 1 and 65535",
        "document 1: spec.containers[1].name: must be a DNS label ([a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63), not "
        "\"B\"",
        "document 1: spec.volumes[0].emptyDir.medium: must be one of \"\", \"Memory\", not \"Disk\"",
        "document 1: spec.hostname: must be a DNS label, not \"-x\"",
        "document 2: spec.replicas: must be between 0 and 2147483647",
        "document 3: spec.template.spec.restartPolicy: must be \"Always\" for a DaemonSet, not \"Never\"",
        "document 4: kind: \"Service\" is not supported (pea applies Pod, Deployment, ReplicaSet, StatefulSet, "
        "DaemonSet, Job, List, ConfigMap, Secret and PersistentVolumeClaim)",
    };
    expect_error_lines(text, expected, ARRAY_SIZE(expected));
}

/* A container's fields each report their own error, in document order, however many there are in it. */
Test(manifest_workload, every_error_of_one_container)
{
    static const char *const text =
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n"
        "  volumes: [{name: v, emptyDir: {}}]\n"
        "  containers:\n"
        "  - name: c\n    image: /i\n    args: [x]\n"
        "    ports: [{containerPort: 0}, {containerPort: 80, protcol: TCP}]\n"
        "    colour: blue\n"
        "    env: [{name: A, value: 1}]\n"
        "    workingDir: relative\n"
        "    volumeMounts: [{name: w, mountPath: x, readOnly: maybe}]\n"
        "    resources: {limits: {cpu: lots}, requests: {memory: some}}\n"
        "    securityContext: {runAsUser: -1, privileged: 3}\n"
        "    stdin: 2\n";
    static const char *const expected[] = {
        "spec.containers[0].ports[0].containerPort: must be between 1 and 65535",
        "spec.containers[0].ports[1].protcol: unknown field",
        "spec.containers[0].colour: unknown field",
        "spec.containers[0].env[0].value: must be a string",
        "spec.containers[0].workingDir: must be an absolute path",
        "spec.containers[0].volumeMounts[0].name: no volume named \"w\" in spec.volumes",
        "spec.containers[0].volumeMounts[0].mountPath: must be an absolute path without \"..\"",
        "spec.containers[0].volumeMounts[0].readOnly: must be a boolean",
        "spec.containers[0].resources.limits.cpu: invalid quantity \"lots\"",
        "spec.containers[0].resources.requests.memory: invalid quantity \"some\"",
        "spec.containers[0].securityContext.runAsUser: must be between 0 and 4294967294",
        "spec.containers[0].securityContext.privileged: must be a boolean",
        "spec.containers[0].stdin: must be a boolean",
    };
    expect_error_lines(text, expected, ARRAY_SIZE(expected));
}

Test(manifest_workload, kubernetes_checks)
{
    static const struct {
        const char *text, *message;
    } cases[] = {
        {"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  selector: {matchLabels: {app: x}}\n"
         TEMPLATE(""), "spec.template.metadata.labels: `selector` does not match template `labels`"},
        {"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n" TEMPLATE(""), "spec.selector: missing"},
        {"apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {name: d}\nspec:\n  selector: {}\n" TEMPLATE(""),
         "spec.selector: must not be empty (it would select every pod)"},
        {"apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec:\n" TEMPLATE(""),
         "spec.template.spec.restartPolicy: missing: a Job's pods need \"Never\" or \"OnFailure\""},
        {"apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec:\n  completionMode: Indexed\n"
         TEMPLATE("      restartPolicy: Never\n"),
         "spec.completionMode: only \"NonIndexed\" is supported by pea, not \"Indexed\""},
        {"apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec:\n  selector: {matchLabels: {app: w}}\n"
         TEMPLATE("      restartPolicy: Never\n"),
         "spec.selector: given without manualSelector: true (a Job's selector is made from its template)"},
        {"apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: s}\nspec:\n  volumeClaimTemplates: []\n"
         "  selector: {matchLabels: {app: w}}\n" TEMPLATE(""),
         "spec.volumeClaimTemplates: not supported by pea (a pod's own claims are not made from templates: name a "
         "claim in a persistentVolumeClaim volume, which every replica then shares)"},
        {"apiVersion: v1\nkind: Deployment\nmetadata: {name: d}\nspec: {}\n",
         "apiVersion: must be \"apps/v1\" for a Deployment, not \"v1\""},
        {"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 1000\n"
         "  selector: {matchLabels: {app: w}}\n" TEMPLATE(""), NULL},
        {"apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: /i, args: [x]}]}\n"
         "---\napiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: /i, args: [x]}]}\n",
         "document 2: metadata.name: Pod \"p\" is given twice"},
        {"apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Pod, metadata: {name: p}, spec: {containers: "
         "[{name: c, image: /i, args: [x], envFrom: [{configMapRef: {name: m}}]}]}}\n",
         "items[0].spec.containers[0].envFrom[0]: ConfigMap \"m\" not found (the kubelet would keep the container "
         "waiting (CreateContainerConfigError); pea fails at once)"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct pea_manifest_errors errors;
        struct pea_manifest_objects *o = parse_manifest_objects(cases[i].text, &errors);
        if (!cases[i].message) {
            cr_expect_not_null(o, "case %zu: %s", i, errors.n ? errors.lines[0] : "");
        } else {
            cr_expect_null(o, "case %zu", i);
            cr_expect_eq(errors.n, 1, "case %zu: %zu errors", i, errors.n);
            if (errors.n)
                cr_expect_str_eq(errors.lines[0], cases[i].message, "case %zu", i);
        }
        manifest_errors_free(&errors);
        manifest_objects_free(o);
    }
}
