/* Content digests: the syntax we accept and the hashing that verifies blobs (OpenSSL's libcrypto). */
#include <openssl/evp.h>
#include <string.h>

#include "pea/util.h"
#include "registry_internal.h"

struct registry_hasher {
    EVP_MD_CTX *ctx;
    enum registry_digest_algorithm algorithm;
};

static bool is_lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return s[n] == '\0';
}

int registry_digest_check(const char *digest, enum registry_digest_algorithm *algorithm, struct pea_error *err)
{
    enum registry_digest_algorithm alg;
    const char *hex;
    size_t hex_len;
    if (strncmp(digest, "sha256:", 7) == 0) {
        alg = REGISTRY_SHA256, hex = digest + 7, hex_len = 64;
    } else if (strncmp(digest, "sha512:", 7) == 0) {
        alg = REGISTRY_SHA512, hex = digest + 7, hex_len = 128;
    } else {
        return pea_fail(err, 0, "digest \"%.80s\": unsupported algorithm (sha256 and sha512 are)", digest);
    }
    if (strnlen(hex, hex_len + 1) != hex_len || !is_lower_hex(hex, hex_len))
        return pea_fail(err, 0, "digest \"%.80s\": not %zu lowercase hex digits", digest, hex_len);
    if (algorithm)
        *algorithm = alg;
    return 0;
}

static const EVP_MD *algorithm_md(enum registry_digest_algorithm algorithm)
{
    return algorithm == REGISTRY_SHA512 ? EVP_sha512() : EVP_sha256();
}

struct registry_hasher *registry_hasher_new(enum registry_digest_algorithm algorithm)
{
    struct registry_hasher *h = xcalloc(1, sizeof *h);
    h->algorithm = algorithm;
    h->ctx = EVP_MD_CTX_new();
    if (!h->ctx || !EVP_DigestInit_ex(h->ctx, algorithm_md(algorithm), NULL))
        abort(); /* only fails when out of memory */
    return h;
}

void registry_hasher_update(struct registry_hasher *h, const void *data, size_t len)
{
    EVP_DigestUpdate(h->ctx, data, len);
}

void registry_hasher_final(struct registry_hasher *h, char *out)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_DigestFinal_ex(h->ctx, md, &n);
    size_t pos = (size_t)snprintf(out, REGISTRY_DIGEST_MAX, "%s:", h->algorithm == REGISTRY_SHA512 ? "sha512" : "sha256");
    for (unsigned int i = 0; i < n && pos + 2 < REGISTRY_DIGEST_MAX; i++, pos += 2)
        snprintf(out + pos, 3, "%02x", md[i]);
    EVP_DigestInit_ex(h->ctx, algorithm_md(h->algorithm), NULL);
}

void registry_hasher_free(struct registry_hasher *h)
{
    if (!h)
        return;
    EVP_MD_CTX_free(h->ctx);
    free(h);
}

int registry_digest_verify(const void *data, size_t len, const char *expected, const char *what,
                           struct pea_error *err)
{
    enum registry_digest_algorithm alg;
    if (registry_digest_check(expected, &alg, err) < 0)
        return pea_wrap(err, "%s", what);
    struct registry_hasher *h = registry_hasher_new(alg);
    char actual[REGISTRY_DIGEST_MAX];
    registry_hasher_update(h, data, len);
    registry_hasher_final(h, actual);
    registry_hasher_free(h);
    if (strcmp(actual, expected) != 0)
        return pea_fail(err, 0, "%s %s: content has digest %s", what, expected, actual);
    return 0;
}

void registry_digest_sha256(const void *data, size_t len, char *out)
{
    struct registry_hasher *h = registry_hasher_new(REGISTRY_SHA256);
    registry_hasher_update(h, data, len);
    registry_hasher_final(h, out);
    registry_hasher_free(h);
}
