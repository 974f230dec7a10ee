/* Fields only a cluster gives meaning to: accepted with one notice when shaped as their Kubernetes API types say,
 * refused with every error's path when not (as the API server would refuse them). */
#include <criterion/criterion.h>
#include <string.h>

#include "pea/pod_manifest.h"
#include "pea/pod_workload.h"
#include "pea/util.h"
#include "manifest_expect.h"

#define POD "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n"
#define CONTAINER "  containers: [{name: c, image: /i, args: [x]}]\n"

Test(manifest_cluster, well_formed_fields_keep_their_notice)
{
    static const char text[] =
        POD "  affinity:\n"
            "    nodeAffinity:\n"
            "      requiredDuringSchedulingIgnoredDuringExecution:\n"
            "        nodeSelectorTerms:\n"
            "        - matchExpressions:\n"
            "          - {key: topology.kubernetes.io/zone, operator: In, values: [a, b]}\n"
            "          - {key: cores, operator: Gt, values: ['-4']}\n"
            "          matchFields: [{key: metadata.name, operator: NotIn, values: [n1]}]\n"
            "      preferredDuringSchedulingIgnoredDuringExecution:\n"
            "      - {weight: 100, preference: {matchExpressions: [{key: k, operator: DoesNotExist}]}}\n"
            "    podAntiAffinity:\n"
            "      preferredDuringSchedulingIgnoredDuringExecution:\n"
            "      - weight: 1\n"
            "        podAffinityTerm:\n"
            "          labelSelector: {matchLabels: {app: web}, matchExpressions: [{key: a, operator: Exists}]}\n"
            "          namespaceSelector: {}\n"
            "          namespaces: [default]\n"
            "          topologyKey: kubernetes.io/hostname\n"
            "          matchLabelKeys: [pod-template-hash]\n"
            "  nodeSelector: {disktype: ssd, example.com/empty: ''}\n"
            "  tolerations:\n"
            "  - {operator: Exists}\n"
            "  - {key: k, operator: Equal, value: v, effect: NoExecute, tolerationSeconds: 3600}\n"
            "  - {key: k, value: v, effect: ''}\n"
            "  - {key: k, operator: Lt, value: '-900', effect: PreferNoSchedule}\n"
            "  topologySpreadConstraints:\n"
            "  - {maxSkew: 1, topologyKey: zone, whenUnsatisfiable: ScheduleAnyway, minDomains: 2,\n"
            "     nodeAffinityPolicy: Honor, nodeTaintsPolicy: Ignore, labelSelector: {matchLabels: {a: b}}}\n"
            "  schedulerName: my-scheduler\n"
            "  schedulingGates: [{name: example.com/foo}]\n"
            "  nodeName: n1\n"
            "  priorityClassName: high\n"
            "  priority: -5\n"
            "  preemptionPolicy: Never\n"
            "  readinessGates: [{conditionType: www.example.com/feature-1}]\n"
            "  enableServiceLinks: false\n"
            "  automountServiceAccountToken: true\n"
            "  imagePullSecrets: [{name: regcred}, {}]\n"
            "  overhead: {cpu: 250m, memory: 120Mi}\n"
            "  containers:\n"
            "  - name: c\n"
            "    image: /i\n"
            "    args: [x]\n"
            "    terminationMessagePath: /dev/termination-log\n"
            "    terminationMessagePolicy: FallbackToLogsOnError\n"
            "    resizePolicy: [{resourceName: cpu, restartPolicy: NotRequired},\n"
            "                   {resourceName: memory, restartPolicy: RestartContainer}]\n";
    static const char *const fields[] = {
        "spec.affinity", "spec.nodeSelector", "spec.tolerations", "spec.topologySpreadConstraints",
        "spec.schedulerName", "spec.schedulingGates", "spec.nodeName", "spec.priorityClassName", "spec.priority",
        "spec.preemptionPolicy", "spec.readinessGates", "spec.enableServiceLinks", "spec.automountServiceAccountToken",
        "spec.imagePullSecrets", "spec.overhead", "spec.containers[0].terminationMessagePath",
        "spec.containers[0].terminationMessagePolicy", "spec.containers[0].resizePolicy"};
    struct pea_manifest_errors errors;
    struct pea_manifest_objects *o = parse_manifest_objects(text, &errors);
    cr_assert_not_null(o, "%s", errors.n ? errors.lines[0] : "");
    struct pea_error err = {0};
    AUTO_MANIFEST struct pea_pod_manifest *m = manifest_parse(text, strlen(text), &err);
    cr_assert_not_null(m, "%s", err.msg);
    cr_assert_eq(strv_len(m->notices), ARRAY_SIZE(fields));
    for (size_t i = 0; i < ARRAY_SIZE(fields); i++)
        cr_expect(strncmp(m->notices[i], fields[i], strlen(fields[i])) == 0 &&
                      strstr(m->notices[i], ": accepted, without effect on a single node ("),
                  "%s", m->notices[i]);
    cr_expect_str_eq(m->notices[0], "spec.affinity: accepted, without effect on a single node (a scheduler's field)");
    manifest_objects_free(o);
}

