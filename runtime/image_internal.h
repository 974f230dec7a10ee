/* What the image store's modules share: the store handle, its locks and work directory, layer unpacking, the
 * catalogue of images. Not a public interface. */
#ifndef PEA_IMAGE_INTERNAL_H
#define PEA_IMAGE_INTERNAL_H

#include <sys/types.h>

#include "pea/image_store.h"

struct pea_image_store {
    char *path;        /* DATA_ROOT/images, absolute */
    int dir_fd;        /* the store directory */
    int blobs_fd;      /* blobs/sha256 */
    int layers_fd;     /* layers/sha256 */
    int tmp_fd;        /* tmp */
    int work_fd;       /* tmp/WORK: this process's work directory, flocked while we live; -1 until needed */
    char *work_path;   /* its absolute path */
    int gc_lock_fd;    /* gc.lock, held shared while we import */
    unsigned work_seq; /* names of files in the work directory */
    struct pea_image_limits limits;
    bool is_privileged; /* root in the initial user namespace: file owners and device nodes as the image says */
};

/* pea_fail with errnum kept for callers to test (ENOENT: not known, EBUSY: in use) but not spelt in the text. */
#define store_fail(err, code, ...)                                                                               \
    ({                                                                                                         \
        pea_fail((err), 0, __VA_ARGS__);                                                                       \
        (err)->errnum = (code);                                                                                \
        -1;                                                                                                    \
    })

enum store_lock { STORE_LOCK_GC, STORE_LOCK_META };

/* flock(LOCK_SH or LOCK_EX) one of the store's lock files; the returned fd holds it until closed. */
int store_lock(struct pea_image_store *s, enum store_lock which, bool exclusive, struct pea_error *err);
/* Hold gc.lock shared for the rest of this store handle's life: an import's layers and blobs are not collected
 * before its image is recorded. */
int store_hold_gc_shared(struct pea_image_store *s, struct pea_error *err);
/* This process's work directory (made on first use); new_work_name gives a fresh name inside it (free it). */
int store_work_dir(struct pea_image_store *s, struct pea_error *err);
char *store_new_work_name(struct pea_image_store *s, const char *what);
/* Remove work directories whose owner died (their flock is free). */
void store_sweep_work_dirs(struct pea_image_store *s);
/* Read a small file of the store (NUL-terminated); ENOENT gives NULL with errno set and no error. */
char *store_read_file(int dir_fd, const char *name, size_t max, size_t *len, struct pea_error *err);

/* ---- layers (image_layer.c, image_unpack.c) ---------------------------------------------------------------------- */

/* Where a layer blob comes from: read up to len bytes, 0 at the end, -1 with err filled. */
struct layer_source {
    ssize_t (*read)(void *ctx, void *buf, size_t len, struct pea_error *err);
    void *ctx;
};

struct layer_expect {
    const char *blob_digest; /* the compressed blob's digest, or NULL when unknown (docker archives) */
    int64_t blob_size;       /* or -1 */
    const char *diff_id;     /* the uncompressed tar's digest: the layer's name in the store */
};

bool store_has_layer(struct pea_image_store *s, const char *diff_id);
/* The uncompressed size recorded for a stored layer. */
int store_layer_size(struct pea_image_store *s, const char *diff_id, uint64_t *size, struct pea_error *err);
/* Unpack a layer (tar, gzip or zstd) into the work directory, verify it, and publish it as layers/sha256/HEX.
 * Imports of one layer take turns: 1 (without reading src) when the store has it by the time our turn comes,
 * 0 when we unpacked it. */
int store_unpack_layer(struct pea_image_store *s, const struct layer_source *src, const struct layer_expect *expect,
                       uint64_t *tar_size, struct pea_error *err);
/* The per-layer lock files: imports of one layer take turns on locks/HEX. */
#define LAYER_LOCKS_DIR "locks"
/* Remove the per-layer lock files; only with gc.lock held alone. */
void store_remove_layer_locks(struct pea_image_store *s);
/* {blob digest: diff ID} of the stored layers that recorded the blob they were unpacked from. */
json_t *store_layer_blobs(struct pea_image_store *s);
/* Unpack the tar stream of `archive` (libarchive, positioned before the first header) into dir_fd, applying the
 * store's limits; for image_layer.c. */
