/* OCI seccomp (struct pea_seccomp) compiled into a BPF program through libseccomp. */
#ifndef PEA_SECCOMP_H
#define PEA_SECCOMP_H

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdbool.h>
#include <sys/types.h>

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
 * Unknown syscall names are skipped (the spec allows it); unknown architectures, SCMP_ACT_NOTIFY as the default
 * action or for sendmsg are errors. Unless the default action lets calls through, a syscall numbered above every
 * one the profile names fails with ENOSYS (runc's stub: a C library falls back from a call the kernel "lacks"). */
const struct pea_seccomp_program *seccomp_compile(const struct pea_seccomp *profile, struct pea_error *err);
/* Whether loading the program gives a listener for SCMP_ACT_NOTIFY. */
static inline bool seccomp_program_has_listener(const struct pea_seccomp_program *program)
{
    return program->flags & SECCOMP_FILTER_FLAG_NEW_LISTENER;
}
/* Install the program in the calling thread (after no_new_privs or with CAP_SYS_ADMIN). *listener_fd: the notify
 * listener (close-on-exec) when the program has one, else -1. */
int seccomp_program_load(const struct pea_seccomp_program *program, int *listener_fd, struct pea_error *err);
/* Free every cached program. */
void seccomp_cache_clear(void);
/* Keep compiled programs across processes too, in pea's own directory, never under a caller's --root:
 * $PEA_SECCOMP_CACHE_DIR when set (empty: nowhere), else /run/pea-seccomp-cache for root and
 * $XDG_RUNTIME_DIR/pea-seccomp-cache for other users (nowhere without XDG_RUNTIME_DIR). Made 0700 on first use,
 * used only while it is ours alone. pea and pea-shim call it. */
void seccomp_cache_use_default_dir(void);
/* Keep them in exactly dir; NULL: only in this process. */
void seccomp_cache_use_dir(const char *dir);
#define PEA_SECCOMP_CACHE_NAME "pea-seccomp-cache"
#define PEA_SECCOMP_CACHE_ENV "PEA_SECCOMP_CACHE_DIR"

/* Hand the listener of a container process to the seccomp agent at profile->listener_path: one connection, one
 * message of the OCI "container process state" ({ociVersion, fds: ["seccompFd"], pid, metadata, state}) with the
 * listener as SCM_RIGHTS. state_json: the container's state, as the hooks get it. */
int seccomp_notify_send_to_agent(const struct pea_seccomp *profile, pid_t pid, const char *state_json,
                                 int listener_fd, struct pea_error *err);

/* The libseccomp filter (an opaque scmp_filter_ctx) seccomp_compile exports, or NULL with *err. */
void *seccomp_filter_build(const struct pea_seccomp *profile, struct pea_error *err);
void seccomp_filter_free(void *filter);

/* libseccomp's version as "2.5.4". */
const char *seccomp_library_version(void);

#endif
