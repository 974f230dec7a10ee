/*
 * peatest: a static helper copied into every integration-test rootfs as /bin/peatest.
 *
 * It reports what busybox cannot (capability sets, open fds, rlimits, namespaces, seccomp state) and does what the
 * tests need to provoke (a syscall, an allocation, a fork loop, a signal).  Every subcommand prints lines of the form
 * "KEY VALUE..." so that a test can split each line once and assert on a dict.  A failing syscall is reported by its
 * errno name ("EPERM"), never by localised text.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/bpf.h>
#include <linux/keyctl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static int usage(void)
{
    fputs("usage: peatest caps|fds|cwd|ids|rlimit NAME|ns|nnp|seccomp|syscall NAME|alloc MB|forkloop N|sleep S|\n"
          "               exit N|kill-self SIG|hostname|env|umask|isatty|rawsock|mount|pid|oom|\n"
          "               read PATH|write PATH|swap-root PATH\n",
          stderr);
    return 2;
}

/* Print "ok" for a call that returned >= 0, else the errno name: the one-word verdict of most subcommands. */
static int verdict(long rc)
{
    if (rc >= 0)
        puts("ok");
    else
        puts(strerrorname_np(errno) ? strerrorname_np(errno) : "EUNKNOWN");
    return 0;
}

/* Copy the lines of /proc/self/status that start with one of the given keys, as "KEY VALUE". */
static int print_status_lines(const char *const *keys)
{
    FILE *f = fopen("/proc/self/status", "re");
    if (!f) {
        perror("peatest: open /proc/self/status");
        return 1;
    }
    char line[512];
    while (fgets(line, sizeof(line), f)) {
        char *colon = strchr(line, ':');
        if (!colon)
            continue;
        *colon = '\0';
        for (const char *const *k = keys; *k; k++) {
            if (strcmp(line, *k) != 0)
                continue;
            char *value = colon + 1;
            value += strspn(value, " \t");
            printf("%s %s", line, value); /* value keeps its newline */
        }
    }
    fclose(f);
    return 0;
}

static int cmd_caps(void)
{
    static const char *const keys[] = {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", NULL};
    return print_status_lines(keys);
}

static int cmd_nnp(void)
{
    static const char *const keys[] = {"NoNewPrivs", NULL};
    return print_status_lines(keys);
}

static int cmd_seccomp(void)
{
    static const char *const keys[] = {"Seccomp", NULL};
    return print_status_lines(keys);
}

static int compare_ints(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* "fds 0 1 2": the open descriptors in ascending order, without the one opendir() uses to list them. */
static int cmd_fds(void)
{
    DIR *dir = opendir("/proc/self/fd");
    if (!dir) {
        perror("peatest: opendir /proc/self/fd");
        return 1;
    }
    int fds[4096];
    size_t n = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) && n < sizeof(fds) / sizeof(fds[0])) {
        if (entry->d_name[0] == '.')
            continue;
        int fd = atoi(entry->d_name);
        if (fd != dirfd(dir))
            fds[n++] = fd;
    }
    closedir(dir);
    qsort(fds, n, sizeof(fds[0]), compare_ints);
    fputs("fds", stdout);
    for (size_t i = 0; i < n; i++)
        printf(" %d", fds[i]);
    putchar('\n');
    return 0;
}

static int cmd_cwd(void)
{
    char buf[PATH_MAX];
    if (!getcwd(buf, sizeof(buf))) {
        printf("cwd %s\n", strerrorname_np(errno));
        return 1;
    }
    printf("cwd %s\n", buf);
    return 0;
}

static int cmd_ids(void)
{
    uid_t ruid, euid, suid;
    gid_t rgid, egid, sgid;
    getresuid(&ruid, &euid, &suid);
    getresgid(&rgid, &egid, &sgid);
    printf("uid %u\neuid %u\ngid %u\negid %u\n", ruid, euid, rgid, egid);
    gid_t groups[NGROUPS_MAX];
    int n = getgroups(NGROUPS_MAX, groups);
    fputs("groups", stdout);
    for (int i = 0; i < n; i++)
        printf(" %u", groups[i]);
    putchar('\n');
    return 0;
}

static const struct {
    const char *name;
    int resource;
} rlimits[] = {
    {"AS", RLIMIT_AS},         {"CORE", RLIMIT_CORE},       {"CPU", RLIMIT_CPU},
    {"DATA", RLIMIT_DATA},     {"FSIZE", RLIMIT_FSIZE},     {"LOCKS", RLIMIT_LOCKS},
    {"MEMLOCK", RLIMIT_MEMLOCK}, {"MSGQUEUE", RLIMIT_MSGQUEUE}, {"NICE", RLIMIT_NICE},
    {"NOFILE", RLIMIT_NOFILE}, {"NPROC", RLIMIT_NPROC},     {"RSS", RLIMIT_RSS},
    {"RTPRIO", RLIMIT_RTPRIO}, {"RTTIME", RLIMIT_RTTIME},   {"SIGPENDING", RLIMIT_SIGPENDING},
    {"STACK", RLIMIT_STACK},
};

