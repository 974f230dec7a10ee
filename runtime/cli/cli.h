/* The pea command line: global options and one handler per command. */
#ifndef PEA_CLI_H
#define PEA_CLI_H

#include <stdbool.h>

#include "pea/error.h"

struct cli_globals {
    const char *root;
    const char *log_path;
    const char *log_format;
    bool debug;
    bool systemd_cgroup;
    const char *argv0; /* how we were started, to find pea-pause beside us */
};

struct cli_command {
    const char *name;
    int (*run)(const struct cli_globals *g, int argc, char **argv);
    const char *usage;   /* "create [options] ID" */
    const char *summary; /* one line for `pea --help` */
    const char *options; /* the option list printed by `pea COMMAND --help` */
};

/* Report err as "pea: <msg>" (stderr and --log) and return 1, the exit code for every failure (but exec's: 255). */
int cli_fail(const struct pea_error *err);
/* Usage error for a command: message plus the usage line, exit code 1. */
int cli_usage_error(const char *command, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print `pea COMMAND --help`. */
int cli_help(const char *command);
/* Parse --preserve-fds and similar non-negative numbers. */
bool cli_parse_count(const char *text, int *out);

int cmd_create(const struct cli_globals *g, int argc, char **argv);
int cmd_start(const struct cli_globals *g, int argc, char **argv);
int cmd_run(const struct cli_globals *g, int argc, char **argv);
int cmd_state(const struct cli_globals *g, int argc, char **argv);
int cmd_kill(const struct cli_globals *g, int argc, char **argv);
int cmd_delete(const struct cli_globals *g, int argc, char **argv);
int cmd_list(const struct cli_globals *g, int argc, char **argv);
int cmd_exec(const struct cli_globals *g, int argc, char **argv);
int cmd_pause(const struct cli_globals *g, int argc, char **argv);
int cmd_resume(const struct cli_globals *g, int argc, char **argv);
int cmd_ps(const struct cli_globals *g, int argc, char **argv);
int cmd_update(const struct cli_globals *g, int argc, char **argv);
int cmd_events(const struct cli_globals *g, int argc, char **argv);
int cmd_spec(const struct cli_globals *g, int argc, char **argv);
int cmd_features(const struct cli_globals *g, int argc, char **argv);
int cmd_checkpoint(const struct cli_globals *g, int argc, char **argv);
int cmd_restore(const struct cli_globals *g, int argc, char **argv);
int cmd_pod(const struct cli_globals *g, int argc, char **argv);
int cmd_image(const struct cli_globals *g, int argc, char **argv);
int cmd_volume(const struct cli_globals *g, int argc, char **argv);

#endif
