/* linux.resources -> cgroup v2 files, with the conversions the ecosystem uses; creating a cgroup with the
 * controllers its settings need. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cgroup_internal.h"
#include "pea/cgroup.h"
#include "pea/log.h"
#include "pea/util.h"

static void add_setting(struct cgroup_settings *s, const char *file, char *value, bool is_unset)
{
    s->items = xrealloc(s->items, (s->n + 1) * sizeof *s->items);
    s->items[s->n].file = xstrdup(file);
    s->items[s->n].value = value;
    s->items[s->n].is_unset = is_unset;
    s->n++;
}

static void add(struct cgroup_settings *s, const char *file, char *value) { add_setting(s, file, value, false); }

void cgroup_settings_clear(struct cgroup_settings *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->items[i].file);
        free(s->items[i].value);
    }
    free(s->items);
    s->items = NULL;
    s->n = 0;
}

/* An optional integer member; 1 when present, 0 absent, -1 wrong type. */
static int get_int(json_t *obj, const char *section, const char *key, long long *out, struct pea_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v))
        return pea_fail(err, 0, "linux.resources.%s.%s: must be an integer", section, key);
    *out = json_integer_value(v);
    return 1;
}

static char *limit_text(long long v) { return v < 0 ? xstrdup("max") : xasprintf("%lld", v); }

static int memory_settings(json_t *m, struct cgroup_settings *s, struct pea_error *err)
{
    long long limit = 0, reservation, swap;
    int has_limit = get_int(m, "memory", "limit", &limit, err);
    int has_reservation = get_int(m, "memory", "reservation", &reservation, err);
    int has_swap = get_int(m, "memory", "swap", &swap, err);
    if (has_limit < 0 || has_reservation < 0 || has_swap < 0)
        return -1;
    /* 0 asks for nothing, as runc reads it: neither an instant OOM nor a swap limit below the memory limit. */
    if (has_limit && limit != 0)
        add_setting(s, "memory.max", limit_text(limit), limit < 0);
    if (has_reservation)
        add_setting(s, "memory.low", limit_text(reservation), reservation == 0);
    if (has_swap && swap != 0) {
        /* OCI swap is memory+swap; v2 memory.swap.max is swap alone. */
        if (swap < 0)
            add_setting(s, "memory.swap.max", xstrdup("max"), true);
        else if (!has_limit || limit < 0)
            return pea_fail(err, 0, "linux.resources.memory.swap: needs memory.limit");
        else if (swap < limit)
            return pea_fail(err, 0, "linux.resources.memory.swap: %lld is below memory.limit %lld", swap, limit);
        else
            add(s, "memory.swap.max", xasprintf("%lld", swap - limit));
    }
    /* cgroup v2 has no knob for it (v1's memory.oom_control is gone); runc ignores it there, pea says so. */
    if (json_is_true(json_object_get(m, "disableOOMKiller")))
        log_warn("linux.resources.memory.disableOOMKiller: cgroup v2 cannot disable the OOM killer; ignored");
    return 0;
}

unsigned long long cgroup_shares_to_weight(unsigned long long shares)
{
    if (shares < 2)
        shares = 2;
    if (shares > 262144)
        shares = 262144;
    return 1 + ((shares - 2) * 9999) / 262142;
}

static int cpu_settings(json_t *c, struct cgroup_settings *s, struct pea_error *err)
{
    long long shares = 0, quota = -1, period = 0, burst, idle;
    int has_shares = get_int(c, "cpu", "shares", &shares, err);
    int has_quota = get_int(c, "cpu", "quota", &quota, err);
    int has_period = get_int(c, "cpu", "period", &period, err);
    int has_burst = get_int(c, "cpu", "burst", &burst, err);
    int has_idle = get_int(c, "cpu", "idle", &idle, err);
    if (has_shares < 0 || has_quota < 0 || has_period < 0 || has_burst < 0 || has_idle < 0)
        return -1;
    /* 1024 is cgroup v1's default share, what callers such as ctr send when given no --cpu-shares. */
    if (has_shares && shares > 0)
        add_setting(s, "cpu.weight", xasprintf("%llu", cgroup_shares_to_weight((unsigned long long)shares)),
                    shares == 1024);
    long long used_period = period > 0 ? period : 100000;
    if (has_quota && quota > 0)
        add(s, "cpu.max", xasprintf("%lld %lld", quota, used_period));
    else if (has_quota || has_period)
        add_setting(s, "cpu.max", xasprintf("max %lld", used_period), used_period == 100000);
    if (has_burst)
        add_setting(s, "cpu.max.burst", xasprintf("%lld", burst), burst == 0);
    if (has_idle)
        add_setting(s, "cpu.idle", xasprintf("%lld", idle), idle == 0);
    json_t *cpus = json_object_get(c, "cpus"), *mems = json_object_get(c, "mems");
    if (json_is_string(cpus) && *json_string_value(cpus))
        add(s, "cpuset.cpus", xstrdup(json_string_value(cpus)));
    if (json_is_string(mems) && *json_string_value(mems))
        add(s, "cpuset.mems", xstrdup(json_string_value(mems)));
    if (json_object_get(c, "realtimeRuntime") || json_object_get(c, "realtimePeriod"))
        return pea_fail(err, 0, "linux.resources.cpu.realtimeRuntime: not supported on cgroup v2");
    return 0;
}

