/* The image store: content-addressed blobs, layers unpacked once each into overlay lower directories, names.
 *
 * Layout under DATA_ROOT/images (DATA_ROOT is pea's --data-root, /var/lib/pea by default):
 *   blobs/sha256/HEX           manifests, configs and indexes, each verified against its digest
 *   layers/sha256/HEX/diff     a layer unpacked by its diff ID: an overlay lower dir (whiteouts as 0/0 character
 *                              devices, opaque directories with trusted.overlay.opaque=y), shared by every image
 *   layers/sha256/HEX/layer.json  its size, entry count and the blob it was unpacked from
 *   locks/HEX                  flock per layer: imports of one layer take turns, so it is unpacked once
 *   images.json                the images (manifest digest, config digest, layers, names), replaced atomically
 *   holds/HOLDER               manifest digests a holder (a pod) uses: rm and prune keep them
 *   tmp/                       work directories, each locked by the process that writes it; swept when dead
 *   gc.lock, meta.lock         flock: imports share gc.lock, rm and prune take it alone; meta.lock guards
 *                              images.json and holds/
 * Everything appears by rename: a half-written blob or half-unpacked layer is never visible under its name. */
#ifndef PEA_IMAGE_STORE_H
#define PEA_IMAGE_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pea/digest.h"
#include "pea/error.h"

/* Bounds on what an image may make us read or write; a layer or document that passes one fails to load. */
struct pea_image_limits {
    uint64_t max_layer_bytes;    /* uncompressed tar stream of one layer; default 32 GiB (PEA_IMAGE_MAX_LAYER_BYTES) */
    uint64_t max_layer_entries;  /* entries (files, directories, links...) in one layer; default 2,000,000
                                  * (PEA_IMAGE_MAX_LAYER_ENTRIES) */
    uint64_t max_document_bytes; /* one manifest, index, config or archive manifest.json; default 8 MiB */
};
void pea_image_limits_default(struct pea_image_limits *limits);
/* The defaults, with PEA_IMAGE_MAX_LAYER_BYTES and PEA_IMAGE_MAX_LAYER_ENTRIES from the environment when set. */
int pea_image_limits_from_env(struct pea_image_limits *limits, struct pea_error *err);

struct pea_image_store;

/* Open (creating when missing) DATA_ROOT/images. limits may be NULL for the defaults. */
int pea_image_store_open(const char *data_root, const struct pea_image_limits *limits,
                         struct pea_image_store **store, struct pea_error *err);
void pea_image_store_close(struct pea_image_store *store);
/* Absolute path of the store directory. */
const char *pea_image_store_path(const struct pea_image_store *store);

/* ---- blobs ---------------------------------------------------------------------------------------------------- */

/* A blob being written: into the store's work directory, verified and renamed into blobs/ on commit. */
struct pea_blob_writer;
/* expected_digest: what the content must hash to (NULL: whatever it hashes to, reported by commit);
 * expected_size: its size, or -1 when unknown. Writing more than expected_size fails at once. */
int pea_blob_begin(struct pea_image_store *store, const char *expected_digest, int64_t expected_size,
                   struct pea_blob_writer **writer, struct pea_error *err);
int pea_blob_write(struct pea_blob_writer *writer, const void *buf, size_t len, struct pea_error *err);
/* Verify size and digest and publish the blob; digest_out (may be NULL) receives its digest. Frees the writer,
 * also on failure (then nothing is left behind). */
int pea_blob_commit(struct pea_blob_writer *writer, char digest_out[PEA_DIGEST_SIZE], struct pea_error *err);
void pea_blob_abort(struct pea_blob_writer *writer);
/* The same for the rest of fd, or for a buffer. */
int pea_blob_store_fd(struct pea_image_store *store, int fd, const char *expected_digest, int64_t expected_size,
                      char digest_out[PEA_DIGEST_SIZE], struct pea_error *err);
int pea_blob_store_buffer(struct pea_image_store *store, const void *buf, size_t len, const char *expected_digest,
                          char digest_out[PEA_DIGEST_SIZE], struct pea_error *err);
bool pea_blob_exists(struct pea_image_store *store, const char *digest);
/* Read a stored blob of at most max bytes (NUL-terminated), checking its digest again. */
int pea_blob_read(struct pea_image_store *store, const char *digest, size_t max, char **data, size_t *len,
                  struct pea_error *err);

/* ---- importing -------------------------------------------------------------------------------------------------- */

