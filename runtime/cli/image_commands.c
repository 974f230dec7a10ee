/* pea image: pull, load, import, list, inspect, tag and remove images in the store under the data root, in podman's
 * habits (its words for what was done: "Loaded image:", "Untagged:", "Deleted:"). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cli_options.h"
#include "pod_client.h"
#include "pea/image_pull.h"
#include "pea/image_bundle.h"
#include "pea/image_ref.h"
#include "pea/image_store.h"
#include "pea/util.h"

static const struct {
    const char *name, *usage, *summary;
} image_commands[] = {
    {"pull", "image pull [-q] [options] REF", "fetch an image from a registry (options below)"},
    {"load", "image load [-i FILE] [-q] [--name NAME]",
     "load a docker-archive or oci-archive tar (gzip and zstd too; stdin without -i)"},
    {"import", "image import [--ref REF] [-q] DIR [NAME]", "import the images of an OCI image layout directory"},
    {"ls", "image ls [-q] [-o table|json]", "list the images"},
    {"inspect", "image inspect IMAGE...", "print images as JSON: config, layers, their directories"},
    {"tag", "image tag IMAGE NAME...", "give an image more names"},
    {"rm", "image rm [-f] IMAGE...", "remove names, and images left without one (never one a pod holds)"},
    {"prune", "image prune [-a]", "remove images without a name (-a: every image no pod holds) and unused layers"},
    {"bundle", "image bundle [-f] [-t] [--rootless] IMAGE DIR",
     "write an OCI runtime bundle (rootfs, config.json) for pea run or runc"},
};

static void print_image_usage(FILE *f)
{
    fprintf(f, "Usage: pea image COMMAND [--data-root DIR] [options]\n\nCommands:\n");
    for (size_t i = 0; i < ARRAY_SIZE(image_commands); i++)
        fprintf(f, "  %-44s %s\n", image_commands[i].usage, image_commands[i].summary);
    fprintf(f, "\nimage pull options, as podman pull takes them:\n"
               "  --platform OS/ARCH[/VARIANT]  the image to pick from an index (default: this host's)\n"
               "  --authfile FILE               credentials (default: $REGISTRY_AUTH_FILE,\n"
               "                                ${XDG_RUNTIME_DIR}/containers/auth.json,\n"
               "                                ~/.config/containers/auth.json, ~/.docker/config.json)\n"
               "  --creds USER:PASSWORD         credentials given outright\n"
               "  --cert-dir DIR                CAs (*.crt) and a client certificate (NAME.cert, NAME.key)\n"
               "                                (default: /etc/containers/certs.d/HOST:PORT, /etc/docker/certs.d/...)\n"
               "  --tls-verify=false            plain HTTP and unverified certificates for this registry\n"
               "                                (plain HTTP is allowed anyway for localhost, 127.0.0.0/8 and [::1])\n");
    fprintf(f, "\nThe store is DIR/images (--data-root, default %s, as for pods).\n"
               "Limits per layer: PEA_IMAGE_MAX_LAYER_BYTES (default 32 GiB uncompressed) and\n"
               "PEA_IMAGE_MAX_LAYER_ENTRIES (default 2000000).\n",
            POD_DEFAULT_DATA_ROOT);
}

struct image_cli {
    const char *data_root;
    const char *input, *name, *ref, *output;
    const char *platform, *authfile, *creds, *cert_dir; /* pull */
    bool does_tls_verify;                               /* pull */
    bool is_quiet, is_forced, is_all;
    struct cli_args args; /* the positional arguments */
};

static void image_cli_clear(struct image_cli *o) { free(o->args.items); }
#define AUTO_IMAGE_CLI __attribute__((cleanup(image_cli_clear)))

/* One option set for every image command, parsed as the pod commands' (options anywhere, "--" ends them); takes
 * names the ones a command has: i(nput), q(uiet), n(ame), r(ef), o(utput), f(orce), a(ll), p(ull's options). */