static int block_io_settings(json_t *b, struct cgroup_settings *s, struct pea_error *err)
{
    long long weight;
    int has_weight = get_int(b, "blockIO", "weight", &weight, err);
    if (has_weight < 0)
        return -1;
    if (has_weight && weight > 0)
        add(s, "io.weight", xasprintf("default %lld", weight));
    json_t *list = json_object_get(b, "weightDevice");
    size_t i;
    json_t *d;
    json_array_foreach(list, i, d)
    {
        long long major, minor, w;
        if (get_int(d, "blockIO.weightDevice", "major", &major, err) != 1 ||
            get_int(d, "blockIO.weightDevice", "minor", &minor, err) != 1)
            return pea_fail(err, 0, "linux.resources.blockIO.weightDevice[%zu]: needs major and minor", i);
        if (get_int(d, "blockIO.weightDevice", "weight", &w, err) == 1)
            add(s, "io.weight", xasprintf("%lld:%lld %lld", major, minor, w));
    }
    static const struct {
        const char *key, *name;
    } throttles[] = {{"throttleReadBpsDevice", "rbps"},
                     {"throttleWriteBpsDevice", "wbps"},
                     {"throttleReadIOPSDevice", "riops"},
                     {"throttleWriteIOPSDevice", "wiops"}};
    for (size_t t = 0; t < ARRAY_SIZE(throttles); t++) {
        json_array_foreach(json_object_get(b, throttles[t].key), i, d)
        {
            long long major, minor, rate;
            if (get_int(d, throttles[t].key, "major", &major, err) != 1 ||
                get_int(d, throttles[t].key, "minor", &minor, err) != 1 ||
                get_int(d, throttles[t].key, "rate", &rate, err) != 1)
                return pea_fail(err, 0, "linux.resources.blockIO.%s[%zu]: needs major, minor and rate",
                                throttles[t].key, i);
            add(s, "io.max", xasprintf("%lld:%lld %s=%lld", major, minor, throttles[t].name, rate));
        }
    }
    return 0;
}

static int unified_settings(json_t *u, struct cgroup_settings *s, struct pea_error *err)
{
    const char *key;
    json_t *value;
    json_object_foreach(u, key, value)
    {
        /* A key is one file of this cgroup: nothing that could name a path elsewhere. */
        if (!*key || strchr(key, '/') || strcmp(key, ".") == 0 || strcmp(key, "..") == 0 || !strchr(key, '.'))
            return pea_fail(err, 0, "linux.resources.unified: invalid key \"%s\"", key);
        if (!json_is_string(value))
            return pea_fail(err, 0, "linux.resources.unified.%s: must be a string", key);
        add(s, key, xstrdup(json_string_value(value)));
    }
    return 0;
}

int cgroup_settings_from_resources(json_t *resources, struct cgroup_settings *out, struct pea_error *err)
{
    memset(out, 0, sizeof *out);
    if (!resources)
        return 0;
    if (!json_is_object(resources))
        return pea_fail(err, 0, "linux.resources: must be an object");
    json_t *v;
    int r = 0;
    if (r == 0 && json_is_object(v = json_object_get(resources, "memory")))
        r = memory_settings(v, out, err);
    if (r == 0 && json_is_object(v = json_object_get(resources, "cpu")))
        r = cpu_settings(v, out, err);
    if (r == 0 && json_is_object(v = json_object_get(resources, "pids"))) {
        long long limit;
        int has = get_int(v, "pids", "limit", &limit, err);
        if (has < 0)
            r = -1;
        else if (has)
            add_setting(out, "pids.max", limit > 0 ? xasprintf("%lld", limit) : xstrdup("max"), limit <= 0);
    }
    if (r == 0 && json_is_object(v = json_object_get(resources, "blockIO")))
        r = block_io_settings(v, out, err);
    size_t i;
    json_t *h;
    json_array_foreach(r == 0 ? json_object_get(resources, "hugepageLimits") : NULL, i, h)
    {
        json_t *size = json_object_get(h, "pageSize");
        long long limit;
        if (!json_is_string(size) || strchr(json_string_value(size), '/') ||
            get_int(h, "hugepageLimits", "limit", &limit, err) != 1) {
            r = pea_fail(err, 0, "linux.resources.hugepageLimits[%zu]: needs pageSize and limit", i);
            break;
        }
        char file[64];
        snprintf(file, sizeof file, "hugetlb.%s.max", json_string_value(size));
        add(out, file, xasprintf("%lld", limit));
    }
    if (r == 0 && json_is_object(v = json_object_get(resources, "unified")))
        r = unified_settings(v, out, err);
    /* linux.resources.devices needs the BPF device filter, which is not built yet; the default rules of a
     * container (deny all, allow the standard nodes) are what the runtime's own /dev provides anyway. */
    if (r < 0)
        cgroup_settings_clear(out);
    return r;
}

