/* OCI seccomp (struct pea_seccomp) compiled into a BPF program through libseccomp. */
#ifndef PEA_SECCOMP_H
#define PEA_SECCOMP_H

#include <linux/filter.h>

#include "pea/error.h"
#include "pea/spec.h"

/* A profile compiled in the runtime: the classic BPF program and the SECCOMP_FILTER_FLAG_* its attributes mean,
 * so that the container child, after clone, only hands them to seccomp(2). */
struct pea_seccomp_program {
    struct sock_fprog prog;
    unsigned flags;
};

/* Compile profile, or return the program compiled for an equal profile earlier in this process (a few are kept).
 * The program belongs to the cache: valid until the next seccomp_compile or seccomp_cache_clear. NULL with *err.
 * Unknown syscall names are skipped (the spec allows it); unknown architectures and SCMP_ACT_NOTIFY are errors. */
const struct pea_seccomp_program *seccomp_compile(const struct pea_seccomp *profile, struct pea_error *err);
/* Install the program in the calling thread. Must be the last step before execve (after no_new_privs or with
 * CAP_SYS_ADMIN). */
int seccomp_program_load(const struct pea_seccomp_program *program, struct pea_error *err);
/* Free every cached program. */
void seccomp_cache_clear(void);
/* Keep compiled programs across processes too, in ROOT/.seccomp-cache (made 0700 on first use); NULL: only in this
 * process. pea and pea-shim pass their state root. */
void seccomp_cache_use_root(const char *root);
#define PEA_SECCOMP_STORE_NAME ".seccomp-cache"

/* The libseccomp filter (an opaque scmp_filter_ctx) seccomp_compile exports, or NULL with *err. */
void *seccomp_filter_build(const struct pea_seccomp *profile, struct pea_error *err);
void seccomp_filter_free(void *filter);

/* libseccomp's version as "2.5.4". */
const char *seccomp_library_version(void);

#endif
