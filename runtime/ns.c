#include <errno.h>
#include <fcntl.h>
#include <linux/nsfs.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pea/idmap.h"
#include "pea/ns.h"
#include "pea/sys.h"
#include "pea/util.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

static bool is_new(const struct pea_spec *spec, enum pea_ns_type t)
{
    return spec->namespaces[t].is_present && !spec->namespaces[t].path;
}

static bool is_private(const struct pea_spec *spec, enum pea_ns_type t) { return spec->namespaces[t].is_present; }

/* The sysctls that belong to a namespace (ipc, net, uts) rather than to the whole machine. */
static bool is_namespaced_sysctl(const char *key)
{
    static const char *const ipc[] = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
                                      "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced",
                                      "kernel.hostname", "kernel.domainname"};
    for (size_t i = 0; i < ARRAY_SIZE(ipc); i++)
        if (strcmp(key, ipc[i]) == 0)
            return true;
    return strncmp(key, "fs.mqueue.", 10) == 0 || strncmp(key, "net.", 4) == 0;
}

int ns_validate(const struct pea_spec *spec, struct pea_error *err)
{
    /* Without a mount namespace of its own the container shares ours (the OCI spec: not listed, inherited); only
     * its root is its own then, and a path of ours cannot be masked or made read-only for it alone (runc refuses
     * these too). */
    if (!is_private(spec, PEA_NS_MOUNT) && spec->masked_paths && spec->masked_paths[0])
        return pea_fail(err, 0, "linux.maskedPaths: needs a private mount namespace (linux.namespaces)");
    if (!is_private(spec, PEA_NS_MOUNT) && spec->readonly_paths && spec->readonly_paths[0])
        return pea_fail(err, 0, "linux.readonlyPaths: needs a private mount namespace (linux.namespaces)");
    if ((spec->n_uid_mappings || spec->n_gid_mappings) && !is_private(spec, PEA_NS_USER))
        return pea_fail(err, 0, "linux.uidMappings: set without a user namespace");
    if (is_new(spec, PEA_NS_USER) && (!spec->n_uid_mappings || !spec->n_gid_mappings))
        return pea_fail(err, 0, "linux.uidMappings: a new user namespace needs uidMappings and gidMappings");
    if (spec->hostname && *spec->hostname && !is_private(spec, PEA_NS_UTS))
        return pea_fail(err, 0, "hostname: cannot be set without a private uts namespace (linux.namespaces)");
    if (spec->domainname && *spec->domainname && !is_private(spec, PEA_NS_UTS))
        return pea_fail(err, 0, "domainname: cannot be set without a private uts namespace (linux.namespaces)");
    if (spec->has_time_offsets && !is_new(spec, PEA_NS_TIME))
        return pea_fail(err, 0, "linux.timeOffsets: needs a new time namespace");
    for (size_t i = 0; i < spec->n_sysctls; i++) {
        const char *key = spec->sysctls[i].key;
        if (strncmp(key, "net.", 4) == 0 && !is_private(spec, PEA_NS_NETWORK))
            return pea_fail(err, 0, "linux.sysctl.%s: needs a private network namespace", key);
        if ((strncmp(key, "kernel.msg", 10) == 0 || strncmp(key, "kernel.sem", 10) == 0 ||
             strncmp(key, "kernel.shm", 10) == 0 || strncmp(key, "fs.mqueue.", 10) == 0) &&
            !is_private(spec, PEA_NS_IPC))
            return pea_fail(err, 0, "linux.sysctl.%s: needs a private IPC namespace", key);
        if (!is_namespaced_sysctl(key))
            return pea_fail(err, 0, "linux.sysctl.%s: not a namespaced sysctl; it would change the host", key);
        if ((strcmp(key, "kernel.hostname") == 0 || strcmp(key, "kernel.domainname") == 0) &&
            !is_private(spec, PEA_NS_UTS))
            return pea_fail(err, 0, "linux.sysctl.%s: needs a private UTS namespace", key);
    }
    return 0;
}

void ns_close_handles(struct pea_ns_handles *h)
{
    for (int t = 0; t < PEA_NS_COUNT; t++) {
        if (h->fd[t] >= 0)
            close(h->fd[t]);
        h->fd[t] = -1;
    }
}