/* "memory.max" -> "memory". */
static void controller_of(const char *file, char *out, size_t len)
{
    size_t n = strcspn(file, ".");
    snprintf(out, len, "%.*s", (int)n, file);
}

static bool is_listed(const char *list, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = list; (p = strstr(p, word)); p += n)
        if ((p == list || p[-1] == ' ') && (p[n] == '\0' || p[n] == ' ' || p[n] == '\n'))
            return true;
    return false;
}

/* Move every process of an ancestor into its leaf child so it may enable controllers for its children. The lock on
 * the ancestor (held until the caller closes dir_fd) keeps cgroup_destroy from giving the processes back meanwhile. */
static int evacuate(int dir_fd, const char *path, struct pea_error *err)
{
    if (flock(dir_fd, LOCK_EX) < 0)
        return pea_fail(err, errno, "cgroup: lock before creating %s", CGROUP_LEAF_NAME);
    if (mkdirat(dir_fd, CGROUP_LEAF_NAME, 0755) < 0 && errno != EEXIST)
        return pea_fail(err, errno, "cgroup: create %s", CGROUP_LEAF_NAME);
    AUTO_FD int leaf = openat(dir_fd, CGROUP_LEAF_NAME, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (leaf < 0)
        return pea_fail(err, errno, "cgroup: open %s", CGROUP_LEAF_NAME);
    AUTO_FREE char *procs = cgroup_read(dir_fd, "cgroup.procs");
    char *save = NULL;
    for (char *pid = procs ? strtok_r(procs, "\n", &save) : NULL; pid; pid = strtok_r(NULL, "\n", &save))
        if (cgroup_move_if_still_in(leaf, pid, *path ? path : "/", err) < 0)
            return -1;
    return 0;
}

/* Enable the controllers the settings need in every ancestor of path (root first). */
static int enable_controllers(const char *root, const char *path, const struct cgroup_settings *s,
                              struct pea_error *err)
{
    char wanted[256] = "";
    for (size_t i = 0; i < s->n; i++) {
        char c[64];
        controller_of(s->items[i].file, c, sizeof c);
        if (strcmp(c, "cgroup") == 0 || is_listed(wanted, c))
            continue;
        AUTO_FD int root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        AUTO_FREE char *available = root_fd < 0 ? NULL : cgroup_read(root_fd, "cgroup.controllers");
        if (!available || !is_listed(available, c)) {
            if (available)
                available[strcspn(available, "\n")] = '\0';
            return pea_fail(err, 0, "cgroup: %s needs the \"%s\" controller, which is not available in %s "
                            "(cgroup.controllers: \"%s\")", s->items[i].file, c, root, available ? available : "");
        }
        snprintf(wanted + strlen(wanted), sizeof wanted - strlen(wanted), "%s%s", *wanted ? " " : "", c);
    }
    if (!*wanted)
        return 0;
    AUTO_FREE char *ancestors = xstrdup(path);
    char *last = strrchr(ancestors, '/');
    *last = '\0';
    AUTO_FREE char *dir = xstrdup(root);
    char *save = NULL;
    for (char *part = ancestors;; part = NULL) {
        AUTO_FD int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
            return pea_fail(err, errno, "cgroup: open %s", dir);
        AUTO_FREE char *copy = xstrdup(wanted);
        char *s2 = NULL;
        for (char *c = strtok_r(copy, " ", &s2); c; c = strtok_r(NULL, " ", &s2)) {
            AUTO_FREE char *plus = xasprintf("+%s", c);
            if (cgroup_write(fd, "cgroup.subtree_control", plus, err) == 0)
                continue;
            if (err->errnum != EBUSY || evacuate(fd, dir + strlen(root), err) < 0 ||
                cgroup_write(fd, "cgroup.subtree_control", plus, err) < 0)
                return pea_wrap(err, "enable %s in %s", c, dir);
        }
        char *next = strtok_r(part, "/", &save);
        if (!next)
            return 0;
        char *longer = xasprintf("%s/%s", dir, next);
        free(dir);
        dir = longer;
    }
}

static int write_settings(int dir_fd, const struct cgroup_settings *s, struct pea_error *err)
{
    for (size_t i = 0; i < s->n; i++)
        if (cgroup_write(dir_fd, s->items[i].file, s->items[i].value, err) < 0)
            return -1;
    return 0;
}

/* A request for the kernel's default is no request where its controller is missing (a hybrid host's cgroup2, or a
 * parent that does not delegate it): dropped there, so that `ctr run`'s shares 1024 works where no limit could.
 * Where the controller exists it is written, as an update back to the default must be. */
static void drop_unset_without_controller(const char *root, struct cgroup_settings *s)
{
    AUTO_FD int root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    AUTO_FREE char *available = root_fd < 0 ? NULL : cgroup_read(root_fd, "cgroup.controllers");
    size_t kept = 0;
    for (size_t i = 0; i < s->n; i++) {
        char c[64];
        controller_of(s->items[i].file, c, sizeof c);
        if (s->items[i].is_unset && (!available || !is_listed(available, c))) {
            log_debug("cgroup: %s=%s is the kernel's default and the \"%s\" controller is not available: nothing "
                      "to apply", s->items[i].file, s->items[i].value, c);
            free(s->items[i].file);
            free(s->items[i].value);
            continue;
        }
        s->items[kept++] = s->items[i];
    }
    s->n = kept;
}

/* Enable what the resources need, write them, and (at create time) attach the device filter. Returns an fd of
 * the cgroup directory. */
static int apply_resources(const char *root, const char *path, json_t *resources, bool with_devices,
                           struct pea_error *err)
{
    struct cgroup_settings s;
    if (cgroup_settings_from_resources(resources, &s, err) < 0)
        return -1;
    drop_unset_without_controller(root, &s);
    AUTO_FD int fd = -1;
    int r = enable_controllers(root, path, &s, err);
    if (r == 0 && (fd = cgroup_open_dir(path, err)) < 0)
        r = -1;
    if (r == 0)
        r = write_settings(fd, &s, err);
    if (r == 0 && with_devices && resources)
        r = cgroup_apply_devices(fd, json_object_get(resources, "devices"), err);
    cgroup_settings_clear(&s);
    return r < 0 ? -1 : take_fd(&fd);
}

int cgroup_create(const char *path, json_t *resources, struct pea_error *err)
{
    const char *root = cgroup_root(err);
    if (!root)
        return -1;
    /* mkdir each missing component, remembering the first one we made to undo on failure. */
    AUTO_FREE char *full = xasprintf("%s%s", root, path);
    AUTO_FREE char *first_made = NULL;
    int fd = -1;
    int retries = 0;
    for (char *p = full + strlen(root) + 1;; p++) {
        bool is_end = *p == '\0';
        if (*p == '/' || is_end) {
            *p = '\0';
            if (mkdir(full, 0755) == 0) {
                if (!first_made)
                    first_made = xstrdup(full);
            } else if (errno == ENOENT && retries++ < 8) {
                /* The delete of the last container in a parent removed it after we saw it: make it again. */
                free(full);
                full = xasprintf("%s%s", root, path);
                p = full + strlen(root);
                continue;
            } else if (errno != EEXIST) {
                pea_fail(err, errno, "cgroup: create %s", full);
                goto fail;
            }
            if (is_end)
                break;
            *p = '/';
        }
    }
    fd = apply_resources(root, path, resources, true, err);
    if (fd >= 0)
        return fd;
fail:
    if (first_made) {
        /* Remove what we created, deepest first. */
        AUTO_FREE char *walk = xasprintf("%s%s", root, path);
        while (strlen(walk) >= strlen(first_made)) {
            rmdir(walk);
            char *slash = strrchr(walk, '/');
            if (!slash)
                break;
            *slash = '\0';
        }
    }
    return -1;
}

int cgroup_configure(const char *path, json_t *resources, struct pea_error *err)
{
    const char *root = cgroup_root(err);
    if (!root)
        return -1;
    int fd = apply_resources(root, path, resources, true, err);
    if (fd < 0)
        return -1;
    close(fd);
    return 0;
}

/* Live update: the device filter is only set at create (runc's update does not take device rules either). */
int cgroup_apply_resources(const char *path, json_t *resources, struct pea_error *err)
{
    const char *root = cgroup_root(err);
    if (!root)
        return -1;
    int fd = apply_resources(root, path, resources, false, err);
    if (fd < 0)
        return -1;
    close(fd);
    return 0;
}
