/* Content digests as the OCI image spec writes them: "sha256:" and 64 lowercase hex digits (the store's), or
 * "sha512:" and 128 (which a registry may name blobs by). */
#ifndef PEA_DIGEST_H
#define PEA_DIGEST_H

#include <stdbool.h>
#include <stddef.h>

#include "pea/error.h"

#define PEA_DIGEST_PREFIX "sha256:"
/* "sha256:" + 64 hex digits + NUL */
#define PEA_DIGEST_SIZE 72
/* "sha512:" + 128 hex digits + NUL: room for a digest of either algorithm */
#define PEA_DIGEST_MAX 136

enum pea_digest_algorithm { PEA_DIGEST_SHA256, PEA_DIGEST_SHA512 };

/* 0 for "sha256:" + 64 lowercase hex digits or "sha512:" + 128, setting *algorithm when not NULL; anything else
 * fails naming the digest: a digest becomes a file name. */
int pea_digest_check(const char *digest, enum pea_digest_algorithm *algorithm, struct pea_error *err);

struct pea_hasher;

/* A running digest (libcrypto: only pea-image and the registry client link it). new() aborts when out of memory,
 * like xmalloc. */
struct pea_hasher *pea_hasher_new(enum pea_digest_algorithm algorithm);
void pea_hasher_update(struct pea_hasher *h, const void *buf, size_t len);
/* Write "ALG:<hex>" into out (PEA_DIGEST_SIZE bytes for sha256, PEA_DIGEST_MAX for sha512) and free h. */
void pea_hasher_finish(struct pea_hasher *h, char *out);
void pea_hasher_free(struct pea_hasher *h);
/* 0 when buf has the digest expected (its algorithm, libcrypto), else -1: "WHAT EXPECTED: content has digest ACTUAL". */
int pea_digest_verify(const void *buf, size_t len, const char *expected, const char *what, struct pea_error *err);

/* The digest of a buffer (a document: portable code, no libcrypto; see digest.c). */
void pea_digest_buffer(const void *buf, size_t len, char out[PEA_DIGEST_SIZE]);
/* "sha256:<hex>" of a 32-byte SHA-256. */
void pea_digest_format(const unsigned char md[32], char out[PEA_DIGEST_SIZE]);

/* True for exactly "sha256:" and 64 lowercase hex digits: the only digests the store names files after. */
bool pea_digest_is_valid(const char *digest);
/* The hex part of a valid digest. */
static inline const char *pea_digest_hex(const char *digest) { return digest + sizeof PEA_DIGEST_PREFIX - 1; }

#endif
