/* Commands that act on the container's cgroup: pause, resume, ps, update, events. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "pea/cgroup.h"
#include "pea/container.h"
#include "pea/util.h"

static int pause_or_resume(const struct cli_globals *g, const char *command, int argc, char **argv, bool frozen)
{
    if (argc != 2)
        return cli_usage_error(command, "expected exactly one container id");
    struct pea_error err = {0};
    return container_pause(g->root, argv[1], frozen, &err) < 0 ? cli_fail(&err) : 0;
}

int cmd_pause(const struct cli_globals *g, int argc, char **argv) { return pause_or_resume(g, "pause", argc, argv, true); }

int cmd_resume(const struct cli_globals *g, int argc, char **argv)
{
    return pause_or_resume(g, "resume", argc, argv, false);
}

static bool has_pid(const pid_t *pids, size_t n, long long pid)
{
    for (size_t i = 0; i < n; i++)
        if (pids[i] == pid)
            return true;
    return false;
}

/* Table output: the host's ps with the caller's arguments (default -ef), filtered to the container's PIDs. */
static int ps_table(const pid_t *pids, size_t n, char **ps_args)
{
    AUTO_FREE char *cmd = xstrdup("ps");
    if (!*ps_args) {
        free(cmd);
        cmd = xstrdup("ps -ef");
    }
    for (char **a = ps_args; *a; a++) {
        if (strchr(*a, '\'')) {
            fprintf(stderr, "pea: ps: argument with a quote refused: %s\n", *a);
            return 1;
        }
        char *next = xasprintf("%s '%s'", cmd, *a);
        free(cmd);
        cmd = next;
    }
    FILE *ps = popen(cmd, "r");
    if (!ps)
        return fprintf(stderr, "pea: ps: %s\n", strerror(errno)), 1;
    char line[4096];
    int pid_column = -1;
    bool is_header = true;
    while (fgets(line, sizeof line, ps)) {
        AUTO_FREE char *copy = xstrdup(line);
        char *save = NULL;
        int col = 0;
        bool keep = is_header;
        for (char *tok = strtok_r(copy, " \t\n", &save); tok; tok = strtok_r(NULL, " \t\n", &save), col++) {
            if (is_header && strcmp(tok, "PID") == 0)
                pid_column = col;
            long long v;
            if (!is_header && col == pid_column && parse_int64(tok, &v) == 0)
                keep = has_pid(pids, n, v);
        }
        if (is_header && pid_column < 0) {
            pclose(ps);
            fprintf(stderr, "pea: ps: no PID column in the output of %s\n", cmd);
            return 1;
        }
        if (keep)
            fputs(line, stdout);
        is_header = false;
    }
    int status = pclose(ps);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

int cmd_ps(const struct cli_globals *g, int argc, char **argv)
{
    /* -o/--output: the pod commands' word for --format, accepted here too. */
    static const struct option opts[] = {{"format", required_argument, NULL, 'f'},
                                         {"output", required_argument, NULL, 'f'},
                                         {0}};
    const char *format = "table";
    int c;
    opterr = 0;
    while ((c = getopt_long_only(argc, argv, "+f:o:", opts, NULL)) != -1) {
        if (c != 'f' && c != 'o')
            return cli_usage_error("ps", "unknown option %s", argv[optind - 1]);
        format = optarg;
    }
    if (strcmp(format, "table") != 0 && strcmp(format, "json") != 0)
        return cli_usage_error("ps", "--format: unknown format \"%s\" (table or json)", format);
    if (optind >= argc)
        return cli_usage_error("ps", "missing container id");
    struct pea_error err = {0};
    AUTO_FREE pid_t *pids = NULL;
    size_t n = 0;
    if (container_pids(g->root, argv[optind], &pids, &n, &err) < 0)
        return cli_fail(&err);
    if (strcmp(format, "json") == 0) {
        /* runc prints no processes (a stopped container) as JSON null, its nil slice; go-runc reads either. */
        if (n == 0) {
            puts("null");
            return 0;
        }
        putchar('[');
        for (size_t i = 0; i < n; i++)
            printf("%s%d", i ? "," : "", (int)pids[i]);
        puts("]");
        return 0;
    }
    return ps_table(pids, n, argv + optind + 1);
}

/* "512m", "1G", "1024" -> bytes; -1 stays -1 (unlimited). */
static bool parse_bytes(const char *text, long long *out)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text)
        return false;
    long long unit = 1;
    switch (*end) {
    case 'k': case 'K': unit = 1LL << 10; end++; break;
    case 'm': case 'M': unit = 1LL << 20; end++; break;
    case 'g': case 'G': unit = 1LL << 30; end++; break;
    case 't': case 'T': unit = 1LL << 40; end++; break;
    default: break;
    }
    if ((*end == 'b' || *end == 'B') && unit != 1)
        end++;
    if (*end)
        return false;
    *out = (long long)(v * (double)unit);
    return true;
}

