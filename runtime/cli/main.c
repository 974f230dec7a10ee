/* pea: an OCI runtime with runc's command line. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "pod_client.h"
#include "pea/log.h"
#include "pea/seccomp.h"
#include "pea/spec.h"
#include "pea/sys.h"
#include "pea/util.h"

#ifdef PEA_IMAGE_COMMANDS
#define PEA_IMAGE_COMMAND cmd_image
#else
#define PEA_IMAGE_COMMAND image_in_pea_image
/* The image commands run in pea-image, the one binary that links the image store's libraries: pea itself, the
 * binary every container start executes, maps none of them. The global options go along. */
static int image_in_pea_image(const struct cli_globals *g, int argc, char **argv)
{
    struct pea_error err = {0};
    AUTO_FREE char *path = pod_find_helper(g->argv0, "pea-image", "runtime", &err);
    if (!path)
        return cli_fail(&err);
    AUTO_FREE char **args = xcalloc((size_t)argc + 8, sizeof *args);
    size_t n = 0;
    args[n++] = path;
    if (g->log_path) {
        args[n++] = "--log";
        args[n++] = (char *)g->log_path;
    }
    args[n++] = "--log-format";
    args[n++] = (char *)g->log_format;
    if (g->debug)
        args[n++] = "--debug";
    for (int i = 0; i < argc; i++)
        args[n++] = argv[i];
    execv(path, args);
    pea_fail(&err, errno, "execute %s", path);
    return cli_fail(&err);
}
#endif

