/* Test driver for the registry client (not installed): registry_pull_to_layout with the parts given on the
 * command line. Prints "manifest DIGEST", "mediaType TYPE" and "index DIGEST|-" on success; one error line and
 * exit 1 on failure. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pea/registry.h"

/* --have DIGEST: blobs the caller claims to hold already. */
static const char *held[16];

static bool is_held(void *ctx, const char *digest)
{
    (void)ctx;
    for (size_t i = 0; held[i]; i++)
        if (strcmp(held[i], digest) == 0)
            return true;
    return false;
}

static void usage(void)
{
    fprintf(stderr, "usage: registry-fetch --registry HOST[:PORT] --repository NAME (--tag T | --digest D)\n"
                    "       [--platform OS/ARCH[/VARIANT]] [--insecure HOST[:PORT]]... [--auth-file F]...\n"
                    "       [--cert-dir DIR] [--ca-file FILE] [--parallel N] [--max-blob-size N] [--progress]\n"
                    "       [--have DIGEST]... LAYOUT\n");
    exit(2);
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"registry", required_argument, NULL, 'r'},  {"repository", required_argument, NULL, 'n'},
        {"tag", required_argument, NULL, 't'},       {"digest", required_argument, NULL, 'd'},
        {"platform", required_argument, NULL, 'p'},  {"insecure", required_argument, NULL, 'i'},
        {"auth-file", required_argument, NULL, 'a'}, {"cert-dir", required_argument, NULL, 'c'},
        {"ca-file", required_argument, NULL, 'C'},   {"parallel", required_argument, NULL, 'j'},
        {"max-blob-size", required_argument, NULL, 'm'}, {"progress", no_argument, NULL, 'P'},
        {"have", required_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct registry_pull_request req = {0};
    const char *insecure[16] = {0}, *auth_files[16] = {0};
    size_t n_insecure = 0, n_auth = 0, n_held = 0;
    bool has_auth_files = false;
    char *platform = NULL;
    int opt;
    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (opt) {
        case 'r': req.registry = optarg; break;
        case 'n': req.repository = optarg; break;
        case 't': req.tag = optarg; break;
        case 'd': req.digest = optarg; break;
        case 'p': platform = optarg; break;
        case 'i':
            if (n_insecure + 1 < 16)
                insecure[n_insecure++] = optarg;
            break;
        case 'a':
            has_auth_files = true;
            if (n_auth + 1 < 16)
                auth_files[n_auth++] = optarg;
            break;
        case 'c': req.cert_dir = optarg; break;
        case 'C': req.ca_file = optarg; break;
        case 'j': req.max_parallel = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'm': req.max_blob_size = strtoull(optarg, NULL, 10); break;
        case 'P': req.show_progress = true; break;
        case 'h':
            if (n_held + 1 < 16)
                held[n_held++] = optarg;
            req.have_blob = is_held;
            break;
        default: usage();
        }
    }
    if (optind + 1 != argc)
        usage();
    if (platform) {
        req.platform.os = strtok(platform, "/");
        req.platform.architecture = strtok(NULL, "/");
        req.platform.variant = strtok(NULL, "/");
    }
    req.insecure_registries = insecure;
    /* --auth-file "" alone means: no credential files at all (not the defaults). */
    static const char *const no_files[] = {NULL};
    if (has_auth_files)
        req.auth_files = auth_files[0] && auth_files[0][0] ? auth_files : no_files;

    struct registry_pull_result result;
    struct pea_error err = {0};
    if (registry_pull_to_layout(&req, argv[optind], &result, &err) < 0) {
        fprintf(stderr, "registry-fetch: %s\n", err.msg);
        return 1;
    }
    printf("manifest %s\nmediaType %s\nindex %s\n", result.manifest_digest, result.manifest_media_type,
           result.index_digest[0] ? result.index_digest : "-");
    return 0;
}
