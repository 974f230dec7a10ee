/* pea pod: run a pod from a Kubernetes Pod manifest, and look at or remove the pods under --root. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "cli_options.h"
#include "pod_client.h"
#include "pea/log.h"
#include "pea/pod.h"
#include "pea/pod_manifest.h"
#include "pea/pod_workload.h"
#include "pea/supervise.h"
#include "pea/sys.h"
#include "pea/util.h"

static const struct {
    const char *name, *usage, *summary;
} pod_commands[] = {
    {"run", "pod run [-d] -f FILE [--data-root DIR] [--pause PATH] [--dry-run]",
     "run a pod in the foreground until it finishes or is interrupted (Ctrl-C stops it in order), then tear it "
     "down; -d/--detach: under pea-shim; --dry-run: check FILE and create nothing"},
    {"rm", "pod rm [--force] [--grace-period N] [--now] [TYPE/]NAME...",
     "stop a pod's containers (grace period, then SIGKILL) and remove all of it; --force without --grace-period: "
     "SIGKILL at once; TYPE/NAME (deployment/web, job/migrate): every pod of that controller"},
    {"ls", "pod ls [-o table|wide|json|yaml|name] [-l KEY=VALUE,...]",
     "list the pods under --root (-l: those whose labels match)"},
    {"ps", "pod ps [-o table|wide|json|name] NAME", "list a pod's containers with state, exit code and restarts"},
    {"apply", "pod apply -f FILE [--data-root DIR] [--pause PATH] [--recreate] [--no-wait] [--dry-run] [-o name]",
     "make the pod what FILE says: start it under pea-shim, or change only what changed (and wait until the "
     "changed containers run, failing when one cannot start; --no-wait: not); --dry-run: check FILE, say what "
     "would change and change nothing"},
    {"logs", "pod logs [-c C] [--tail N] [-p] [-f] NAME", "print a container's output (from its log files)"},
    {"exec", "pod exec [-c C] [-i] [-t] [-e K=V] [-w DIR] [-u UID[:GID]] NAME [--] CMD...",
     "run a command in a container; its exit code is ours"},
    {"stop", "pod stop [--grace-period N] [--force] NAME...",
     "shut a pod down through its shim (which tears it down) and wait for it"},
    {"wait", "pod wait [-c C] [--for exit|running|started] NAME",
     "wait until the pod (or a container) has exited, runs, or has started once (or failed to)"},
    {"events", "pod events [-o table|json] NAME", "print the pod's events as they come"},
    {"get", "pod get [-o table|wide|json|yaml|name] [TYPE/]NAME...",
     "show pods, or what a Deployment, ReplicaSet, StatefulSet, DaemonSet or Job (TYPE/NAME) runs: its pods, a "
     "Job's succeeded and failed counts"},
    {"attach", "pod attach [-c C] [-i] [-t] NAME",
     "connect to a running container's output (and, with -i, its stdin: true); ends at EOF, Ctrl-C, or with -t "
     "Ctrl-P Ctrl-Q, and the container runs on"},
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

/* The foreground supervisor (in the child of run_in_own_session): create the pod, run it, tear it down. */
static int supervise_in_foreground(const struct cli_globals *g, struct pea_pod_manifest *m, const char *data_root,
                                   const char *pause_path)
{
    struct pea_error err = {0};
    struct pea_pod_options o = {.root = g->root, .data_root = data_root, .pause_path = pause_path};
    AUTO_POD struct pea_pod *pod = NULL;
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

/* The supervisor runs in a child in a session of its own, and so does everything it starts: a terminal's Ctrl-C
 * (SIGINT to its foreground process group) reaches only us, never the pod's processes (the infra would exit on it,
 * the containers get it instead of their stop signal, before any preStop hook). Each stop signal we get (SIGINT,
 * SIGTERM, SIGHUP) goes on to the supervisor, which stops the pod in order; should we die, it is sent SIGTERM. Our
 * exit status is the supervisor's (128+N had it died of signal N). */
static int run_in_own_session(const struct cli_globals *g, struct pea_pod_manifest *m, const char *data_root,
                              const char *pause_path)
{
    supervisor_block_stop_signals();
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        struct pea_error err = {0};
        pea_fail(&err, errno, "pod run: fork the supervisor");
        return cli_fail(&err);
    }
    if (pid == 0) {
        if (setsid() < 0 || prctl(PR_SET_PDEATHSIG, SIGTERM) < 0)
            log_warn("pod run: the supervisor's own session: %s", strerror(errno));
        if (getppid() != parent)
            raise(SIGTERM); /* we were gone before PR_SET_PDEATHSIG took: stop at once (the signal is pending) */
        int r = supervise_in_foreground(g, m, data_root, pause_path);
        fflush(NULL);
        _exit(r);
    }
    AUTO_FD int pidfd = sys_pidfd_open(pid, 0);
    sigset_t forwarded;
    sigemptyset(&forwarded);
    sigaddset(&forwarded, SIGINT);
    sigaddset(&forwarded, SIGTERM);
    sigaddset(&forwarded, SIGHUP);
    AUTO_FD int signal_fd = signalfd(-1, &forwarded, SFD_CLOEXEC | SFD_NONBLOCK);
    while (pidfd >= 0 && signal_fd >= 0) {
        struct pollfd p[2] = {{.fd = pidfd, .events = POLLIN}, {.fd = signal_fd, .events = POLLIN}};
        if (poll(p, 2, -1) < 0 && errno != EINTR)
            break;
        if (p[0].revents)
            break;
        struct signalfd_siginfo si;
        while (read(signal_fd, &si, sizeof si) == (ssize_t)sizeof si)
            sys_pidfd_send_signal(pidfd, (int)si.ssi_signo, NULL, 0);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            struct pea_error err = {0};
            pea_fail(&err, errno, "pod run: wait for the supervisor");
            return cli_fail(&err);
        }
    }
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

