/* pea pod apply: make a pod what a manifest says, through pea-shim; --dry-run says what that would do. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli_options.h"
#include "pod_client.h"
#include "pea/pod_image.h"
#include "pea/pod_manifest.h"
#include "pea/util.h"

static void print_summary(const char *name, json_t *summary)
{
    static const char *const kinds[] = {"recreated", "updated", "added", "removed"};
    bool changed = false;
    for (size_t i = 0; i < ARRAY_SIZE(kinds); i++) {
        json_t *list = json_object_get(summary, kinds[i]);
        if (json_array_size(list) == 0)
            continue;
        changed = true;
        printf("%s:", kinds[i]);
        size_t j;
        json_t *c;
        json_array_foreach(list, j, c)
            printf("%s %s", j ? "," : "", json_string_value(c));
        printf("\n");
    }
    if (!changed)
        printf("pod %s unchanged\n", name);
}

/* A new pod's shim answers once each container has started (or failed to) or waits behind the init containers,
 * as an apply to a running pod does for the containers it changed: *containers gets their records. */
static int pod_await_started(const struct cli_globals *g, const char *name, json_t **containers,
                             struct pea_error *err)
{
    AUTO_POD struct pea_pod *pod = NULL;
    AUTO_FD int fd = -1;
    if (pod_open_served(g, name, &pod, &fd, err) < 0)
        return -1;
    json_t *req = pod_shim_request("wait");
    json_object_set_new(req, "for", json_string("started"));
    return pod_shim_call(fd, req, NULL, 0, POD_SHIM_REQUEST_TIMEOUT_MS, containers, NULL, err);
}

static bool names_hold(json_t *names, const char *name)
{
    size_t i;
    json_t *n;
    json_array_foreach(names, i, n)
        if (strcmp(json_string_value(n), name) == 0)
            return true;
    return false;
}

/* Each container (of names, or every one when names is NULL) whose last start failed: one line naming it and why.
 * The pod stays as it is, as in Kubernetes: a fixed manifest applied again replaces the container. 1 when any
 * failed, else 0. */
static int report_start_failures(const char *pod, json_t *containers, json_t *names)
{
    int status = 0;
    size_t i;
    json_t *c;
    json_array_foreach(containers, i, c) {
        const char *name = json_string_value(json_object_get(c, "name"));
        const char *why = json_string_value(json_object_get(c, "startError"));
        const char *state = json_string_value(json_object_get(c, "state"));
        if (!name || !why || (state && strcmp(state, "running") == 0) || (names && !names_hold(names, name)))
            continue;
        struct pea_error err = {0};
        pea_fail(&err, 0, "pod %s: container %s failed to start: %s", pod, name, why);
        status = cli_fail(&err);
    }
    return status;
}

/* What apply would do, from the pod's stored manifest and the new one, said as kubectl says it with --dry-run. */
int pod_apply_dry_run(const struct cli_globals *g, const struct pea_pod_manifest *m, bool recreate)
{
    AUTO_FREE char *dir = xasprintf("%s/pods/%s", g->root, m->name);
    if (access(dir, F_OK) != 0) {
        printf("pod/%s created (dry run)\n", m->name);
        return 0;
    }
    struct pea_error err = {0};
    AUTO_POD struct pea_pod *pod = NULL;
    if (pod_open(g->root, m->name, &pod, &err) < 0)
        return cli_fail(&err);
    if (recreate) {
        printf("pod/%s recreated (dry run)\n", m->name);
        return 0;
    }
    const struct pea_pod_manifest *old = pod->manifest;
    const char *sandbox_change = manifest_sandbox_change(old, m);
    if (sandbox_change) {
        pea_fail(&err, 0, "%s: changing it needs a new sandbox (apply --recreate)", sandbox_change);
        return cli_fail(&err);
    }
    AUTO_JSON json_t *summary = json_pack("{s:[], s:[], s:[], s:[]}", "recreated", "updated", "added", "removed");
    for (size_t i = 0; i < m->n_containers; i++) {
        const struct pea_pod_container *c = &m->containers[i], *before = NULL;
        for (size_t j = 0; j < old->n_containers && !before; j++)
            if (strcmp(old->containers[j].name, c->name) == 0)
                before = &old->containers[j];
        const char *kind = !before                                          ? "added"
                           : !manifest_container_same_but_resources(before, c) ? "recreated"
                           : !manifest_container_same_resources(before, c)     ? "updated"
                                                                                : NULL;
        if (kind)
            json_array_append_new(json_object_get(summary, kind), json_string(c->name));
    }
    for (size_t j = 0; j < old->n_containers; j++) {
        bool is_kept = false;
        for (size_t i = 0; i < m->n_containers; i++)
            is_kept |= strcmp(old->containers[j].name, m->containers[i].name) == 0;
        if (!is_kept)
            json_array_append_new(json_object_get(summary, "removed"), json_string(old->containers[j].name));
    }
    bool is_changed = false;
    const char *kind;
    json_t *names;
    json_object_foreach(summary, kind, names)
        is_changed |= json_array_size(names) > 0;
    printf("pod/%s %s (dry run)\n", m->name, is_changed ? "configured" : "unchanged");
    if (is_changed)
        print_summary(m->name, summary);
    return 0;
}

