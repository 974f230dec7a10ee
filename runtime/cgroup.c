/* cgroup v2: where the hierarchy is, placement, freeze, kill-all, pids, stats. Resources: cgroup_resources.c. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cgroup_internal.h"
#include "pea/cgroup.h"
#include "pea/log.h"
#include "pea/sys.h"
#include "pea/util.h"

const char *cgroup_root(struct pea_error *err)
{
    static char root[4096];
    if (root[0])
        return root;
    AUTO_FILE FILE *f = fopen("/proc/self/mountinfo", "re");
    if (!f) {
        pea_fail(err, errno, "cgroup: read /proc/self/mountinfo");
        return NULL;
    }
    char line[8192];
    while (fgets(line, sizeof line, f)) {
        /* "36 25 0:31 / /sys/fs/cgroup/unified rw,... - cgroup2 cgroup2 rw" */
        char *sep = strstr(line, " - ");
        if (!sep || strncmp(sep + 3, "cgroup2 ", 8) != 0)
            continue;
        char mount_root[4096], mount_point[4096];
        if (sscanf(line, "%*s %*s %*s %4095s %4095s", mount_root, mount_point) != 2)
            continue;
        /* Only the mount of the hierarchy's root names every cgroup by its full path. */
        if (strcmp(mount_root, "/") != 0)
            continue;
        snprintf(root, sizeof root, "%s", mount_point);
        return root;
    }
    pea_fail(err, 0, "cgroup: no cgroup2 hierarchy is mounted (pea supports cgroup v2 only)");
    return NULL;
}

static bool has_dotdot(const char *path)
{
    AUTO_FREE char *copy = xstrdup(path);
    char *save = NULL;
    for (char *p = strtok_r(copy, "/", &save); p; p = strtok_r(NULL, "/", &save))
        if (strcmp(p, "..") == 0)
            return true;
    return false;
}

/* systemd's unit-name rules for a slice: "NAME.slice", NAME without "/", a leading or trailing '-' or "--". */
static bool is_valid_slice(const char *slice)
{
    size_t len = strlen(slice);
    if (strcmp(slice, "-.slice") == 0)
        return true;
    if (len <= 6 || strcmp(slice + len - 6, ".slice") != 0 || strchr(slice, '/'))
        return false;
    return slice[0] != '-' && slice[len - 7] != '-' && !strstr(slice, "--");
}

/* "a-b.slice" nests as /a.slice/a-b.slice, the way systemd lays out slices. */
static char *systemd_slice_path(const char *slice)
{
    if (strcmp(slice, "-.slice") == 0)
        return xstrdup("");
    AUTO_FREE char *name = xstrdup(slice);
    name[strlen(name) - 6] = '\0';
    char *out = xstrdup("");
    for (char *dash = name;; dash++) {
        dash = strchr(dash, '-');
        AUTO_FREE char *prefix = dash ? xasprintf("%.*s", (int)(dash - name), name) : xstrdup(name);
        char *next = xasprintf("%s/%s.slice", out, prefix);
        free(out);
        out = next;
        if (!dash)
            return out;
    }
}

/* "slice:prefix:name" (exactly two colons, not absolute): systemd's form of linux.cgroupsPath. */
static bool is_systemd_form(const char *cgroups_path)
{
    const char *colon = cgroups_path ? strchr(cgroups_path, ':') : NULL;
    return colon && cgroups_path[0] != '/' && strchr(colon + 1, ':') && !strchr(strchr(colon + 1, ':') + 1, ':');
}

/* The cgroup systemd would give the unit: "prefix-name.scope" in the slice (system.slice when empty, as runc
 * does), or, for a name that is itself a slice, that slice where systemd nests it. */
static char *systemd_path(const char *cgroups_path, struct pea_error *err)
{
    const char *colon = strchr(cgroups_path, ':'), *second = strchr(colon + 1, ':');
    AUTO_FREE char *slice = colon == cgroups_path ? xstrdup("system.slice")
                                                  : xasprintf("%.*s", (int)(colon - cgroups_path), cgroups_path);
    AUTO_FREE char *prefix = xasprintf("%.*s", (int)(second - colon - 1), colon + 1);
    const char *name = second + 1;
    size_t name_len = strlen(name);
    if (!is_valid_slice(slice)) {
        pea_fail(err, 0, "linux.cgroupsPath \"%s\": \"%s\" is not a systemd slice name", cgroups_path, slice);
        return NULL;
    }
    if (!*name || strchr(name, '/') || strchr(prefix, '/')) {
        pea_fail(err, 0, "linux.cgroupsPath \"%s\": not of the form slice:prefix:name", cgroups_path);
        return NULL;
    }
    if (name_len > 6 && strcmp(name + name_len - 6, ".slice") == 0) {
        if (!is_valid_slice(name)) {
            pea_fail(err, 0, "linux.cgroupsPath \"%s\": \"%s\" is not a systemd slice name", cgroups_path, name);
            return NULL;
        }
        return systemd_slice_path(name);
    }
    AUTO_FREE char *slice_path = systemd_slice_path(slice);
    return xasprintf("%s/%s%s%s.scope", slice_path, prefix, *prefix ? "-" : "", name);
}

