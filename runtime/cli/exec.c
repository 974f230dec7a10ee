/* exec: a new process in a running container, from --process JSON or from the command line. */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "pea/container.h"
#include "pea/util.h"

enum {
    OPT_PID_FILE = 256,
    OPT_CONSOLE_SOCKET,
    OPT_PIDFD_SOCKET,
    OPT_CWD,
    OPT_PRESERVE_FDS,
    OPT_PROCESS_LABEL,
    OPT_APPARMOR,
    OPT_NO_NEW_PRIVS,
    OPT_IGNORE_PAUSED,
    OPT_CGROUP,
};

/* --cgroup as runc takes it on cgroup v2: one "PATH" (or ":PATH"), below the container's cgroup. v2 has one hierarchy,
 * so a "controller:PATH" of v1 names nothing here; runc refuses it too ("unknown controller"). */
static int parse_sub_cgroup(char **given, size_t n, const char **out, struct pea_error *err)
{
    *out = NULL;
    if (n == 0)
        return 0;
    if (n > 1)
        return pea_fail(err, 0, "--cgroup given %zu times: cgroup v2 has one hierarchy, give one sub-cgroup", n);
    const char *colon = strchr(given[0], ':');
    if (colon && colon != given[0])
        return pea_fail(err, 0, "--cgroup %s: cgroup v2 has no per-controller cgroups (give the path alone)",
                        given[0]);
    *out = colon ? colon + 1 : given[0];
    return 0;
}

/* Append a JSON integer to the array at process.user.additionalGids, as runc's -g: after the container's own. */
static int add_additional_gids(json_t *process, char **given, size_t n, struct pea_error *err)
{
    for (size_t i = 0; i < n; i++) {
        long long gid;
        if (parse_int64(given[i], &gid) < 0 || gid < 0 || gid > UINT32_MAX)
            return pea_fail(err, 0, "--additional-gids %s: not a group id (0 to %u)", given[i], UINT32_MAX);
        json_t *user = json_object_get(process, "user");
        if (!json_is_object(user)) {
            user = json_pack("{s:i, s:i}", "uid", 0, "gid", 0);
            json_object_set_new(process, "user", user);
        }
        json_t *gids = json_object_get(user, "additionalGids");
        if (!json_is_array(gids)) {
            gids = json_array();
            json_object_set_new(user, "additionalGids", gids);
        }
        json_array_append_new(gids, json_integer(gid));
    }
    return 0;
}

/* runc's --cap: the capability joins the bounding, effective, permitted and ambient sets of the process. */
static void add_capabilities(json_t *process, char **given, size_t n)
{
    static const char *const sets[] = {"bounding", "effective", "permitted", "ambient"};
    for (size_t i = 0; i < n; i++) {
        json_t *caps = json_object_get(process, "capabilities");
        if (!json_is_object(caps)) {
            caps = json_object();
            json_object_set_new(process, "capabilities", caps);
        }
        for (size_t k = 0; k < ARRAY_SIZE(sets); k++) {
            json_t *set = json_object_get(caps, sets[k]);
            if (!json_is_array(set)) {
                set = json_array();
                json_object_set_new(caps, sets[k], set);
            }
            json_array_append_new(set, json_string(given[i]));
        }
    }
}

/* As runc's exec: 255 when pea itself failed (the container is not running, the process could not start...), so
 * that a caller can tell pea's failure from most exit codes of the process. Usage errors stay 1. */
static int exec_failed(const struct pea_error *err)
{
    cli_fail(err);
    return 255;
}

