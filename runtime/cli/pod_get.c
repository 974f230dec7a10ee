/* pea pod get: pods, or a controller's view as kubectl get shows it (TYPE/NAME): a Deployment's, ReplicaSet's,
 * StatefulSet's or DaemonSet's pods and how many are ready, a Job's status and counts. And -o yaml for the pod
 * listings, written with libyaml's emitter. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <yaml.h>

#include "cli_options.h"
#include "pod_job.h"
#include "pea/util.h"

/* ---- YAML ---- */

/* A string a YAML reader would take for something else (null, a boolean, a number, also YAML 1.1's yes/no/on/off)
 * is quoted, as kubectl quotes it. */
static bool needs_quotes(const char *s)
{
    static const char *const words[] = {"", "~", "null", "Null", "NULL", "true", "True", "TRUE", "false", "False",
                                        "FALSE", "yes", "Yes", "YES", "no", "No", "NO", "on", "On", "ON", "off",
                                        "Off", "OFF", "y", "Y", "n", "N", ".inf", ".Inf", "-.inf", ".nan", ".NaN"};
    for (size_t i = 0; i < ARRAY_SIZE(words); i++)
        if (strcmp(s, words[i]) == 0)
            return true;
    char *end;
    strtod(s, &end);
    return *end == '\0' || strncmp(s, "0x", 2) == 0 || strncmp(s, "0o", 2) == 0;
}

static int emit_scalar(yaml_emitter_t *e, const char *text, bool is_string)
{
    yaml_event_t ev;
    yaml_scalar_style_t style = is_string && needs_quotes(text) ? YAML_DOUBLE_QUOTED_SCALAR_STYLE
                                                                : YAML_ANY_SCALAR_STYLE;
    yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)text, (int)strlen(text), 1, 1, style);
    return yaml_emitter_emit(e, &ev) ? 0 : -1;
}

static int emit_value(yaml_emitter_t *e, json_t *v)
{
    yaml_event_t ev;
    char buf[64];
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE);
        if (!yaml_emitter_emit(e, &ev))
            return -1;
        const char *key;
        json_t *item;
        json_object_foreach(v, key, item)
            if (emit_scalar(e, key, true) < 0 || emit_value(e, item) < 0)
                return -1;
        yaml_mapping_end_event_initialize(&ev);
        return yaml_emitter_emit(e, &ev) ? 0 : -1;
    }
    case JSON_ARRAY: {
        yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_SEQUENCE_STYLE);
        if (!yaml_emitter_emit(e, &ev))
            return -1;
        size_t i;
        json_t *item;
        json_array_foreach(v, i, item)
            if (emit_value(e, item) < 0)
                return -1;
        yaml_sequence_end_event_initialize(&ev);
        return yaml_emitter_emit(e, &ev) ? 0 : -1;
    }
    case JSON_STRING: return emit_scalar(e, json_string_value(v), true);
    case JSON_INTEGER: snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(v)); break;
    case JSON_REAL: snprintf(buf, sizeof buf, "%.17g", json_real_value(v)); break;
    case JSON_TRUE: snprintf(buf, sizeof buf, "true"); break;
    case JSON_FALSE: snprintf(buf, sizeof buf, "false"); break;
    default: snprintf(buf, sizeof buf, "null"); break;
    }
    return emit_scalar(e, buf, false);
}

int cli_print_yaml(json_t *value)
{
    yaml_emitter_t e;
    yaml_event_t ev;
    if (!yaml_emitter_initialize(&e))
        return 1;
    yaml_emitter_set_output_file(&e, stdout);
    yaml_emitter_set_unicode(&e, 1);
    yaml_emitter_set_width(&e, -1);
    yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
    bool ok = yaml_emitter_emit(&e, &ev);
    yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1);
    ok = ok && yaml_emitter_emit(&e, &ev) && emit_value(&e, value) == 0;
    yaml_document_end_event_initialize(&ev, 1);
    ok = ok && yaml_emitter_emit(&e, &ev);
    yaml_stream_end_event_initialize(&ev);
    ok = ok && yaml_emitter_emit(&e, &ev) && yaml_emitter_flush(&e);
    yaml_emitter_delete(&e);
    fflush(stdout);
    return ok ? 0 : 1;
}

