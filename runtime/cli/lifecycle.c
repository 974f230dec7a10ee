/* create, start, run, state, kill, delete, list. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "pea/container.h"
#include "pea/signals.h"
#include "pea/util.h"

enum {
    OPT_BUNDLE = 'b',
    OPT_DETACH = 'd',
    OPT_PID_FILE = 256,
    OPT_CONSOLE_SOCKET,
    OPT_NO_PIVOT,
    OPT_NO_NEW_KEYRING,
    OPT_PRESERVE_FDS,
    OPT_KEEP,
    OPT_NO_SUBREAPER,
    OPT_PIDFD_SOCKET,
};

/* Options shared by create and run; returns the index of the container id or -1 after reporting. */
static int parse_create_options(const char *command, int argc, char **argv, struct pea_create_options *o,
                                bool *detach, bool *keep)
{
    static const struct option opts[] = {
        {"bundle", required_argument, NULL, OPT_BUNDLE},
        {"pid-file", required_argument, NULL, OPT_PID_FILE},
        {"console-socket", required_argument, NULL, OPT_CONSOLE_SOCKET},
        {"pidfd-socket", required_argument, NULL, OPT_PIDFD_SOCKET},
        {"no-pivot", no_argument, NULL, OPT_NO_PIVOT},
        {"no-new-keyring", no_argument, NULL, OPT_NO_NEW_KEYRING},
        {"preserve-fds", required_argument, NULL, OPT_PRESERVE_FDS},
        {"detach", no_argument, NULL, OPT_DETACH},
        {"keep", no_argument, NULL, OPT_KEEP},
        {"no-subreaper", no_argument, NULL, OPT_NO_SUBREAPER},
        {0},
    };
    int c;
    opterr = 0;
    while ((c = getopt_long_only(argc, argv, "+b:d", opts, NULL)) != -1) {
        switch (c) {
        case OPT_BUNDLE: o->bundle = optarg; break;
        case OPT_PID_FILE: o->pid_file = optarg; break;
        case OPT_CONSOLE_SOCKET: o->console_socket = optarg; break;
        case OPT_PIDFD_SOCKET: o->pidfd_socket = optarg; break;
        case OPT_NO_PIVOT: o->no_pivot = true; break;
        case OPT_NO_NEW_KEYRING: o->no_new_keyring = true; break;
        case OPT_PRESERVE_FDS:
            if (!cli_parse_count(optarg, &o->preserve_fds))
                return cli_usage_error(command, "--preserve-fds: not a count: %s", optarg), -1;
            break;
        case OPT_DETACH:
            if (!detach)
                return cli_usage_error(command, "unknown option -d"), -1;
            *detach = true;
            break;
        case OPT_KEEP:
            if (!keep)
                return cli_usage_error(command, "unknown option --keep"), -1;
            *keep = true;
            break;
        case OPT_NO_SUBREAPER: break; /* runc compatibility: pea never becomes a subreaper here */
        default: return cli_usage_error(command, "unknown option %s", argv[optind - 1]), -1;
        }
    }
    if (optind != argc - 1)
        return cli_usage_error(command, "expected exactly one container id"), -1;
    o->id = argv[optind];
    return optind;
}

int cmd_create(const struct cli_globals *g, int argc, char **argv)
{
    struct pea_create_options o = {.root = g->root, .is_detached = true, .use_systemd_cgroup = g->systemd_cgroup};
    if (parse_create_options("create", argc, argv, &o, NULL, NULL) < 0)
        return 1;
    struct pea_error err = {0};
    return container_create(&o, &err) < 0 ? cli_fail(&err) : 0;
}

int cmd_run(const struct cli_globals *g, int argc, char **argv)
{
    struct pea_create_options o = {.root = g->root, .use_systemd_cgroup = g->systemd_cgroup};
    bool detach = false, keep = false;
    if (parse_create_options("run", argc, argv, &o, &detach, &keep) < 0)
        return 1;
    o.is_detached = detach;
    struct pea_error err = {0};
    int exit_code = 0;
    if (container_run(&o, detach, keep, &exit_code, &err) < 0)
        return cli_fail(&err);
    return exit_code;
}

