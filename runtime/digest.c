/* SHA-256 of documents (manifests, configs, indexes: kilobytes, at most the store's document limit) in portable C,
 * from FIPS 180-4: reading an image from the store checks its documents again, and pea and pea-shim do that when a pod
 * uses an image, without linking libcrypto (its start-up cost is paid by every container start). Layers, hashed
 * as they stream, go through digest_stream.c (libcrypto, pea-image only). */
#include <stdint.h>
#include <string.h>

#include "pea/digest.h"
#include "pea/error.h"

static const uint32_t round_constants[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static inline uint32_t rotr(uint32_t x, unsigned n) { return (x >> n) | (x << (32 - n)); }

static void compress_block(uint32_t state[8], const unsigned char block[64])
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)block[4 * i] << 24 | (uint32_t)block[4 * i + 1] << 16 | (uint32_t)block[4 * i + 2] << 8 |
               (uint32_t)block[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
    uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + round_constants[i] + w[i];
        uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        h = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    state[0] += a;
    state[1] += b;
    state[2] += c;
    state[3] += d;
    state[4] += e;
    state[5] += f;
    state[6] += g;
    state[7] += h;
}

void pea_digest_format(const unsigned char md[32], char out[PEA_DIGEST_SIZE])
{
    static const char hex[] = "0123456789abcdef";
    memcpy(out, PEA_DIGEST_PREFIX, sizeof PEA_DIGEST_PREFIX - 1);
    char *p = out + sizeof PEA_DIGEST_PREFIX - 1;
    for (size_t i = 0; i < 32; i++) {
        *p++ = hex[md[i] >> 4];
        *p++ = hex[md[i] & 15];
    }
    *p = '\0';
}

void pea_digest_buffer(const void *buf, size_t len, char out[PEA_DIGEST_SIZE])
{
    uint32_t state[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                         0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    const unsigned char *p = buf;
    size_t left = len;
    for (; left >= 64; left -= 64, p += 64)
        compress_block(state, p);
    /* The tail, a 1 bit, zeros, and the length in bits (big-endian): one block, or two when the tail is long. */
    unsigned char last[128] = {0};
    memcpy(last, p, left);
    last[left] = 0x80;
    size_t blocks = left < 56 ? 1 : 2;
    uint64_t bits = (uint64_t)len * 8;
    for (int i = 0; i < 8; i++)
        last[blocks * 64 - 1 - i] = (unsigned char)(bits >> (8 * i));
    for (size_t i = 0; i < blocks; i++)
        compress_block(state, last + 64 * i);
    unsigned char md[32];
    for (int i = 0; i < 8; i++) {
        md[4 * i] = (unsigned char)(state[i] >> 24);
        md[4 * i + 1] = (unsigned char)(state[i] >> 16);
        md[4 * i + 2] = (unsigned char)(state[i] >> 8);
        md[4 * i + 3] = (unsigned char)state[i];
    }
    pea_digest_format(md, out);
}

/* True when s is exactly n lowercase hex digits. */
static bool is_lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return s[n] == '\0';
}

bool pea_digest_is_valid(const char *digest)
{
    return digest && strncmp(digest, PEA_DIGEST_PREFIX, sizeof PEA_DIGEST_PREFIX - 1) == 0 &&
           is_lower_hex(pea_digest_hex(digest), 64);
}

int pea_digest_check(const char *digest, enum pea_digest_algorithm *algorithm, struct pea_error *err)
{
    enum pea_digest_algorithm alg;
    size_t hex_len;
    if (strncmp(digest, "sha256:", 7) == 0)
        alg = PEA_DIGEST_SHA256, hex_len = 64;
    else if (strncmp(digest, "sha512:", 7) == 0)
        alg = PEA_DIGEST_SHA512, hex_len = 128;
    else
        return pea_fail(err, 0, "digest \"%.80s\": unsupported algorithm (sha256 and sha512 are)", digest);
    /* strnlen first: is_lower_hex reads hex_len bytes, which a shorter string does not have. */
    if (strnlen(digest + 7, hex_len + 1) != hex_len || !is_lower_hex(digest + 7, hex_len))
        return pea_fail(err, 0, "digest \"%.80s\": not %zu lowercase hex digits", digest, hex_len);
    if (algorithm)
        *algorithm = alg;
    return 0;
}
