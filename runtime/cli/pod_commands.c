/* pea pod: run a pod from a Kubernetes Pod manifest, and look at or remove the pods under --root. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include "cli.h"
#include "pod_client.h"
#include "pea/log.h"
#include "pea/pod.h"
#include "pea/pod_manifest.h"
#include "pea/supervise.h"
#include "pea/sys.h"
#include "pea/util.h"

static const struct {
    const char *name, *usage, *summary;
} pod_commands[] = {
    {"run", "pod run [--detach] -f FILE [--configmap FILE]... [--secret FILE]... [--data-root DIR] [--pause PATH]",
     "run a pod in the foreground until it finishes or is interrupted, then tear it down; --detach: under pea-shim"},
    {"rm", "pod rm [--force] NAME...", "stop a pod's containers (grace period, then SIGKILL) and remove all of it"},
    {"ls", "pod ls [--output table|json]", "list the pods under --root"},
    {"ps", "pod ps [--output table|json] NAME", "list a pod's containers with state, exit code and restarts"},
    {"apply", "pod apply -f FILE [--configmap FILE]... [--secret FILE]... [--data-root DIR] [--pause PATH] "
              "[--recreate] [--no-wait]",
     "make the pod what FILE says: start it under pea-shim, or change only what changed (and wait until the "
     "changed containers run; --no-wait: not)"},
    {"logs", "pod logs [-c C] [--tail N] [--previous] [-f] NAME", "print a container's output (from its log files)"},
    {"exec", "pod exec [-c C] [-i] [-t] [-e K=V] [-w DIR] [-u UID[:GID]] NAME -- CMD...",
     "run a command in a container; its exit code is ours"},
    {"stop", "pod stop NAME...", "shut a pod down through its shim (which tears it down) and wait for it"},
    {"wait", "pod wait [-c C] [--for exit|running|started] NAME",
     "wait until the pod (or a container) has exited, runs, or has started once (or failed to)"},
    {"events", "pod events [--output table|json] NAME", "print the pod's events as they come"},
};

static void print_pod_usage(FILE *f)
{
    fprintf(f, "Usage: pea pod COMMAND [options]\n\nCommands:\n");
    for (size_t i = 0; i < ARRAY_SIZE(pod_commands); i++)
        fprintf(f, "  %-72s %s\n", pod_commands[i].usage, pod_commands[i].summary);
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
    enum { OPT_DATA_ROOT = 256, OPT_PAUSE, OPT_CONFIGMAP, OPT_SECRET };
    static const struct option opts[] = {
        {"detach", no_argument, NULL, 'd'},
        {"file", required_argument, NULL, 'f'},
        {"configmap", required_argument, NULL, OPT_CONFIGMAP},
        {"secret", required_argument, NULL, OPT_SECRET},
        {"data-root", required_argument, NULL, OPT_DATA_ROOT},
        {"pause", required_argument, NULL, OPT_PAUSE},
        {0},
    };
    const char *file = NULL, *data_root = POD_DEFAULT_DATA_ROOT, *pause = NULL;
    bool is_detached = false;
    AUTO_STRV char **configmaps = xcalloc(1, sizeof(char *)), **secrets = xcalloc(1, sizeof(char *));
    int c;
    while ((c = getopt_long(argc, argv, "+df:", opts, NULL)) != -1) {
        switch (c) {
        case 'd': is_detached = true; break;
        case 'f': file = optarg; break;
        case OPT_CONFIGMAP: strv_append(&configmaps, optarg); break;
        case OPT_SECRET: strv_append(&secrets, optarg); break;
        case OPT_DATA_ROOT: data_root = optarg; break;
        case OPT_PAUSE: pause = optarg; break;
        default: return cli_usage_error("pod run", "unknown option %s", argv[optind - 1]);
        }
    }
    if (!file || optind != argc)
        return cli_usage_error("pod run", "-f FILE is required, and nothing else");
    struct pea_error err = {0};
    AUTO_FREE char *pause_path = pause ? xstrdup(pause) : pod_find_helper(g->argv0, "pea-pause", "sandbox", &err);
    if (!pause_path)
        return cli_fail(&err);
    if (is_detached) {
        AUTO_MANIFEST struct pea_pod_manifest *detached = manifest_load_with_configs(file, configmaps, secrets, &err);
        AUTO_FD int manifest_fd = detached ? manifest_source_memfd(detached, &err) : -1;
        if (manifest_fd < 0 || pod_spawn_shim(g, manifest_fd, data_root, pause_path, &err) < 0)
            return cli_fail(&err);
        printf("pod %s started\n", detached->name);
        return 0;
    }
    struct pea_pod_manifest *m = manifest_load_with_configs(file, configmaps, secrets, &err);
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

/* A live shim tears its pod down itself; one that does not answer (within 5 s with --force) is killed first, so that
 * it does not go on supervising what pod_remove takes apart. */
