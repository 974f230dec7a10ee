/* The config.json that `pea spec` writes: the usual OCI defaults for a busybox-style container. */
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "pea/idmap.h"
#include "pea/spec.h"
#include "pea/util.h"

static json_t *mount(const char *destination, const char *type, const char *source, const char *options)
{
    json_t *m = json_pack("{s:s, s:s, s:s}", "destination", destination, "type", type, "source", source);
    json_t *opts = json_array();
    AUTO_FREE char *copy = xstrdup(options);
    char *save = NULL;
    for (char *o = strtok_r(copy, ",", &save); o; o = strtok_r(NULL, ",", &save))
        json_array_append_new(opts, json_string(o));
    json_object_set_new(m, "options", opts);
    return m;
}

static json_t *strings(const char *const *items)
{
    json_t *a = json_array();
    for (; *items; items++)
        json_array_append_new(a, json_string(*items));
    return a;
}

static json_t *mapping(uint32_t container_id, uint32_t host_id, uint32_t size)
{
    return json_pack("{s:I, s:I, s:I}", "containerID", (json_int_t)container_id, "hostID", (json_int_t)host_id,
                     "size", (json_int_t)size);
}

/* The first subordinate range of the caller in PATH that leaves its own id out (the kernel refuses overlapping
 * host ranges in one map). */
static bool first_subid_range(const char *path, uid_t user, uint32_t own, struct pea_id_range *out)
{
    AUTO_FREE struct pea_id_range *ranges = NULL;
    size_t n = idmap_subid_ranges(path, user, &ranges);
    for (size_t i = 0; i < n; i++) {
        if (own >= ranges[i].start && own - ranges[i].start < ranges[i].count)
            continue;
        *out = ranges[i];
        /* Container ids 1..count must stay below (uid_t)-1. */
        if (out->count > UINT32_MAX - 1)
            out->count = UINT32_MAX - 1;
        return true;
    }
    return false;
}

/* The caller as root, and, when it has subordinate uids and gids and the helpers that may map them, its first
 * ranges from 1 on. Only both or neither: a container with many uids but one gid (or the reverse) would fail on
 * the first chown. */
static void rootless_mappings(json_t *uids, json_t *gids)
{
    uid_t uid = getuid();
    gid_t gid = getgid();
    json_array_append_new(uids, mapping(0, uid, 1));
    json_array_append_new(gids, mapping(0, gid, 1));
    struct pea_id_range sub_uid, sub_gid;
    if (!first_subid_range("/etc/subuid", uid, uid, &sub_uid) || !first_subid_range("/etc/subgid", uid, gid, &sub_gid))
        return;
    AUTO_FREE char *newuidmap = idmap_find_helper("newuidmap");
    AUTO_FREE char *newgidmap = idmap_find_helper("newgidmap");
    if (!newuidmap || !newgidmap)
        return;
    json_array_append_new(uids, mapping(1, sub_uid.start, sub_uid.count));
    json_array_append_new(gids, mapping(1, sub_gid.start, sub_gid.count));
}

json_t *spec_default_json(bool rootless)
{
    static const char *const caps[] = {"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE", NULL};
    static const char *const masked[] = {
        "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
        "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi", "/sys/devices/virtual/powercap",
        NULL};
    static const char *const readonly[] = {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
                                           NULL};
    json_t *process = json_pack(
        "{s:b, s:{s:i, s:i}, s:[s], s:[s, s], s:s, s:{s:o, s:o, s:o}, s:[{s:s, s:i, s:i}], s:b}", "terminal", 1,
        "user", "uid", 0, "gid", 0, "args", "sh", "env",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm", "cwd", "/",
        "capabilities", "bounding", strings(caps), "effective", strings(caps), "permitted", strings(caps),
        "rlimits", "type", "RLIMIT_NOFILE", "hard", 1024, "soft", 1024, "noNewPrivileges", 1);
    json_t *mounts = json_array();
    json_array_append_new(mounts, mount("/proc", "proc", "proc", ""));
    json_array_append_new(mounts, mount("/dev", "tmpfs", "tmpfs", "nosuid,strictatime,mode=755,size=65536k"));
    json_array_append_new(mounts, mount("/dev/pts", "devpts", "devpts",
                                        rootless ? "nosuid,noexec,newinstance,ptmxmode=0666,mode=0620"
                                                 : "nosuid,noexec,newinstance,ptmxmode=0666,mode=0620,gid=5"));
    json_array_append_new(mounts, mount("/dev/shm", "tmpfs", "shm", "nosuid,noexec,nodev,mode=1777,size=65536k"));
    json_array_append_new(mounts, mount("/dev/mqueue", "mqueue", "mqueue", "nosuid,noexec,nodev"));
    /* An unprivileged user cannot mount a new sysfs outside a network namespace it owns: bind the host's. */
    json_array_append_new(mounts, rootless ? mount("/sys", "none", "/sys", "rbind,nosuid,noexec,nodev,ro")
                                           : mount("/sys", "sysfs", "sysfs", "nosuid,noexec,nodev,ro"));
    json_array_append_new(mounts, mount("/sys/fs/cgroup", "cgroup2", "cgroup", "nosuid,noexec,nodev,relatime,ro"));
    json_t *namespaces = json_array();
    static const char *const ns[] = {"pid", "ipc", "uts", "mount", "cgroup", NULL};
    for (const char *const *n = ns; *n; n++)
        json_array_append_new(namespaces, json_pack("{s:s}", "type", *n));
    if (!rootless)
        json_array_append_new(namespaces, json_pack("{s:s}", "type", "network"));
    json_t *linux = json_pack("{s:o, s:o, s:o, s:o}", "namespaces", namespaces, "maskedPaths", strings(masked),
                              "readonlyPaths", strings(readonly), "seccomp", spec_default_seccomp_json());
    if (rootless) {
        json_t *uids = json_array(), *gids = json_array();
        rootless_mappings(uids, gids);
        json_object_set_new(linux, "uidMappings", uids);
        json_object_set_new(linux, "gidMappings", gids);
        json_array_append_new(namespaces, json_pack("{s:s}", "type", "user"));
    } else {
        json_object_set_new(linux, "resources", json_pack("{s:[{s:b, s:s}]}", "devices", "allow", 0, "access", "rwm"));
    }
    return json_pack("{s:s, s:o, s:{s:s, s:b}, s:s, s:o, s:o}", "ociVersion", PEA_OCI_VERSION, "process", process,
                     "root", "path", "rootfs", "readonly", 1, "hostname", "pea", "mounts", mounts, "linux", linux);
}
