/* checkpoint and restore: runc's flags are accepted so that callers get one clear answer instead of a usage error,
 * and that answer is "not supported": pea has no CRIU integration (and CRIU's `criu check` fails on this project's
 * kernels anyway), so neither command ever touches the container. */
#include <getopt.h>
#include <stdio.h>

#include "cli.h"

/* The value-taking flags of runc's checkpoint and restore (both sets: a caller may pass either to either). */
#define CRIU_VALUE_FLAGS(x)                                                                                        \
    x("image-path") x("work-path") x("parent-path") x("status-fd") x("page-server") x("manage-cgroups-mode")        \
        x("empty-ns") x("bundle") x("console-socket") x("pid-file") x("lsm-profile") x("lsm-mount-context")
#define CRIU_BARE_FLAGS(x)                                                                                         \
    x("leave-running") x("tcp-established") x("tcp-skip-in-flight") x("link-remap") x("ext-unix-sk")               \
        x("shell-job") x("lazy-pages") x("file-locks") x("pre-dump") x("auto-dedup") x("detach") x("no-subreaper") \
            x("no-pivot")
#define AS_VALUE_OPTION(name) {name, required_argument, NULL, 'v'},
#define AS_BARE_OPTION(name) {name, no_argument, NULL, 'f'},

static int not_supported(const char *command, int argc, char **argv)
{
    static const struct option opts[] = {CRIU_VALUE_FLAGS(AS_VALUE_OPTION) CRIU_BARE_FLAGS(AS_BARE_OPTION){0}};
    int c;
    opterr = 0;
    /* -b and -d are restore's short forms of --bundle and --detach. */
    while ((c = getopt_long_only(argc, argv, "+b:d", opts, NULL)) != -1)
        if (c == '?' || c == ':')
            return cli_usage_error(command, "unknown option %s", argv[optind - 1]);
    if (optind != argc - 1)
        return cli_usage_error(command, "expected exactly one container id");
    struct pea_error err = {0};
    pea_fail(&err, 0, "%s %s: not supported: pea does not implement checkpoint/restore (CRIU)", command,
             argv[optind]);
    return cli_fail(&err);
}

int cmd_checkpoint(const struct cli_globals *g, int argc, char **argv)
{
    (void)g;
    return not_supported("checkpoint", argc, argv);
}

int cmd_restore(const struct cli_globals *g, int argc, char **argv)
{
    (void)g;
    return not_supported("restore", argc, argv);
}
