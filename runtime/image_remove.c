/* Holds, removal and garbage collection. rm and prune take gc.lock alone (imports hold it shared until their image
 * is recorded, so nothing they wrote is collected under them), then meta.lock; holds change under meta.lock, so an
 * image is never removed between a holder's check and its hold. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image_internal.h"
#include "pea/image_ref.h"
#include "pea/log.h"
#include "pea/util.h"

#define HOLDS_DIR "holds"
#define HOLDER_MAX 200
#define HOLD_FILE_MAX (1024 * 1024)

static int check_holder(const char *holder, struct pea_error *err)
{
    size_t n = strlen(holder);
    bool ok = n > 0 && n <= HOLDER_MAX && holder[0] != '.';
    for (const char *p = holder; ok && *p; p++)
        ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || strchr("_.-", *p);
    return ok ? 0 : pea_fail(err, 0, "image holder \"%s\": not 1 to 200 of [A-Za-z0-9_.-] (not starting with .)", holder);
}

static int open_holds(struct pea_image_store *s, struct pea_error *err)
{
    if (mkdirat(s->dir_fd, HOLDS_DIR, 0700) < 0 && errno != EEXIST)
        return pea_fail(err, errno, "create %s/%s", s->path, HOLDS_DIR);
    int fd = openat(s->dir_fd, HOLDS_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    return fd < 0 ? pea_fail(err, errno, "open %s/%s", s->path, HOLDS_DIR) : fd;
}

/* The digests HOLDER holds, one per line. */
static char *read_holds(int holds_fd, const char *holder, struct pea_error *err)
{
    char *text = store_read_file(holds_fd, holder, HOLD_FILE_MAX, NULL, err);
    if (!text && errno == ENOENT)
        return xstrdup("");
    return text;
}

