/* SHA-256 content digests as the OCI image spec writes them: "sha256:" and 64 lowercase hex digits. */
#ifndef PEA_DIGEST_H
#define PEA_DIGEST_H

#include <stdbool.h>
#include <stddef.h>

#define PEA_DIGEST_PREFIX "sha256:"
/* "sha256:" + 64 hex digits + NUL */
#define PEA_DIGEST_SIZE 72

struct pea_hasher;

/* A running SHA-256 (libcrypto: pea-image only). new() aborts when out of memory, like xmalloc. */
struct pea_hasher *pea_hasher_new(void);
void pea_hasher_update(struct pea_hasher *h, const void *buf, size_t len);
/* Write "sha256:<hex>" into out (PEA_DIGEST_SIZE bytes) and free h. */
void pea_hasher_finish(struct pea_hasher *h, char out[PEA_DIGEST_SIZE]);
void pea_hasher_free(struct pea_hasher *h);

/* The digest of a buffer (a document: portable code, no libcrypto; see digest.c). */
void pea_digest_buffer(const void *buf, size_t len, char out[PEA_DIGEST_SIZE]);
/* "sha256:<hex>" of a 32-byte SHA-256. */
void pea_digest_format(const unsigned char md[32], char out[PEA_DIGEST_SIZE]);

/* True for exactly "sha256:" and 64 lowercase hex digits: the only digests the store names files after. */
bool pea_digest_is_valid(const char *digest);
/* The hex part of a valid digest. */
static inline const char *pea_digest_hex(const char *digest) { return digest + sizeof PEA_DIGEST_PREFIX - 1; }

#endif
