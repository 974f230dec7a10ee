/* The pod commands' options as kubectl takes them: before, between or after the positional arguments, "--" ends
 * them, "--name=value" or "--name value", "-c NAME" or "-cNAME", "-it" for "-i -t". A command lists its options in
 * one table; adding an option is one line there:
 *
 *     CLI_LIST("configmap", 0, &configmaps),
 */
#ifndef PEA_CLI_OPTIONS_H
#define PEA_CLI_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>

enum cli_option_kind {
    CLI_OPT_FLAG,   /* bool *: set when given */
    CLI_OPT_STRING, /* const char **: the value (the last one given wins) */
    CLI_OPT_LIST,   /* struct cli_list *: every value, in order (repeatable) */
    CLI_OPT_COUNT,  /* long long *: a non-negative integer */
    CLI_OPT_INT,    /* long long *: an integer, negative allowed */
    CLI_OPT_CHOICE, /* const char **: one of the words in choices ("table|json|name") */
    CLI_OPT_BOOL,   /* bool *: "--name" or "--name=true" sets it, "--name=false" clears it (podman's habit) */
};

struct cli_option {
    const char *name; /* the long name, without "--" */
    char short_name;  /* 0: none */
    enum cli_option_kind kind;
    void *value;
    const char *choices; /* CLI_OPT_CHOICE */
};

/* The entries of a table, ended by CLI_END. */
#define CLI_FLAG(name, short_name, value) {name, short_name, CLI_OPT_FLAG, value, NULL}
#define CLI_STRING(name, short_name, value) {name, short_name, CLI_OPT_STRING, value, NULL}
#define CLI_LIST(name, short_name, value) {name, short_name, CLI_OPT_LIST, value, NULL}
#define CLI_COUNT(name, short_name, value) {name, short_name, CLI_OPT_COUNT, value, NULL}
#define CLI_INT(name, short_name, value) {name, short_name, CLI_OPT_INT, value, NULL}
#define CLI_CHOICE(name, short_name, value, choices) {name, short_name, CLI_OPT_CHOICE, value, choices}
#define CLI_BOOL(name, short_name, value) {name, short_name, CLI_OPT_BOOL, value, NULL}
#define CLI_END {NULL, 0, CLI_OPT_FLAG, NULL, NULL}

/* A repeatable option's values; they point into argv. Free items only. */
struct cli_list {
    const char **items; /* NULL-terminated, or NULL when empty */
    size_t n;
};

/* What is left once the options are taken: the positional arguments, in order (pointers into argv). */
struct cli_args {
    char **items;
    size_t n;
};

/* Parse argv[1..argc) (argv[0] is the command's own name) against opts (ended by a NULL name). The positional
 * arguments land in *args (free args->items). Options may come anywhere, until "--" or, when command_after > 0, the
 * positional argument after the first command_after ones: that one and the rest are a command line (pod exec's),
 * never options. On a bad option or value: a usage error naming command is printed and 1 is returned, else 0. */
int cli_parse_options(const char *command, int argc, char **argv, const struct cli_option *opts,
                      size_t command_after, struct cli_args *args);

/* A pod's name as kubectl also takes it: "pod/NAME" or "pods/NAME" is NAME (a pod's name has no "/"). */
const char *cli_pod_name(const char *arg);

#endif