static void print_limit(rlim_t value)
{
    if (value == RLIM_INFINITY)
        fputs("unlimited", stdout);
    else
        printf("%llu", (unsigned long long)value);
}

/* "NOFILE 123 456": soft then hard; accepts NOFILE or RLIMIT_NOFILE. */
static int cmd_rlimit(const char *name)
{
    if (strncmp(name, "RLIMIT_", 7) == 0)
        name += 7;
    for (size_t i = 0; i < sizeof(rlimits) / sizeof(rlimits[0]); i++) {
        if (strcmp(rlimits[i].name, name) != 0)
            continue;
        struct rlimit rl;
        if (getrlimit(rlimits[i].resource, &rl) < 0) {
            perror("peatest: getrlimit");
            return 1;
        }
        printf("%s ", name);
        print_limit(rl.rlim_cur);
        putchar(' ');
        print_limit(rl.rlim_max);
        putchar('\n');
        return 0;
    }
    fprintf(stderr, "peatest: unknown rlimit %s\n", name);
    return 2;
}

/* "net net:[4026531840]" for each namespace; "-" followed by the errno name when the link cannot be read. */
static int cmd_ns(void)
{
    static const char *const names[] = {"pid", "net", "mnt", "ipc", "uts", "cgroup", "user", "time"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char path[64], target[128];
        snprintf(path, sizeof(path), "/proc/self/ns/%s", names[i]);
        ssize_t len = readlink(path, target, sizeof(target) - 1);
        if (len < 0) {
            printf("%s - %s\n", names[i], strerrorname_np(errno));
            continue;
        }
        target[len] = '\0';
        printf("%s %s\n", names[i], target);
    }
    return 0;
}

/* Each probe makes one raw syscall (not a libc wrapper that might pick a sibling syscall) and undoes its effect. */
static int cmd_syscall(const char *name)
{
    long rc;
    if (strcmp(name, "mkdir") == 0) {
        rc = syscall(SYS_mkdir, "/tmp/.peatest-mkdir", 0700);
        if (rc == 0)
            rmdir("/tmp/.peatest-mkdir");
    } else if (strcmp(name, "getcwd") == 0) {
        char buf[PATH_MAX];
        rc = syscall(SYS_getcwd, buf, sizeof(buf));
    } else if (strcmp(name, "getpid") == 0) {
        rc = syscall(SYS_getpid);
    } else if (strcmp(name, "personality") == 0) {
        rc = syscall(SYS_personality, 0xffffffffUL); /* query only */
    } else if (strcmp(name, "unshare") == 0) {
        rc = syscall(SYS_unshare, CLONE_NEWUTS);
    } else if (strcmp(name, "mount") == 0) {
        rc = syscall(SYS_mount, "none", "/mnt", "tmpfs", 0UL, NULL);
        if (rc == 0)
            umount("/mnt");
    } else if (strcmp(name, "keyctl") == 0) {
        rc = syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0);
    } else if (strcmp(name, "bpf") == 0) {
        union bpf_attr attr;
        memset(&attr, 0, sizeof(attr));
        attr.map_type = BPF_MAP_TYPE_ARRAY;
        attr.key_size = 4;
        attr.value_size = 4;
        attr.max_entries = 1;
        rc = syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof(attr));
        if (rc >= 0)
            close((int)rc);
    } else if (strcmp(name, "ptrace") == 0) {
        rc = syscall(SYS_ptrace, PTRACE_TRACEME, 0, NULL, NULL);
    } else if (strcmp(name, "chroot") == 0) {
        rc = syscall(SYS_chroot, "/");
    } else if (strcmp(name, "sethostname") == 0) {
        struct utsname u;
        uname(&u);
        rc = syscall(SYS_sethostname, u.nodename, strlen(u.nodename));
    } else {
        /* Dangerous families, called with arguments that make them fail harmlessly when nothing filters them. */
        static const struct {
            const char *name;
            long nr, a0, a1, a2;
        } probes[] = {
            {"perf_event_open", SYS_perf_event_open, 0, 0, -1},
            {"userfaultfd", SYS_userfaultfd, -1, 0, 0},
            {"init_module", SYS_init_module, 0, 0, 0},
            {"kexec_load", SYS_kexec_load, 0, 0, 0},
            {"open_by_handle_at", SYS_open_by_handle_at, -1, 0, 0},
            {"reboot", SYS_reboot, 0, 0, 0},
            {"swapon", SYS_swapon, 0, 0, 0},
            {"clock_settime", SYS_clock_settime, -1, 0, 0},
            {"iopl", SYS_iopl, 99, 0, 0},
            {"pivot_root", SYS_pivot_root, (long)"/nonexistent", (long)"/nonexistent", 0},
            {"setns", SYS_setns, -1, 0, 0},
            {"add_key", SYS_add_key, 0, 0, 0},
            /* Old and harmless, and two newer ones (bad fd, NULL path): to tell a profile's default from ENOSYS. */
            {"getcpu", SYS_getcpu, 0, 0, 0},
            {"faccessat2", SYS_faccessat2, -1, 0, 0},
            {"openat2", SYS_openat2, -1, 0, 0},
        };
        size_t i = 0;
        while (i < sizeof probes / sizeof probes[0] && strcmp(probes[i].name, name) != 0)
            i++;
        if (i == sizeof probes / sizeof probes[0]) {
            fprintf(stderr, "peatest: unknown syscall probe %s\n", name);
            return 2;
        }
        rc = syscall(probes[i].nr, probes[i].a0, probes[i].a1, probes[i].a2, 0L, 0L);
        if (rc >= 0 && strcmp(name, "userfaultfd") == 0)
            close((int)rc);
    }
    return verdict(rc);
}