/* The images of the containers this apply starts: all of a new pod's (under --data-root); for a pod that exists,
 * those of its added and changed containers, in the store of the pod's own data root. */
static int pull_for_apply(const struct cli_globals *g, const struct pea_pod_manifest *m, const char *data_root,
                          bool recreate, struct pea_error *err)
{
    bool has_image_ref = false;
    for (size_t i = 0; i < m->n_containers; i++)
        has_image_ref |= m->containers[i].image_ref != NULL;
    for (size_t i = 0; i < m->n_init_containers; i++)
        has_image_ref |= m->init_containers[i].image_ref != NULL;
    for (size_t i = 0; i < m->n_volumes; i++)
        has_image_ref |= m->volumes[i].type == PEA_VOLUME_IMAGE;
    if (!has_image_ref)
        return 0;
    AUTO_FREE char *dir = xasprintf("%s/pods/%s", g->root, m->name);
    AUTO_POD struct pea_pod *pod = NULL;
    if (!recreate && access(dir, F_OK) == 0 && pod_open(g->root, m->name, &pod, err) < 0)
        return -1;
    AUTO_FREE char *pod_data_root = pod && pod->data_dir[0] ? pod_data_root_of(pod->data_dir) : NULL;
    if (pod_pull_images(g, m, pod ? pod->manifest : NULL, pod_data_root ? pod_data_root : data_root, err) < 0)
        return pea_wrap(err, "pod %s", m->name);
    return 0;
}

int pod_apply(const struct cli_globals *g, int argc, char **argv)
{
    const char *file = NULL, *data_root = POD_DEFAULT_DATA_ROOT, *pause = NULL, *output = NULL;
    bool recreate = false, no_wait = false, is_dry_run = false;
    struct cli_list configmaps = {0}, secrets = {0};
    const struct cli_option opts[] = {
        CLI_LIST("configmap", 0, &configmaps),
        CLI_LIST("secret", 0, &secrets),
        CLI_STRING("file", 'f', &file),
        CLI_STRING("data-root", 0, &data_root),
        CLI_STRING("pause", 0, &pause),
        CLI_FLAG("recreate", 0, &recreate),
        CLI_FLAG("no-wait", 0, &no_wait),
        CLI_FLAG("dry-run", 0, &is_dry_run),
        CLI_CHOICE("output", 'o', &output, "name"),
        CLI_END,
    };
    struct cli_args args;
    if (cli_parse_options("pod apply", argc, argv, opts, 0, &args) != 0)
        return 1;
    free(args.items);
    /* The options' values stay in argv: only the vectors are ours. */
    AUTO_FREE char **config_files = (char **)configmaps.items, **secret_files = (char **)secrets.items;
    if (!file || args.n != 0)
        return cli_usage_error("pod apply", "-f FILE is required, and nothing else");
    struct pea_error err = {0};
    struct pod_apply_options o = {.data_root = data_root, .recreate = recreate, .no_wait = no_wait,
                                  .is_dry_run = is_dry_run, .is_name_only = output != NULL};
    AUTO_FREE char *pause_path = NULL;
    if (!is_dry_run) {
        pause_path = pause ? xstrdup(pause) : pod_find_helper(g->argv0, "pea-pause", "sandbox", &err);
        if (!pause_path)
            return cli_fail(&err);
        o.pause_path = pause_path;
    }
    return pod_apply_file(g, file, config_files, secret_files, &o);
}