/* Commands whose only argument is the id (after optional flags in opts). */
static const char *single_id(const char *command, int argc, char **argv)
{
    if (argc != 2 || argv[1][0] == '-') {
        cli_usage_error(command, argc < 2 ? "missing container id" : "expected exactly one container id");
        return NULL;
    }
    return argv[1];
}

int cmd_start(const struct cli_globals *g, int argc, char **argv)
{
    const char *id = single_id("start", argc, argv);
    if (!id)
        return 1;
    struct pea_error err = {0};
    return container_start(g->root, id, &err) < 0 ? cli_fail(&err) : 0;
}

int cmd_state(const struct cli_globals *g, int argc, char **argv)
{
    /* runc's state prints JSON and takes no options; --format json and -o json (the pod commands' words) are accepted
     * for the one format there is. */
    if (argc == 4 && (strcmp(argv[1], "--format") == 0 || strcmp(argv[1], "-f") == 0 || strcmp(argv[1], "-o") == 0 ||
                      strcmp(argv[1], "--output") == 0)) {
        if (strcmp(argv[2], "json") != 0)
            return cli_usage_error("state", "%s: unknown format \"%s\" (json)", argv[1], argv[2]);
        argc -= 2;
        argv += 2;
    }
    const char *id = single_id("state", argc, argv);
    if (!id)
        return 1;
    struct pea_error err = {0};
    AUTO_JSON json_t *j = container_state(g->root, id, &err);
    if (!j)
        return cli_fail(&err);
    json_dumpf(j, stdout, JSON_INDENT(2));
    putchar('\n');
    return 0;
}

/* Signal 0 delivers nothing and only checks that the process exists: `kill ID 0` is a liveness check, as with runc
 * and kill(1). Only the number: no signal has the name "0". */
static bool is_signal_zero(const char *text)
{
    long long v;
    return text[0] >= '0' && text[0] <= '9' && parse_int64(text, &v) == 0 && v == 0;
}

int cmd_kill(const struct cli_globals *g, int argc, char **argv)
{
    static const struct option opts[] = {{"all", no_argument, NULL, 'a'}, {0}};
    bool all = false;
    int c;
    opterr = 0;
    while ((c = getopt_long_only(argc, argv, "+a", opts, NULL)) != -1) {
        if (c != 'a')
            return cli_usage_error("kill", "unknown option %s", argv[optind - 1]);
        all = true;
    }
    if (optind >= argc || argc - optind > 2)
        return cli_usage_error("kill", "expected a container id and an optional signal");
    const char *id = argv[optind];
    int sig = 15;
    if (argc - optind == 2) {
        const char *text = argv[optind + 1];
        sig = is_signal_zero(text) ? 0 : signal_parse(text);
        if (sig < 0)
            return cli_usage_error("kill", "unknown signal \"%s\"", text);
    }
    struct pea_error err = {0};
    return container_kill(g->root, id, sig, all, &err) < 0 ? cli_fail(&err) : 0;
}

int cmd_delete(const struct cli_globals *g, int argc, char **argv)
{
    static const struct option opts[] = {{"force", no_argument, NULL, 'f'}, {0}};
    bool force = false;
    int c;
    opterr = 0;
    while ((c = getopt_long_only(argc, argv, "+f", opts, NULL)) != -1) {
        if (c != 'f')
            return cli_usage_error("delete", "unknown option %s", argv[optind - 1]);
        force = true;
    }
    if (optind != argc - 1)
        return cli_usage_error("delete", "expected exactly one container id");
    struct pea_error err = {0};
    return container_delete(g->root, argv[optind], force, &err) < 0 ? cli_fail(&err) : 0;
}

static int compare_ids(const void *a, const void *b)
{
    const char *x = json_string_value(json_object_get(*(json_t *const *)a, "id"));
    const char *y = json_string_value(json_object_get(*(json_t *const *)b, "id"));
    return strcmp(x ? x : "", y ? y : "");
}