/* Allocate and touch every page, so that a memory limit is really hit. */
static int cmd_alloc(const char *mb_text)
{
    size_t mb = strtoul(mb_text, NULL, 10);
    size_t total = mb << 20;
    char *p = malloc(total);
    if (!p) {
        puts("ENOMEM");
        return 1;
    }
    long page = sysconf(_SC_PAGESIZE);
    for (size_t off = 0; off < total; off += (size_t)page)
        p[off] = 1;
    printf("allocated %zu\n", mb);
    free(p);
    return 0;
}

/* Fork N children that stay alive until every fork was tried (so they all count against a pids limit), then end them. */
static int cmd_forkloop(const char *n_text)
{
    long n = strtol(n_text, NULL, 10);
    pid_t *children = calloc((size_t)(n > 0 ? n : 1), sizeof(pid_t));
    long forked = 0;
    int first_errno = 0;
    for (long i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            for (;;)
                pause();
        }
        if (pid < 0) {
            if (!first_errno)
                first_errno = errno;
            continue;
        }
        children[forked++] = pid;
    }
    for (long i = 0; i < forked; i++)
        kill(children[i], SIGKILL);
    for (long i = 0; i < forked; i++)
        waitpid(children[i], NULL, 0);
    free(children);
    printf("forked %ld\n", forked);
    if (first_errno)
        printf("error %s\n", strerrorname_np(first_errno));
    return 0;
}