static int rm_through_shim(const struct pea_pod *pod, bool force, struct pea_error *err)
{
    if (!pod_shim_is_alive(pod))
        return 0;
    struct pea_error why = {0};
    if (pod_shim_shutdown_within(pod, force ? POD_SHIM_FORCE_TIMEOUT_MS : POD_SHIM_ANSWER_TIMEOUT_MS, &why) == 0)
        return 0;
    /* Opened first, then checked against the recorded start time: the pidfd is the shim, or nothing is killed. */
    json_t *shim = json_object_get(pod->state, "shim");
    AUTO_FD int pidfd = sys_pidfd_open((pid_t)json_integer_value(json_object_get(shim, "pid")), 0);
    if (pidfd < 0 || !pod_shim_is_alive(pod))
        return 0;
    if (sys_pidfd_send_signal(pidfd, SIGKILL, NULL, 0) < 0)
        return pea_fail(err, errno, "pod %s: kill its shim that does not answer (%s)", pod->name, why.msg);
    log_warn("%s: killed it", why.msg);
    /* SIGKILL ends even a stopped process; its exit shows on the pidfd at once, unless it is stuck in the kernel. */
    struct pollfd p = {.fd = pidfd, .events = POLLIN};
    poll(&p, 1, 5000);
    return 0;
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
        if (pod_open(g->root, argv[i], &pod, &err) == 0) {
            grace = pod->manifest->termination_grace_seconds;
            if (rm_through_shim(pod, force, &err) < 0) {
                status = cli_fail(&err);
                continue;
            }
        }
        AUTO_FREE char *dir = xasprintf("%s/pods/%s", g->root, argv[i]);
        if ((!pod || access(dir, F_OK) == 0) && pod_remove(g->root, argv[i], force ? 0 : grace, &err) < 0)
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

/* "gone": stale state from before a reboot. A shim's pod: what the shim says, "degraded" when the shim is gone but
 * the infra lives, "stopped" when both are. A foreground pod (no shim): as recorded, "degraded" once its infra
 * is gone. */
static const char *pod_status(const struct pea_pod *pod, json_t *shim_status)
{
    if (pod_state_is_from_an_earlier_boot(pod->state))
        return "gone";
    if (shim_status && json_string_value(json_object_get(shim_status, "status")))
        return json_string_value(json_object_get(shim_status, "status"));
    bool is_infra_alive = pod_infra_alive(pod);
    if (json_object_get(pod->state, "shim"))
        return is_infra_alive ? "degraded" : "stopped";
    const char *recorded = json_string_value(json_object_get(pod->state, "status"));
    if (recorded && strcmp(recorded, "running") == 0 && !is_infra_alive)
        return "degraded";
    return recorded ? recorded : "unknown";
}

/* The containers as the shim reports them, else from pod.json: an array of records with "name". */
static json_t *pod_containers(const struct pea_pod *pod, json_t *shim_status)
{
    json_t *from_shim = json_object_get(shim_status, "containers");
    if (json_is_array(from_shim))
        return json_incref(from_shim);
    json_t *list = json_array();
    const char *name;
    json_t *record;
    json_object_foreach(json_object_get(pod->state, "containers"), name, record) {
        json_t *copy = json_deep_copy(record);
        json_object_set_new(copy, "name", json_string(name));
        json_array_append_new(list, copy);
    }
    return list;
}

/* "42s", "5m", "3h", "2d" since an RFC 3339 UTC time. */
static void format_age(const char *created, char *out, size_t len)
{
    struct tm tm = {0};
    snprintf(out, len, "-");
    if (!created || !strptime(created, "%Y-%m-%dT%H:%M:%S", &tm))
        return;
    long long age = (long long)(time(NULL) - timegm(&tm));
    if (age < 0)
        age = 0;
    if (age < 120)
        snprintf(out, len, "%llds", age);
    else if (age < 2 * 3600)
        snprintf(out, len, "%lldm", age / 60);
    else if (age < 2 * 86400)
        snprintf(out, len, "%lldh", age / 3600);
    else
        snprintf(out, len, "%lldd", age / 86400);
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
        AUTO_JSON json_t *shim_status = pod_shim_status(pod);
        AUTO_JSON json_t *containers = pod_containers(pod, shim_status);
        json_int_t restarts = 0;
        size_t i;
        json_t *record;
        json_array_foreach(containers, i, record)
            restarts += json_integer_value(json_object_get(record, "restarts"));
        json_t *created = json_object_get(pod->state, "created");
        json_array_append_new(list, json_pack("{s:s, s:s, s:I, s:I, s:O?}", "name", *n, "status",
                                              pod_status(pod, shim_status), "restarts", restarts, "containers",
                                              (json_int_t)pod->manifest->n_containers, "created", created));
    }
    if (is_json) {
        AUTO_FREE char *text = json_dumps(list, JSON_COMPACT);
        puts(text);
        return 0;
    }
    printf("%-24s %-10s %-10s %-8s %s\n", "NAME", "STATUS", "CONTAINERS", "RESTARTS", "AGE");
    size_t i;
    json_t *p;
    json_array_foreach(list, i, p) {
        char age[32];
        format_age(json_string_value(json_object_get(p, "created")), age, sizeof age);
        printf("%-24s %-10s %-10lld %-8lld %s\n", json_string_value(json_object_get(p, "name")),
               json_string_value(json_object_get(p, "status")),
               (long long)json_integer_value(json_object_get(p, "containers")),
               (long long)json_integer_value(json_object_get(p, "restarts")), age);
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
    AUTO_JSON json_t *shim_status = pod_shim_status(pod);
    AUTO_JSON json_t *containers = pod_containers(pod, shim_status);
    if (is_json) {
        AUTO_FREE char *text = json_dumps(containers, JSON_COMPACT | JSON_SORT_KEYS);
        puts(text);
        return 0;
    }
    printf("%-24s %-8s %-8s %-9s %s\n", "CONTAINER", "STATE", "PID", "EXITCODE", "RESTARTS");
    size_t i;
    json_t *c;
    json_array_foreach(containers, i, c) {
        json_t *code = json_object_get(c, "exitCode");
        char code_text[16] = "-";
        if (code)
            snprintf(code_text, sizeof code_text, "%lld", (long long)json_integer_value(code));
        printf("%-24s %-8s %-8lld %-9s %lld\n", json_string_value(json_object_get(c, "name")),
               json_string_value(json_object_get(c, "state")),
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
    } handlers[] = {{"run", pod_run},     {"rm", pod_rm},     {"ls", pod_ls},     {"ps", pod_ps},
                    {"apply", pod_apply}, {"logs", pod_logs}, {"exec", pod_exec}, {"stop", pod_stop},
                    {"wait", pod_wait},   {"events", pod_events}};
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
