/* The thin syscall layer: wrappers for calls glibc lacks, each with its fallback in one place. */
#ifndef PEA_SYS_H
#define PEA_SYS_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS) of path below root_fd. Falls back to a component-by-component
 * walk that resolves each symlink itself and clamps ".." at root_fd when openat2 is missing (ENOSYS). */
int sys_open_in_root(int root_fd, const char *path, int flags, mode_t mode);

/* openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS) of path below dir_fd: a lookup that would leave dir_fd (".." past
 * it, an absolute symlink, a magic link) fails with EXDEV instead of being clamped at it. */
int sys_open_beneath(int dir_fd, const char *path, int flags);

/* openat2(RESOLVE_NO_SYMLINKS) of path (from dir_fd when relative): a symlink anywhere on it fails with ELOOP, so
 * that a directory of pea's own cannot be swapped for a link between its check and its use. */
int sys_open_no_symlinks(int dir_fd, const char *path, int flags);

/* mkdir -p of path below root_fd, every component resolved inside the root; returns an O_PATH fd of the last
 * directory (or -1 with errno). */
int sys_mkdir_in_root(int root_fd, const char *path, mode_t mode);

/* Create an empty regular file below root_fd if missing (parents made); returns an O_PATH fd to it. */
int sys_mkfile_in_root(int root_fd, const char *path, mode_t mode);

/* clone3 with the given flags (CLONE_NEW*, CLONE_PIDFD, CLONE_INTO_CGROUP), exit_signal SIGCHLD.
 * Returns 0 in the child, the child's pid in the parent, -1 with errno. *pidfd receives the pidfd when
 * CLONE_PIDFD is set. cgroup_fd is used with CLONE_INTO_CGROUP. Falls back to clone(2) without
 * CLONE_INTO_CGROUP when clone3 is ENOSYS; the caller then moves the child into its cgroup. */
pid_t sys_clone3(uint64_t flags, int cgroup_fd, int *pidfd, bool *used_into_cgroup);

int sys_pidfd_open(pid_t pid, unsigned flags);
int sys_pidfd_send_signal(int pidfd, int sig, siginfo_t *info, unsigned flags);
int sys_pivot_root(const char *new_root, const char *put_old);
/* close_range(first, ~0U, CLOSE_RANGE_CLOEXEC) with a /proc/self/fd walk fallback. */
int sys_cloexec_from(int first);
/* Close every fd >= first (close_range with fallback). */
int sys_close_from(int first);

/* Verify fd is on procfs (fstatfs magic); returns 0 or -1 with errno = EXDEV. */
int sys_check_procfs(int fd);
/* Open a fresh, verified handle on the host's /proc (O_PATH|O_DIRECTORY|O_CLOEXEC). */
int sys_open_procfs(void);

/* Start time of pid in clock ticks since boot (field 22 of /proc/PID/stat); 0 when gone. Sets *is_zombie. */
unsigned long long sys_process_start_time(pid_t pid, bool *is_zombie);

/* Re-execute ourselves from a sealed memfd copy of our binary, unless already running from one: a container
 * process that reaches our /proc/PID/exe then finds an immutable copy, never the binary on disk (the
 * CVE-2019-5736 class). The copy holds what is loaded (the ELF segments), not debug info or section headers.
 * A binary on a read-only mount is run in place: nothing in a container can write through that mount.
 * Returns 0 when already sealed or read-only; does not return on success; -1 with errno otherwise. */
int sys_reexec_from_sealed_copy(char **argv);
/* The same, for a long-lived process of which many run (pea-shim, one per pod): the sealed copy another process of
 * the same binary file runs from, as recorded in registry_dir/registry_name, is shared rather than copied again,
 * so that all of them hold one copy's pages. The record names the last process to start from a copy, and is used
 * only while that process lives, its copy is sealed and was made from this very file (device, inode, size, mtime). */
/* Set glibc's internal signals (32 .. SIGRTMIN-1) to their default: posix_spawn leaves them ignored in the program
 * it starts, glibc's own calls cannot reset them, and a process cloned from it (a container) would inherit them
 * ignored. Only for a process with one thread. */
void sys_reset_internal_signals(void);
int sys_reexec_sharing_sealed_copy(char **argv, const char *registry_dir, const char *registry_name);

#endif
