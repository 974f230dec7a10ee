/* pea image pull: fetch an image from a registry (the registry client) into the image store. */
#ifndef PEA_IMAGE_PULL_H
#define PEA_IMAGE_PULL_H

#include <stdbool.h>

#include "pea/digest.h"
#include "pea/error.h"
#include "pea/image_ref.h"
#include "pea/image_store.h"

struct pea_image_pull_options {
    const char *reference;          /* as typed: "busybox", "localhost:5000/app:1", "repo@sha256:..." */
    const char *platform;           /* "os/arch[/variant]" to pick from an index; NULL for the host's */
    bool skips_tls_verify;          /* podman's --tls-verify=false: the reference's registry is insecure (plain
                                     * HTTP allowed, certificates not verified) */
    const char *const *auth_files;  /* credential files, in order; NULL for podman's and docker's defaults */
    const char *username, *password; /* podman's --creds; NULL: from the files */
    const char *cert_dir;           /* *.crt CAs, NAME.cert/NAME.key; NULL: /etc/containers/certs.d/HOST[:PORT],
                                     * then /etc/docker/certs.d/HOST[:PORT] */
    bool shows_progress;            /* fetch and unpack lines on stderr (only when it is a terminal) */
};

struct pea_image_pull_result {
    char name[PEA_IMAGE_REF_TEXT_MAX];       /* the normalised reference the image now has */
    char manifest_digest[PEA_DIGEST_SIZE];
    char index_digest[PEA_DIGEST_SIZE];      /* the index it was chosen from, "" when the reference named it */
    char config_digest[PEA_DIGEST_SIZE];     /* the image ID is its hex */
};

/* Fetch the image into a work directory of the store (a pull killed midway leaves it to be swept by the next pull,
 * import or prune; nothing is visible until the image is recorded), skipping the blobs and layers the store has,
 * then import it under its normalised reference. Concurrent pulls of one image unpack each layer once. */
int pea_image_pull(struct pea_image_store *store, const struct pea_image_pull_options *o,
                   struct pea_image_pull_result *result, struct pea_error *err);

#endif