struct pea_image_import_options {
    /* The name to give the image (normalised: "busybox" becomes docker.io/library/busybox:latest); NULL: the
     * names the source carries (RepoTags, io.containerd.image.name, a ref.name that is a full reference). */
    const char *name;
    /* In an OCI layout holding several images: the index.json entry whose org.opencontainers.image.ref.name is
     * this. NULL: the only entry, or every entry when several (each needs a name of its own then). */
    const char *layout_ref;
    /* "os/arch[/variant]" to pick from image indexes; NULL for the host's (linux/amd64 here). */
    const char *platform;
    /* An index outside the layout (a registry's) that the layout's manifests were chosen from: recorded with the
     * image, which can then be found by its digest too. NULL: none. */
    const char *index_digest;
    /* Called once per layer that was unpacked (not for those the store already had); may be NULL. */
    void (*on_layer)(void *ctx, const char *diff_id, uint64_t bytes);
    void *ctx;
};

/* Import the images of the OCI image layout directory DIR (oci-layout, index.json, blobs/sha256/...): what
 * `pea image pull` calls once the registry client has fetched into a temporary layout. Indexes are resolved to
 * the platform; every blob's digest and every layer's diff ID is verified. *loaded receives one line per image
 * (its name, or its manifest digest when it has none), NULL-terminated; free with strv_free. */
int pea_image_import_layout(struct pea_image_store *store, const char *dir, const struct pea_image_import_options *o,
                            char ***loaded, struct pea_error *err);
/* Load a docker-archive (docker save, podman save) or oci-archive tar, possibly gzip- or zstd-compressed, from fd
 * (a pipe is fine). */
int pea_image_load_archive(struct pea_image_store *store, int fd, const struct pea_image_import_options *o,
                           char ***loaded, struct pea_error *err);

/* ---- images ----------------------------------------------------------------------------------------------------- */

struct pea_image {
    char manifest_digest[PEA_DIGEST_SIZE];
    char config_digest[PEA_DIGEST_SIZE]; /* the image ID is its hex part (12 digits when listed) */
    char **names;                        /* normalised references, NULL-terminated (may be empty) */
    char **index_digests;                /* indexes the manifest was reached through, NULL-terminated */
    char **diff_ids;                     /* base layer first, NULL-terminated */
    char **layer_dirs;                   /* absolute layers/sha256/HEX/diff, base first, NULL-terminated; overlay
                                          * wants them top first in lowerdir= */
    size_t n_layers;
    uint64_t size;                       /* sum of the layers' uncompressed sizes */
    char loaded_at[40];                  /* RFC 3339, when it entered the store */
    json_t *config;                      /* the image configuration (OCI image config JSON) */
    json_t *manifest;
};
void pea_image_free(struct pea_image *image);

/* Find an image by name ("busybox", "docker.io/library/busybox:latest", "repo@sha256:..."), by manifest digest
 * ("sha256:..."), or by ID (the config digest's hex, or a unique prefix of at least 3 digits). Unknown: -1 with
 * err->errnum == ENOENT and "image NAME not known". */
int pea_image_resolve(struct pea_image_store *store, const char *what, struct pea_image **image,
                      struct pea_error *err);
/* Every image, in load order. */
int pea_image_list(struct pea_image_store *store, struct pea_image ***images, size_t *n, struct pea_error *err);
void pea_image_list_free(struct pea_image **images, size_t n);

/* Give the image WHAT the name DST too (moving DST from another image, as docker tag does). */
int pea_image_tag(struct pea_image_store *store, const char *what, const char *dst, struct pea_error *err);

/* Record that HOLDER (a pod: [A-Za-z0-9_.-], at most 200 bytes) uses the image with this manifest digest, so that
 * rm and prune keep it and its layers. Fails when the image is not (or no longer) in the store. */
int pea_image_hold(struct pea_image_store *store, const char *holder, const char *manifest_digest,
                   struct pea_error *err);
/* Drop one hold (manifest_digest) or all of HOLDER's (NULL). Releasing what is not held is not an error. */
int pea_image_release(struct pea_image_store *store, const char *holder, const char *manifest_digest,
                      struct pea_error *err);

/* Remove WHAT: by name, that name only (the image goes when it was its last); by ID or digest, the image with every
 * name (refused when it has several names, unless force). An image a holder uses is never removed:
 * "image X is in use by HOLDER". *report (may be NULL) gets "Untagged: NAME" and "Deleted: ID" lines. */
int pea_image_remove(struct pea_image_store *store, const char *what, bool force, char ***report,
                     struct pea_error *err);
/* Remove images without names (all: every image) that no holder uses, then every blob and layer no image uses,
 * and dead work directories. *report (may be NULL) gets "Deleted: ID" lines. */
int pea_image_prune(struct pea_image_store *store, bool all, char ***report, struct pea_error *err);

#endif