enum {
    OPT_MEMORY = 256, OPT_MEMORY_RESERVATION, OPT_MEMORY_SWAP, OPT_CPU_SHARES, OPT_CPU_QUOTA, OPT_CPU_PERIOD,
    OPT_CPUSET_CPUS, OPT_CPUSET_MEMS, OPT_PIDS_LIMIT, OPT_BLKIO_WEIGHT,
};

/* Put a number at resources.<section>.<key>, creating the section. */
static void set_number(json_t *resources, const char *section, const char *key, long long v)
{
    json_t *s = json_object_get(resources, section);
    if (!s) {
        s = json_object();
        json_object_set_new(resources, section, s);
    }
    json_object_set_new(s, key, json_integer(v));
}

static void set_string(json_t *resources, const char *section, const char *key, const char *v)
{
    json_t *s = json_object_get(resources, section);
    if (!s) {
        s = json_object();
        json_object_set_new(resources, section, s);
    }
    json_object_set_new(s, key, json_string(v));
}

int cmd_update(const struct cli_globals *g, int argc, char **argv)
{
    static const struct option opts[] = {
        {"resources", required_argument, NULL, 'r'},
        {"memory", required_argument, NULL, OPT_MEMORY},
        {"memory-reservation", required_argument, NULL, OPT_MEMORY_RESERVATION},
        {"memory-swap", required_argument, NULL, OPT_MEMORY_SWAP},
        {"cpu-shares", required_argument, NULL, OPT_CPU_SHARES},
        {"cpu-quota", required_argument, NULL, OPT_CPU_QUOTA},
        {"cpu-period", required_argument, NULL, OPT_CPU_PERIOD},
        {"cpuset-cpus", required_argument, NULL, OPT_CPUSET_CPUS},
        {"cpuset-mems", required_argument, NULL, OPT_CPUSET_MEMS},
        {"pids-limit", required_argument, NULL, OPT_PIDS_LIMIT},
        {"blkio-weight", required_argument, NULL, OPT_BLKIO_WEIGHT},
        {0},
    };
    AUTO_JSON json_t *resources = NULL;
    AUTO_JSON json_t *flags = json_object();
    int c;
    opterr = 0;
    while ((c = getopt_long_only(argc, argv, "+r:", opts, NULL)) != -1) {
        long long v;
        bool is_bytes = c == OPT_MEMORY || c == OPT_MEMORY_RESERVATION || c == OPT_MEMORY_SWAP;
        bool is_number = c >= OPT_CPU_SHARES && c <= OPT_CPU_PERIOD;
        if (c == OPT_PIDS_LIMIT || c == OPT_BLKIO_WEIGHT)
            is_number = true;
        if ((is_bytes && !parse_bytes(optarg, &v)) || (is_number && parse_int64(optarg, &v) < 0))
            return cli_usage_error("update", "%s: not a number: %s", argv[optind - 1], optarg);
        switch (c) {
        case 'r':
            json_decref(resources);
            resources = strcmp(optarg, "-") == 0 ? json_loadf(stdin, 0, NULL) : json_load_file(optarg, 0, NULL);
            if (!json_is_object(resources))
                return cli_usage_error("update", "--resources %s: not a JSON object", optarg);
            break;
        case OPT_MEMORY: set_number(flags, "memory", "limit", v); break;
        case OPT_MEMORY_RESERVATION: set_number(flags, "memory", "reservation", v); break;
        case OPT_MEMORY_SWAP: set_number(flags, "memory", "swap", v); break;
        case OPT_CPU_SHARES: set_number(flags, "cpu", "shares", v); break;
        case OPT_CPU_QUOTA: set_number(flags, "cpu", "quota", v); break;
        case OPT_CPU_PERIOD: set_number(flags, "cpu", "period", v); break;
        case OPT_CPUSET_CPUS: set_string(flags, "cpu", "cpus", optarg); break;
        case OPT_CPUSET_MEMS: set_string(flags, "cpu", "mems", optarg); break;
        case OPT_PIDS_LIMIT: set_number(flags, "pids", "limit", v); break;
        case OPT_BLKIO_WEIGHT: set_number(flags, "blockIO", "weight", v); break;
        default: return cli_usage_error("update", "unknown option %s", argv[optind - 1]);
        }
    }
    if (optind != argc - 1)
        return cli_usage_error("update", "expected exactly one container id");
    if (!resources)
        resources = json_object();
    /* Single flags win over the same fields of --resources, as in runc. */
    const char *section;
    json_t *values;
    json_object_foreach(flags, section, values)
    {
        json_t *target = json_object_get(resources, section);
        if (!json_is_object(target))
            json_object_set(resources, section, values);
        else
            json_object_update(target, values);
    }
    struct pea_error err = {0};
    return container_update(g->root, argv[optind], resources, &err) < 0 ? cli_fail(&err) : 0;
}