/* Fields accepted without effect on one node: said once, by the command the user ran. */
static void print_notices(const struct pea_pod_manifest *m)
{
    for (char **n = m->notices; n && *n; n++)
        log_warn("%s", *n);
}

static int pod_run(const struct cli_globals *g, int argc, char **argv)
{
    const char *file = NULL, *data_root = POD_DEFAULT_DATA_ROOT, *pause = NULL;
    bool is_detached = false, is_dry_run = false;
    struct cli_list configmaps = {0}, secrets = {0};
    const struct cli_option opts[] = {
        CLI_LIST("configmap", 0, &configmaps),
        CLI_LIST("secret", 0, &secrets),
        CLI_FLAG("detach", 'd', &is_detached),
        CLI_STRING("file", 'f', &file),
        CLI_STRING("data-root", 0, &data_root),
        CLI_STRING("pause", 0, &pause),
        CLI_FLAG("dry-run", 0, &is_dry_run),
        CLI_END,
    };
    struct cli_args args;
    if (cli_parse_options("pod run", argc, argv, opts, 0, &args) != 0)
        return 1;
    free(args.items);
    /* The options' values stay in argv: only the vectors are ours. */
    AUTO_FREE char **config_files = (char **)configmaps.items, **secret_files = (char **)secrets.items;
    if (!file || args.n != 0)
        return cli_usage_error("pod run", "-f FILE is required, and nothing else");
    struct pea_error err = {0};
    if (is_dry_run) {
        AUTO_MANIFEST struct pea_pod_manifest *checked = manifest_load_with_configs(file, config_files,
                secret_files, &err);
        if (!checked)
            return cli_fail(&err);
        print_notices(checked);
        printf("pod/%s created (dry run)\n", checked->name);
        return 0;
    }
    AUTO_FREE char *pause_path = pause ? xstrdup(pause) : pod_find_helper(g->argv0, "pea-pause", "sandbox", &err);
    if (!pause_path)
        return cli_fail(&err);
    if (is_detached) {
        AUTO_MANIFEST struct pea_pod_manifest *detached = manifest_load_with_configs(file, config_files,
                secret_files, &err);
        if (detached)
            print_notices(detached);
        if (detached && pod_pull_images(g, detached, NULL, data_root, &err) < 0)
            pea_wrap(&err, "pod %s", detached->name);
        AUTO_FD int manifest_fd = detached && !err.msg[0] ? manifest_source_memfd(detached, &err) : -1;
        if (manifest_fd < 0 || pod_spawn_shim(g, manifest_fd, data_root, pause_path, &err) < 0)
            return cli_fail(&err);
        printf("pod %s started\n", detached->name);
        return 0;
    }
    struct pea_pod_manifest *m = manifest_load_with_configs(file, config_files, secret_files, &err);
    if (!m)
        return cli_fail(&err);
    print_notices(m);
    if (pod_pull_images(g, m, NULL, data_root, &err) < 0) {
        pea_wrap(&err, "pod %s", m->name);
        manifest_free(m);
        return cli_fail(&err);
    }
    return run_in_own_session(g, m, data_root, pause_path);
}