static const struct cli_command commands[] = {
    {"create", cmd_create, "create [options] ID", "create a container from a bundle; it waits for `start`",
     "  -b, --bundle DIR        bundle directory (default: current directory)\n"
     "      --pid-file FILE     write the init's PID there\n"
     "      --console-socket S  send the pty master to this unix socket\n"
     "      --pidfd-socket S    send a pidfd of the init to this unix socket\n"
     "      --no-pivot          chroot instead of pivot_root (for a ramdisk root)\n"
     "      --no-new-keyring    keep the caller's session keyring\n"
     "      --preserve-fds N    pass N extra fds (from 3) to the container\n"
     "      --no-subreaper      accepted for runc compatibility (pea never is a subreaper)\n"},
    {"start", cmd_start, "start ID", "start the user process of a created container", ""},
    {"run", cmd_run, "run [options] ID", "create and start a container, waiting for it unless --detach",
     "  -b, --bundle DIR        bundle directory (default: current directory)\n"
     "  -d, --detach            return once the container runs\n"
     "      --keep              keep the container's state after it exits\n"
     "      --pid-file FILE     write the init's PID there\n"
     "      --console-socket S  send the pty master to this unix socket\n"
     "      --pidfd-socket S    send a pidfd of the init to this unix socket\n"
     "      --no-pivot          chroot instead of pivot_root\n"
     "      --no-new-keyring    keep the caller's session keyring\n"
     "      --preserve-fds N    pass N extra fds (from 3) to the container\n"
     "      --no-subreaper      accepted for runc compatibility (pea never is a subreaper)\n"},
    {"state", cmd_state, "state ID", "print the OCI state of a container as JSON", ""},
    {"kill", cmd_kill, "kill [options] ID [SIGNAL]", "send a signal (default SIGTERM) to the container's init",
     "  -a, --all               signal every process in the container's cgroup\n"},
    {"delete", cmd_delete, "delete [options] ID", "delete a stopped container and everything it held",
     "  -f, --force             kill it first if it still runs\n"},
    {"list", cmd_list, "list [options]", "list the containers under --root",
     "  -f, --format table|json output format (default table); -o, --output: the same\n"
     "  -q, --quiet             print the ids only\n"},
    {"exec", cmd_exec, "exec [options] ID [COMMAND [ARG...]]", "run a new process inside a running container",
     "  -p, --process FILE      the process as OCI process JSON\n"
     "  -d, --detach            do not wait for the process\n"
     "      --pid-file FILE     write the process's PID there\n"
     "      --console-socket S  send the pty master to this unix socket\n"
     "      --pidfd-socket S    send a pidfd of the process to this unix socket\n"
     "  -t, --tty               allocate a pseudo-terminal\n"
     "  -e, --env KEY=VALUE     set an environment variable (repeatable)\n"
     "      --cwd DIR           working directory inside the container\n"
     "  -u, --user UID[:GID]    run as this user\n"
     "      --preserve-fds N    pass N extra fds (from 3) to the process\n"
     "      --process-label L   the process's SELinux label\n"
     "      --apparmor P        the process's AppArmor profile\n"
     "      --no-new-privs      set no_new_privs for the process\n"
     "  -g, --additional-gids G add a supplementary group (repeatable)\n"
     "  -c, --cap CAP           add a capability to the process's sets (repeatable)\n"
     "      --cgroup PATH       run it in this existing cgroup below the container's\n"
     "      --ignore-paused     exec into a paused container (the process runs on resume)\n"},
    {"pause", cmd_pause, "pause ID", "freeze every process of the container (cgroup.freeze)", ""},
    {"resume", cmd_resume, "resume ID", "thaw a paused container", ""},
    {"ps", cmd_ps, "ps [options] ID [PS-ARGS...]", "list the processes of a container",
     "  -f, --format table|json output format (default table; json prints host PIDs); -o, --output: the same\n"},
    {"update", cmd_update, "update [options] ID", "change the resource limits of a running container",
     "  -r, --resources FILE    linux.resources JSON ('-' for stdin)\n"
     "      --memory BYTES, --memory-reservation BYTES, --memory-swap BYTES\n"
     "      --cpu-shares N, --cpu-quota N, --cpu-period N, --cpuset-cpus LIST, --cpuset-mems LIST\n"
     "      --pids-limit N, --blkio-weight N\n"},
    {"events", cmd_events, "events [options] ID", "print the container's resource statistics and OOM events",
     "      --stats             print the statistics once and exit\n"
     "      --interval DURATION seconds between statistics (default 5s)\n"},
    {"spec", cmd_spec, "spec [options]", "write a default config.json",
     "  -b, --bundle DIR        where to write it (default: current directory)\n"
     "      --rootless          for a container run by an unprivileged user\n"},
    {"features", cmd_features, "features", "print what this pea supports, as OCI features JSON", ""},
    {"checkpoint", cmd_checkpoint, "checkpoint [options] ID", "not supported: pea does not implement CRIU checkpoints",
     "      --image-path DIR, --work-path DIR, --parent-path DIR, --leave-running, --tcp-established,\n"
     "      --tcp-skip-in-flight, --link-remap, --ext-unix-sk, --shell-job, --lazy-pages, --status-fd FD,\n"
     "      --page-server ADDR, --file-locks, --pre-dump, --manage-cgroups-mode MODE, --empty-ns NS,\n"
     "      --auto-dedup        runc's flags, accepted; the command always fails with \"not supported\"\n"},
    {"restore", cmd_restore, "restore [options] ID", "not supported: pea does not implement CRIU restores",
     "  -b, --bundle DIR, -d, --detach, --pid-file FILE, --console-socket S, --no-subreaper, --no-pivot,\n"
     "      --image-path DIR, --work-path DIR, --tcp-established, --ext-unix-sk, --shell-job, --file-locks,\n"
     "      --manage-cgroups-mode MODE, --empty-ns NS, --auto-dedup, --lazy-pages, --lsm-profile P,\n"
     "      --lsm-mount-context C runc's flags, accepted; the command always fails with \"not supported\"\n"},
    {"pod", cmd_pod, "pod COMMAND [options]", "run and manage pods from Kubernetes Pod manifests",
     "  run [-d] -f FILE [--data-root DIR] [--pause PATH] [--dry-run]  run a pod (in the foreground)\n"
     "  apply -f FILE [--data-root DIR] [--recreate] [--dry-run]  start a pod under pea-shim, or update it\n"
     "  rm [--force] [--grace-period N] NAME...        tear pods down\n"
     "  stop [--grace-period N] NAME...                shut a shim's pod down\n"
     "  ls [-o table|wide|json|name]                   list pods\n"
     "  ps [-o table|wide|json|name] NAME              list a pod's containers\n"
     "  logs [-c C] [--tail N] [-p] [-f] NAME          print a container's output\n"
     "  exec [-c C] [-i] [-t] NAME [--] CMD...         run a command in a container\n"
     "  attach [-c C] [-i] [-t] NAME                   connect to a running container's stdio\n"
     "  wait [-c C] [--for exit|running|started] NAME  wait for a condition\n"
     "  events [-o table|json] NAME                    print the pod's events\n"
     "  Options go before or after the arguments; -- ends them (see pea pod COMMAND --help).\n"},
    {"volume", cmd_volume, "volume COMMAND [options]", "list and remove the named volumes of pods' volume claims",
     "  ls [-o table|json]                  list named volumes, the pods using each, when each was made\n"
     "  rm [-f] NAME...                     remove named volumes (never one a pod uses; -f: missing is fine)\n"
     "  every command takes --data-root DIR (default /var/lib/pea; volumes are DIR/volumes-named)\n"},
    {"image", PEA_IMAGE_COMMAND, "image COMMAND [options]",
     "pull, load, import, list, inspect, tag, remove and bundle OCI images",
     "  pull [-q] [--platform P] REF        fetch an image from a registry (pea image pull --help)\n"
     "  load [-i FILE] [-q] [--name NAME]   load a docker-archive or oci-archive tar\n"
     "  import [--ref REF] DIR [NAME]       import an OCI image layout directory\n"
     "  ls [-q] [-o table|json]             list images\n"
     "  inspect IMAGE...                    print images as JSON\n"
     "  tag IMAGE NAME...                   give an image more names\n"
     "  rm [-f] IMAGE...                    remove images (never one a pod holds)\n"
     "  prune [-a]                          remove unnamed (-a: unused) images and unused layers\n"
     "  bundle [-f] [-t] [--rootless] IMAGE DIR  write an OCI runtime bundle (rootfs, config.json)\n"
     "  every command takes --data-root DIR (default /var/lib/pea; the store is DIR/images)\n"},
};

