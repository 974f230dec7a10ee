/* Streaming SHA-256 through libcrypto: its assembly (SHA-NI where the CPU has it) hashes several times faster than
 * portable C, and every byte of every layer goes through it twice (compressed and uncompressed). Only pea-image
 * links it. */
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "pea/digest.h"

struct pea_hasher {
    EVP_MD_CTX *ctx;
};

struct pea_hasher *pea_hasher_new(void)
{
    struct pea_hasher *h = malloc(sizeof *h);
    if (!h || !(h->ctx = EVP_MD_CTX_new()) || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1)
        abort();
    return h;
}

void pea_hasher_update(struct pea_hasher *h, const void *buf, size_t len)
{
    if (len && EVP_DigestUpdate(h->ctx, buf, len) != 1)
        abort();
}

void pea_hasher_finish(struct pea_hasher *h, char out[PEA_DIGEST_SIZE])
{
    unsigned char md[32];
    unsigned int n = 0;
    if (EVP_DigestFinal_ex(h->ctx, md, &n) != 1 || n != sizeof md)
        abort();
    pea_digest_format(md, out);
    pea_hasher_free(h);
}

void pea_hasher_free(struct pea_hasher *h)
{
    if (!h)
        return;
    EVP_MD_CTX_free(h->ctx);
    free(h);
}

