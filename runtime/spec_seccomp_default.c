/* pea's RuntimeDefault seccomp profile: an allowlist that runs ordinary workloads (shells, busybox, compilers, web
 * servers) and leaves out the dangerous families: keyring, bpf, perf_event_open, userfaultfd, module and kexec
 * loading, mount and pivot_root, namespace creation, ptrace, open_by_handle_at, reboot, swap, clock setting, syslog,
 * iopl/ioperm, and personality beyond the safe values. Everything not listed fails with EPERM. */
#include "pea/spec.h"
#include "pea/util.h"

static const char *const allowed[] = {
    /* files and directories */
    "access", "chdir", "chmod", "chown", "close", "close_range", "copy_file_range", "creat", "dup", "dup2",
    "dup3", "faccessat", "faccessat2", "fadvise64", "fallocate", "fchdir", "fchmod", "fchmodat", "fchown",
    "fchownat", "fcntl", "fdatasync", "flock", "fstat", "fstatfs", "fsync", "ftruncate", "getcwd", "getdents",
    "getdents64", "getxattr", "fgetxattr", "lgetxattr", "listxattr", "flistxattr", "llistxattr", "setxattr",
    "fsetxattr", "lsetxattr", "removexattr", "fremovexattr", "lremovexattr", "lchown", "link", "linkat", "lseek",
    "lstat", "mkdir", "mkdirat", "mknod", "mknodat", "newfstatat", "open", "openat", "openat2", "pipe", "pipe2",
    "pread64", "preadv", "preadv2", "pwrite64", "pwritev", "pwritev2", "read", "readahead", "readlink",
    "readlinkat", "readv", "rename", "renameat", "renameat2", "rmdir", "sendfile", "splice", "stat", "statfs",
    "statx", "symlink", "symlinkat", "sync", "sync_file_range", "syncfs", "tee", "truncate", "umask", "unlink",
    "unlinkat", "utime", "utimensat", "utimes", "futimesat", "vmsplice", "write", "writev", "memfd_create",
    "inotify_init", "inotify_init1", "inotify_add_watch", "inotify_rm_watch", "io_setup", "io_destroy",
    "io_getevents", "io_submit", "io_cancel", "io_pgetevents", "chroot", "ioctl",
    /* memory */
    "brk", "madvise", "membarrier", "mincore", "mlock", "mlock2", "mlockall", "mmap", "mprotect", "mremap",
    "msync", "munlock", "munlockall", "munmap", "pkey_alloc", "pkey_free", "pkey_mprotect", "get_mempolicy",
    "set_mempolicy", "mbind", "remap_file_pages",
    /* processes and threads */
    "arch_prctl", "capget", "capset", "execve", "execveat", "exit", "exit_group", "fork", "vfork",
    "futex", "futex_waitv", "get_robust_list", "set_robust_list", "getpid", "getppid", "getpgid", "getpgrp",
    "getsid", "gettid", "getpriority", "setpriority", "getrlimit", "setrlimit", "prlimit64", "getrusage",
    "prctl", "rseq", "sched_getaffinity", "sched_setaffinity", "sched_getattr", "sched_setattr",
    "sched_getparam", "sched_setparam", "sched_getscheduler", "sched_setscheduler", "sched_get_priority_max",
    "sched_get_priority_min", "sched_rr_get_interval", "sched_yield", "set_tid_address", "setpgid", "setsid",
    "wait4", "waitid", "times", "uname", "sysinfo", "getrandom", "ioprio_get", "ioprio_set",
    "pidfd_open", "pidfd_send_signal", "process_mrelease", "restart_syscall", "seccomp",
    "tgkill", "tkill", "kill", "sigaltstack", "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo",
    "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait", "rt_tgsigqueueinfo", "pause", "alarm", "getitimer",
    "setitimer", "signalfd", "signalfd4", "eventfd", "eventfd2", "timerfd_create", "timerfd_gettime",
    "timerfd_settime", "timer_create", "timer_delete", "timer_getoverrun", "timer_gettime", "timer_settime",
    /* identity */
    "getuid", "geteuid", "getgid", "getegid", "getresuid", "getresgid", "getgroups", "setuid", "setgid",
    "setreuid", "setregid", "setresuid", "setresgid", "setgroups", "setfsuid", "setfsgid",
    /* time (reading, sleeping) */
    "clock_getres", "clock_gettime", "clock_nanosleep", "gettimeofday", "nanosleep", "time",
    /* polling */
    "epoll_create", "epoll_create1", "epoll_ctl", "epoll_pwait", "epoll_pwait2", "epoll_wait", "poll", "ppoll",
    "pselect6", "select",
    /* sockets */
    "accept", "accept4", "bind", "connect", "getpeername", "getsockname", "getsockopt", "listen", "recvfrom",
    "recvmmsg", "recvmsg", "sendmmsg", "sendmsg", "sendto", "setsockopt", "shutdown", "socket", "socketpair",
    /* System V and POSIX IPC (namespaced) */
    "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive", "mq_timedsend", "mq_unlink", "msgctl", "msgget",
    "msgrcv", "msgsnd", "semctl", "semget", "semop", "semtimedop", "shmat", "shmctl", "shmdt", "shmget",
    NULL,
};

/* clone without any CLONE_NEW* flag: NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET, NEWTIME. */
#define CLONE_NAMESPACE_FLAGS 0x7E020080LL

/* personality(2) is allowed only for the values that change nothing dangerous. */
static const long safe_personalities[] = {0x0, 0x8, 0x20000, 0x20008, 0xffffffff};

json_t *spec_default_seccomp_json(void)
{
    json_t *names = json_array();
    for (const char *const *n = allowed; *n; n++)
        json_array_append_new(names, json_string(*n));
    json_t *syscalls = json_array();
    json_array_append_new(syscalls, json_pack("{s:o, s:s}", "names", names, "action", "SCMP_ACT_ALLOW"));
    json_t *personality_args = json_array();
    for (size_t i = 0; i < ARRAY_SIZE(safe_personalities); i++)
        json_array_append_new(personality_args, json_pack("{s:i, s:I, s:s}", "index", 0, "value",
                                                          (json_int_t)safe_personalities[i], "op", "SCMP_CMP_EQ"));
    json_array_append_new(syscalls, json_pack("{s:[s], s:s, s:o}", "names", "personality", "action",
                                              "SCMP_ACT_ALLOW", "args", personality_args));
    json_array_append_new(syscalls, json_pack("{s:[s], s:s, s:[{s:i, s:I, s:i, s:s}]}", "names", "clone", "action",
                                              "SCMP_ACT_ALLOW", "args", "index", 0, "value",
                                              (json_int_t)CLONE_NAMESPACE_FLAGS, "valueTwo", 0, "op",
                                              "SCMP_CMP_MASKED_EQ"));
    /* clone3 hides its flags in memory a filter cannot read: make libc fall back to clone, whose flags we check. */
    json_array_append_new(syscalls, json_pack("{s:[s], s:s, s:i}", "names", "clone3", "action", "SCMP_ACT_ERRNO",
                                              "errnoRet", 38));
    return json_pack("{s:s, s:i, s:[s, s, s], s:o}", "defaultAction", "SCMP_ACT_ERRNO", "defaultErrnoRet", 1,
                     "architectures", "SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", "syscalls", syscalls);
}