static int parse(int argc, char **argv, const char *command, const char *takes, struct image_cli *o)
{
    *o = (struct image_cli){.data_root = POD_DEFAULT_DATA_ROOT, .output = "table", .does_tls_verify = true};
    struct cli_option opts[16];
    size_t n = 0;
    opts[n++] = (struct cli_option)CLI_STRING("data-root", 0, &o->data_root);
    if (strchr(takes, 'i'))
        opts[n++] = (struct cli_option)CLI_STRING("input", 'i', &o->input);
    if (strchr(takes, 'q'))
        opts[n++] = (struct cli_option)CLI_FLAG("quiet", 'q', &o->is_quiet);
    if (strchr(takes, 'n'))
        opts[n++] = (struct cli_option)CLI_STRING("name", 0, &o->name);
    if (strchr(takes, 'r'))
        opts[n++] = (struct cli_option)CLI_STRING("ref", 0, &o->ref);
    if (strchr(takes, 'o')) {
        opts[n++] = (struct cli_option)CLI_CHOICE("output", 'o', &o->output, "table|json");
        opts[n++] = (struct cli_option)CLI_CHOICE("format", 0, &o->output, "table|json");
    }
    /* prune -f: podman's "do not ask"; pea never asks. */
    if (strchr(takes, 'f'))
        opts[n++] = (struct cli_option)CLI_FLAG("force", 'f', &o->is_forced);
    if (strchr(takes, 'a'))
        opts[n++] = (struct cli_option)CLI_FLAG("all", 'a', &o->is_all);
    if (strchr(takes, 'p')) {
        opts[n++] = (struct cli_option)CLI_STRING("platform", 0, &o->platform);
        opts[n++] = (struct cli_option)CLI_STRING("authfile", 0, &o->authfile);
        opts[n++] = (struct cli_option)CLI_STRING("creds", 0, &o->creds);
        opts[n++] = (struct cli_option)CLI_STRING("cert-dir", 0, &o->cert_dir);
        opts[n++] = (struct cli_option)CLI_BOOL("tls-verify", 0, &o->does_tls_verify);
    }
    opts[n] = (struct cli_option)CLI_END;
    return cli_parse_options(command, argc, argv, opts, 0, &o->args);
}

static struct pea_image_store *open_store(const struct image_cli *o, struct pea_error *err)
{
    struct pea_image_limits limits;
    struct pea_image_store *s = NULL;
    if (pea_image_limits_from_env(&limits, err) < 0 || pea_image_store_open(o->data_root, &limits, &s, err) < 0)
        return NULL;
    return s;
}

static void human_size(uint64_t bytes, char *buf, size_t len)
{
    static const char *const units[] = {"B", "kB", "MB", "GB", "TB"};
    double v = (double)bytes;
    size_t u = 0;
    while (v >= 1000 && u + 1 < ARRAY_SIZE(units)) {
        v /= 1000;
        u++;
    }
    snprintf(buf, len, "%.3g %s", v, units[u]);
}

static void on_layer(void *ctx, const char *diff_id, uint64_t bytes)
{
    (void)ctx;
    char size[32];
    human_size(bytes, size, sizeof size);
    fprintf(stderr, "Unpacked layer %.19s (%s)\n", diff_id, size);
}

static int print_loaded(const char *verb, char **loaded)
{
    for (size_t i = 0; loaded && loaded[i]; i++)
        printf("%s image: %s\n", verb, loaded[i]);
    strv_free(loaded);
    return 0;
}

