/* pea pod: run a pod from a Kubernetes Pod manifest, and look at or remove the pods under --root. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "pea/log.h"
#include "pea/pod.h"
#include "pea/pod_manifest.h"
#include "pea/supervise.h"
#include "pea/util.h"

#define DEFAULT_DATA_ROOT "/var/lib/pea"

static const struct {
    const char *name, *usage, *summary;
} pod_commands[] = {
    {"run", "pod run -f FILE [--data-root DIR] [--pause PATH]",
     "run a pod in the foreground until it finishes or is interrupted; then tear it down"},
    {"rm", "pod rm [--force] NAME...", "stop a pod's containers (grace period, then SIGKILL) and remove all of it"},
    {"ls", "pod ls [--output table|json]", "list the pods under --root"},
    {"ps", "pod ps [--output table|json] NAME", "list a pod's containers with state, exit code and restarts"},
};

static void print_pod_usage(FILE *f)
{
    fprintf(f, "Usage: pea pod COMMAND [options]\n\nCommands:\n");
    for (size_t i = 0; i < ARRAY_SIZE(pod_commands); i++)
        fprintf(f, "  %-50s %s\n", pod_commands[i].usage, pod_commands[i].summary);
}

/* pea-pause sits beside pea when installed (libexec/pea) and in sandbox/ of a build tree. */
static char *find_pause(const char *argv0, struct pea_error *err)
{
    char self[PATH_MAX];
    if (argv0 && strchr(argv0, '/') && realpath(argv0, self)) {
        char *slash = strrchr(self, '/');
        *slash = '\0';
        static const char *const candidates[] = {"%s/pea-pause", "%s/../sandbox/pea-pause", "%s/../libexec/pea/pea-pause"};
        for (size_t i = 0; i < ARRAY_SIZE(candidates); i++) {
            char *path = xasprintf(candidates[i], self);
            if (access(path, X_OK) == 0)
                return path;
            free(path);
        }
    }
    if (access(PEA_PAUSE_INSTALLED, X_OK) == 0)
        return xstrdup(PEA_PAUSE_INSTALLED);
    pea_fail(err, ENOENT, "find pea-pause (beside pea, or %s; or give --pause)", PEA_PAUSE_INSTALLED);
    return NULL;
}

/* Output of every container on our stdout/stderr, each line prefixed with the container's name. */
struct run_output {
    struct {
        const char *container;
        bool is_mid_line[3];
    } seen[64];
    size_t n_seen;
};

static bool *mid_line_flag(struct run_output *o, const char *container, enum pod_stream stream)
{
    for (size_t i = 0; i < o->n_seen; i++)
        if (strcmp(o->seen[i].container, container) == 0)
            return &o->seen[i].is_mid_line[stream];
    if (o->n_seen == ARRAY_SIZE(o->seen))
        return NULL;
    o->seen[o->n_seen].container = container;
    return &o->seen[o->n_seen++].is_mid_line[stream];
}

static void run_on_output(void *ctx, const char *container, enum pod_stream stream, const char *buf, size_t len)
{
    FILE *f = stream == POD_STDERR ? stderr : stdout;
    bool scratch = false, *is_mid_line = mid_line_flag(ctx, container, stream);
    if (!is_mid_line)
        is_mid_line = &scratch;
    while (len > 0) {
        if (!*is_mid_line)
            fprintf(f, "[%s] ", container);
        const char *nl = memchr(buf, '\n', len);
        size_t n = nl ? (size_t)(nl - buf) + 1 : len;
        fwrite(buf, 1, n, f);
        *is_mid_line = !nl;
        buf += n;
        len -= n;
    }
    fflush(f);
}

static void run_on_event(void *ctx, const char *container, const char *what)
{
    (void)ctx;
    fprintf(stderr, "pea: pod: %s: %s\n", container, what);
}

