/* pea volume: the named volumes that pods' persistentVolumeClaim volumes bind, with podman volume's habits. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cli_options.h"
#include "pod_client.h"
#include "pea/util.h"
#include "pea/volume_named.h"

static const struct {
    const char *name, *usage, *summary;
} volume_commands[] = {
    {"ls", "volume ls [-o table|json] [--data-root DIR]",
     "list the named volumes under the data root, with the pods that use each and when it was made"},
    {"rm", "volume rm [-f] [--data-root DIR] NAME...",
     "remove named volumes and their data; one a pod uses is refused (-f/--force: a missing one is no error)"},
};

static void print_volume_usage(FILE *out)
{
    fprintf(out, "Usage: pea volume COMMAND [options]\n\n");
    for (size_t i = 0; i < ARRAY_SIZE(volume_commands); i++)
        fprintf(out, "  %-46s %s\n", volume_commands[i].usage, volume_commands[i].summary);
    fprintf(out, "  Options go before or after the arguments; -- ends them.\n");
}

static int volume_ls(int argc, char **argv)
{
    const char *output = "table", *data_root = POD_DEFAULT_DATA_ROOT;
    const struct cli_option opts[] = {CLI_CHOICE("output", 'o', &output, "table|json"),
                                      CLI_STRING("data-root", 0, &data_root), CLI_END};
    struct cli_args args;
    if (cli_parse_options("volume ls", argc, argv, opts, 0, &args) != 0)
        return 1;
    free(args.items);
    if (args.n)
        return cli_usage_error("volume ls", "takes no arguments");
    struct pea_error err = {0};
    AUTO_JSON json_t *list = volume_named_list(data_root, &err);
    if (!list)
        return cli_fail(&err);
    if (strcmp(output, "json") == 0) {
        json_dumpf(list, stdout, JSON_INDENT(2));
        printf("\n");
        return 0;
    }
    printf("%-40s %-32s %s\n", "NAME", "CREATED", "PODS");
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v) {
        json_t *pods = json_object_get(v, "pods");
        printf("%-40s %-32s ", json_string_value(json_object_get(v, "name")),
               json_string_value(json_object_get(v, "created")));
        size_t k;
        json_t *pod;
        json_array_foreach(pods, k, pod)
            printf("%s%s", k ? "," : "", json_string_value(pod));
        printf("%s\n", json_array_size(pods) ? "" : "-");
    }
    return 0;
}

static int volume_rm(int argc, char **argv)
{
    const char *data_root = POD_DEFAULT_DATA_ROOT;
    bool is_forced = false;
    const struct cli_option opts[] = {CLI_FLAG("force", 'f', &is_forced), CLI_STRING("data-root", 0, &data_root),
                                      CLI_END};
    struct cli_args args;
    if (cli_parse_options("volume rm", argc, argv, opts, 0, &args) != 0)
        return 1;
    AUTO_FREE char **names = args.items;
    if (args.n == 0)
        return cli_usage_error("volume rm", "needs at least one volume name");
    int status = 0;
    for (size_t i = 0; i < args.n; i++) {
        struct pea_error err = {0};
        if (volume_named_remove(data_root, names[i], is_forced, &err) < 0)
            status = cli_fail(&err);
        else
            printf("%s\n", names[i]);
    }
    return status;
}

int cmd_volume(const struct cli_globals *g, int argc, char **argv)
{
    (void)g;
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        print_volume_usage(argc < 2 ? stderr : stdout);
        return argc < 2;
    }
    static int (*const handlers[])(int, char **) = {volume_ls, volume_rm};
    for (size_t i = 0; i < ARRAY_SIZE(volume_commands); i++) {
        if (strcmp(argv[1], volume_commands[i].name) != 0)
            continue;
        for (int a = 2; a < argc && strcmp(argv[a], "--") != 0; a++)
            if (strcmp(argv[a], "--help") == 0 || strcmp(argv[a], "-h") == 0) {
                printf("Usage: pea %s\n\n%s\n", volume_commands[i].usage, volume_commands[i].summary);
                return 0;
            }
        return handlers[i](argc - 1, argv + 1);
    }
    return cli_usage_error(NULL, "volume: unknown command \"%s\" (see pea volume --help)", argv[1]);
}