int ns_open_paths(const struct pea_spec *spec, struct pea_ns_handles *h, struct pea_error *err)
{
    for (int t = 0; t < PEA_NS_COUNT; t++)
        h->fd[t] = -1;
    for (int t = 0; t < PEA_NS_COUNT; t++) {
        const char *path = spec->namespaces[t].path;
        if (!spec->namespaces[t].is_present || !path)
            continue;
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            int saved = errno;
            ns_close_handles(h);
            return pea_fail(err, saved, "open %s namespace %s", spec_ns_name(t), path);
        }
        h->fd[t] = fd;
        int type = ioctl(fd, NS_GET_NSTYPE);
        if (type < 0 || type != spec_ns_clone_flag(t)) {
            ns_close_handles(h);
            return pea_fail(err, 0, "linux.namespaces: %s is not a %s namespace", path, spec_ns_name(t));
        }
    }
    return 0;
}

static int write_time_offsets(const struct pea_spec *spec, struct pea_error *err)
{
    char buf[128];
    int n = snprintf(buf, sizeof buf, "monotonic %lld %u\nboottime %lld %u\n",
                     (long long)spec->time_monotonic.secs, spec->time_monotonic.nanosecs,
                     (long long)spec->time_boottime.secs, spec->time_boottime.nanosecs);
    if (write_file_at(AT_FDCWD, "/proc/self/timens_offsets", buf, (size_t)n) < 0)
        return pea_fail(err, errno, "write /proc/self/timens_offsets");
    return 0;
}

int ns_prepare_parent(const struct pea_spec *spec, const struct pea_ns_handles *h, uint64_t *clone_flags,
                      struct pea_error *err)
{
    *clone_flags = 0;
    if (is_new(spec, PEA_NS_USER))
        *clone_flags |= CLONE_NEWUSER;
    if (is_new(spec, PEA_NS_PID))
        *clone_flags |= CLONE_NEWPID;
    if (h->fd[PEA_NS_PID] >= 0 && setns(h->fd[PEA_NS_PID], CLONE_NEWPID) < 0)
        return pea_fail(err, errno, "join pid namespace %s", spec->namespaces[PEA_NS_PID].path);
    if (h->fd[PEA_NS_TIME] >= 0 && setns(h->fd[PEA_NS_TIME], CLONE_NEWTIME) < 0)
        return pea_fail(err, errno, "join time namespace %s", spec->namespaces[PEA_NS_TIME].path);
    if (is_new(spec, PEA_NS_TIME)) {
        if (!spec->has_time_offsets) {
            *clone_flags |= CLONE_NEWTIME;
        } else {
            /* Offsets can only be written before any process enters the namespace: make it ours-for-children. */
            if (unshare(CLONE_NEWTIME) < 0)
                return pea_fail(err, errno, "create time namespace");
            if (write_time_offsets(spec, err) < 0)
                return -1;
        }
    }
    return 0;
}

static int write_map(int proc_fd, pid_t pid, const char *file, const struct pea_id_mapping *m, size_t n,
                     struct pea_error *err)
{
    char buf[4096];
    size_t len = 0;
    for (size_t i = 0; i < n && len < sizeof buf; i++)
        len += (size_t)snprintf(buf + len, sizeof buf - len, "%u %u %u\n", m[i].container_id, m[i].host_id,
                                m[i].size);
    if (len >= sizeof buf)
        return pea_fail(err, 0, "linux.%s: too many mappings", file);
    char path[64];
    snprintf(path, sizeof path, "%d/%s", (int)pid, file);
    AUTO_FD int fd = openat(proc_fd, path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 || sys_check_procfs(fd) < 0 || write_all(fd, buf, len) < 0)
        return pea_fail(err, errno, "write /proc/%d/%s", (int)pid, file);
    return 0;
}

/* The one map an unprivileged process may write itself (user_namespaces(7)): a single id, its own. */
static bool is_own_only(const struct pea_id_mapping *m, size_t n, uint32_t own)
{
    return n == 1 && m[0].host_id == own && m[0].size == 1;
}

int ns_write_id_maps(int proc_fd, pid_t pid, const struct pea_spec *spec, struct pea_error *err)
{
    bool is_root = geteuid() == 0;
    bool uid_helper = !is_root && !is_own_only(spec->uid_mappings, spec->n_uid_mappings, geteuid());
    bool gid_helper = !is_root && !is_own_only(spec->gid_mappings, spec->n_gid_mappings, getegid());
    /* Unprivileged writers must deny setgroups before they may write gid_map. newgidmap needs no such thing, and
     * denying would take supplementary groups from the container for good. */
    if (!is_root && !gid_helper) {
        char path[64];
        snprintf(path, sizeof path, "%d/setgroups", (int)pid);
        AUTO_FD int fd = openat(proc_fd, path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0 || sys_check_procfs(fd) < 0 || write_all(fd, "deny", 4) < 0)
            return pea_fail(err, errno, "write /proc/%d/setgroups", (int)pid);
    }
    int r = uid_helper ? idmap_write_with_helper("newuidmap", "uid_map", pid, spec->uid_mappings,
                                                 spec->n_uid_mappings, err)
                       : write_map(proc_fd, pid, "uid_map", spec->uid_mappings, spec->n_uid_mappings, err);
    if (r < 0)
        return -1;
    return gid_helper ? idmap_write_with_helper("newgidmap", "gid_map", pid, spec->gid_mappings,
                                                spec->n_gid_mappings, err)
                      : write_map(proc_fd, pid, "gid_map", spec->gid_mappings, spec->n_gid_mappings, err);
}