static int image_pull(int argc, char **argv)
{
    AUTO_IMAGE_CLI struct image_cli o;
    if (parse(argc, argv, "image pull", "qp", &o) != 0)
        return 1;
    if (o.args.n != 1)
        return cli_usage_error("image pull", "takes one image reference");
    struct pea_image_pull_options po = {
        .reference = o.args.items[0],
        .platform = o.platform,
        .skips_tls_verify = !o.does_tls_verify,
        .cert_dir = o.cert_dir,
        .shows_progress = !o.is_quiet && isatty(STDERR_FILENO),
    };
    const char *auth_files[] = {o.authfile, NULL};
    if (o.authfile)
        po.auth_files = auth_files;
    AUTO_FREE char *user = NULL;
    if (o.creds) {
        const char *colon = strchr(o.creds, ':');
        if (!colon || colon == o.creds)
            return cli_usage_error("image pull", "--creds takes USER:PASSWORD");
        user = xasprintf("%.*s", (int)(colon - o.creds), o.creds);
        po.username = user;
        po.password = colon + 1;
    }
    struct pea_error err = {0};
    struct pea_image_store *s = open_store(&o, &err);
    if (!s)
        return cli_fail(&err);
    struct pea_image_pull_result result;
    int r = pea_image_pull(s, &po, &result, &err);
    pea_image_store_close(s);
    if (r < 0)
        return cli_fail(&err);
    /* podman's habit: the image ID on stdout, progress (on a terminal) on stderr. */
    printf("%s\n", pea_digest_hex(result.config_digest));
    return 0;
}

static int image_load(int argc, char **argv)
{
    AUTO_IMAGE_CLI struct image_cli o;
    if (parse(argc, argv, "image load", "iqn", &o) != 0)
        return 1;
    if (o.args.n != 0)
        return cli_usage_error("image load", "takes no arguments (the archive is -i FILE, or stdin)");
    struct pea_error err = {0};
    AUTO_FD int fd = o.input && strcmp(o.input, "-") != 0 ? open(o.input, O_RDONLY | O_CLOEXEC) : dup(0);
    if (fd < 0)
        return pea_fail(&err, errno, "image load: open %s", o.input ? o.input : "stdin"), cli_fail(&err);
    struct pea_image_store *s = open_store(&o, &err);
    if (!s)
        return cli_fail(&err);
    struct pea_image_import_options io = {.name = o.name, .on_layer = o.is_quiet ? NULL : on_layer};
    char **loaded = NULL;
    int r = pea_image_load_archive(s, fd, &io, &loaded, &err);
    pea_image_store_close(s);
    if (r < 0)
        return cli_fail(&err);
    return print_loaded("Loaded", loaded);
}

static int image_import(int argc, char **argv)
{
    AUTO_IMAGE_CLI struct image_cli o;
    if (parse(argc, argv, "image import", "qr", &o) != 0)
        return 1;
    if (o.args.n != 1 && o.args.n != 2)
        return cli_usage_error("image import", "takes the layout directory and, optionally, a name");
    struct pea_error err = {0};
    struct pea_image_store *s = open_store(&o, &err);
    if (!s)
        return cli_fail(&err);
    struct pea_image_import_options io = {.name = o.args.n == 2 ? o.args.items[1] : NULL, .layout_ref = o.ref,
                                          .on_layer = o.is_quiet ? NULL : on_layer};
    char **loaded = NULL;
    int r = pea_image_import_layout(s, o.args.items[0], &io, &loaded, &err);
    pea_image_store_close(s);
    if (r < 0)
        return cli_fail(&err);
    return print_loaded("Imported", loaded);
}

static time_t config_created(const struct pea_image *img)
{
    const char *text = json_string_value(json_object_get(img->config, "created"));
    struct tm tm = {0};
    if (!text || !strptime(text, "%Y-%m-%dT%H:%M:%S", &tm))
        return 0;
    return timegm(&tm);
}

static void human_age(time_t created, char *buf, size_t len)
{
    if (!created) {
        snprintf(buf, len, "unknown");
        return;
    }
    long long age = (long long)(time(NULL) - created);
    static const struct {
        long long seconds;
        const char *unit;
    } units[] = {{365LL * 86400, "year"}, {30LL * 86400, "month"}, {7 * 86400, "week"}, {86400, "day"},
                 {3600, "hour"},          {60, "minute"},          {1, "second"}};
    for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
        long long n = age / units[i].seconds;
        if (n >= 1 || i + 1 == ARRAY_SIZE(units)) {
            snprintf(buf, len, "%lld %s%s ago", n, units[i].unit, n == 1 ? "" : "s");
            return;
        }
    }
}