static bool holds_digest(const char *text, const char *digest)
{
    size_t n = strlen(digest);
    for (const char *p = text; (p = strstr(p, digest)); p += n)
        if ((p == text || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0'))
            return true;
    return false;
}

int pea_image_hold(struct pea_image_store *s, const char *holder, const char *manifest_digest, struct pea_error *err)
{
    if (check_holder(holder, err) < 0)
        return -1;
    AUTO_FD int lock = -1;
    AUTO_JSON json_t *catalog = catalog_load_locked(s, &lock, err);
    if (!catalog)
        return -1;
    json_t *img = pea_digest_is_valid(manifest_digest) ? catalog_find(catalog, manifest_digest, err) : NULL;
    const char *m = json_string_value(json_object_get(img, "manifest"));
    if (!m || strcmp(m, manifest_digest) != 0)
        return store_fail(err, ENOENT, "hold image %s for %s: no such image in the store", manifest_digest, holder);
    AUTO_FD int holds = open_holds(s, err);
    if (holds < 0)
        return -1;
    AUTO_FREE char *text = read_holds(holds, holder, err);
    if (!text)
        return pea_wrap(err, "hold image for %s", holder);
    if (holds_digest(text, manifest_digest))
        return 0;
    AUTO_FREE char *updated = xasprintf("%s%s\n", text, manifest_digest);
    if (write_file_atomic_at(holds, holder, updated, strlen(updated), 0600) < 0)
        return pea_fail(err, errno, "hold image %s for %s", manifest_digest, holder);
    return 0;
}

int pea_image_release(struct pea_image_store *s, const char *holder, const char *manifest_digest,
                      struct pea_error *err)
{
    if (check_holder(holder, err) < 0)
        return -1;
    AUTO_FD int lock = store_lock(s, STORE_LOCK_META, true, err);
    if (lock < 0)
        return -1;
    AUTO_FD int holds = open_holds(s, err);
    if (holds < 0)
        return -1;
    AUTO_FREE char *text = read_holds(holds, holder, err);
    if (!text)
        return pea_wrap(err, "release images of %s", holder);
    AUTO_FREE char *kept = xstrdup("");
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); manifest_digest && line; line = strtok_r(NULL, "\n", &save)) {
        if (strcmp(line, manifest_digest) == 0)
            continue;
        char *next = xasprintf("%s%s\n", kept, line);
        free(kept);
        kept = next;
    }
    if (!*kept) {
        if (unlinkat(holds, holder, 0) < 0 && errno != ENOENT)
            return pea_fail(err, errno, "release images of %s", holder);
        return 0;
    }
    if (write_file_atomic_at(holds, holder, kept, strlen(kept), 0600) < 0)
        return pea_fail(err, errno, "release image %s of %s", manifest_digest, holder);
    return 0;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Who holds the image: "pod-a, pod-b" (sorted), or NULL when nobody. */
static char *holders_of(struct pea_image_store *s, const char *manifest_digest)
{
    AUTO_FD int holds = openat(s->dir_fd, HOLDS_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    DIR *dir = holds >= 0 ? fdopendir(dup(holds)) : NULL;
    if (!dir)
        return NULL;
    AUTO_STRV char **who = NULL;
    struct dirent *de;
    while ((de = readdir(dir))) {
        if (de->d_name[0] == '.')
            continue;
        struct pea_error ignored;
        AUTO_FREE char *text = store_read_file(holds, de->d_name, HOLD_FILE_MAX, NULL, &ignored);
        if (text && holds_digest(text, manifest_digest))
            strv_push(&who, de->d_name);
    }
    closedir(dir);
    if (!who)
        return NULL;
    qsort(who, strv_len(who), sizeof *who, compare_names);
    char *joined = xstrdup(who[0]);
    for (size_t i = 1; who[i]; i++) {
        char *next = xasprintf("%s, %s", joined, who[i]);
        free(joined);
        joined = next;
    }
    return joined;
}

static void collect(json_t *set, json_t *v)
{
    if (json_is_string(v))
        json_object_set_new(set, json_string_value(v), json_true());
    size_t i;
    json_t *each;
    if (json_is_array(v))
        json_array_foreach(v, i, each)
            collect(set, each);
}

void store_remove_layer_locks(struct pea_image_store *s)
{
    AUTO_FD int dir_fd = openat(s->dir_fd, LAYER_LOCKS_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    DIR *dir = dir_fd >= 0 ? fdopendir(dup(dir_fd)) : NULL;
    if (!dir)
        return;
    struct dirent *de;
    while ((de = readdir(dir)))
        if (de->d_name[0] != '.')
            unlinkat(dir_fd, de->d_name, 0);
    closedir(dir);
}

/* Remove every entry of dir_fd named by a digest hex that the catalogue does not use. Layers go by rename into
 * the work directory first, so that no half-removed layer is ever visible under its name. */
static int collect_garbage_in(struct pea_image_store *s, int dir_fd, json_t *used, bool is_layers,
                              struct pea_error *err)
{
    DIR *dir = fdopendir(dup(dir_fd));
    if (!dir)
        return pea_fail(err, errno, "list %s", s->path);
    int work = is_layers ? store_work_dir(s, err) : -1;
    int r = is_layers && work < 0 ? -1 : 0;
    struct dirent *de;
    while (r == 0 && (de = readdir(dir))) {
        if (de->d_name[0] == '.')
            continue;
        AUTO_FREE char *digest = xasprintf(PEA_DIGEST_PREFIX "%s", de->d_name);
        if (json_object_get(used, digest))
            continue;
        if (!is_layers) {
            if (unlinkat(dir_fd, de->d_name, 0) < 0 && errno != ENOENT)
                r = pea_fail(err, errno, "remove blob %s", digest);
            continue;
        }
        AUTO_FREE char *name = store_new_work_name(s, "gone");
        if (renameat(dir_fd, de->d_name, work, name) < 0) {
            r = pea_fail(err, errno, "remove layer %s", digest);
            continue;
        }
        /* Removed through the work directory it was moved into, not by its path. */
        AUTO_FREE char *path = xasprintf("%s/%s", s->work_path, name);
        r = remove_tree_at(work, name, path, err);
    }
    closedir(dir);
    return r;
}

static int collect_garbage(struct pea_image_store *s, json_t *catalog, struct pea_error *err)
{
    AUTO_JSON json_t *blobs = json_object(), *layers = json_object();
    size_t i;
    json_t *img;
    json_array_foreach(json_object_get(catalog, "images"), i, img) {
        collect(blobs, json_object_get(img, "manifest"));
        collect(blobs, json_object_get(img, "config"));
        collect(blobs, json_object_get(img, "indexes"));
        collect(layers, json_object_get(img, "layers"));
    }
    if (collect_garbage_in(s, s->blobs_fd, blobs, false, err) < 0 ||
        collect_garbage_in(s, s->layers_fd, layers, true, err) < 0)
        return -1;
    store_sweep_work_dirs(s);
    store_remove_layer_locks(s);
    return 0;
}

/* gc.lock alone, then meta.lock. Our own shared hold on gc.lock (from an import through this handle) goes first:
 * flock would otherwise wait for ourselves. */
static int lock_for_removal(struct pea_image_store *s, int *gc_fd, int *meta_fd, struct pea_error *err)
{
    if (s->gc_lock_fd >= 0) {
        close(s->gc_lock_fd);
        s->gc_lock_fd = -1;
    }
    if ((*gc_fd = store_lock(s, STORE_LOCK_GC, true, err)) < 0)
        return -1;
    *meta_fd = store_lock(s, STORE_LOCK_META, true, err);
    return *meta_fd < 0 ? -1 : 0;
}

static void report_deleted(char ***report, json_t *img)
{
    const char *config = json_string_value(json_object_get(img, "config"));
    AUTO_FREE char *line = xasprintf("Deleted: %s", config ? pea_digest_hex(config) : "?");
    strv_push(report, line);
}

int pea_image_remove(struct pea_image_store *s, const char *what, bool force, char ***report, struct pea_error *err)
{
    AUTO_STRV char **scratch = NULL;
    if (!report)
        report = &scratch;
    AUTO_FD int gc_lock = -1, meta_lock = -1;
    if (lock_for_removal(s, &gc_lock, &meta_lock, err) < 0)
        return -1;
    AUTO_JSON json_t *catalog = catalog_load(s, err);
    if (!catalog)
        return -1;
    json_t *img = catalog_find(catalog, what, err);
    if (!img)
        return -1;
    json_t *names = json_object_get(img, "names");
    /* By name: that name. By ID or digest: the whole image. */
    char name[PEA_IMAGE_REF_TEXT_MAX] = "";
    struct pea_image_ref ref;
    struct pea_error ignored;
    if (!pea_digest_is_valid(what) && pea_image_ref_parse(what, &ref, &ignored) == 0 && !ref.digest[0]) {
        pea_image_ref_format(&ref, name, sizeof name);
        size_t i;
        json_t *v;
        bool is_named = false;
        json_array_foreach(names, i, v)
            is_named = is_named || strcmp(json_string_value(v), name) == 0;
        if (!is_named)
            name[0] = '\0';
    }
    bool removes_image = !name[0] || json_array_size(names) <= 1;
    if (!name[0] && json_array_size(names) > 1 && !force)
        return pea_fail(err, 0, "image %s has %zu names: remove them one by one, or use --force", what,
                        json_array_size(names));
    const char *manifest = json_string_value(json_object_get(img, "manifest"));
    AUTO_FREE char *holders = removes_image ? holders_of(s, manifest) : NULL;
    if (holders)
        return store_fail(err, EBUSY, "image %s is in use by %s: refused", what, holders);
    for (size_t i = json_array_size(names); i-- > 0;) {
        const char *n = json_string_value(json_array_get(names, i));
        if (name[0] && strcmp(n, name) != 0)
            continue;
        AUTO_FREE char *line = xasprintf("Untagged: %s", n);
        strv_push(report, line);
        json_array_remove(names, i);
    }
    if (removes_image) {
        report_deleted(report, img);
        json_t *images = json_object_get(catalog, "images");
        for (size_t i = 0; i < json_array_size(images); i++)
            if (json_array_get(images, i) == img)
                json_array_remove(images, i);
    }
    if (catalog_save(s, catalog, err) < 0)
        return -1;
    return collect_garbage(s, catalog, err);
}

int pea_image_prune(struct pea_image_store *s, bool all, char ***report, struct pea_error *err)
{
    AUTO_STRV char **scratch = NULL;
    if (!report)
        report = &scratch;
    AUTO_FD int gc_lock = -1, meta_lock = -1;
    if (lock_for_removal(s, &gc_lock, &meta_lock, err) < 0)
        return -1;
    AUTO_JSON json_t *catalog = catalog_load(s, err);
    if (!catalog)
        return -1;
    json_t *images = json_object_get(catalog, "images");
    for (size_t i = json_array_size(images); i-- > 0;) {
        json_t *img = json_array_get(images, i);
        if (!all && json_array_size(json_object_get(img, "names")) > 0)
            continue;
        AUTO_FREE char *holders = holders_of(s, json_string_value(json_object_get(img, "manifest")));
        if (holders)
            continue;
        report_deleted(report, img);
        json_array_remove(images, i);
    }
    if (catalog_save(s, catalog, err) < 0)
        return -1;
    return collect_garbage(s, catalog, err);
}