static int cmd_sleep(const char *seconds_text)
{
    double seconds = strtod(seconds_text, NULL);
    struct timespec ts = {.tv_sec = (time_t)seconds, .tv_nsec = (long)((seconds - (double)(time_t)seconds) * 1e9)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
    return 0;
}

static int parse_signal(const char *text)
{
    static const struct {
        const char *name;
        int number;
    } signals[] = {
        {"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT}, {"ABRT", SIGABRT}, {"KILL", SIGKILL},
        {"USR1", SIGUSR1}, {"SEGV", SIGSEGV}, {"USR2", SIGUSR2}, {"PIPE", SIGPIPE}, {"ALRM", SIGALRM},
        {"TERM", SIGTERM},
    };
    if (text[0] >= '0' && text[0] <= '9')
        return atoi(text);
    if (strncmp(text, "SIG", 3) == 0)
        text += 3;
    for (size_t i = 0; i < sizeof(signals) / sizeof(signals[0]); i++)
        if (strcmp(signals[i].name, text) == 0)
            return signals[i].number;
    return -1;
}

/* Die by the signal: reset its disposition first, since the runtime may hand us an ignored one. */
static int cmd_kill_self(const char *sig_text)
{
    int sig = parse_signal(sig_text);
    if (sig <= 0) {
        fprintf(stderr, "peatest: unknown signal %s\n", sig_text);
        return 2;
    }
    fflush(stdout);
    signal(sig, SIG_DFL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    kill(getpid(), sig);
    return 1; /* only reached when the signal did not kill us */
}

static int cmd_hostname(void)
{
    struct utsname u;
    if (uname(&u) < 0) {
        perror("peatest: uname");
        return 1;
    }
    printf("hostname %s\ndomainname %s\n", u.nodename, u.domainname);
    return 0;
}

static int cmd_env(void)
{
    for (char **e = environ; *e; e++)
        puts(*e);
    return 0;
}

static int cmd_umask(void)
{
    mode_t old = umask(0);
    umask(old);
    printf("umask %04o\n", (unsigned)old);
    return 0;
}

static int cmd_isatty(void)
{
    static const char *const names[] = {"stdin", "stdout", "stderr"};
    int results[3];
    for (int fd = 0; fd < 3; fd++)
        results[fd] = isatty(fd);
    for (int fd = 0; fd < 3; fd++)
        printf("%s %d\n", names[fd], results[fd]);
    return 0;
}

static int cmd_rawsock(void)
{
    int fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP);
    int rc = verdict(fd);
    if (fd >= 0)
        close(fd);
    return rc;
}

static int cmd_mount(void)
{
    long rc = mount("none", "/mnt", "tmpfs", 0, "size=1m");
    verdict(rc);
    if (rc == 0)
        umount("/mnt");
    return 0;
}

static int cmd_pid(void)
{
    printf("pid %d\nppid %d\n", getpid(), getppid());
    return 0;
}

static int cmd_oom(void)
{
    FILE *f = fopen("/proc/self/oom_score_adj", "re");
    int value;
    if (!f || fscanf(f, "%d", &value) != 1) {
        perror("peatest: read /proc/self/oom_score_adj");
        return 1;
    }
    fclose(f);
    printf("oom_score_adj %d\n", value);
    return 0;
}

/* "size N" (bytes read until EOF) or the errno name of the failing open/read. */
static int cmd_read(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return verdict(-1);
    char buf[65536];
    long total = 0;
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        total += n;
    int saved = errno;
    close(fd);
    if (n < 0) {
        errno = saved;
        return verdict(-1);
    }
    printf("size %ld\n", total);
    return 0;
}

/* Create or truncate PATH and write one line: "ok" or the errno name of the step that failed. */
static int cmd_write(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return verdict(-1);
    long rc = write(fd, "peatest\n", 8);
    int saved = errno;
    close(fd);
    errno = saved;
    return verdict(rc);
}

/* Exchange PATH with a symlink to "/" (PATH.swap) in a tight loop until killed (renameat2 RENAME_EXCHANGE: the
 * name always exists, as a directory or as the symlink). Prints "swapping" once it runs, or an errno name. */
static int cmd_swap_root(const char *path)
{
    char link[PATH_MAX];
    snprintf(link, sizeof link, "%s.swap", path);
    if (symlink("/", link) < 0 && errno != EEXIST)
        return verdict(-1);
    puts("swapping");
    for (;;)
        if (syscall(SYS_renameat2, AT_FDCWD, path, AT_FDCWD, link, 2 /* RENAME_EXCHANGE */) < 0)
            return verdict(-1);
}

static int cmd_exit(const char *code)
{
    return atoi(code);
}

static const struct {
    const char *name;
    int (*run)(void);              /* subcommands without an argument */
    int (*run_arg)(const char *); /* subcommands with one */
} commands[] = {
    {"caps", cmd_caps, NULL},           {"fds", cmd_fds, NULL},           {"cwd", cmd_cwd, NULL},
    {"ids", cmd_ids, NULL},             {"ns", cmd_ns, NULL},             {"nnp", cmd_nnp, NULL},
    {"seccomp", cmd_seccomp, NULL},     {"hostname", cmd_hostname, NULL}, {"env", cmd_env, NULL},
    {"umask", cmd_umask, NULL},         {"isatty", cmd_isatty, NULL},     {"rawsock", cmd_rawsock, NULL},
    {"mount", cmd_mount, NULL},         {"pid", cmd_pid, NULL},           {"oom", cmd_oom, NULL},
    {"rlimit", NULL, cmd_rlimit},       {"syscall", NULL, cmd_syscall},   {"alloc", NULL, cmd_alloc},
    {"forkloop", NULL, cmd_forkloop},   {"sleep", NULL, cmd_sleep},       {"exit", NULL, cmd_exit},
    {"kill-self", NULL, cmd_kill_self}, {"read", NULL, cmd_read},         {"write", NULL, cmd_write},
    {"swap-root", NULL, cmd_swap_root},
};

int main(int argc, char **argv)
{
    /* Line-buffered so output interleaves correctly with a pty or a killed process. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2)
        return usage();
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(argv[1], commands[i].name) != 0)
            continue;
        if (commands[i].run)
            return commands[i].run();
        return argc > 2 ? commands[i].run_arg(argv[2]) : usage();
    }
    return usage();
}