static int pod_run(const struct cli_globals *g, int argc, char **argv)
{
    enum { OPT_DATA_ROOT = 256, OPT_PAUSE };
    static const struct option opts[] = {
        {"file", required_argument, NULL, 'f'},
        {"data-root", required_argument, NULL, OPT_DATA_ROOT},
        {"pause", required_argument, NULL, OPT_PAUSE},
        {0},
    };
    const char *file = NULL, *data_root = DEFAULT_DATA_ROOT, *pause = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "+f:", opts, NULL)) != -1) {
        switch (c) {
        case 'f': file = optarg; break;
        case OPT_DATA_ROOT: data_root = optarg; break;
        case OPT_PAUSE: pause = optarg; break;
        default: return cli_usage_error("pod run", "unknown option %s", argv[optind - 1]);
        }
    }
    if (!file || optind != argc)
        return cli_usage_error("pod run", "-f FILE is required, and nothing else");
    struct pea_error err = {0};
    AUTO_FREE char *pause_path = pause ? xstrdup(pause) : find_pause(g->argv0, &err);
    if (!pause_path)
        return cli_fail(&err);
    struct pea_pod_manifest *m = manifest_load(file, &err);
    if (!m)
        return cli_fail(&err);
    struct pea_pod_options o = {.root = g->root, .data_root = data_root, .pause_path = pause_path};
    AUTO_POD struct pea_pod *pod = NULL;
    supervisor_block_stop_signals();
    if (pod_create(&o, m, &pod, &err) < 0)
        return cli_fail(&err);
    static struct run_output output;
    static const struct pod_supervisor_ops ops = {.on_output = run_on_output, .on_event = run_on_event};
    struct pod_supervisor *sup = supervisor_new(pod, &ops, &output, &err);
    int exit_code = 1;
    if (!sup) {
        struct pea_error ignored = {0};
        pod_remove(g->root, pod->name, 0, &ignored);
        return cli_fail(&err);
    }
    int r = supervisor_run(sup, &exit_code, &err);
    supervisor_free(sup);
    if (r < 0)
        return cli_fail(&err);
    return exit_code;
}

static int pod_rm(const struct cli_globals *g, int argc, char **argv)
{
    static const struct option opts[] = {{"force", no_argument, NULL, 'f'}, {0}};
    bool force = false;
    int c;
    while ((c = getopt_long(argc, argv, "+f", opts, NULL)) != -1) {
        if (c != 'f')
            return cli_usage_error("pod rm", "unknown option %s", argv[optind - 1]);
        force = true;
    }
    if (optind >= argc)
        return cli_usage_error("pod rm", "a pod name is required");
    int status = 0;
    for (int i = optind; i < argc; i++) {
        struct pea_error err = {0};
        AUTO_POD struct pea_pod *pod = NULL;
        long long grace = 30;
        if (pod_open(g->root, argv[i], &pod, &err) == 0)
            grace = pod->manifest->termination_grace_seconds;
        if (pod_remove(g->root, argv[i], force ? 0 : grace, &err) < 0)
            status = cli_fail(&err);
    }
    return status;
}

static bool parse_output_flag(int argc, char **argv, const char *command, bool *is_json, int *status)
{
    static const struct option opts[] = {{"output", required_argument, NULL, 'o'}, {0}};
    int c;
    *is_json = false;
    while ((c = getopt_long(argc, argv, "+o:", opts, NULL)) != -1) {
        if (c != 'o' || (strcmp(optarg, "json") != 0 && strcmp(optarg, "table") != 0)) {
            *status = cli_usage_error(command, "--output takes table or json");
            return false;
        }
        *is_json = strcmp(optarg, "json") == 0;
    }
    return true;
}

static const char *pod_status(const struct pea_pod *pod)
{
    const char *recorded = json_string_value(json_object_get(pod->state, "status"));
    if (recorded && strcmp(recorded, "running") == 0 && !pod_infra_alive(pod))
        return "degraded";
    return recorded ? recorded : "unknown";
}