int cli_fail(const struct pea_error *err)
{
    log_error("%s", err->msg);
    return 1;
}

int cli_usage_error(const char *command, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log_error("%s%s%s", command ? command : "", command ? ": " : "", msg);
    for (size_t i = 0; command && i < ARRAY_SIZE(commands); i++)
        if (strcmp(commands[i].name, command) == 0)
            printf("Usage: pea %s\n", commands[i].usage);
    return 1;
}

int cli_help(const char *command)
{
    for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
        if (strcmp(commands[i].name, command) != 0)
            continue;
        printf("Usage: pea %s\n\n%s\n", commands[i].usage, commands[i].summary);
        if (*commands[i].options)
            printf("\nOptions:\n%s", commands[i].options);
        printf("  -h, --help              show this help\n");
        return 0;
    }
    return 1;
}

bool cli_parse_count(const char *text, int *out)
{
    long long v;
    if (parse_int64(text, &v) < 0 || v < 0 || v > 1 << 20)
        return false;
    *out = (int)v;
    return true;
}

static void print_usage(FILE *f)
{
    fprintf(f, "Usage: pea [global options] COMMAND [options] [arguments]\n\n"
               "An OCI container runtime with a pod sandbox.\n\nCommands:\n");
    for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nGlobal options:\n"
               "  --root DIR             state directory (default /run/pea)\n"
               "  --log FILE             also log to FILE (appended)\n"
               "  --log-format text|json format of the --log lines\n"
               "  --debug                log debug messages\n"
               "  --systemd-cgroup       the cgroup is a systemd scope (cgroupsPath slice:prefix:name)\n"
               "  --criu PATH            accepted for runc compatibility (no checkpoint/restore)\n"
               "  --rootless true|false|auto  accepted for runc compatibility (pea detects it)\n"
               "  -h, --help             show this help\n"
               "  -v, --version          print the version\n");
}

static void print_version(void)
{
    printf("pea version %s\nspec: %s\nlibseccomp: %s\n", PEA_VERSION, PEA_OCI_VERSION, seccomp_library_version());
}

