/* Registry client: fetch one image from an OCI distribution (Docker Registry HTTP API v2) server into an OCI image
 * layout directory, every blob verified against its digest. Reference parsing and the image store live elsewhere:
 * the caller passes the reference already split into registry, repository and tag or digest. */
#ifndef PEA_REGISTRY_H
#define PEA_REGISTRY_H

#include <stdbool.h>
#include <stdint.h>

#include "pea/digest.h"
#include "pea/error.h"

/* A digest of either algorithm a registry names content by. */
#define REGISTRY_DIGEST_MAX PEA_DIGEST_MAX

/* A platform as the OCI image index spells it. NULL fields mean the host's. */
struct registry_platform {
    const char *os;           /* "linux" */
    const char *architecture; /* "amd64", "arm64", "arm", ... (GOARCH names; "x86_64", "aarch64" are accepted) */
    const char *variant;      /* "v7" for arm, "" or NULL for none */
};

/* Asked before each blob is fetched: true when the caller already holds it (the image store), so it is neither
 * fetched nor written; the layout then lacks that blob. */
typedef bool (*registry_have_blob_fn)(void *ctx, const char *digest);

struct registry_pull_request {
    const char *registry;   /* host[:port] from the reference; "docker.io" is served by registry-1.docker.io */
    const char *repository; /* "library/busybox" */
    const char *tag;        /* exactly one of tag and digest */
    const char *digest;     /* "sha256:..." pins the manifest or the index */
    struct registry_platform platform;
    /* host[:port] names the caller trusts without TLS: plain HTTP and unverified certificates are allowed for
     * them. A name without a port matches every port. Loopback registries (127.0.0.0/8, ::1, localhost) may use
     * plain HTTP without being named, as docker allows; their certificates are still verified. NULL-terminated. */
    const char *const *insecure_registries;
    /* Credential files to search, in order; the first one with an entry for the registry wins. NULL: the
     * default list (registry_default_auth_files). Entries are "auths" maps of base64 "user:password". */
    const char *const *auth_files;
    /* Credentials given outright (podman's --creds): used instead of the files' when username is set. */
    const char *username, *password;
    /* Extra trust, as skopeo's --cert-dir: *.crt files are CAs added to the system's, one NAME.cert with
     * NAME.key is a client certificate. NULL: /etc/containers/certs.d/HOST[:PORT], then
     * /etc/docker/certs.d/HOST[:PORT], when present. */
    const char *cert_dir;
    const char *ca_file; /* one more PEM bundle of CAs added to the system's; NULL for none */
    bool show_progress;  /* progress lines on stderr, only when stderr is a terminal */
    unsigned max_parallel;  /* blobs fetched at once; 0 means 4 */
    uint64_t max_blob_size; /* refuse a manifest naming a larger blob; 0 means 64 GiB */
    registry_have_blob_fn have_blob;
    void *have_blob_ctx;
};

struct registry_pull_result {
    /* The image manifest written to index.json (its only entry, annotated org.opencontainers.image.ref.name=tag
     * when a tag was asked for), and its media type, kept as the registry served it: OCI or Docker schema 2. */
    char manifest_digest[REGISTRY_DIGEST_MAX];
    char manifest_media_type[128];
    /* The index or manifest list the manifest was chosen from ("" when the reference named a manifest): what
     * docker and podman show as the image's repository digest. It is not written to the layout. */
    char index_digest[REGISTRY_DIGEST_MAX];
};

/* Fetch the image into layout_dir, which must not exist yet: it is created, filled (oci-layout, index.json,
 * blobs/ALG/HEX for the manifest, its config and its layers, compressed as served) and, on any failure, removed
 * again. Errors are one line and never carry credentials. */
int registry_pull_to_layout(const struct registry_pull_request *req, const char *layout_dir,
                            struct registry_pull_result *result, struct pea_error *err);

/* The credential files podman and docker read, in their order: $REGISTRY_AUTH_FILE,
 * ${XDG_RUNTIME_DIR}/containers/auth.json, ${XDG_CONFIG_HOME:-~/.config}/containers/auth.json,
 * ${DOCKER_CONFIG:-~/.docker}/config.json. NULL-terminated; free with strv_free. */
char **registry_default_auth_files(void);

#endif