static void print_event(const char *type, const char *id, json_t *data)
{
    AUTO_JSON json_t *e = json_pack("{s:s, s:s}", "type", type, "id", id);
    if (data)
        json_object_set(e, "data", data);
    json_dumpf(e, stdout, JSON_COMPACT);
    putchar('\n');
    fflush(stdout);
}

int cmd_events(const struct cli_globals *g, int argc, char **argv)
{
    static const struct option opts[] = {{"stats", no_argument, NULL, 's'}, {"interval", required_argument, NULL, 'i'},
                                         {0}};
    bool stats_once = false;
    long long interval_ms = 5000;
    int c;
    opterr = 0;
    while ((c = getopt_long_only(argc, argv, "+", opts, NULL)) != -1) {
        if (c == 's') {
            stats_once = true;
        } else if (c == 'i') {
            char *end;
            double v = strtod(optarg, &end);
            double scale = strcmp(end, "ms") == 0 ? 1 : (strcmp(end, "s") == 0 || !*end) ? 1000 : -1;
            if (end == optarg || scale < 0 || v <= 0)
                return cli_usage_error("events", "--interval: not a duration: %s (e.g. 5s, 500ms)", optarg);
            interval_ms = (long long)(v * scale);
        } else {
            return cli_usage_error("events", "unknown option %s", argv[optind - 1]);
        }
    }
    if (optind != argc - 1)
        return cli_usage_error("events", "expected exactly one container id");
    const char *id = argv[optind];
    struct pea_error err = {0};
    long long last_ooms = -1;
    for (;;) {
        AUTO_JSON json_t *stats = container_stats(g->root, id, &err);
        if (!stats)
            return cli_fail(&err);
        if (stats_once) {
            print_event("stats", id, stats);
            return 0;
        }
        long long ooms = container_oom_kill_count(g->root, id);
        if (last_ooms >= 0 && ooms > last_ooms)
            print_event("oom", id, NULL);
        last_ooms = ooms;
        print_event("stats", id, stats);
        struct timespec ts = {.tv_sec = interval_ms / 1000, .tv_nsec = (interval_ms % 1000) * 1000000};
        nanosleep(&ts, NULL);
    }
}
