/* Options anywhere among the positional arguments, as kubectl takes them (see cli_options.h). Written out rather than
 * left to getopt_long: its permutation depends on POSIXLY_CORRECT, and it cannot stop at pod exec's command. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cli_options.h"
#include "pea/util.h"

static const struct cli_option *find_long(const struct cli_option *opts, const char *name, size_t len)
{
    for (const struct cli_option *o = opts; o->name; o++)
        if (strlen(o->name) == len && strncmp(o->name, name, len) == 0)
            return o;
    return NULL;
}

static const struct cli_option *find_short(const struct cli_option *opts, char c)
{
    for (const struct cli_option *o = opts; o->name; o++)
        if (o->short_name == c)
            return o;
    return NULL;
}

/* Whether word is one of choices ("table|json|name"). */
static bool is_choice(const char *choices, const char *word)
{
    size_t len = strlen(word);
    for (const char *p = choices; *p;) {
        size_t n = strcspn(p, "|");
        if (n == len && strncmp(p, word, len) == 0)
            return true;
        p += n + (p[n] == '|');
    }
    return false;
}

/* Store value for o (given as spelled); 1 after a usage error. */
static int take_value(const char *command, const struct cli_option *o, const char *spelled, const char *value)
{
    long long number;
    switch (o->kind) {
    case CLI_OPT_FLAG: *(bool *)o->value = true; return 0;
    case CLI_OPT_BOOL:
        if (value && strcmp(value, "true") != 0 && strcmp(value, "false") != 0)
            return cli_usage_error(command, "%s takes true or false, not \"%s\"", spelled, value);
        *(bool *)o->value = !value || strcmp(value, "true") == 0;
        return 0;
    case CLI_OPT_STRING: *(const char **)o->value = value; return 0;
    case CLI_OPT_LIST: {
        struct cli_list *list = o->value;
        /* NULL-terminated as well, for the functions that take a string vector. */
        list->items = xrealloc(list->items, (list->n + 2) * sizeof *list->items);
        list->items[list->n++] = value;
        list->items[list->n] = NULL;
        return 0;
    }
    case CLI_OPT_COUNT:
    case CLI_OPT_INT:
        if (parse_int64(value, &number) < 0 || (o->kind == CLI_OPT_COUNT && number < 0))
            return cli_usage_error(command, "%s takes %s, not \"%s\"", spelled,
                                   o->kind == CLI_OPT_COUNT ? "a non-negative integer" : "an integer", value);
        *(long long *)o->value = number;
        return 0;
    case CLI_OPT_CHOICE:
        if (!is_choice(o->choices, value))
            return cli_usage_error(command, "%s takes %s, not \"%s\"", spelled, o->choices, value);
        *(const char **)o->value = value;
        return 0;
    }
    return 0;
}

static void add_arg(struct cli_args *args, char *arg)
{
    args->items = xrealloc(args->items, (args->n + 1) * sizeof *args->items);
    args->items[args->n++] = arg;
}

int cli_parse_options(const char *command, int argc, char **argv, const struct cli_option *opts,
                      size_t command_after, struct cli_args *args)
{
    *args = (struct cli_args){0};
    int status = 0;
    int i = 1;
    for (; i < argc && status == 0; i++) {
        char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (a[0] != '-' || a[1] == '\0') { /* "-" alone is an argument (stdin), as kubectl's -f - */
            if (command_after > 0 && args->n == command_after)
                break;
            add_arg(args, a);
            continue;
        }
        if (a[1] == '-') {
            const char *name = a + 2, *eq = strchr(name, '=');
            const struct cli_option *o = find_long(opts, name, eq ? (size_t)(eq - name) : strlen(name));
            if (!o) {
                status = cli_usage_error(command, "unknown option %.*s", eq ? (int)(eq - a) : (int)strlen(a), a);
            } else if (o->kind == CLI_OPT_FLAG) {
                status = eq ? cli_usage_error(command, "--%s takes no value", o->name)
                            : take_value(command, o, a, NULL);
            } else if (o->kind == CLI_OPT_BOOL) { /* its value only after "=": "--tls-verify false" is two words */
                char spelled[64];
                snprintf(spelled, sizeof spelled, "--%s", o->name);
                status = take_value(command, o, spelled, eq ? eq + 1 : NULL);
            } else if (eq) {
                status = take_value(command, o, o->name, eq + 1);
            } else if (i + 1 >= argc) {
                status = cli_usage_error(command, "--%s needs a value", o->name);
            } else {
                status = take_value(command, o, a, argv[++i]);
            }
            continue;
        }
        /* -abc: flags bundled; the first option that takes a value takes the rest of the word, or the next one. */
        for (const char *p = a + 1; *p && status == 0; p++) {
            const struct cli_option *o = find_short(opts, *p);
            char spelled[3] = {'-', *p, '\0'};
            if (!o) {
                status = cli_usage_error(command, "unknown option %s", spelled);
            } else if (o->kind == CLI_OPT_FLAG || o->kind == CLI_OPT_BOOL) {
                status = take_value(command, o, spelled, NULL);
            } else if (p[1]) {
                status = take_value(command, o, spelled, p + 1);
                break;
            } else if (i + 1 >= argc) {
                status = cli_usage_error(command, "%s needs a value", spelled);
            } else {
                status = take_value(command, o, spelled, argv[++i]);
            }
        }
    }
    for (; status == 0 && i < argc; i++)
        add_arg(args, argv[i]);
    if (status != 0) {
        free(args->items);
        *args = (struct cli_args){0};
    }
    return status;
}

const char *cli_pod_name(const char *arg)
{
    if (strncmp(arg, "pod/", 4) == 0)
        return arg + 4;
    if (strncmp(arg, "pods/", 5) == 0)
        return arg + 5;
    return arg;
}