/* ---- controllers ---- */

/* What a Deployment, ReplicaSet, StatefulSet or DaemonSet runs: its pods and how many are ready; NULL when it has
 * none (pea keeps no record of them but their pods). */
static json_t *controller_view(const struct cli_globals *g, int kind, const char *name)
{
    AUTO_FREE char *owner = xasprintf("%s/%s", manifest_workload_kind_name((enum pea_workload_kind)kind), name);
    AUTO_STRV char **pods = pod_owned_by(g, owner);
    if (!pods[0])
        return NULL;
    json_t *list = json_array();
    long long ready = 0;
    for (char **p = pods; *p; p++) {
        json_t *summary = pod_summary(g, *p);
        const char *r = json_string_value(json_object_get(summary, "ready"));
        const char *slash = r ? strchr(r, '/') : NULL;
        ready += slash && strcmp(json_string_value(json_object_get(summary, "status")), "running") == 0 &&
                 strtoll(r, NULL, 10) == strtoll(slash + 1, NULL, 10);
        json_array_append_new(list, summary);
    }
    char ready_text[48];
    snprintf(ready_text, sizeof ready_text, "%lld/%zu", ready, json_array_size(list));
    return json_pack("{s:s, s:s, s:s, s:o}", "kind", manifest_workload_kind_name((enum pea_workload_kind)kind),
                     "name", name, "ready", ready_text, "pods", list);
}

static json_t *job_view(const struct cli_globals *g, const char *name, struct pea_error *err)
{
    json_t *record = pod_job_record(g, name, err);
    if (!record)
        return NULL;
    json_object_del(record, "spec");
    json_object_del(record, "controller");
    json_object_del(record, "startedAt");
    json_object_del(record, "next");
    json_object_set_new(record, "kind", json_string("Job"));
    return record;
}

static int kind_index(json_t *view)
{
    AUTO_FREE char *type = xstrdup(json_string_value(json_object_get(view, "kind")));
    for (char *c = type; *c; c++)
        *c = (char)(*c >= 'A' && *c <= 'Z' ? *c - 'A' + 'a' : *c);
    return manifest_workload_kind_from_type(type);
}

static void print_table(json_t *list, bool is_wide)
{
    size_t i;
    json_t *v;
    bool has_jobs = false, has_others = false;
    json_array_foreach(list, i, v) {
        bool is_job = strcmp(json_string_value(json_object_get(v, "kind")), "Job") == 0;
        has_jobs |= is_job;
        has_others |= !is_job;
    }
    if (has_others) {
        printf("%-32s %-7s %s\n", "NAME", "READY", "PODS");
        json_array_foreach(list, i, v) {
            if (strcmp(json_string_value(json_object_get(v, "kind")), "Job") == 0)
                continue;
            enum pea_workload_kind kind = (enum pea_workload_kind)kind_index(v);
            AUTO_FREE char *full = xasprintf("%s/%s", pod_workload_resource(kind),
                                             json_string_value(json_object_get(v, "name")));
            printf("%-32s %-7s ", full, json_string_value(json_object_get(v, "ready")));
            size_t j;
            json_t *p;
            json_array_foreach(json_object_get(v, "pods"), j, p)
                printf("%s%s", j ? "," : "", json_string_value(json_object_get(p, "name")));
            printf("\n");
        }
    }
    if (has_jobs) {
        printf("%s%-32s %-9s %-11s %-6s %-9s %-6s %s\n", has_others ? "\n" : "", "NAME", "STATUS", "COMPLETIONS",
               "ACTIVE", "SUCCEEDED", "FAILED", is_wide ? "REASON" : "");
        json_array_foreach(list, i, v) {
            if (strcmp(json_string_value(json_object_get(v, "kind")), "Job") != 0)
                continue;
            char completions[48];
            long long wanted = json_integer_value(json_object_get(v, "completions"));
            long long succeeded = json_integer_value(json_object_get(v, "succeeded"));
            if (wanted < 0)
                snprintf(completions, sizeof completions, "%lld/1 of %lld", succeeded,
                         (long long)json_integer_value(json_object_get(v, "parallelism")));
            else
                snprintf(completions, sizeof completions, "%lld/%lld", succeeded, wanted);
            AUTO_FREE char *full = xasprintf("job.batch/%s", json_string_value(json_object_get(v, "name")));
            const char *reason = json_string_value(json_object_get(v, "reason"));
            printf("%-32s %-9s %-11s %-6lld %-9lld %-6lld %s\n", full,
                   json_string_value(json_object_get(v, "status")), completions,
                   (long long)json_integer_value(json_object_get(v, "active")), succeeded,
                   (long long)json_integer_value(json_object_get(v, "failed")), is_wide && reason ? reason : "");
        }
    }
}

