/* SHA-256 (FIPS 180-4), for the shim's socket name: containerd's runc shim names its socket after the hash of
 * "ADDRESS/NAMESPACE/ID", and so does ours. libcrypto stays out of the shim (its start-up cost and resident pages
 * are paid once per pod). */
#ifndef PEA_SHIM_V2_SHA256_H
#define PEA_SHIM_V2_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_DIGEST_SIZE 32

void sha256_digest(const void *data, size_t len, uint8_t out[SHA256_DIGEST_SIZE]);
/* The digest as 64 lowercase hex digits and a NUL. */
void sha256_hex(const void *data, size_t len, char out[2 * SHA256_DIGEST_SIZE + 1]);

#endif
