/* OCI runtime bundles from images: DIR/rootfs holding the image's layers applied in order (whiteouts and opaque
 * directories honoured, a plain copy that outlives the store), and DIR/config.json converted from the image
 * configuration as the OCI image spec's conversion document says. */
#ifndef PEA_IMAGE_BUNDLE_H
#define PEA_IMAGE_BUNDLE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pea/error.h"
#include "pea/image_store.h"

struct pea_image_bundle_options {
    bool is_forced;    /* DIR may hold files: its rootfs and config.json are replaced, the rest is kept */
    bool is_rootless;  /* the rootless default spec (a user namespace mapping the caller to root) */
    bool has_terminal; /* process.terminal (and TERM=xterm unless the image sets TERM) */
};

/* Write the bundle of the image WHAT (see pea_image_resolve) into DIR, made when missing. DIR must be empty unless
 * is_forced. Everything is built in a work directory inside DIR and renamed into place: a failure leaves DIR as it
 * was (and removes it when this call made it). Notices (volumes that stay in the rootfs, an image with nothing to
 * run) are printed as warnings. */
int pea_image_bundle_write(struct pea_image_store *store, const char *what, const char *dir,
                           const struct pea_image_bundle_options *o, struct pea_error *err);

/* ---- pieces, exposed for the tests ------------------------------------------------------------------------------ */

/* The user a process runs as, from an image's Config.User. */
struct pea_image_user {
    uint32_t uid, gid;
    uint32_t *additional_gids; /* groups of /etc/group that list the user, only when it was named without a group */
    size_t n_additional_gids;
    char *home;                /* its home directory in /etc/passwd, or NULL when it has no entry there */
};
/* Resolve USER ("", "name", "uid", "name:group", "uid:gid", "name:gid", "uid:group") against the image's
 * /etc/passwd and /etc/group texts (NULL when the file is absent), as the conversion document says: numbers are
 * taken as they are, names must be found ("user app not found in the image's /etc/passwd"). "" is root. */
int pea_image_user_resolve(const char *user, const char *passwd, const char *group, struct pea_image_user *out,
                           struct pea_error *err);
void pea_image_user_clear(struct pea_image_user *u);

/* The runtime configuration for an image config (the OCI image config JSON) over SPEC (a default spec, changed in
 * place): process args, env, cwd, user (already resolved), annotations. Notices are appended to *notices. */
int pea_image_runtime_config(json_t *spec, json_t *image_config, const struct pea_image_user *user,
                             bool has_terminal, char ***notices, struct pea_error *err);

#endif