/* "docker.io/library/busybox:1.36" -> repository and tag; a name with only a digest has tag "<none>". */
static void split_name(const char *name, char *repo, size_t repo_len, char *tag, size_t tag_len)
{
    struct pea_image_ref ref;
    struct pea_error ignored;
    if (pea_image_ref_parse(name, &ref, &ignored) < 0) {
        snprintf(repo, repo_len, "%s", name);
        snprintf(tag, tag_len, "<none>");
        return;
    }
    pea_image_ref_repository(&ref, repo, repo_len);
    snprintf(tag, tag_len, "%s", ref.tag[0] ? ref.tag : "<none>");
}

static json_t *image_summary(const struct pea_image *img)
{
    json_t *tags = json_array(), *digests = json_array(), *names = json_array();
    for (size_t i = 0; img->names[i]; i++) {
        char repo[PEA_IMAGE_REF_TEXT_MAX], tag[PEA_IMAGE_TAG_MAX + 8];
        split_name(img->names[i], repo, sizeof repo, tag, sizeof tag);
        json_array_append_new(names, json_string(img->names[i]));
        if (strcmp(tag, "<none>") != 0)
            json_array_append_new(tags, json_string(img->names[i]));
        /* The manifest's digest, and those of the indexes it was chosen from (a pull's manifest list), as podman
         * lists them. */
        for (size_t d = 0; d == 0 || img->index_digests[d - 1]; d++) {
            const char *digest = d == 0 ? img->manifest_digest : img->index_digests[d - 1];
            AUTO_FREE char *pinned = xasprintf("%s@%s", repo, digest);
            bool seen = false;
            for (size_t k = 0; k < json_array_size(digests); k++)
                seen = seen || strcmp(json_string_value(json_array_get(digests, k)), pinned) == 0;
            if (!seen)
                json_array_append_new(digests, json_string(pinned));
        }
    }
    return json_pack("{s:s, s:s, s:o, s:o, s:o, s:I, s:I, s:I}", "Id", pea_digest_hex(img->config_digest), "Digest",
                     img->manifest_digest, "Names", names, "RepoTags", tags, "RepoDigests", digests, "Size",
                     (json_int_t)img->size, "Created", (json_int_t)config_created(img), "Layers",
                     (json_int_t)img->n_layers);
}

static int print_json(json_t *doc)
{
    char *text = json_dumps(doc, JSON_INDENT(4) | JSON_PRESERVE_ORDER);
    json_decref(doc);
    if (!text)
        return 1;
    printf("%s\n", text);
    free(text);
    return 0;
}

static int image_ls(int argc, char **argv)
{
    AUTO_IMAGE_CLI struct image_cli o;
    if (parse(argc, argv, "image ls", "qo", &o) != 0)
        return 1;
    if (o.args.n != 0)
        return cli_usage_error("image ls", "takes no arguments");
    struct pea_error err = {0};
    struct pea_image_store *s = open_store(&o, &err);
    struct pea_image **images = NULL;
    size_t n = 0;
    int r = s ? pea_image_list(s, &images, &n, &err) : -1;
    pea_image_store_close(s);
    if (r < 0)
        return cli_fail(&err);
    if (strcmp(o.output, "json") == 0) {
        json_t *all = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(all, image_summary(images[i]));
        pea_image_list_free(images, n);
        return print_json(all);
    }
    if (!o.is_quiet)
        printf("%-40s %-16s %-13s %-16s %s\n", "REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE");
    for (size_t i = 0; i < n; i++) {
        const struct pea_image *img = images[i];
        const char *id = pea_digest_hex(img->config_digest);
        if (o.is_quiet) {
            printf("%.12s\n", id);
            continue;
        }
        char age[48], size[32];
        human_age(config_created(img), age, sizeof age);
        human_size(img->size, size, sizeof size);
        size_t rows = strv_len(img->names);
        for (size_t k = 0; k < (rows ? rows : 1); k++) {
            char repo[PEA_IMAGE_REF_TEXT_MAX] = "<none>", tag[PEA_IMAGE_TAG_MAX + 8] = "<none>";
            if (rows)
                split_name(img->names[k], repo, sizeof repo, tag, sizeof tag);
            printf("%-40s %-16s %-13.12s %-16s %s\n", repo, tag, id, age, size);
        }
    }
    pea_image_list_free(images, n);
    return 0;
}