static int pod_ls(const struct cli_globals *g, int argc, char **argv)
{
    bool is_json;
    int status = 0;
    if (!parse_output_flag(argc, argv, "pod ls", &is_json, &status))
        return status;
    struct pea_error err = {0};
    AUTO_STRV char **names = pod_list_names(g->root, &err);
    if (!names)
        return cli_fail(&err);
    AUTO_JSON json_t *list = json_array();
    for (char **n = names; *n; n++) {
        AUTO_POD struct pea_pod *pod = NULL;
        if (pod_open(g->root, *n, &pod, &err) < 0) {
            json_array_append_new(list, json_pack("{s:s, s:s}", "name", *n, "status", "broken"));
            continue;
        }
        unsigned restarts = 0;
        const char *key;
        json_t *value;
        json_object_foreach(json_object_get(pod->state, "containers"), key, value)
            restarts += (unsigned)json_integer_value(json_object_get(value, "restarts"));
        json_array_append_new(list, json_pack("{s:s, s:s, s:i, s:I, s:s}", "name", *n, "status", pod_status(pod),
                                              "restarts", restarts, "containers",
                                              (json_int_t)pod->manifest->n_containers, "created",
                                              json_string_value(json_object_get(pod->state, "created"))));
    }
    if (is_json) {
        AUTO_FREE char *text = json_dumps(list, JSON_COMPACT);
        puts(text);
        return 0;
    }
    printf("%-24s %-10s %-10s %-8s %s\n", "NAME", "STATUS", "CONTAINERS", "RESTARTS", "CREATED");
    size_t i;
    json_t *p;
    json_array_foreach(list, i, p) {
        json_t *created = json_object_get(p, "created");
        printf("%-24s %-10s %-10lld %-8lld %s\n", json_string_value(json_object_get(p, "name")),
               json_string_value(json_object_get(p, "status")),
               (long long)json_integer_value(json_object_get(p, "containers")),
               (long long)json_integer_value(json_object_get(p, "restarts")), created ? json_string_value(created) : "");
    }
    return 0;
}

static int pod_ps(const struct cli_globals *g, int argc, char **argv)
{
    bool is_json;
    int status = 0;
    if (!parse_output_flag(argc, argv, "pod ps", &is_json, &status))
        return status;
    if (optind + 1 != argc)
        return cli_usage_error("pod ps", "one pod name is required");
    struct pea_error err = {0};
    AUTO_POD struct pea_pod *pod = NULL;
    if (pod_open(g->root, argv[optind], &pod, &err) < 0)
        return cli_fail(&err);
    json_t *containers = json_object_get(pod->state, "containers");
    if (is_json) {
        AUTO_FREE char *text = json_dumps(containers, JSON_COMPACT | JSON_SORT_KEYS);
        puts(text);
        return 0;
    }
    printf("%-24s %-8s %-8s %-9s %s\n", "CONTAINER", "STATE", "PID", "EXITCODE", "RESTARTS");
    const char *name;
    json_t *c;
    json_object_foreach(containers, name, c) {
        json_t *code = json_object_get(c, "exitCode");
        char code_text[16] = "-";
        if (code)
            snprintf(code_text, sizeof code_text, "%lld", (long long)json_integer_value(code));
        printf("%-24s %-8s %-8lld %-9s %lld\n", name, json_string_value(json_object_get(c, "state")),
               (long long)json_integer_value(json_object_get(c, "pid")), code_text,
               (long long)json_integer_value(json_object_get(c, "restarts")));
    }
    return 0;
}

int cmd_pod(const struct cli_globals *g, int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        print_pod_usage(argc < 2 ? stderr : stdout);
        return argc < 2;
    }
    static const struct {
        const char *name;
        int (*run)(const struct cli_globals *, int, char **);
    } handlers[] = {{"run", pod_run}, {"rm", pod_rm}, {"ls", pod_ls}, {"ps", pod_ps}};
    for (size_t i = 0; i < ARRAY_SIZE(handlers); i++) {
        if (strcmp(argv[1], handlers[i].name) != 0)
            continue;
        for (int a = 2; a < argc && strcmp(argv[a], "--") != 0; a++)
            if (strcmp(argv[a], "--help") == 0 || strcmp(argv[a], "-h") == 0) {
                printf("Usage: pea %s\n\n%s\n", pod_commands[i].usage, pod_commands[i].summary);
                return 0;
            }
        optind = 0;
        return handlers[i].run(g, argc - 1, argv + 1);
    }
    return cli_usage_error(NULL, "pod: unknown command \"%s\" (see pea pod --help)", argv[1]);
}
