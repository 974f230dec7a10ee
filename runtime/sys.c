/* Thin syscall layer: calls glibc lacks, each with its fallback here and nowhere else. */
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <linux/magic.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "pea/sys.h"
#include "pea/util.h"

pid_t sys_clone3(uint64_t flags, int cgroup_fd, int *pidfd, bool *used_into_cgroup)
{
    struct clone_args args = {0};
    args.flags = flags;
    /* With CLONE_PARENT clone3 wants none: the child takes the caller's, which is SIGCHLD for our forks. */
    args.exit_signal = (flags & CLONE_PARENT) ? 0 : SIGCHLD;
    if (flags & CLONE_PIDFD)
        args.pidfd = (uint64_t)(uintptr_t)pidfd;
    if (flags & CLONE_INTO_CGROUP)
        args.cgroup = (uint64_t)cgroup_fd;
    if (used_into_cgroup)
        *used_into_cgroup = (flags & CLONE_INTO_CGROUP) != 0;
    long r = syscall(SYS_clone3, &args, sizeof args);
    if (r >= 0 || errno != ENOSYS)
        return (pid_t)r;
    /* Kernels before 5.3: clone(2) cannot place the child in a cgroup; the caller moves it. */
    if (used_into_cgroup)
        *used_into_cgroup = false;
    uint64_t legacy = flags & ~(uint64_t)CLONE_INTO_CGROUP;
    return (pid_t)syscall(SYS_clone, (unsigned long)(legacy | SIGCHLD), NULL, (legacy & CLONE_PIDFD) ? pidfd : NULL,
                          NULL, 0UL);
}

int sys_pidfd_open(pid_t pid, unsigned flags) { return (int)syscall(SYS_pidfd_open, pid, flags); }

int sys_pidfd_send_signal(int pidfd, int sig, siginfo_t *info, unsigned flags)
{
    return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, info, flags);
}

int sys_pivot_root(const char *new_root, const char *put_old)
{
    return (int)syscall(SYS_pivot_root, new_root, put_old);
}

/* Walk /proc/self/fd when close_range is missing; apply `cloexec` or close to every fd >= first. */
static int fd_walk(int first, bool cloexec)
{
    DIR *dir = opendir("/proc/self/fd");
    if (!dir)
        return -1;
    int self = dirfd(dir);
    struct dirent *de;
    while ((de = readdir(dir))) {
        long long fd;
        if (parse_int64(de->d_name, &fd) < 0 || fd < first || fd == self)
            continue;
        if (cloexec) {
            int fl = fcntl((int)fd, F_GETFD);
            if (fl >= 0)
                fcntl((int)fd, F_SETFD, fl | FD_CLOEXEC);
        } else {
            close((int)fd);
        }
    }
    closedir(dir);
    return 0;
}

int sys_cloexec_from(int first)
{
    if (syscall(SYS_close_range, (unsigned)first, ~0U, CLOSE_RANGE_CLOEXEC) == 0)
        return 0;
    return fd_walk(first, true);
}

int sys_close_from(int first)
{
    if (syscall(SYS_close_range, (unsigned)first, ~0U, 0) == 0)
        return 0;
    return fd_walk(first, false);
}

int sys_check_procfs(int fd)
{
    struct statfs st;
    if (fstatfs(fd, &st) < 0)
        return -1;
    if (st.f_type != PROC_SUPER_MAGIC) {
        errno = EXDEV;
        return -1;
    }
    return 0;
}

int sys_open_procfs(void)
{
    AUTO_FD int fd = open("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -1;
    if (sys_check_procfs(fd) < 0)
        return -1;
    return take_fd(&fd);
}

unsigned long long sys_process_start_time(pid_t pid, bool *is_zombie)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    if (is_zombie)
        *is_zombie = false;
    AUTO_FREE char *stat = read_file_at(AT_FDCWD, path, 65536, NULL);
    if (!stat)
        return 0;
    /* The command name may hold spaces and parentheses: fields restart after the last ')'. */
    char *p = strrchr(stat, ')');
    if (!p)
        return 0;
    p += 2; /* field 3: state */
    if (is_zombie)
        *is_zombie = (*p == 'Z' || *p == 'X');
    for (int field = 3; field < 22; field++) {
        p = strchr(p, ' ');
        if (!p)
            return 0;
        p++;
    }
    return strtoull(p, NULL, 10);
}

/* The seals that make a memfd an immutable copy. */
#define SEALED_COPY_SEALS (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)

/* How much of the ELF executable at fd the kernel and the dynamic loader read: up to the end of the last segment
 * (and of the program headers). What follows (debug info, the symbol table, section headers) need not be in the
 * copy, which is memory the process holds for as long as it runs: a pod's shim for the pod's whole life. 0 when
 * fd is not a 64-bit ELF file of ours: then all of it is copied. */
static off_t elf_loaded_size(int fd, off_t file_size, Elf64_Ehdr *eh)
{
    if (pread(fd, eh, sizeof *eh, 0) != (ssize_t)sizeof *eh || memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 ||
        eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_phentsize != sizeof(Elf64_Phdr))
        return 0;
    /* One read of the whole table: this runs on every create, run and exec. */
    Elf64_Phdr ph[64];
    size_t table = (size_t)eh->e_phnum * sizeof ph[0];
    if (eh->e_phnum > ARRAY_SIZE(ph) || pread(fd, ph, table, (off_t)eh->e_phoff) != (ssize_t)table)
        return 0;
    off_t end = (off_t)(eh->e_phoff + table);
    for (Elf64_Half i = 0; i < eh->e_phnum; i++)
        if ((off_t)(ph[i].p_offset + ph[i].p_filesz) > end)
            end = (off_t)(ph[i].p_offset + ph[i].p_filesz);
    return end > (off_t)sizeof *eh && end <= file_size ? end : 0;
}