char *cgroup_path_for(const char *cgroups_path, const char *id, struct pea_error *err)
{
    if (!cgroups_path || !*cgroups_path)
        return xasprintf("/%s/%s", CGROUP_DEFAULT_PARENT, id);
    if (has_dotdot(cgroups_path)) {
        pea_fail(err, 0, "linux.cgroupsPath: \"..\" is not allowed");
        return NULL;
    }
    if (is_systemd_form(cgroups_path))
        return systemd_path(cgroups_path, err);
    if (cgroups_path[0] == '/')
        return xstrdup(cgroups_path);
    return xasprintf("/%s/%s", CGROUP_DEFAULT_PARENT, cgroups_path);
}

int cgroup_check_placement(const char *cgroups_path, const char *path, struct pea_error *err)
{
    if (!is_systemd_form(cgroups_path))
        return 0;
    const char *root = cgroup_root(err);
    if (!root)
        return -1;
    /* sd_booted(3)'s test: systemd creates this directory when it runs as the host's init. */
    struct stat st;
    if (stat("/run/systemd/system", &st) < 0 || !S_ISDIR(st.st_mode)) {
        log_debug("cgroup: linux.cgroupsPath \"%s\" maps to %s%s; systemd does not manage this host, pea creates "
                  "it (and any missing slice) on cgroupfs",
                  cgroups_path, root, path);
        return 0;
    }
    /* systemd owns every cgroup it did not delegate: making the slices ourselves would put the container where
     * systemd may migrate or remove it. pea does not ask systemd for a scope, so the parent must be ours already. */
    AUTO_FREE char *parent = xasprintf("%s%s", root, path);
    *strrchr(parent, '/') = '\0';
    if (access(parent, W_OK) < 0)
        return pea_fail(err, errno,
                        "cgroup: linux.cgroupsPath \"%s\" maps to %s%s; systemd manages this host and pea does not "
                        "ask it for a unit, so %s must already exist and be delegated to pea",
                        cgroups_path, root, path, parent);
    log_debug("cgroup: linux.cgroupsPath \"%s\" maps to %s%s; systemd manages this host, pea creates the cgroup "
              "itself in the existing %s (which must be delegated to it)",
              cgroups_path, root, path, parent);
    return 0;
}

