/* SHA-256 through libcrypto: its assembly (SHA-NI where the CPU has it) hashes several times faster than portable C,
 * and every byte of every layer goes through it twice (compressed and uncompressed). */
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
    static const char hex[] = "0123456789abcdef";
    memcpy(out, PEA_DIGEST_PREFIX, sizeof PEA_DIGEST_PREFIX - 1);
    char *p = out + sizeof PEA_DIGEST_PREFIX - 1;
    for (size_t i = 0; i < sizeof md; i++) {
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

void pea_digest_buffer(const void *buf, size_t len, char out[PEA_DIGEST_SIZE])
{
    struct pea_hasher *h = pea_hasher_new();
    pea_hasher_update(h, buf, len);
    pea_hasher_finish(h, out);
}

bool pea_digest_is_valid(const char *digest)
{
    if (!digest || strncmp(digest, PEA_DIGEST_PREFIX, sizeof PEA_DIGEST_PREFIX - 1) != 0)
        return false;
    const char *hex = pea_digest_hex(digest);
    for (int i = 0; i < 64; i++)
        if (!((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f')))
            return false;
    return hex[64] == '\0';
}