int ns_enter(const struct pea_spec *spec, const struct pea_ns_handles *h, struct pea_error *err)
{
    /* A joined user namespace first: the namespaces created below must belong to it. The runtime may have cloned
     * us there already (process.c, for a pid namespace of our own), and a process cannot join its own. */
    struct stat want, now;
    bool is_in_it = h->fd[PEA_NS_USER] >= 0 && fstat(h->fd[PEA_NS_USER], &want) == 0 &&
                    stat("/proc/self/ns/user", &now) == 0 && want.st_dev == now.st_dev && want.st_ino == now.st_ino;
    if (h->fd[PEA_NS_USER] >= 0 && !is_in_it && setns(h->fd[PEA_NS_USER], CLONE_NEWUSER) < 0)
        return pea_fail(err, errno, "join user namespace %s", spec->namespaces[PEA_NS_USER].path);
    static const enum pea_ns_type joinable[] = {PEA_NS_IPC, PEA_NS_UTS, PEA_NS_NETWORK, PEA_NS_CGROUP,
                                                PEA_NS_MOUNT};
    int unshare_flags = 0;
    for (size_t i = 0; i < ARRAY_SIZE(joinable); i++) {
        enum pea_ns_type t = joinable[i];
        if (h->fd[t] >= 0) {
            if (setns(h->fd[t], spec_ns_clone_flag(t)) < 0)
                return pea_fail(err, errno, "join %s namespace %s", spec_ns_name(t), spec->namespaces[t].path);
        } else if (is_new(spec, t)) {
            unshare_flags |= spec_ns_clone_flag(t);
        }
    }
    if (unshare_flags && unshare(unshare_flags) < 0)
        return pea_fail(err, errno, "unshare namespaces");
    /* In a private user namespace we are whoever our host ids map to: become its root (mapped ids) so that files
     * made while setting up belong to the container. */
    if (is_private(spec, PEA_NS_USER) && (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0))
        return pea_fail(err, errno, "become root of the user namespace");
    return 0;
}

/* "net.ipv4.ip_forward" -> "sys/net/ipv4/ip_forward"; keys with '/' or empty parts are refused. */
static int sysctl_path(const char *key, char *buf, size_t len, struct pea_error *err)
{
    if (!*key || strchr(key, '/') || strstr(key, "..") || key[0] == '.' || key[strlen(key) - 1] == '.')
        return pea_fail(err, 0, "linux.sysctl: invalid key \"%s\"", key);
    int n = snprintf(buf, len, "sys/%s", key);
    if (n < 0 || (size_t)n >= len)
        return pea_fail(err, 0, "linux.sysctl: key too long \"%s\"", key);
    for (char *p = buf + 4; *p; p++)
        if (*p == '.')
            *p = '/';
    return 0;
}

/* A new network namespace starts with "lo" down; runc and crun bring it up, and callers rely on that (podman's
 * "--network none" containers and pods talk over 127.0.0.1). */
static int loopback_up(struct pea_error *err)
{
    AUTO_FD int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr = {0};
    strcpy(ifr.ifr_name, "lo");
    if (sock < 0 || ioctl(sock, SIOCGIFFLAGS, &ifr) < 0)
        return pea_fail(err, errno, "bring up lo in the new network namespace");
    if (ifr.ifr_flags & IFF_UP)
        return 0;
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(sock, SIOCSIFFLAGS, &ifr) < 0)
        return pea_fail(err, errno, "bring up lo in the new network namespace");
    return 0;
}

