/* Image references, parsed and normalised as docker and podman do: "busybox" is
 * "docker.io/library/busybox:latest", "localhost:5000/app" keeps its registry, "@sha256:..." pins the content. */
#ifndef PEA_IMAGE_REF_H
#define PEA_IMAGE_REF_H

#include <stdbool.h>
#include <stddef.h>

#include "pea/digest.h"
#include "pea/error.h"

/* The longest repository name (domain + "/" + path) the distribution spec allows. */
#define PEA_IMAGE_NAME_MAX 255
#define PEA_IMAGE_TAG_MAX 128

struct pea_image_ref {
    char domain[PEA_IMAGE_NAME_MAX + 1]; /* "docker.io", "localhost:5000", "[::1]:5000" */
    char path[PEA_IMAGE_NAME_MAX + 1];   /* "library/busybox" */
    char tag[PEA_IMAGE_TAG_MAX + 1];     /* "latest"; "" when only a digest was given */
    char digest[PEA_DIGEST_SIZE];        /* "sha256:<64 hex>" or "" */
};

/* Parse TEXT ("busybox", "busybox:1.36", "ghcr.io/o/app@sha256:...", "localhost:5000/x:y@sha256:...").
 * Without tag and digest the tag is "latest". Errors read "invalid reference format: ...". */
int pea_image_ref_parse(const char *text, struct pea_image_ref *ref, struct pea_error *err);

/* The normalised form: "docker.io/library/busybox:latest", "domain/path:tag@digest" with what is present.
 * Returns the length; the text is truncated (and NUL-terminated) when len is too small. The longest possible form
 * fits in PEA_IMAGE_REF_TEXT_MAX bytes. */
#define PEA_IMAGE_REF_TEXT_MAX (PEA_IMAGE_NAME_MAX + 1 + PEA_IMAGE_TAG_MAX + 1 + PEA_DIGEST_SIZE)
size_t pea_image_ref_format(const struct pea_image_ref *ref, char *buf, size_t len);

/* "domain/path" (no tag or digest). */
size_t pea_image_ref_repository(const struct pea_image_ref *ref, char *buf, size_t len);

/* The host to contact for the reference's domain: "registry-1.docker.io" for docker.io, else the domain itself. */
const char *pea_image_ref_registry_host(const struct pea_image_ref *ref);

/* True when the domain names a loopback address (localhost, 127.0.0.0/8, [::1]), with or without a port: registries
 * there may be spoken to over plain HTTP, as docker allows. */
bool pea_image_ref_is_loopback(const struct pea_image_ref *ref);

#endif