/* The entries of `list` by id, as runc lists them (it reads the state root in name order). */
static json_t *sorted_by_id(json_t *all)
{
    size_t n = json_array_size(all);
    AUTO_FREE json_t **items = xcalloc(n ? n : 1, sizeof *items);
    for (size_t i = 0; i < n; i++)
        items[i] = json_array_get(all, i);
    qsort(items, n, sizeof *items, compare_ids);
    json_t *sorted = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append(sorted, items[i]);
    return sorted;
}

enum { LIST_COLUMNS = 6 };

static void list_row(json_t *s, const char *cells[LIST_COLUMNS], char *pid, size_t pid_len)
{
    snprintf(pid, pid_len, "%lld", json_integer_value(json_object_get(s, "pid")));
    const char *keys[LIST_COLUMNS] = {"id", NULL, "status", "bundle", "created", "owner"};
    for (int k = 0; k < LIST_COLUMNS; k++) {
        const char *v = keys[k] ? json_string_value(json_object_get(s, keys[k])) : pid;
        cells[k] = v ? v : "";
    }
}

/* runc's table: each column as wide as its widest cell plus 3 spaces, at least 12; the last column unpadded. */
static void print_table(json_t *sorted)
{
    static const char *header[LIST_COLUMNS] = {"ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"};
    size_t width[LIST_COLUMNS];
    for (int k = 0; k < LIST_COLUMNS; k++)
        width[k] = strlen(header[k]);
    size_t i;
    json_t *s;
    char pid[32];
    const char *cells[LIST_COLUMNS];
    json_array_foreach(sorted, i, s)
    {
        list_row(s, cells, pid, sizeof pid);
        for (int k = 0; k < LIST_COLUMNS; k++)
            if (strlen(cells[k]) > width[k])
                width[k] = strlen(cells[k]);
    }
    for (int k = 0; k < LIST_COLUMNS; k++)
        width[k] = width[k] + 3 < 12 ? 12 : width[k] + 3;
    for (size_t row = 0; row <= json_array_size(sorted); row++) {
        if (row == 0)
            memcpy(cells, header, sizeof cells);
        else
            list_row(json_array_get(sorted, row - 1), cells, pid, sizeof pid);
        for (int k = 0; k < LIST_COLUMNS - 1; k++)
            printf("%-*s", (int)width[k], cells[k]);
        printf("%s\n", cells[LIST_COLUMNS - 1]);
    }
}

int cmd_list(const struct cli_globals *g, int argc, char **argv)
{
    /* -o/--output: the pod commands' word for --format, accepted here too. */
    static const struct option opts[] = {{"format", required_argument, NULL, 'f'},
                                         {"output", required_argument, NULL, 'f'},
                                         {"quiet", no_argument, NULL, 'q'}, {0}};
    const char *format = "table";
    bool quiet = false;
    int c;
    opterr = 0;
    while ((c = getopt_long_only(argc, argv, "+f:o:q", opts, NULL)) != -1) {
        if (c == 'f' || c == 'o')
            format = optarg;
        else if (c == 'q')
            quiet = true;
        else
            return cli_usage_error("list", "unknown option %s", argv[optind - 1]);
    }
    if (strcmp(format, "table") != 0 && strcmp(format, "json") != 0)
        return cli_usage_error("list", "--format: unknown format \"%s\" (table or json)", format);
    if (optind != argc)
        return cli_usage_error("list", "takes no arguments");
    struct pea_error err = {0};
    AUTO_JSON json_t *all = container_list(g->root, &err);
    if (!all)
        return cli_fail(&err);
    AUTO_JSON json_t *sorted = sorted_by_id(all);
    size_t i;
    json_t *s;
    if (quiet) {
        json_array_foreach(sorted, i, s) printf("%s\n", json_string_value(json_object_get(s, "id")));
    } else if (strcmp(format, "json") == 0) {
        /* runc prints an empty list as JSON null (its nil slice); callers that read runc's output expect that. */
        if (json_array_size(sorted) == 0) {
            puts("null");
        } else {
            json_dumpf(sorted, stdout, JSON_COMPACT);
            putchar('\n');
        }
    } else {
        print_table(sorted);
    }
    return 0;
}