/* A live shim tears its pod down itself (within grace_seconds when >= 0); one that does not answer (within 5 s with
 * --force) is killed first, so that it does not go on supervising what pod_remove takes apart. */
static int rm_through_shim(const struct pea_pod *pod, bool force, long long grace_seconds, struct pea_error *err)
{
    if (!pod_shim_is_alive(pod))
        return 0;
    struct pea_error why = {0};
    if (pod_shim_shutdown_within(pod, force ? POD_SHIM_FORCE_TIMEOUT_MS : POD_SHIM_ANSWER_TIMEOUT_MS, grace_seconds,
                                 &why) == 0)
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
    bool force = false, now = false;
    long long grace_given = -1;
    const struct cli_option opts[] = {
        CLI_FLAG("force", 'f', &force),
        CLI_INT("grace-period", 0, &grace_given),
        CLI_FLAG("now", 0, &now),
        CLI_END,
    };
    struct cli_args args;
    long long grace_seconds;
    if (cli_parse_options("pod rm", argc, argv, opts, 0, &args) != 0)
        return 1;
    AUTO_FREE char **names = args.items;
    if (pod_stop_grace_seconds("pod rm", force, now, grace_given, &grace_seconds) != 0)
        return 1;
    if (args.n == 0)
        return cli_usage_error("pod rm", "a pod name is required");
    int status = 0;
    for (size_t i = 0; i < args.n; i++) {
        struct pea_error err = {0};
        /* TYPE/NAME of a controller, as kubectl delete takes it: all its pods. */
        const char *slash = strchr(names[i], '/');
        AUTO_FREE char *type = slash ? strndup(names[i], (size_t)(slash - names[i])) : NULL;
        int kind = type ? manifest_workload_kind_from_type(type) : PEA_WORKLOAD_POD;
        if (kind > PEA_WORKLOAD_POD) {
            if (pod_rm_owner(g, kind, slash + 1, force, grace_seconds, &err) < 0)
                status = cli_fail(&err);
            continue;
        }
        if (pod_rm_one(g, cli_pod_name(names[i]), force, grace_seconds, &err) < 0)
            status = cli_fail(&err);
    }
    return status;
}