/* One pod: made, or changed to what m says (m is consumed). */
int pod_apply_manifest(const struct cli_globals *g, struct pea_pod_manifest *m, const struct pod_apply_options *o)
{
    const char *data_root = o->data_root, *pause_path = o->pause_path;
    bool recreate = o->recreate, no_wait = o->no_wait;
    struct pea_error err = {0};
    if (o->is_dry_run) {
        int r = pod_apply_dry_run(g, m, recreate);
        manifest_free(m);
        return r;
    }
    if (pull_for_apply(g, m, data_root, recreate, &err) < 0) {
        manifest_free(m);
        return cli_fail(&err);
    }
    /* The shim parses the manifest for itself, from exactly this text in a memfd: the client keeps only what it
     * needs, so that its own parse is gone before it reads the pod's state. */
    AUTO_FREE char *name = xstrdup(m->name);
    long long grace_seconds = m->termination_grace_seconds;
    AUTO_FD int manifest_fd = manifest_source_memfd(m, &err);
    manifest_free(m);
    if (manifest_fd < 0)
        return cli_fail(&err);
    bool is_name_only = o->is_name_only;
    AUTO_POD struct pea_pod *pod = NULL;
    AUTO_FREE char *dir = xasprintf("%s/pods/%s", g->root, name);
    if (access(dir, F_OK) == 0) {
        if (pod_open(g->root, name, &pod, &err) < 0)
            return cli_fail(&err);
        if (!recreate) {
            AUTO_FD int fd = -1;
            /* The shim died but the pod lives: a new shim takes it over, then applies what changed. */
            if (json_object_get(pod->state, "shim") && !pod_shim_is_alive(pod) && pod_infra_alive(pod)) {
                if (pod_adopt(g, name, &err) < 0)
                    return cli_fail(&err);
                if (!is_name_only)
                    printf("pod %s adopted by a new pea-shim\n", name);
            }
            pod_free(take_ptr(&pod));
            if (pod_open_served(g, name, &pod, &fd, &err) < 0)
                return cli_fail(&err);
            json_t *req = pod_shim_request("apply");
            /* Sent only when asked: a shim older than the argument refuses it (and answers at once without it). */
            if (no_wait)
                json_object_set_new(req, "noWait", json_true());
            /* The answer comes once recreated containers have been stopped (the new grace period) and started. */
            long long timeout_ms = POD_SHIM_REQUEST_TIMEOUT_MS + (no_wait ? 0 : grace_seconds * 1000);
            AUTO_JSON json_t *summary = NULL;
            if (pod_shim_call(fd, req, &manifest_fd, 1, timeout_ms > INT_MAX ? INT_MAX : (int)timeout_ms, &summary,
                              NULL, &err) < 0)
                return cli_fail(&err);
            if (is_name_only)
                printf("pod/%s\n", name);
            else
                print_summary(name, summary);
            if (no_wait)
                return 0;
            /* The containers it started anew: each has started or failed to by now. */
            AUTO_JSON json_t *started = json_array();
            json_array_extend(started, json_object_get(summary, "recreated"));
            json_array_extend(started, json_object_get(summary, "added"));
            AUTO_JSON json_t *status = NULL;
            if (json_array_size(started) == 0)
                return 0;
            if (pod_shim_call(fd, pod_shim_request("status"), NULL, 0, POD_SHIM_ANSWER_TIMEOUT_MS, &status, NULL,
                              &err) < 0)
                return cli_fail(&err);
            return report_start_failures(name, json_object_get(status, "containers"), started);
        }
        int r = pod_shim_is_alive(pod) ? pod_shim_shutdown(pod, &err) : 0;
        if (r == 0 && access(dir, F_OK) == 0)
            r = pod_remove(g->root, name, pod->manifest->termination_grace_seconds, &err);
        if (r < 0)
            return cli_fail(&err);
    }
    /* In the memfd: a manifest may be larger than one datagram of the protocol. */
    if (pod_spawn_shim(g, manifest_fd, data_root, pause_path, &err) < 0)
        return cli_fail(&err);
    AUTO_JSON json_t *containers = NULL;
    if (!no_wait && pod_await_started(g, name, &containers, &err) < 0)
        return cli_fail(&err);
    if (containers && report_start_failures(name, containers, NULL) != 0)
        return 1;
    if (is_name_only)
        printf("pod/%s\n", name);
    else
        printf("pod %s applied\n", name);
    return 0;
}