static json_t *image_details(const struct pea_image *img)
{
    json_t *d = image_summary(img), *c = img->config;
    json_object_set_new(d, "Created", json_string(json_string_value(json_object_get(c, "created")) ?: ""));
    json_object_set_new(d, "Architecture", json_string(json_string_value(json_object_get(c, "architecture")) ?: ""));
    json_object_set_new(d, "Os", json_string(json_string_value(json_object_get(c, "os")) ?: ""));
    json_object_set_new(d, "Author", json_string(json_string_value(json_object_get(c, "author")) ?: ""));
    json_object_set_new(d, "Config", json_deep_copy(json_object_get(c, "config") ?: json_object_get(c, "Config")));
    json_object_set_new(d, "RootFS", json_deep_copy(json_object_get(c, "rootfs")));
    json_object_set_new(d, "Manifest", json_deep_copy(img->manifest));
    json_t *indexes = json_array(), *dirs = json_array();
    for (size_t i = 0; img->index_digests[i]; i++)
        json_array_append_new(indexes, json_string(img->index_digests[i]));
    for (size_t i = 0; img->layer_dirs[i]; i++)
        json_array_append_new(dirs, json_string(img->layer_dirs[i]));
    json_object_set_new(d, "IndexDigests", indexes);
    json_object_set_new(d, "LayerDirs", dirs);
    json_object_set_new(d, "LoadedAt", json_string(img->loaded_at));
    return d;
}

static int image_inspect(int argc, char **argv)
{
    AUTO_IMAGE_CLI struct image_cli o;
    if (parse(argc, argv, "image inspect", "", &o) != 0)
        return 1;
    if (o.args.n == 0)
        return cli_usage_error("image inspect", "names no image");
    struct pea_error err = {0};
    struct pea_image_store *s = open_store(&o, &err);
    if (!s)
        return cli_fail(&err);
    json_t *all = json_array();
    int status = 0;
    for (size_t i = 0; i < o.args.n; i++) {
        struct pea_image *img = NULL;
        if (pea_image_resolve(s, o.args.items[i], &img, &err) < 0) {
            cli_fail(&err);
            status = 1;
            continue;
        }
        json_array_append_new(all, image_details(img));
        pea_image_free(img);
    }
    pea_image_store_close(s);
    print_json(all);
    return status;
}

static int image_tag(int argc, char **argv)
{
    AUTO_IMAGE_CLI struct image_cli o;
    if (parse(argc, argv, "image tag", "", &o) != 0)
        return 1;
    if (o.args.n < 2)
        return cli_usage_error("image tag", "takes an image and at least one new name");
    struct pea_error err = {0};
    struct pea_image_store *s = open_store(&o, &err);
    if (!s)
        return cli_fail(&err);
    int status = 0;
    for (size_t i = 1; i < o.args.n && status == 0; i++)
        if (pea_image_tag(s, o.args.items[0], o.args.items[i], &err) < 0)
            status = cli_fail(&err);
    pea_image_store_close(s);
    return status;
}