int ns_apply_settings(const struct pea_spec *spec, int proc_fd, struct pea_error *err)
{
    const struct pea_namespace *net = &spec->namespaces[PEA_NS_NETWORK];
    if (net->is_present && !net->path && loopback_up(err) < 0)
        return -1;
    if (spec->hostname && *spec->hostname && sethostname(spec->hostname, strlen(spec->hostname)) < 0)
        return pea_fail(err, errno, "set hostname %s", spec->hostname);
    if (spec->domainname && *spec->domainname && setdomainname(spec->domainname, strlen(spec->domainname)) < 0)
        return pea_fail(err, errno, "set domainname %s", spec->domainname);
    for (size_t i = 0; i < spec->n_sysctls; i++) {
        char path[512];
        if (sysctl_path(spec->sysctls[i].key, path, sizeof path, err) < 0)
            return -1;
        AUTO_FD int fd = openat(proc_fd, path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
        const char *value = spec->sysctls[i].value;
        if (fd < 0 || sys_check_procfs(fd) < 0 || write_all(fd, value, strlen(value)) < 0)
            return pea_fail(err, errno, "write sysctl %s=%s", spec->sysctls[i].key, value);
    }
    return 0;
}

/* The root directory of the process a pidfd names, opened through our verified procfs: its PID read from the pidfd,
 * and the process still alive once its /proc entry is open, so that the entry was that process's, never a process
 * that reused the PID. */
static int open_init_root(int pidfd, struct pea_error *err)
{
    AUTO_FD int proc_fd = sys_open_procfs();
    if (proc_fd < 0)
        return pea_fail(err, errno, "/proc is not a procfs");
    char path[64];
    snprintf(path, sizeof path, "self/fdinfo/%d", pidfd);
    AUTO_FREE char *info = read_file_at(proc_fd, path, 4096, NULL);
    if (!info)
        return pea_fail(err, errno, "read the container init's pid");
    const char *line = strstr(info, "\nPid:");
    long long pid = 0;
    if (!line || sscanf(line, "\nPid: %lld", &pid) != 1)
        return pea_fail(err, 0, "read the container init's pid: no Pid in the pidfd's fdinfo");
    if (pid <= 0)
        return pea_fail(err, 0, "container not running");
    snprintf(path, sizeof path, "%lld/root", pid);
    AUTO_FD int root = openat(proc_fd, path, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root < 0)
        return pea_fail(err, errno, "open the container's root");
    if (sys_pidfd_send_signal(pidfd, 0, NULL, 0) < 0)
        return errno == ESRCH ? pea_fail(err, 0, "container not running")
                              : pea_fail(err, errno, "open the container's root");
    return take_fd(&root);
}

int ns_join_process(int pidfd, const struct pea_spec *spec, enum ns_join_phase phase, struct pea_error *err)
{
    /* pid and time namespaces apply to the children of whoever joins them; the others to the joiner itself. */
    static const struct {
        enum pea_ns_type type;
        enum ns_join_phase phase;
    } kinds[] = {
        {PEA_NS_PID, NS_JOIN_FOR_CHILDREN}, {PEA_NS_TIME, NS_JOIN_FOR_CHILDREN}, {PEA_NS_USER, NS_JOIN_SELF},
        {PEA_NS_IPC, NS_JOIN_SELF},         {PEA_NS_UTS, NS_JOIN_SELF},          {PEA_NS_NETWORK, NS_JOIN_SELF},
        {PEA_NS_CGROUP, NS_JOIN_SELF},      {PEA_NS_MOUNT, NS_JOIN_SELF},
    };
    /* Every namespace the config lists, made new or joined by path: either way the init's is the container's. One
     * not listed is the caller's by design (the OCI spec: not listed, inherited), so the caller's is right. A listed
     * user namespace is never ours (setns into our own is EINVAL): create cannot join the namespace it runs in. */
    int flags = 0;
    for (size_t i = 0; i < ARRAY_SIZE(kinds); i++)
        if (kinds[i].phase == phase && spec->namespaces[kinds[i].type].is_present)
            flags |= spec_ns_clone_flag(kinds[i].type);
    /* Without a mount namespace of the container's there is none to join: its root is the init's, entered below. */
    AUTO_FD int init_root = -1;
    if (phase == NS_JOIN_SELF && !(flags & CLONE_NEWNS) && (init_root = open_init_root(pidfd, err)) < 0)
        return -1;
    /* One call through the pidfd: all of them or none, and never those of a process that reused the init's PID. */
    if (flags && setns(pidfd, flags) < 0) {
        if (errno == ESRCH)
            return pea_fail(err, 0, "container not running");
        return pea_fail(err, errno, "join the container's namespaces");
    }
    if (init_root >= 0 && (fchdir(init_root) < 0 || chroot(".") < 0))
        return pea_fail(err, errno, "enter the container's root");
    return 0;
}