int pod_get(const struct cli_globals *g, int argc, char **argv)
{
    const char *output = "table";
    const struct cli_option opts[] = {CLI_CHOICE("output", 'o', &output, "table|wide|json|yaml|name"), CLI_END};
    struct cli_args args;
    if (cli_parse_options("pod get", argc, argv, opts, 0, &args) != 0)
        return 1;
    AUTO_FREE char **names = args.items;
    if (args.n == 0)
        return cli_usage_error("pod get", "a pod name or TYPE/NAME is required");
    AUTO_JSON json_t *pods = json_array(), *controllers = json_array(), *all = json_array();
    int status = 0;
    for (size_t i = 0; i < args.n; i++) {
        struct pea_error err = {0};
        const char *slash = strchr(names[i], '/');
        AUTO_FREE char *type = slash ? strndup(names[i], (size_t)(slash - names[i])) : NULL;
        const char *name = slash ? slash + 1 : names[i];
        int kind = type ? manifest_workload_kind_from_type(type) : PEA_WORKLOAD_POD;
        if (kind < 0)
            return cli_usage_error("pod get", "unknown type \"%s\" (pod, deployment, replicaset, statefulset, "
                                   "daemonset, job)", type);
        json_t *view;
        if (kind == PEA_WORKLOAD_POD) {
            AUTO_FREE char *dir = xasprintf("%s/pods/%s", g->root, name);
            view = access(dir, F_OK) == 0 ? pod_summary(g, name) : NULL;
            if (!view)
                pea_fail(&err, 0, "pod \"%s\" does not exist", name);
        } else if (kind == PEA_WORKLOAD_JOB) {
            view = job_view(g, name, &err);
        } else {
            view = controller_view(g, kind, name);
            if (!view)
                pea_fail(&err, 0, "%s \"%s\" does not exist (no pod belongs to it)",
                         pod_workload_resource((enum pea_workload_kind)kind), name);
        }
        if (!view) {
            status = cli_fail(&err);
            continue;
        }
        json_array_append(all, view);
        json_array_append_new(kind == PEA_WORKLOAD_POD ? pods : controllers, view);
    }
    if (strcmp(output, "json") == 0 || strcmp(output, "yaml") == 0) {
        json_t *shown = args.n == 1 && json_array_size(all) == 1 ? json_array_get(all, 0) : all;
        if (strcmp(output, "yaml") == 0)
            return cli_print_yaml(shown) | status;
        AUTO_FREE char *text = json_dumps(shown, JSON_COMPACT);
        puts(text);
        return status;
    }
    if (strcmp(output, "name") == 0) {
        size_t i;
        json_t *v;
        json_array_foreach(all, i, v) {
            const char *kind = json_string_value(json_object_get(v, "kind"));
            printf("%s/%s\n", kind ? pod_workload_resource((enum pea_workload_kind)kind_index(v)) : "pod",
                   json_string_value(json_object_get(v, "name")));
        }
        return status;
    }
    if (json_array_size(pods))
        pod_print_summaries(pods, output);
    if (json_array_size(controllers)) {
        if (json_array_size(pods))
            printf("\n");
        print_table(controllers, strcmp(output, "wide") == 0);
    }
    return status;
}