static int image_rm(int argc, char **argv)
{
    AUTO_IMAGE_CLI struct image_cli o;
    if (parse(argc, argv, "image rm", "f", &o) != 0)
        return 1;
    if (o.args.n == 0)
        return cli_usage_error("image rm", "names no image");
    struct pea_error err = {0};
    struct pea_image_store *s = open_store(&o, &err);
    if (!s)
        return cli_fail(&err);
    int status = 0;
    for (size_t i = 0; i < o.args.n; i++) {
        char **report = NULL;
        if (pea_image_remove(s, o.args.items[i], o.is_forced, &report, &err) < 0)
            status = cli_fail(&err);
        for (size_t k = 0; report && report[k]; k++)
            printf("%s\n", report[k]);
        strv_free(report);
    }
    pea_image_store_close(s);
    return status;
}

static int image_prune(int argc, char **argv)
{
    AUTO_IMAGE_CLI struct image_cli o;
    if (parse(argc, argv, "image prune", "af", &o) != 0)
        return 1;
    if (o.args.n != 0)
        return cli_usage_error("image prune", "takes no arguments");
    struct pea_error err = {0};
    struct pea_image_store *s = open_store(&o, &err);
    char **report = NULL;
    int r = s ? pea_image_prune(s, o.is_all, &report, &err) : -1;
    pea_image_store_close(s);
    if (r < 0)
        return cli_fail(&err);
    for (size_t k = 0; report && report[k]; k++)
        printf("%s\n", report[k] + strlen("Deleted: "));
    strv_free(report);
    return 0;
}

/* Options of its own (parse() is shared by the store's commands): --force replaces DIR's rootfs and config.json,
 * --rootless writes the rootless default spec, -t gives the process a terminal. */
static int image_bundle(int argc, char **argv)
{
    const char *data_root = POD_DEFAULT_DATA_ROOT;
    struct pea_image_bundle_options bo = {0};
    struct cli_args args = {0};
    const struct cli_option opts[] = {
        CLI_STRING("data-root", 0, &data_root), CLI_FLAG("force", 'f', &bo.is_forced),
        CLI_FLAG("rootless", 0, &bo.is_rootless), CLI_FLAG("tty", 't', &bo.has_terminal), CLI_END,
    };
    if (cli_parse_options("image bundle", argc, argv, opts, 0, &args) != 0)
        return 1;
    AUTO_FREE char **positional = args.items;
    if (args.n != 2)
        return cli_usage_error("image bundle", "takes an image and the bundle directory");
    /* The copy holds two directory fds per level of the deepest path: lift the soft limit to the hard one. */
    struct rlimit nofile;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
        nofile.rlim_cur = nofile.rlim_max;
        setrlimit(RLIMIT_NOFILE, &nofile);
    }
    struct pea_error err = {0};
    struct image_cli store_options = {.data_root = data_root};
    struct pea_image_store *s = open_store(&store_options, &err);
    if (!s)
        return cli_fail(&err);
    int r = pea_image_bundle_write(s, positional[0], positional[1], &bo, &err);
    pea_image_store_close(s);
    return r < 0 ? cli_fail(&err) : 0;
}

int cmd_image(const struct cli_globals *g, int argc, char **argv)
{
    (void)g;
    if (argc < 2) {
        print_image_usage(stderr);
        return 1;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 || strcmp(sub, "help") == 0) {
        print_image_usage(stdout);
        return 0;
    }
    static const struct {
        const char *name;
        int (*run)(int argc, char **argv);
    } table[] = {
        {"pull", image_pull}, {"load", image_load}, {"import", image_import}, {"ls", image_ls}, {"list", image_ls},
        {"inspect", image_inspect}, {"tag", image_tag}, {"rm", image_rm},       {"remove", image_rm},
        {"prune", image_prune}, {"bundle", image_bundle},
    };
    for (size_t i = 0; i < ARRAY_SIZE(table); i++) {
        if (strcmp(table[i].name, sub) != 0)
            continue;
        for (int a = 2; a < argc; a++)
            if (strcmp(argv[a], "--help") == 0 || strcmp(argv[a], "-h") == 0) {
                print_image_usage(stdout);
                return 0;
            }
        return table[i].run(argc - 1, argv + 1);
    }
    print_image_usage(stderr);
    return cli_usage_error("image", "unknown command \"%s\"", sub);
}