int main(int argc, char **argv)
{
    static struct cli_globals g = {.root = "/run/pea", .log_format = "text"};
    g.argv0 = argv[0];
    enum { OPT_ROOT = 256, OPT_LOG, OPT_LOG_FORMAT, OPT_DEBUG, OPT_SYSTEMD, OPT_CRIU, OPT_ROOTLESS };
    static const struct option opts[] = {
        {"root", required_argument, NULL, OPT_ROOT},
        {"log", required_argument, NULL, OPT_LOG},
        {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
        {"debug", no_argument, NULL, OPT_DEBUG},
        {"systemd-cgroup", no_argument, NULL, OPT_SYSTEMD},
        {"criu", required_argument, NULL, OPT_CRIU},
        {"rootless", required_argument, NULL, OPT_ROOTLESS},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'v'},
        {0},
    };
    /* Writes to a closed pipe must fail with EPIPE, not kill us mid-cleanup. */
    signal(SIGPIPE, SIG_IGN);
    int c;
    bool root_given = false;
    opterr = 0;
    while ((c = getopt_long_only(argc, argv, "+hv", opts, NULL)) != -1) {
        switch (c) {
        case OPT_ROOT:
            g.root = optarg;
            root_given = true;
            break;
        case OPT_LOG: g.log_path = optarg; break;
        case OPT_LOG_FORMAT:
            if (strcmp(optarg, "text") != 0 && strcmp(optarg, "json") != 0)
                return cli_usage_error(NULL, "--log-format: unknown format \"%s\" (text or json)", optarg);
            g.log_format = optarg;
            break;
        case OPT_DEBUG: g.debug = true; break;
        case OPT_SYSTEMD: g.systemd_cgroup = true; break;
        case OPT_CRIU:
        case OPT_ROOTLESS: break; /* accepted for runc compatibility */
        case 'h': print_usage(stdout); return 0;
        case 'v': print_version(); return 0;
        default:
            print_usage(stderr);
            return cli_usage_error(NULL, "unknown global option %s", argv[optind - 1]);
        }
    }
    AUTO_FREE char *rootless_root = NULL;
    if (!root_given && geteuid() != 0 && getenv("XDG_RUNTIME_DIR")) {
        /* An unprivileged user cannot write /run/pea; its own runtime directory holds its containers. */
        rootless_root = xasprintf("%s/pea", getenv("XDG_RUNTIME_DIR"));
        g.root = rootless_root;
    }
    seccomp_cache_use_default_dir();
    if (log_open(g.log_path, strcmp(g.log_format, "json") == 0 ? PEA_LOG_JSON : PEA_LOG_TEXT, g.debug) < 0) {
        fprintf(stderr, "pea: open log file %s: %s\n", g.log_path, strerror(errno));
        return 1;
    }
    if (optind >= argc) {
        print_usage(stderr);
        return 1;
    }
    const char *name = argv[optind];
    for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
        if (strcmp(commands[i].name, name) != 0)
            continue;
        int sub_argc = argc - optind;
        char **sub_argv = argv + optind;
        for (int a = 1; a < sub_argc; a++) {
            if (sub_argv[a][0] != '-' || strcmp(sub_argv[a], "--") == 0)
                break; /* the rest may be the container's own command line */
            if (strcmp(sub_argv[a], "--help") == 0 || strcmp(sub_argv[a], "-h") == 0)
                return cli_help(name);
        }
        /* Commands that put a copy of pea inside a container run from a sealed copy of the binary: create, run,
         * exec and the foreground supervisor of `pod run`. The other pod commands only talk to pea-shim (which
         * seals itself) or read and remove state. */
        bool launches = strcmp(name, "create") == 0 || strcmp(name, "run") == 0 || strcmp(name, "exec") == 0 ||
                        (strcmp(name, "pod") == 0 && sub_argc > 1 && strcmp(sub_argv[1], "run") == 0);
        if (launches && sys_reexec_from_sealed_copy(argv) < 0) {
            log_error("%s: re-execute from a sealed copy of pea: %s", name, strerror(errno));
            return 1;
        }
        optind = 0; /* reset getopt for the command's own options */
        log_debug("pea %s: %s (root %s, pid %d)", PEA_VERSION, name, g.root, (int)getpid());
        int r = commands[i].run(&g, sub_argc, sub_argv);
        log_debug("%s: exit status %d", name, r);
        log_close();
        return r;
    }
    return cli_usage_error(NULL, "unknown command \"%s\" (see pea --help)", name);
}
