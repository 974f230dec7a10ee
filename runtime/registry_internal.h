/* What the registry client's modules share: parsed manifests and challenges, credentials, the HTTP session. */
#ifndef PEA_REGISTRY_INTERNAL_H
#define PEA_REGISTRY_INTERNAL_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pea/digest.h"
#include "pea/registry.h"

/* Manifests, indexes, token replies: nothing a registry sends as JSON may be larger. */
#define REGISTRY_MAX_JSON (4u << 20)
/* An image config is JSON too, but its history may be long. */
#define REGISTRY_MAX_CONFIG (16u << 20)
/* More layers than overlayfs can stack, or more platforms than exist, is not an image. */
#define REGISTRY_MAX_ENTRIES 1024

#define MEDIA_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define MEDIA_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MEDIA_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define MEDIA_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"

/* ---- registry_manifest.c: manifests, indexes, platforms ---- */

struct registry_descriptor {
    char *media_type;
    char digest[REGISTRY_DIGEST_MAX];
    uint64_t size;
    /* Index entries only; NULL when the entry has no platform. */
    char *os, *architecture, *variant;
};

enum registry_manifest_kind { REGISTRY_KIND_INDEX, REGISTRY_KIND_IMAGE };

struct registry_manifest {
    enum registry_manifest_kind kind;
    char *media_type;
    struct registry_descriptor config; /* images only */
    struct registry_descriptor *entries; /* an image's layers, or an index's manifests */
    size_t n_entries;
};

/* Parse a manifest or index of any of the four media types. content_type is the server's Content-Type (may be
 * NULL); the body's mediaType wins when present and the two must agree. Blob sizes above max_blob_size, unknown
 * layer types, foreign or encrypted layers and schema 1 are refused. */
int registry_manifest_parse(const char *body, size_t len, const char *content_type, uint64_t max_blob_size,
                            struct registry_manifest *out, struct pea_error *err);
void registry_manifest_free(struct registry_manifest *m);

/* Normalised platform, strings owned. */
struct registry_platform_spec {
    char os[32], architecture[32], variant[32];
};
/* want's NULL fields are filled from the host (uname). Names are normalised as containerd does. */
void registry_platform_resolve(const struct registry_platform *want, struct registry_platform_spec *out);
/* The entry of an index that best matches want (containerd's order: exact, then lower variants, then the 32-bit
 * sibling), or -1 with an error listing what the index offers. */
int registry_platform_select(const struct registry_manifest *index, const struct registry_platform_spec *want,
                             struct pea_error *err);

/* ---- registry_auth.c: challenges and credentials ---- */

enum registry_auth_scheme { REGISTRY_AUTH_NONE, REGISTRY_AUTH_BASIC, REGISTRY_AUTH_BEARER };

struct registry_challenge {
    enum registry_auth_scheme scheme;
    char *realm, *service, *scope; /* NULL when absent */
};

/* Parse one WWW-Authenticate value (it may hold several challenges); Bearer is preferred over Basic, others are
 * skipped. A value with no usable challenge gives scheme NONE; a malformed one is an error. */
int registry_challenge_parse(const char *value, struct registry_challenge *out, struct pea_error *err);
void registry_challenge_free(struct registry_challenge *c);

struct registry_credentials {
    char *username, *password; /* both NULL when none were found */
};
/* Look registry (and repository, for podman's per-namespace keys) up in files. 1 when found, 0 when none has an
 * entry, -1 when a file is unreadable or malformed (the error names the file, never its content). */
int registry_credentials_lookup(const char *const *files, const char *registry, const char *repository,
                                struct registry_credentials *out, struct pea_error *err);
/* Wipe and free. */
void registry_credentials_clear(struct registry_credentials *c);

/* ---- registry_http.c: the session with one registry ---- */

struct registry_session {
    char *registry;   /* as the reference names it, for credentials and messages */
    char *host;       /* host[:port] connected to */
    char *repository;
    bool use_plain_http;      /* decided by the first request */
    bool scheme_decided;
    bool may_use_plain_http;  /* named insecure, or loopback */
    bool is_insecure;         /* named insecure: certificates are not verified */
    const char *const *insecure_registries;
    char *ca_pem;             /* system CAs plus the caller's, NULL for the system's alone */
    size_t ca_pem_len;
    char *client_cert, *client_key;
    const char *const *auth_files;
    struct registry_credentials credentials;
    bool credentials_loaded;
    char *authorization;      /* "Authorization: ..." sent to the registry, never logged */
    uint64_t max_blob_size;
    CURLSH *share;            /* connections, DNS and TLS sessions shared by every request */
};

struct registry_response {
    long status;
    char *body;
    size_t len;
    char *content_type;
    char *challenge; /* the WWW-Authenticate value of a 401 */
};
void registry_response_free(struct registry_response *r);
/* CURLOPT_HEADERFUNCTION filling a struct registry_response's content_type and challenge. */
size_t registry_header_line(char *data, size_t size, size_t n, void *userp);

int registry_session_open(struct registry_session *s, const struct registry_pull_request *req,
                          struct pea_error *err);
void registry_session_close(struct registry_session *s);

/* "https://HOST/v2/REPOSITORY/SUFFIX" (or http://). */
char *registry_url(const struct registry_session *s, const char *suffix);

/* One transfer's easy handle and what it needs to outlive the transfer. */
struct registry_request {
    struct registry_session *session;
    CURL *easy;
    struct curl_slist *headers;
    char curl_error[CURL_ERROR_SIZE];
    char refused_peer[320]; /* set when plain HTTP to a non-loopback peer was refused */
};
/* An easy handle with the session's TLS, protocol, redirect, timeout and (when send_authorization)
 * authorization settings, recorded in rq. */
CURL *registry_easy_new(struct registry_session *s, struct registry_request *rq, const char *url,
                        const char *accept, bool send_authorization);
/* Free the handle and its header list (wiped: it may hold a token). */
void registry_request_done(struct registry_request *rq);
/* GET a small document (manifest) below max bytes, answering one authentication challenge. */
int registry_get_small(struct registry_session *s, const char *suffix, const char *accept, size_t max,
                       const char *what, struct registry_response *out, struct pea_error *err);
/* Answer a 401's challenge: fetch a token or set basic credentials. */
int registry_authenticate(struct registry_session *s, const char *challenge, struct pea_error *err);
/* One line for a failed transfer: curl's reason, or the registry's status and error code. */
int registry_fail_transfer(struct pea_error *err, const struct registry_request *rq, CURLcode rc, long status,
                           const char *body, size_t body_len, const char *what);

/* ---- registry_blob.c: blobs into the layout ---- */

struct registry_layout {
    int dir_fd;            /* the layout directory */
    int blobs_fd[2];       /* blobs/sha256, blobs/sha512 (opened on demand, -1 before) */
};
/* Write a verified in-memory blob (manifest) under its digest. */
int registry_layout_put(struct registry_layout *layout, const char *digest, const void *data, size_t len,
                        struct pea_error *err);
/* Fetch descriptors in parallel into the layout, each verified while it streams. */
int registry_fetch_blobs(struct registry_session *s, struct registry_layout *layout,
                         struct registry_descriptor *const *blobs, size_t n, const struct registry_pull_request *req,
                         struct pea_error *err);

#endif