struct archive;
struct unpack_stats {
    uint64_t entries;
    uint64_t skipped_devices;
};
int unpack_tar_into(struct pea_image_store *s, struct archive *tar, int dir_fd, struct unpack_stats *stats,
                    struct pea_error *err);

/* ---- the catalogue (image_catalog.c) --------------------------------------------------------------------------- */

struct image_commit {
    const char *manifest_digest;
    const char *config_digest;
    char **diff_ids;       /* NULL-terminated */
    uint64_t size;
    char **index_digests;  /* NULL-terminated, may be NULL */
    char **names;          /* normalised, NULL-terminated, may be NULL */
};
/* Record an image (merging names with an existing record of the same manifest); appends its names, or its
 * manifest digest when it has none, to *loaded. */
int catalog_commit(struct pea_image_store *s, const struct image_commit *c, char ***loaded, struct pea_error *err);
/* images.json, parsed ({"images": [...]}); a missing file is an empty catalogue. */
json_t *catalog_load(struct pea_image_store *s, struct pea_error *err);
/* catalog_load under the metadata lock, which *lock holds (the caller closes it) for a change to be saved. */
json_t *catalog_load_locked(struct pea_image_store *s, int *lock, struct pea_error *err);
int catalog_save(struct pea_image_store *s, json_t *catalog, struct pea_error *err);
/* The record in catalog matching WHAT (see pea_image_resolve); NULL with err (ENOENT when unknown). */
json_t *catalog_find(json_t *catalog, const char *what, struct pea_error *err);
/* Normalise a name given by a user; "" and bad references fail. */
int catalog_normalise_name(const char *name, char *out, size_t len, struct pea_error *err);
/* Append a string to a NULL-terminated list. */
void strv_push(char ***v, const char *s);

/* ---- platforms (image_platform.c) ------------------------------------------------------------------------------- */

struct image_platform {
    char os[32], architecture[32], variant[16];
};
/* "os/arch[/variant]"; NULL for the host's. */
int image_platform_parse(const char *text, struct image_platform *p, struct pea_error *err);
/* Index of the best entry of an index's "manifests" array for p, or -1 with err listing what the index has. */
int image_platform_pick(json_t *manifests, const struct image_platform *p, struct pea_error *err);

/* ---- sources (image_import.c) ---------------------------------------------------------------------------------- */

/* An OCI layout seen through open(): a directory, or an archive's members spooled to files. */
struct layout_source {
    int (*open)(void *ctx, const char *path, struct pea_error *err); /* O_RDONLY fd, or -1 (ENOENT: absent) */
    void *ctx;
    const char *shown; /* for messages */
};
int import_layout_source(struct pea_image_store *s, const struct layout_source *src,
                         const struct pea_image_import_options *o, char ***loaded, struct pea_error *err);
/* A layout_source's open() for fd, just opened O_RDONLY | O_NONBLOCK (so a FIFO planted as a blob cannot hang us):
 * fd back in blocking mode when it is a regular file, else -1 (fd closed, errno of the open kept when fd < 0). */
int import_take_regular_file(int fd, const char *path, struct pea_error *err);
/* Read a document (manifest, index, config) of at most the store's limit from fd, checking digest and size when
 * given. */
int import_read_document(struct pea_image_store *s, int fd, const char *what, const char *digest, int64_t size,
                         char **data, size_t *len, struct pea_error *err);
/* Unpack a layer read from fd. */
int import_layer_from_fd(struct pea_image_store *s, int fd, const struct layer_expect *expect, uint64_t *tar_size,
                         const struct pea_image_import_options *o, struct pea_error *err);


/* A tar entry's path made relative to the layer root: leading "/" and "./", empty and "." components dropped.
 * -1 with errno EXDEV for a ".." component (an escape, refused rather than clamped), ENAMETOOLONG when it does not
 * fit. "" is the layer root itself. */
int unpack_clean_path(const char *path, char *out, size_t len);

#endif
