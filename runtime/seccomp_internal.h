/* Between seccomp.c (compiling, the in-process cache) and seccomp_store.c (compiled programs kept on disk). */
#ifndef PEA_SECCOMP_INTERNAL_H
#define PEA_SECCOMP_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "pea/seccomp.h"

/* libseccomp's token for a profile's architecture name ("SCMP_ARCH_X86_64" or "x86_64"); 0 when unknown. */
uint32_t seccomp_arch_from_profile_name(const char *name);

/* Put the ENOSYS stub (seccomp_enosys.c) before the program libseccomp made for profile: *program (malloc'd, *len
 * instructions) is replaced. Nothing changes when the profile's default action lets calls through. */
int seccomp_enosys_prepend(const struct pea_seccomp *profile, struct sock_filter **program, size_t *len,
                           struct pea_error *err);

/* FNV-1a of a key: it only picks the entry; a hit is confirmed on the whole key. */
uint64_t seccomp_key_digest(const unsigned char *key, size_t len);

/* What else decides the program compiled from a profile, as a key prefix: the format of the store, pea's version,
 * libseccomp's (which resolves names and probes the kernel) and the kernel's release and machine. Computed once;
 * *len is set. */
const unsigned char *seccomp_store_environment(size_t *len);

/* Load the program stored in dir under key (environment prefix included) into *out (its filter malloc'd).
 * 0 on a hit; -1 on any miss: absent, unreadable, damaged, another key, flags other than kernel_flags (what the
 * profile asks for: a stored LOG or SPEC_ALLOW must never weaken a profile that did not ask for it), or dir not
 * private to us. */
int seccomp_store_load(const char *dir, const unsigned char *key, size_t key_len, unsigned kernel_flags,
                       struct pea_seccomp_program *out);
/* Keep program in dir under key: written under a temporary name and renamed, so readers see all or nothing.
 * Best effort: a store that fails only means a later process compiles again. */
void seccomp_store_save(const char *dir, const unsigned char *key, size_t key_len,
                        const struct pea_seccomp_program *program);

/* Bump when seccomp.c turns a profile into a different program (another attribute, another rule splitting): stored
 * programs of the old way are then misses. */
#define SECCOMP_COMPILE_REVISION 2 /* 2: the ENOSYS stub */

/* Most entries a store keeps: past it, the next save empties it first (profiles in use are few). */
#define SECCOMP_STORE_MAX_ENTRIES 64
/* Largest entry kept (header, key and program): pea's RuntimeDefault profile takes 14 KiB. With the
 * count above, a store holds at most 16 MiB (it lives in /run, which is memory). A larger profile is compiled by
 * every process that uses it. */
#define SECCOMP_STORE_ENTRY_MAX (256u << 10)

#endif