/* What a sealed copy was made from, so that another process of the same binary can tell whether a copy is of it:
 * device, inode, size and modification time of the file. */
static void source_identity(const struct stat *st, char *out, size_t len)
{
    snprintf(out, len, "%llu %llu %lld %lld.%09ld\n", (unsigned long long)st->st_dev, (unsigned long long)st->st_ino,
             (long long)st->st_size, (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
}

/* The sealed copy that the process named in dir/name runs from, when it is a copy of the binary with identity:
 * an fd, or -1. The record is "PID STARTTIME IDENTITY", written by whoever last started from that copy. */
static int shared_copy_from(int dir_fd, const char *name, const char *identity)
{
    AUTO_FD int fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 022))
        return -1;
    char record[256];
    ssize_t n = read(fd, record, sizeof record - 1);
    if (n <= 0)
        return -1;
    record[n] = '\0';
    int pid = 0, end = 0;
    unsigned long long start_time = 0;
    if (sscanf(record, "%d %llu %n", &pid, &start_time, &end) != 2 || pid <= 0 || strcmp(record + end, identity) != 0)
        return -1;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/exe", pid);
    int exe = open(path, O_RDONLY | O_CLOEXEC);
    if (exe < 0)
        return -1;
    /* Opened first, the process checked after: had its PID been reused in between, the start time would differ. */
    int seals = fcntl(exe, F_GET_SEALS);
    if (seals < 0 || (seals & SEALED_COPY_SEALS) != SEALED_COPY_SEALS ||
        sys_process_start_time(pid, NULL) != start_time) {
        close(exe);
        return -1;
    }
    return exe;
}

/* execve keeps the PID and the start time: the record names this process once it runs from the copy. */
static void record_copy_user(int dir_fd, const char *name, const char *identity)
{
    char record[256];
    int n = snprintf(record, sizeof record, "%d %llu %s", (int)getpid(), sys_process_start_time(getpid(), NULL),
                     identity);
    if (n > 0 && (size_t)n < sizeof record)
        write_file_atomic_at(dir_fd, name, record, (size_t)n, 0600);
}

static int make_sealed_copy(int self, off_t file_size)
{
    Elf64_Ehdr eh;
    off_t size = elf_loaded_size(self, file_size, &eh);
    bool is_trimmed = size > 0 && size < file_size;
    if (!is_trimmed)
        size = file_size;
    AUTO_FD int copy = memfd_create("pea", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (copy < 0)
        return -1;
    for (off_t done = 0; done < size;) {
        ssize_t n = sendfile(copy, self, NULL, (size_t)(size - done));
        if (n <= 0) {
            if (n < 0 && errno == EINTR)
                continue;
            if (n == 0)
                errno = EIO;
            return -1;
        }
        done += n;
    }
    if (is_trimmed && eh.e_shoff != 0) {
        /* The section headers are not in the copy: say there are none rather than point past its end. */
        eh.e_shoff = 0;
        eh.e_shnum = 0;
        eh.e_shstrndx = SHN_UNDEF;
        if (pwrite(copy, &eh, sizeof eh, 0) != (ssize_t)sizeof eh)
            return -1;
    }
    if (fcntl(copy, F_ADD_SEALS, SEALED_COPY_SEALS) < 0)
        return -1;
    return take_fd(&copy);
}

static int reexec_sealed(char **argv, const char *registry_dir, const char *registry_name)
{
    AUTO_FD int self = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    if (self < 0)
        return -1;
    int seals = fcntl(self, F_GET_SEALS);
    if (seals >= 0 && (seals & SEALED_COPY_SEALS) == SEALED_COPY_SEALS)
        return 0; /* already running from the sealed copy */
    /* The mount is the one /proc/PID/exe leads through; a container cannot remount it writable, since it lives in a
     * mount namespace the container is not in (and a container in ours holds the host anyway). */
    struct statvfs vfs;
    if (fstatvfs(self, &vfs) == 0 && (vfs.f_flag & ST_RDONLY))
        return 0;
    struct stat st;
    if (fstat(self, &st) < 0)
        return -1;
    extern char **environ;
    char identity[128];
    source_identity(&st, identity, sizeof identity);
    AUTO_FD int dir_fd = registry_dir ? open(registry_dir, O_PATH | O_DIRECTORY | O_CLOEXEC) : -1;
    if (dir_fd >= 0) {
        AUTO_FD int shared = shared_copy_from(dir_fd, registry_name, identity);
        if (shared >= 0) {
            record_copy_user(dir_fd, registry_name, identity);
            fexecve(shared, argv, environ);
        }
    }
    AUTO_FD int copy = make_sealed_copy(self, st.st_size);
    if (copy < 0)
        return -1;
    if (dir_fd >= 0)
        record_copy_user(dir_fd, registry_name, identity);
    fexecve(copy, argv, environ);
    return -1;
}

int sys_reexec_from_sealed_copy(char **argv) { return reexec_sealed(argv, NULL, NULL); }

int sys_reexec_sharing_sealed_copy(char **argv, const char *registry_dir, const char *registry_name)
{
    return reexec_sealed(argv, registry_dir, registry_name);
}

void sys_reset_internal_signals(void)
{
    /* The kernel's struct sigaction, which the system call takes (glibc's differs and refuses these signals). */
    struct {
        void *handler;
        unsigned long flags;
        void *restorer;
        unsigned long long mask;
    } default_action = {.handler = SIG_DFL};
    for (int sig = 32; sig < SIGRTMIN; sig++)
        syscall(SYS_rt_sigaction, sig, &default_action, NULL, sizeof default_action.mask);
}