int cmd_exec(const struct cli_globals *g, int argc, char **argv)
{
    static const struct option opts[] = {
        {"process", required_argument, NULL, 'p'},
        {"detach", no_argument, NULL, 'd'},
        {"pid-file", required_argument, NULL, OPT_PID_FILE},
        {"console-socket", required_argument, NULL, OPT_CONSOLE_SOCKET},
        {"pidfd-socket", required_argument, NULL, OPT_PIDFD_SOCKET},
        {"tty", no_argument, NULL, 't'},
        {"env", required_argument, NULL, 'e'},
        {"cwd", required_argument, NULL, OPT_CWD},
        {"user", required_argument, NULL, 'u'},
        {"preserve-fds", required_argument, NULL, OPT_PRESERVE_FDS},
        {"process-label", required_argument, NULL, OPT_PROCESS_LABEL},
        {"apparmor", required_argument, NULL, OPT_APPARMOR},
        {"no-new-privs", no_argument, NULL, OPT_NO_NEW_PRIVS},
        {"ignore-paused", no_argument, NULL, OPT_IGNORE_PAUSED},
        {"cgroup", required_argument, NULL, OPT_CGROUP},
        {"additional-gids", required_argument, NULL, 'g'},
        {"cap", required_argument, NULL, 'c'},
        {0},
    };
    struct pea_exec_options o = {.root = g->root};
    const char *process_file = NULL, *cwd = NULL, *user = NULL, *selinux_label = NULL, *apparmor = NULL;
    bool tty = false, no_new_privs = false;
    /* Repeatable flags: no more of each than there are arguments. */
    AUTO_FREE char **env = xcalloc((size_t)argc + 1, sizeof(char *));
    AUTO_FREE char **gids = xcalloc((size_t)argc + 1, sizeof(char *));
    AUTO_FREE char **caps = xcalloc((size_t)argc + 1, sizeof(char *));
    AUTO_FREE char **cgroups = xcalloc((size_t)argc + 1, sizeof(char *));
    size_t n_env = 0, n_gids = 0, n_caps = 0, n_cgroups = 0;
    int c;
    opterr = 0;
    while ((c = getopt_long_only(argc, argv, "+p:dte:u:g:c:", opts, NULL)) != -1) {
        switch (c) {
        case 'p': process_file = optarg; break;
        case 'd': o.detach = true; break;
        case OPT_PID_FILE: o.pid_file = optarg; break;
        case OPT_CONSOLE_SOCKET: o.console_socket = optarg; break;
        case OPT_PIDFD_SOCKET: o.pidfd_socket = optarg; break;
        case 't': tty = true; break;
        case 'e': env[n_env++] = optarg; break;
        case OPT_CWD: cwd = optarg; break;
        case 'u': user = optarg; break;
        case OPT_PRESERVE_FDS:
            if (!cli_parse_count(optarg, &o.preserve_fds))
                return cli_usage_error("exec", "--preserve-fds: not a count: %s", optarg);
            break;
        case OPT_PROCESS_LABEL: selinux_label = optarg; break;
        case OPT_APPARMOR: apparmor = optarg; break;
        case OPT_NO_NEW_PRIVS: no_new_privs = true; break;
        case OPT_IGNORE_PAUSED: o.ignore_paused = true; break;
        case OPT_CGROUP: cgroups[n_cgroups++] = optarg; break;
        case 'g': {
            long long gid;
            /* As runc: a value that is no number is a usage error; a number out of range fails the exec. */
            if (parse_int64(optarg, &gid) < 0)
                return cli_usage_error("exec", "--additional-gids: not a number: %s", optarg);
            gids[n_gids++] = optarg;
            break;
        }
        case 'c': caps[n_caps++] = optarg; break;
        default: return cli_usage_error("exec", "unknown option %s", argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return cli_usage_error("exec", "missing container id");
    o.id = argv[optind];
    char **args = argv + optind + 1;
    struct pea_error err = {0};
    AUTO_JSON json_t *process = NULL;
    if (process_file) {
        json_error_t jerr;
        process = json_load_file(process_file, JSON_REJECT_DUPLICATES, &jerr);
        if (!process || !json_is_object(process)) {
            pea_fail(&err, 0, "exec %s: --process %s: %s", o.id, process_file,
                     process ? "not a JSON object" : jerr.text);
            return exec_failed(&err);
        }
        if (tty)
            json_object_set_new(process, "terminal", json_true());
    } else {
        if (!*args)
            return cli_usage_error("exec", "missing the command to run (or --process FILE)");
        process = container_exec_process_from_flags(g->root, o.id, args, env, cwd, user, tty, 1, &err);
        if (!process)
            return exec_failed(&err);
    }
    /* Security flags override the process they come with, as runc's do; pea applies or refuses them, never drops
     * them silently. */
    if (selinux_label)
        json_object_set_new(process, "selinuxLabel", json_string(selinux_label));
    if (apparmor)
        json_object_set_new(process, "apparmorProfile", json_string(apparmor));
    if (no_new_privs)
        json_object_set_new(process, "noNewPrivileges", json_true());
    add_capabilities(process, caps, n_caps);
    if (add_additional_gids(process, gids, n_gids, &err) < 0 ||
        parse_sub_cgroup(cgroups, n_cgroups, &o.sub_cgroup, &err) < 0) {
        pea_wrap(&err, "exec %s", o.id);
        return exec_failed(&err);
    }
    o.process = process;
    int exit_code = 0;
    if (container_exec(&o, &exit_code, &err) < 0)
        return exec_failed(&err);
    return exit_code;
}