struct shape_case {
    const char *spec;
    const char *const lines[4];
};

static const struct shape_case cases[] = {
    /* kubernetes/website's pods/pod-with-node-affinity.yaml, whose NodeSelector is written as a list */
    {"  affinity:\n    nodeAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n"
     "      - {weight: 5, preference: {matchExpressions: [{key: z, operator: In, values: [a]}]}}\n",
     {"spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution: must be an object"}},
    {"  affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {}}}\n",
     {"spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms: missing"}},
    {"  affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: []}}}\n",
     {"spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms: must hold at "
      "least one element"}},
    {"  affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms:\n"
     "    [{matchExpressions: [{key: z, operator: Near, values: [a]}, {operator: In, values: [a], extra: 1}]}]}}}\n",
     {"spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0]."
      "matchExpressions[0].operator: must be one of \"In\", \"NotIn\", \"Exists\", \"DoesNotExist\", \"Gt\", \"Lt\", "
      "not \"Near\"",
      "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0]."
      "matchExpressions[1].extra: unknown field",
      "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0]."
      "matchExpressions[1].key: missing"}},
    {"  affinity: {nodeAffinity: {preferredDuringSchedulingIgnoredDuringExecution: [{weight: 0, preference: {}},\n"
     "    {weight: 1, preference: {matchExpressions: [{key: k, operator: Lt, values: [a]},\n"
     "                                                {key: k, operator: In}, {key: k, operator: Exists, values: [a]}]}"
     "}]}}\n",
     {"spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight: must be between 1 and "
      "100",
      "spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[1].preference.matchExpressions[0]."
      "values: must hold one integer when operator is Gt or Lt",
      "spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[1].preference.matchExpressions[1]."
      "values: must hold at least one value when operator is In or NotIn",
      "spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[1].preference.matchExpressions[2]."
      "values: must be empty when operator is Exists or DoesNotExist"}},
    {"  affinity: {podAffinity: {requiredDuringSchedulingIgnoredDuringExecution: [{labelSelector:\n"
     "    {matchLabels: {app: 1}, matchExpressions: [{key: a, operator: Gt, values: ['1']}]}}]}, nodeAfinity: {}}\n",
     {"spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].labelSelector.matchLabels.app: "
      "must be a string",
      "spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].labelSelector.matchExpressions[0]."
      "operator: must be one of \"In\", \"NotIn\", \"Exists\", \"DoesNotExist\", not \"Gt\"",
      "spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey: missing",
      "spec.affinity.nodeAfinity: unknown field"}},
    {"  affinity: {podAntiAffinity: {preferredDuringSchedulingIgnoredDuringExecution: [{weight: 101,\n"
     "    podAffinityTerm: {topologyKey: zone, namespaces: zone}}]}}\n",
     {"spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight: must be between 1 "
      "and 100",
      "spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm.namespaces: "
      "must be a list"}},
    {"  nodeSelector: {disktype: true, 'bad key': ssd, zone: 'a b'}\n",
     {"spec.nodeSelector.disktype: must be a string",
      "spec.nodeSelector.bad key: key must be [DNS subdomain of at most 253/]name of at most 63 of [A-Za-z0-9._-], "
      "beginning and ending alphanumeric",
      "spec.nodeSelector.zone: value must be empty or at most 63 of [A-Za-z0-9._-], beginning and ending "
      "alphanumeric"}},
    {"  tolerations: {key: k}\n", {"spec.tolerations: must be a list"}},
    {"  tolerations: [{key: k, operator: Equals}, {effect: NoExec, operator: Exists}, {value: v},\n"
     "                {key: k, operator: Exists, value: v}]\n",
     {"spec.tolerations[0].operator: must be one of \"Exists\", \"Equal\", \"Gt\", \"Lt\", not \"Equals\"",
      "spec.tolerations[1].effect: must be one of \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\", not \"NoExec\"",
      "spec.tolerations[2].operator: must be Exists when key is empty",
      "spec.tolerations[3].value: must be empty when operator is Exists"}},
    {"  tolerations: [{key: k, tolerationSeconds: '60'}, {key: k, effect: NoSchedule, tolerationSeconds: 60},\n"
     "                {key: k, operator: Gt, value: 9x}, {key: k, operator: Lt}]\n",
     {"spec.tolerations[0].tolerationSeconds: must be an integer",
      "spec.tolerations[1].effect: must be NoExecute when tolerationSeconds is set",
      "spec.tolerations[2].value: must be an integer when operator is Gt or Lt",
      "spec.tolerations[3].value: must be an integer when operator is Gt or Lt"}},
    {"  topologySpreadConstraints: [{maxSkew: 0, whenUnsatisfiable: DoNotScheduleAnyway, nodeTaintsPolicy: honor}]\n",
     {"spec.topologySpreadConstraints[0].maxSkew: must be between 1 and 2147483647",
      "spec.topologySpreadConstraints[0].whenUnsatisfiable: must be one of \"DoNotSchedule\", \"ScheduleAnyway\", not "
      "\"DoNotScheduleAnyway\"",
      "spec.topologySpreadConstraints[0].nodeTaintsPolicy: must be one of \"Honor\", \"Ignore\", not \"honor\"",
      "spec.topologySpreadConstraints[0].topologyKey: missing"}},
    {"  schedulerName: [a]\n  nodeName: 1\n  priority: 2147483648\n  preemptionPolicy: Sometimes\n",
     {"spec.schedulerName: must be a string", "spec.nodeName: must be a string",
      "spec.priority: must be between -2147483648 and 2147483647",
      "spec.preemptionPolicy: must be one of \"PreemptLowerPriority\", \"Never\", not \"Sometimes\""}},
    {"  schedulingGates: [example.com/foo]\n  readinessGates: [{type: Ready}]\n  enableServiceLinks: 'false'\n",
     {"spec.schedulingGates[0]: must be an object", "spec.readinessGates[0].type: unknown field",
      "spec.readinessGates[0].conditionType: missing", "spec.enableServiceLinks: must be a boolean"}},
    {"  automountServiceAccountToken: 0\n  imagePullSecrets: [regcred]\n  overhead: {cpu: lots, memory: [1]}\n",
     {"spec.automountServiceAccountToken: must be a boolean", "spec.imagePullSecrets[0]: must be an object",
      "spec.overhead.cpu: invalid quantity \"lots\"",
      "spec.overhead.memory: must be a quantity (a string or a number)"}},
};

