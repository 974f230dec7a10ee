/* Streaming SHA-256 and SHA-512 through libcrypto: its assembly (SHA-NI where the CPU has it) hashes several times
 * faster than portable C, and every byte of every layer goes through it twice (compressed and uncompressed), every
 * blob a registry sends once. Only pea-image and the registry client link it. */
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "pea/digest.h"

struct pea_hasher {
    EVP_MD_CTX *ctx;
    enum pea_digest_algorithm algorithm;
};

struct pea_hasher *pea_hasher_new(enum pea_digest_algorithm algorithm)
{
    struct pea_hasher *h = malloc(sizeof *h);
    const EVP_MD *md = algorithm == PEA_DIGEST_SHA512 ? EVP_sha512() : EVP_sha256();
    if (!h || !(h->ctx = EVP_MD_CTX_new()) || EVP_DigestInit_ex(h->ctx, md, NULL) != 1)
        abort();
    h->algorithm = algorithm;
    return h;
}

void pea_hasher_update(struct pea_hasher *h, const void *buf, size_t len)
{
    if (len && EVP_DigestUpdate(h->ctx, buf, len) != 1)
        abort();
}

void pea_hasher_finish(struct pea_hasher *h, char *out)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    unsigned int expected = h->algorithm == PEA_DIGEST_SHA512 ? 64 : 32;
    if (EVP_DigestFinal_ex(h->ctx, md, &n) != 1 || n != expected)
        abort();
    const char *prefix = h->algorithm == PEA_DIGEST_SHA512 ? "sha512:" : "sha256:";
    memcpy(out, prefix, 7);
    char *p = out + 7;
    for (unsigned int i = 0; i < n; i++) {
        *p++ = hex[md[i] >> 4];
        *p++ = hex[md[i] & 15];
    }
    *p = '\0';
    pea_hasher_free(h);
}

void pea_hasher_free(struct pea_hasher *h)
{
    if (!h)
        return;
    EVP_MD_CTX_free(h->ctx);
    free(h);
}

int pea_digest_verify(const void *buf, size_t len, const char *expected, const char *what, struct pea_error *err)
{
    enum pea_digest_algorithm alg;
    if (pea_digest_check(expected, &alg, err) < 0)
        return pea_wrap(err, "%s", what);
    struct pea_hasher *h = pea_hasher_new(alg);
    char actual[PEA_DIGEST_MAX];
    pea_hasher_update(h, buf, len);
    pea_hasher_finish(h, actual);
    if (strcmp(actual, expected) != 0)
        return pea_fail(err, 0, "%s %s: content has digest %s", what, expected, actual);
    return 0;
}