int pod_rm_one(const struct cli_globals *g, const char *name, bool force, long long grace_seconds,
               struct pea_error *err)
{
    AUTO_POD struct pea_pod *pod = NULL;
    long long grace = grace_seconds >= 0 ? grace_seconds : 30;
    if (pod_open(g->root, name, &pod, err) == 0) {
        if (grace_seconds < 0)
            grace = pod->manifest->termination_grace_seconds;
        if (rm_through_shim(pod, force, grace_seconds, err) < 0)
            return -1;
    }
    AUTO_FREE char *dir = xasprintf("%s/pods/%s", g->root, name);
    if ((!pod || access(dir, F_OK) == 0) && pod_remove(g->root, name, grace, err) < 0)
        return -1;
    return 0;
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

/* "-" for a value that is absent. */
static const char *or_dash(const char *s) { return s && *s ? s : "-"; }

/* The pod's address as kubectl -o wide shows it: without the prefix length; "host" on the host's network. */
static void format_address(const struct pea_pod_manifest *m, char *out, size_t len)
{
    if (m->network_mode == PEA_NETWORK_HOST)
        snprintf(out, len, "host");
    else if (m->address)
        snprintf(out, len, "%.*s", (int)strcspn(m->address, "/"), m->address);
    else
        snprintf(out, len, "-");
}

json_t *pod_summary(const struct cli_globals *g, const char *name)
{
    struct pea_error err = {0};
    AUTO_POD struct pea_pod *pod = NULL;
    if (pod_open(g->root, name, &pod, &err) < 0)
        return json_pack("{s:s, s:s}", "name", name, "status", "broken");
    AUTO_JSON json_t *shim_status = pod_shim_status(pod);
    AUTO_JSON json_t *containers = pod_containers(pod, shim_status);
    json_int_t restarts = 0, ready = 0, counted = 0;
    size_t i;
    json_t *record;
    json_array_foreach(containers, i, record) {
        restarts += json_integer_value(json_object_get(record, "restarts"));
        /* READY as kubectl counts it: app containers and sidecars. */
        if (json_is_true(json_object_get(record, "init")) && !json_is_true(json_object_get(record, "sidecar")))
            continue;
        counted++;
        ready += json_is_true(json_object_get(record, "ready"));
    }
    char ready_text[48];
    snprintf(ready_text, sizeof ready_text, "%lld/%lld", (long long)ready, (long long)counted);
    json_t *created = json_object_get(pod->state, "created");
    char address[64];
    format_address(pod->manifest, address, sizeof address);
    json_t *shim = json_object_get(json_object_get(pod->state, "shim"), "pid");
    json_t *owner = json_object_get(pod->manifest->annotations, PEA_OWNER_ANNOTATION);
    return json_pack("{s:s, s:s, s:s, s:I, s:I, s:O?, s:s, s:O?, s:O?, s:O}", "name", name, "status",
                     pod_status(pod, shim_status), "ready", ready_text, "restarts", restarts, "containers",
                     (json_int_t)pod->manifest->n_containers, "created", created, "ip", address, "shimPid", shim,
                     "owner", owner, "labels", pod->manifest->labels);
}

int pod_print_summaries(json_t *list, const char *output)
{
    size_t i;
    json_t *p;
    if (strcmp(output, "name") == 0) {
        json_array_foreach(list, i, p)
            printf("pod/%s\n", json_string_value(json_object_get(p, "name")));
        return 0;
    }
    if (strcmp(output, "json") == 0) {
        AUTO_FREE char *text = json_dumps(list, JSON_COMPACT);
        puts(text);
        return 0;
    }
    if (strcmp(output, "yaml") == 0)
        return cli_print_yaml(list);
    bool is_wide = strcmp(output, "wide") == 0;
    printf("%-24s %-10s %-6s %-10s %-8s %-*s", "NAME", "STATUS", "READY", "CONTAINERS", "RESTARTS", is_wide ? 5 : 0,
           "AGE");
    if (is_wide)
        printf(" %-16s %-8s %s", "IP", "SHIM", "OWNER");
    printf("\n");
    json_array_foreach(list, i, p) {
        char age[32], shim[32] = "-";
        format_age(json_string_value(json_object_get(p, "created")), age, sizeof age);
        if (json_object_get(p, "shimPid"))
            snprintf(shim, sizeof shim, "%lld", (long long)json_integer_value(json_object_get(p, "shimPid")));
        const char *ready = json_string_value(json_object_get(p, "ready"));
        printf("%-24s %-10s %-6s %-10lld %-8lld %-*s", json_string_value(json_object_get(p, "name")),
               json_string_value(json_object_get(p, "status")), ready ? ready : "-",
               (long long)json_integer_value(json_object_get(p, "containers")),
               (long long)json_integer_value(json_object_get(p, "restarts")), is_wide ? 5 : 0, age);
        if (is_wide)
            printf(" %-16s %-8s %s", or_dash(json_string_value(json_object_get(p, "ip"))), shim,
                   or_dash(json_string_value(json_object_get(p, "owner"))));
        printf("\n");
    }
    return 0;
}

/* kubectl's equality selector: KEY=VALUE (or KEY==VALUE, KEY!=VALUE, KEY alone) joined by commas. */
bool pod_labels_match(json_t *labels, const char *selector)
{
    AUTO_FREE char *copy = xstrdup(selector);
    char *save = NULL;
    for (char *term = strtok_r(copy, ",", &save); term; term = strtok_r(NULL, ",", &save)) {
        char *op = strpbrk(term, "!=");
        bool is_not = op && *op == '!';
        if (op) {
            *op = '\0';
            op += op[1] == '=' ? 2 : 1;
        }
        json_t *have = json_object_get(labels, term);
        bool is_equal = have && op && strcmp(json_string_value(have), op) == 0;
        if (op ? is_equal == is_not : !have)
            return false;
    }
    return true;
}

static int pod_ls(const struct cli_globals *g, int argc, char **argv)
{
    const char *output = "table", *selector = NULL;
    const struct cli_option opts[] = {CLI_CHOICE("output", 'o', &output, "table|wide|json|yaml|name"),
                                      CLI_STRING("selector", 'l', &selector), CLI_END};
    struct cli_args args;
    if (cli_parse_options("pod ls", argc, argv, opts, 0, &args) != 0)
        return 1;
    free(args.items);
    if (args.n != 0)
        return cli_usage_error("pod ls", "takes no arguments");
    struct pea_error err = {0};
    AUTO_STRV char **names = pod_list_names(g->root, &err);
    if (!names)
        return cli_fail(&err);
    if (strcmp(output, "name") == 0 && !selector) {
        for (char **n = names; *n; n++)
            printf("pod/%s\n", *n);
        return 0;
    }
    AUTO_JSON json_t *list = json_array();
    for (char **n = names; *n; n++) {
        json_t *summary = pod_summary(g, *n);
        if (selector && !pod_labels_match(json_object_get(summary, "labels"), selector))
            json_decref(summary);
        else
            json_array_append_new(list, summary);
    }
    return pod_print_summaries(list, output);
}

static int pod_ps(const struct cli_globals *g, int argc, char **argv)
{
    const char *output = "table";
    const struct cli_option opts[] = {CLI_CHOICE("output", 'o', &output, "table|wide|json|name"), CLI_END};
    struct cli_args args;
    if (cli_parse_options("pod ps", argc, argv, opts, 0, &args) != 0)
        return 1;
    AUTO_FREE char **positional = args.items;
    if (args.n != 1)
        return cli_usage_error("pod ps", "one pod name is required");
    struct pea_error err = {0};
    AUTO_POD struct pea_pod *pod = NULL;
    if (pod_open(g->root, cli_pod_name(positional[0]), &pod, &err) < 0)
        return cli_fail(&err);
    AUTO_JSON json_t *shim_status = pod_shim_status(pod);
    AUTO_JSON json_t *containers = pod_containers(pod, shim_status);
    size_t i;
    json_t *c;
    if (strcmp(output, "json") == 0) {
        AUTO_FREE char *text = json_dumps(containers, JSON_COMPACT | JSON_SORT_KEYS);
        puts(text);
        return 0;
    }
    if (strcmp(output, "name") == 0) {
        json_array_foreach(containers, i, c) printf("%s\n", json_string_value(json_object_get(c, "name")));
        return 0;
    }
    /* wide adds when each started and why the last start failed. */
    bool is_wide = strcmp(output, "wide") == 0;
    printf("%-24s %-8s %-6s %-8s %-9s %-*s", "CONTAINER", "STATE", "READY", "PID", "EXITCODE", is_wide ? 8 : 0,
           "RESTARTS");
    if (is_wide)
        printf(" %-30s %s", "STARTED", "REASON");
    printf("\n");
    json_array_foreach(containers, i, c) {
        json_t *code = json_object_get(c, "exitCode");
        char code_text[16] = "-";
        if (code)
            snprintf(code_text, sizeof code_text, "%lld", (long long)json_integer_value(code));
        printf("%-24s %-8s %-6s %-8lld %-9s %-*lld", json_string_value(json_object_get(c, "name")),
               json_string_value(json_object_get(c, "state")),
               json_is_true(json_object_get(c, "ready")) ? "true" : "false",
               (long long)json_integer_value(json_object_get(c, "pid")), code_text,
               is_wide ? 8 : 0, (long long)json_integer_value(json_object_get(c, "restarts")));
        const char *reason = json_string_value(json_object_get(c, "startError"));
        if (!reason)
            reason = json_string_value(json_object_get(c, "reason"));
        if (is_wide)
            printf(" %-30s %s", or_dash(json_string_value(json_object_get(c, "startedAt"))), or_dash(reason));
        printf("\n");
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
                    {"wait", pod_wait},   {"events", pod_events}, {"get", pod_get},
                    {"attach", pod_attach}};
    for (size_t i = 0; i < ARRAY_SIZE(handlers); i++) {
        if (strcmp(argv[1], handlers[i].name) != 0)
            continue;
        for (int a = 2; a < argc && strcmp(argv[a], "--") != 0; a++)
            if (strcmp(argv[a], "--help") == 0 || strcmp(argv[a], "-h") == 0) {
                printf("Usage: pea %s\n\n%s\n", pod_commands[i].usage, pod_commands[i].summary);
                return 0;
            }
        return handlers[i].run(g, argc - 1, argv + 1);
    }
    return cli_usage_error(NULL, "pod: unknown command \"%s\" (see pea pod --help)", argv[1]);
}