Test(manifest_cluster, malformed_fields_are_refused_with_every_path)
{
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        AUTO_FREE char *text = xasprintf(POD "%s" CONTAINER, cases[i].spec);
        struct pea_manifest_errors errors;
        struct pea_manifest_objects *o = parse_manifest_objects(text, &errors);
        cr_expect_null(o, "case %zu accepted", i);
        manifest_objects_free(o);
        size_t n = 0;
        while (n < ARRAY_SIZE(cases[i].lines) && cases[i].lines[n])
            n++;
        for (size_t j = 0; j < errors.n && j < n; j++)
            cr_expect_str_eq(errors.lines[j], cases[i].lines[j], "case %zu line %zu", i, j);
        cr_expect_eq(errors.n, n, "case %zu: %zu lines, first %s", i, errors.n, errors.n ? errors.lines[0] : "");
        manifest_errors_free(&errors);
        /* Without a collector the first error ends the parse. */
        struct pea_error err = {0};
        struct pea_pod_manifest *m = manifest_parse(text, strlen(text), &err);
        cr_expect_null(m, "case %zu accepted", i);
        manifest_free(m);
        cr_expect_str_eq(err.msg, cases[i].lines[0], "case %zu", i);
    }
}

Test(manifest_cluster, container_fields_are_checked_in_every_container)
{
    static const char text[] =
        POD "  initContainers: [{name: i, image: /i, args: [x], terminationMessagePolicy: Fallback}]\n"
            "  containers:\n"
            "  - {name: c, image: /i, args: [x], terminationMessagePath: 7,\n"
            "     resizePolicy: [{resourceName: storage, restartPolicy: Never}, {resourceName: cpu}]}\n";
    static const char *const expected[] = {
        "spec.initContainers[0].terminationMessagePolicy: must be one of \"File\", \"FallbackToLogsOnError\", not "
        "\"Fallback\"",
        "spec.containers[0].terminationMessagePath: must be a string",
        "spec.containers[0].resizePolicy[0].resourceName: must be one of \"cpu\", \"memory\", not \"storage\"",
        "spec.containers[0].resizePolicy[0].restartPolicy: must be one of \"NotRequired\", \"RestartContainer\", not "
        "\"Never\"",
        "spec.containers[0].resizePolicy[1].restartPolicy: missing",
    };
    expect_error_lines(text, expected, ARRAY_SIZE(expected));
}

Test(manifest_cluster, template_errors_carry_the_template_path)
{
    static const char text[] = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n"
                               "  selector: {matchLabels: {app: w}}\n"
                               "  template:\n    metadata: {labels: {app: w}}\n    spec:\n"
                               "      tolerations: [{key: k, effect: Never}]\n"
                               "      containers: [{name: c, image: /i, args: [x]}]\n";
    struct pea_manifest_errors errors;
    cr_assert_null(parse_manifest_objects(text, &errors));
    cr_assert_eq(errors.n, 1);
    cr_expect_str_eq(errors.lines[0], "spec.template.spec.tolerations[0].effect: must be one of \"NoSchedule\", "
                                      "\"PreferNoSchedule\", \"NoExecute\", not \"Never\"");
    manifest_errors_free(&errors);
}
