/* OCI seccomp (struct pea_seccomp) compiled into a BPF filter through libseccomp. */
#ifndef PEA_SECCOMP_H
#define PEA_SECCOMP_H

#include "pea/error.h"
#include "pea/spec.h"

/* Build the filter in the parent's memory and return an opaque handle (scmp_filter_ctx) or NULL with *err.
 * Unknown syscall names are skipped (the spec allows it); unknown architectures are an error. */
void *seccomp_filter_build(const struct pea_seccomp *profile, struct pea_error *err);
/* Load a built filter into the calling process. Must be the last step before execve (after no_new_privs or with
 * CAP_SYS_ADMIN). */
int seccomp_filter_load(void *filter, struct pea_error *err);
void seccomp_filter_free(void *filter);

/* libseccomp's version as "2.5.4". */
const char *seccomp_library_version(void);

#endif
