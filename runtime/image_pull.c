/* pea image pull: the registry client fetches into an OCI layout inside the store's work directory, and the layout
 * import records the image. Blobs the store has (configs, and layers by the blob they were unpacked from) are not
 * fetched again; the import reads those from the store. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "image_internal.h"
#include "pea/image_pull.h"
#include "pea/registry.h"
#include "pea/sys.h"
#include "pea/util.h"

struct pull_job {
    struct pea_image_store *store;
    json_t *layer_blobs; /* {blob digest: diff ID} */
    int layout_fd;
};

static bool store_has_blob(void *ctx, const char *digest)
{
    struct pull_job *j = ctx;
    if (pea_blob_exists(j->store, digest))
        return true;
    const char *diff_id = json_string_value(json_object_get(j->layer_blobs, digest));
    return diff_id && store_has_layer(j->store, diff_id);
}

/* The fetched layout, and for blobs it lacks because the store had them, the store's copy (the import checks its
 * digest again). Layers the store has are never opened: the import finds them by diff ID first. */
static int open_fetched(void *ctx, const char *path, struct pea_error *err)
{
    struct pull_job *j = ctx;
    int fd = sys_open_in_root(j->layout_fd, path, O_RDONLY | O_NONBLOCK, 0);
    if (fd < 0 && errno == ENOENT && strncmp(path, "blobs/sha256/", 13) == 0 && !strchr(path + 13, '/'))
        fd = openat(j->store->blobs_fd, path + 13, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
    return import_take_regular_file(fd, path, err);
}

static void show_unpacked(void *ctx, const char *diff_id, uint64_t bytes)
{
    (void)ctx;
    fprintf(stderr, "Unpacked layer %.19s (%.1f MiB)\n", diff_id, (double)bytes / (1024 * 1024));
}

static int fetch_and_import(struct pull_job *j, const struct pea_image_pull_options *o,
                            const struct pea_image_ref *ref, const char *layout,
                            struct pea_image_pull_result *result, struct pea_error *err)
{
    struct image_platform platform;
    if (o->platform && image_platform_parse(o->platform, &platform, err) < 0)
        return pea_wrap(err, "pull %s", result->name);
    const char *const insecure[] = {ref->domain, NULL};
    const char *const none[] = {NULL};
    struct registry_pull_request req = {
        .registry = ref->domain,
        .repository = ref->path,
        .tag = ref->digest[0] ? NULL : ref->tag,
        .digest = ref->digest[0] ? ref->digest : NULL,
        .insecure_registries = o->skips_tls_verify ? insecure : none,
        .auth_files = o->auth_files,
        .username = o->username,
        .password = o->password,
        .cert_dir = o->cert_dir,
        .show_progress = o->shows_progress,
        .have_blob = store_has_blob,
        .have_blob_ctx = j,
    };
    if (o->platform)
        req.platform = (struct registry_platform){platform.os, platform.architecture, platform.variant};
    struct registry_pull_result pulled;
    /* The registry client's errors name the registry and repository already. */
    if (registry_pull_to_layout(&req, layout, &pulled, err) < 0)
        return -1;
    j->layout_fd = open(layout, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (j->layout_fd < 0)
        return pea_fail(err, errno, "open %s", layout), pea_wrap(err, "pull %s", result->name);
    struct layout_source src = {.open = open_fetched, .ctx = j, .shown = result->name};
    struct pea_image_import_options io = {
        .name = result->name,
        .index_digest = pulled.index_digest[0] ? pulled.index_digest : NULL,
        .on_layer = o->shows_progress && isatty(STDERR_FILENO) ? show_unpacked : NULL,
    };
    AUTO_STRV char **loaded = NULL;
    struct pea_image *image = NULL;
    if (import_layout_source(j->store, &src, &io, &loaded, err) < 0 ||
        pea_image_resolve(j->store, pulled.manifest_digest, &image, err) < 0)
        return pea_wrap(err, "pull %s", result->name);
    /* Both were checked as sha256 digests by the import. */
    snprintf(result->manifest_digest, sizeof result->manifest_digest, "%s", image->manifest_digest);
    snprintf(result->index_digest, sizeof result->index_digest, "%.*s", PEA_DIGEST_SIZE - 1, pulled.index_digest);
    snprintf(result->config_digest, sizeof result->config_digest, "%s", image->config_digest);
    pea_image_free(image);
    return 0;
}

int pea_image_pull(struct pea_image_store *s, const struct pea_image_pull_options *o,
                   struct pea_image_pull_result *result, struct pea_error *err)
{
    memset(result, 0, sizeof *result);
    struct pea_image_ref ref;
    if (pea_image_ref_parse(o->reference, &ref, err) < 0)
        return -1;
    pea_image_ref_format(&ref, result->name, sizeof result->name);
    /* gc.lock shared from before we ask what the store has until the image is recorded: prune waits. */
    if (store_hold_gc_shared(s, err) < 0)
        return pea_wrap(err, "pull %s", result->name);
    store_sweep_work_dirs(s); /* what killed pulls left */
    int work = store_work_dir(s, err);
    if (work < 0)
        return pea_wrap(err, "pull %s", result->name);
    AUTO_FREE char *name = store_new_work_name(s, "pull");
    AUTO_FREE char *layout = xasprintf("%s/%s", s->work_path, name);
    struct pull_job j = {.store = s, .layer_blobs = store_layer_blobs(s), .layout_fd = -1};
    int r = fetch_and_import(&j, o, &ref, layout, result, err);
    json_decref(j.layer_blobs);
    if (j.layout_fd >= 0)
        close(j.layout_fd);
    struct pea_error ignored;
    remove_tree_at(work, name, layout, &ignored); /* the layout made in the work directory, not its path again */
    if (r < 0)
        memset(result, 0, sizeof *result);
    return r;
}