int cgroup_open_dir(const char *path, struct pea_error *err)
{
    const char *root = cgroup_root(err);
    if (!root)
        return -1;
    AUTO_FREE char *full = xasprintf("%s%s", root, path);
    int fd = open(full, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return pea_fail(err, errno, "cgroup: open %s", full);
    return fd;
}

int cgroup_write(int dir_fd, const char *file, const char *value, struct pea_error *err)
{
    AUTO_FD int fd = openat(dir_fd, file, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || write_all(fd, value, strlen(value)) < 0)
        return pea_fail(err, errno, "cgroup: write %s to %s", value, file);
    return 0;
}

int cgroup_enter(const char *path, pid_t pid, struct pea_error *err)
{
    AUTO_FD int dir = cgroup_open_dir(path, err);
    char text[32];
    snprintf(text, sizeof text, "%d", (int)pid);
    return dir < 0 ? -1 : cgroup_write(dir, "cgroup.procs", text, err);
}

char *cgroup_topmost_missing_parent(const char *path)
{
    const char *root = cgroup_root(NULL);
    if (!root)
        return NULL;
    size_t root_len = strlen(root);
    AUTO_FREE char *full = xasprintf("%s%s", root, path);
    for (char *p = full + root_len + 1; (p = strchr(p, '/')); p++) {
        *p = '\0';
        if (access(full, F_OK) < 0)
            return xstrdup(full + root_len);
        *p = '/';
    }
    return NULL;
}

static bool has_child_other_than(int dir_fd, const char *name)
{
    DIR *d = fdopendir(dup(dir_fd));
    if (!d)
        return true;
    bool found = false;
    struct dirent *de;
    while (!found && (de = readdir(d)))
        found = de->d_type == DT_DIR && de->d_name[0] != '.' && strcmp(de->d_name, name) != 0;
    closedir(d);
    return found;
}

/* Give an ancestor back the processes pea moved into its leaf (cgroup_resources.c: evacuate) and remove the leaf,
 * once no cgroup but the leaf is left in it: its controllers then serve no child, and the leaf would outlive every
 * container. The controllers are turned off first, as processes may not join a cgroup that hands any down. Where
 * other cgroups remain, an empty leaf is removed and a populated one kept. Under the ancestor's lock, which
 * evacuate takes too. */
/* A PID read from cgroup.procs is only a name: its process may have exited and the number gone to another. Moved
 * only while a pidfd of it shows that the process found in the cgroup is still the one alive; cgroup.procs takes
 * no pidfd, so the pidfd stays open across the write and the check is made as close to it as the kernel allows. */
int cgroup_move_if_still_in(int to_fd, const char *pid_text, const char *cgroup_path, struct pea_error *err)
{
    long long pid;
    if (parse_int64(pid_text, &pid) < 0 || pid <= 0)
        return 0;
    AUTO_FD int pidfd = sys_pidfd_open((pid_t)pid, 0);
    if (pidfd < 0)
        return 0;
    char file[64];
    snprintf(file, sizeof file, "/proc/%lld/cgroup", pid);
    AUTO_FREE char *text = read_file_at(AT_FDCWD, file, 1 << 16, NULL);
    AUTO_FREE char *want = xasprintf("0::%s\n", cgroup_path);
    if (!text || !strstr(text, want) || sys_pidfd_send_signal(pidfd, 0, NULL, 0) < 0)
        return 0;
    if (cgroup_write(to_fd, "cgroup.procs", pid_text, err) < 0 && err->errnum != ESRCH)
        return -1;
    return 0;
}

static void release_leaf(int parent_fd, const char *parent_path)
{
    AUTO_FREE char *leaf_path = xasprintf("%s/%s", parent_path, CGROUP_LEAF_NAME);
    if (flock(parent_fd, LOCK_EX) < 0)
        return;
    AUTO_FD int leaf = openat(parent_fd, CGROUP_LEAF_NAME, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (leaf < 0)
        return;
    if (!has_child_other_than(parent_fd, CGROUP_LEAF_NAME) && !has_child_other_than(leaf, "")) {
        /* A process in the leaf may fork meanwhile: its child is born there. */
        for (int round = 0; round < 8; round++) {
            AUTO_FREE char *procs = cgroup_read(leaf, "cgroup.procs");
            if (!procs || !*procs)
                break;
            AUTO_FREE char *enabled = cgroup_read(parent_fd, "cgroup.subtree_control");
            char *save = NULL;
            for (char *c = enabled ? strtok_r(enabled, " \n", &save) : NULL; c; c = strtok_r(NULL, " \n", &save)) {
                AUTO_FREE char *minus = xasprintf("-%s", c);
                if (cgroup_write(parent_fd, "cgroup.subtree_control", minus, NULL) < 0)
                    return;
            }
            for (char *pid = strtok_r(procs, "\n", &save); pid; pid = strtok_r(NULL, "\n", &save)) {
                struct pea_error err = {0};
                if (cgroup_move_if_still_in(parent_fd, pid, leaf_path, &err) < 0)
                    return;
            }
        }
    }
    unlinkat(parent_fd, CGROUP_LEAF_NAME, AT_REMOVEDIR);
}

static void release_leaves(const char *root, const char *path)
{
    size_t root_len = strlen(root);
    AUTO_FREE char *dir = xasprintf("%s%s", root, path);
    while (strlen(dir) > root_len) {
        *strrchr(dir, '/') = '\0';
        AUTO_FD int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd >= 0 && faccessat(fd, CGROUP_LEAF_NAME, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
            release_leaf(fd, dir + root_len);
    }
}

/* made_from is taken from a record: only a true ancestor of path counts. */
static bool is_strict_ancestor(const char *ancestor, const char *path)
{
    size_t n = strlen(ancestor);
    return n > 1 && strncmp(ancestor, path, n) == 0 && path[n] == '/';
}

int cgroup_destroy_made(const char *path, const char *made_from, struct pea_error *err)
{
    const char *root = cgroup_root(err);
    if (!root)
        return -1;
    AUTO_FREE char *full = xasprintf("%s%s", root, path);
    /* Exited tasks leave the cgroup asynchronously: give it a moment to drain. */
    for (int attempt = 0; rmdir(full) < 0; attempt++) {
        if (errno == ENOENT)
            break; /* never made, or gone already: its parents may still be there */
        if (errno != EBUSY || attempt >= 200)
            return pea_fail(err, errno, "cgroup: remove %s", full);
        /* A container may have made cgroups of its own below its cgroup. */
        AUTO_FD int dir = open(full, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dir >= 0 && cgroup_remove_descendants(dir, path, err) < 0)
            return -1;
        struct timespec ts = {.tv_nsec = 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    /* The parents made for it go when nothing else lives in them; a concurrent create makes them again. */
    if (made_from && is_strict_ancestor(made_from, path)) {
        size_t stop = strlen(root) + strlen(made_from);
        while (strlen(full) > stop) {
            *strrchr(full, '/') = '\0';
            if (rmdir(full) < 0)
                break;
        }
    }
    /* pea's own parent likewise (a container recorded without made_from: a pod's, or an older pea's). */
    AUTO_FREE char *parent = xasprintf("%s/%s", root, CGROUP_DEFAULT_PARENT);
    if (strncmp(path, "/" CGROUP_DEFAULT_PARENT "/", strlen(CGROUP_DEFAULT_PARENT) + 2) == 0)
        rmdir(parent);
    release_leaves(root, path);
    return 0;
}

int cgroup_destroy(const char *path, struct pea_error *err)
{
    return cgroup_destroy_made(path, NULL, err);
}

/* Read the first line of a small cgroup file; NULL when missing. */
char *cgroup_read(int dir_fd, const char *file)
{
    char *text = read_file_at(dir_fd, file, 1 << 20, NULL);
    return text;
}

int cgroup_is_frozen(const char *path, struct pea_error *err)
{
    AUTO_FD int dir = cgroup_open_dir(path, err);
    AUTO_FREE char *text = dir < 0 ? NULL : cgroup_read(dir, "cgroup.freeze");
    if (!text)
        return -1;
    return text[0] == '1';
}

int cgroup_freeze(const char *path, bool frozen, struct pea_error *err)
{
    AUTO_FD int dir = cgroup_open_dir(path, err);
    if (dir < 0 || cgroup_write(dir, "cgroup.freeze", frozen ? "1" : "0", err) < 0)
        return -1;
    const char *want = frozen ? "frozen 1" : "frozen 0";
    for (int attempt = 0; attempt < 500; attempt++) {
        AUTO_FREE char *events = cgroup_read(dir, "cgroup.events");
        if (!events || strstr(events, want))
            return 0;
        struct timespec ts = {.tv_nsec = 4 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return pea_fail(err, 0, "cgroup: %s did not become %s", path, frozen ? "frozen" : "thawed");
}

static void collect_pids(int dir_fd, pid_t **pids, size_t *n)
{
    AUTO_FREE char *procs = cgroup_read(dir_fd, "cgroup.procs");
    char *save = NULL;
    for (char *line = procs ? strtok_r(procs, "\n", &save) : NULL; line; line = strtok_r(NULL, "\n", &save)) {
        long long v;
        if (parse_int64(line, &v) == 0) {
            *pids = xrealloc(*pids, (*n + 1) * sizeof **pids);
            (*pids)[(*n)++] = (pid_t)v;
        }
    }
    DIR *d = fdopendir(dup(dir_fd));
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_type != DT_DIR || de->d_name[0] == '.')
            continue;
        AUTO_FD int child = openat(dir_fd, de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (child >= 0)
            collect_pids(child, pids, n);
    }
    closedir(d);
}

int cgroup_pids(const char *path, pid_t **pids, size_t *n, struct pea_error *err)
{
    *pids = NULL;
    *n = 0;
    AUTO_FD int dir = cgroup_open_dir(path, err);
    if (dir < 0)
        return -1;
    collect_pids(dir, pids, n);
    return 0;
}

int cgroup_kill_all(const char *path, int sig, struct pea_error *err)
{
    AUTO_FD int dir = cgroup_open_dir(path, err);
    if (dir < 0)
        return -1;
    if (sig == SIGKILL && faccessat(dir, "cgroup.kill", F_OK, 0) == 0)
        return cgroup_write(dir, "cgroup.kill", "1", err);
    /* A PID read from cgroup.procs is only a name: its process may exit and the number go to a process outside
     * the cgroup. Each is opened as a pidfd first and signalled only if the cgroup still lists it afterwards, so
     * the process signalled is one that was in the cgroup (or one gone meanwhile, which the signal cannot reach). */
    AUTO_FREE pid_t *pids = NULL, *still = NULL;
    size_t n = 0, n_still = 0;
    collect_pids(dir, &pids, &n);
    AUTO_FREE int *pidfds = xcalloc(n ? n : 1, sizeof *pidfds);
    for (size_t i = 0; i < n; i++)
        pidfds[i] = sys_pidfd_open(pids[i], 0);
    collect_pids(dir, &still, &n_still);
    int r = 0;
    for (size_t i = 0; i < n; i++) {
        bool is_listed = false;
        for (size_t j = 0; j < n_still && !is_listed; j++)
            is_listed = still[j] == pids[i];
        if (r == 0 && pidfds[i] >= 0 && is_listed && sys_pidfd_send_signal(pidfds[i], sig, NULL, 0) < 0 &&
            errno != ESRCH)
            r = pea_fail(err, errno, "kill %d", (int)pids[i]);
        if (pidfds[i] >= 0)
            close(pidfds[i]);
    }
    return r;
}

/* "key value" lines of a flat-keyed file into a JSON object of integers. */
static json_t *read_flat_keyed(int dir_fd, const char *file)
{
    AUTO_FREE char *text = cgroup_read(dir_fd, file);
    if (!text)
        return NULL;
    json_t *obj = json_object();
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char key[128];
        unsigned long long v;
        if (sscanf(line, "%127s %llu", key, &v) == 2)
            json_object_set_new(obj, key, json_integer((json_int_t)v));
    }
    return obj;
}

static long long read_number(int dir_fd, const char *file)
{
    AUTO_FREE char *text = cgroup_read(dir_fd, file);
    long long v;
    if (!text)
        return -1;
    text[strcspn(text, "\n")] = '\0';
    if (strcmp(text, "max") == 0)
        return 0;
    return parse_int64(text, &v) == 0 ? v : -1;
}

static long long get_key(json_t *obj, const char *key)
{
    return json_integer_value(json_object_get(obj, key));
}

json_t *cgroup_stats(const char *path, struct pea_error *err)
{
    AUTO_FD int dir = cgroup_open_dir(path, err);
    if (dir < 0)
        return NULL;
    json_t *stats = json_object();
    AUTO_JSON json_t *cpu = read_flat_keyed(dir, "cpu.stat");
    if (cpu)
        json_object_set_new(stats, "cpu",
                            json_pack("{s:{s:I, s:I, s:I}, s:{s:I, s:I, s:I}}", "usage", "total",
                                      (json_int_t)get_key(cpu, "usage_usec") * 1000, "user",
                                      (json_int_t)get_key(cpu, "user_usec") * 1000, "kernel",
                                      (json_int_t)get_key(cpu, "system_usec") * 1000, "throttling", "periods",
                                      (json_int_t)get_key(cpu, "nr_periods"), "throttledPeriods",
                                      (json_int_t)get_key(cpu, "nr_throttled"), "throttledTime",
                                      (json_int_t)get_key(cpu, "throttled_usec") * 1000));
    long long usage = read_number(dir, "memory.current");
    if (usage >= 0) {
        json_t *raw = read_flat_keyed(dir, "memory.stat");
        json_object_set_new(stats, "memory",
                            json_pack("{s:{s:I, s:I, s:I}, s:o}", "usage", "usage", (json_int_t)usage, "limit",
                                      (json_int_t)read_number(dir, "memory.max"), "max",
                                      (json_int_t)read_number(dir, "memory.peak"), "raw", raw ? raw : json_object()));
    }
    long long current = read_number(dir, "pids.current");
    if (current >= 0)
        json_object_set_new(stats, "pids", json_pack("{s:I, s:I}", "current", (json_int_t)current, "limit",
                                                     (json_int_t)read_number(dir, "pids.max")));
    return stats;
}

long long cgroup_oom_kill_count(const char *path)
{
    AUTO_FD int dir = cgroup_open_dir(path, NULL);
    if (dir < 0)
        return -1;
    AUTO_JSON json_t *events = read_flat_keyed(dir, "memory.events");
    return events ? get_key(events, "oom_kill") : -1;
}
