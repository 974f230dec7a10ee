/* config.json -> struct pea_spec, with every error naming the JSON field that is wrong. Unknown keys are ignored,
 * as the runtime-spec requires; wrong types and values are errors. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pea/spec.h"
#include "pea/util.h"
#include "spec_internal.h"

/* ---- typed getters: each fails with "<path>: <what>" ---- */

int spec_field_fail(struct pea_error *err, const char *path, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return pea_fail(err, 0, "%s: %s", path, what);
}

int spec_get_string(json_t *obj, const char *key, const char *path, bool required, char **out,
                    struct pea_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        if (required)
            return spec_field_fail(err, path, "missing");
        return 0;
    }
    if (!json_is_string(v))
        return spec_field_fail(err, path, "must be a string");
    if (strlen(json_string_value(v)) != json_string_length(v))
        return spec_field_fail(err, path, "must not contain NUL");
    *out = xstrdup(json_string_value(v));
    return 0;
}

int spec_get_bool(json_t *obj, const char *key, const char *path, bool *out, struct pea_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_boolean(v))
        return spec_field_fail(err, path, "must be a boolean");
    *out = json_is_true(v);
    return 0;
}

int spec_get_int(json_t *obj, const char *key, const char *path, long long min, long long max, bool *present,
                 long long *out, struct pea_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (present)
        *present = false;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v))
        return spec_field_fail(err, path, "must be an integer");
    long long n = json_integer_value(v);
    if (n < min || n > max)
        return spec_field_fail(err, path, "out of range (%lld)", n);
    *out = n;
    if (present)
        *present = true;
    return 0;
}

/* uint64 values may exceed jansson's json_int_t when given as huge numbers: reals are refused. */
int spec_get_uint64(json_t *obj, const char *key, const char *path, uint64_t *out, struct pea_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return spec_field_fail(err, path, "must be a non-negative integer");
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

int spec_get_strv(json_t *obj, const char *key, const char *path, char ***out, struct pea_error *err)
{
    json_t *v = json_object_get(obj, key);
    *out = xcalloc(1, sizeof(char *));
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_array(v))
        return spec_field_fail(err, path, "must be an array of strings");
    size_t n = json_array_size(v);
    char **a = xcalloc(n + 1, sizeof(char *));
    free(*out);
    *out = a;
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_array_get(v, i);
        if (!json_is_string(s) || strlen(json_string_value(s)) != json_string_length(s))
            return spec_field_fail(err, path, "element %zu must be a string", i);
        a[i] = xstrdup(json_string_value(s));
    }
    return 0;
}

/* An optional object (NULL when absent), or an error when it is something else. */
int spec_get_object(json_t *obj, const char *key, const char *path, json_t **out, struct pea_error *err)
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_object(v))
        return spec_field_fail(err, path, "must be an object");
    *out = v;
    return 0;
}

int spec_get_array(json_t *obj, const char *key, const char *path, json_t **out, struct pea_error *err)
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_array(v))
        return spec_field_fail(err, path, "must be an array");
    *out = v;
    return 0;
}

/* ---- process ---- */

static const struct {
    const char *name;
    int resource;
} rlimit_names[] = {
    {"RLIMIT_AS", RLIMIT_AS},           {"RLIMIT_CORE", RLIMIT_CORE},         {"RLIMIT_CPU", RLIMIT_CPU},
    {"RLIMIT_DATA", RLIMIT_DATA},       {"RLIMIT_FSIZE", RLIMIT_FSIZE},       {"RLIMIT_LOCKS", RLIMIT_LOCKS},
    {"RLIMIT_MEMLOCK", RLIMIT_MEMLOCK}, {"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE}, {"RLIMIT_NICE", RLIMIT_NICE},
    {"RLIMIT_NOFILE", RLIMIT_NOFILE},   {"RLIMIT_NPROC", RLIMIT_NPROC},       {"RLIMIT_RSS", RLIMIT_RSS},
    {"RLIMIT_RTPRIO", RLIMIT_RTPRIO},   {"RLIMIT_RTTIME", RLIMIT_RTTIME},     {"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING},
    {"RLIMIT_STACK", RLIMIT_STACK},
};

int spec_rlimit_from_name(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(rlimit_names); i++)
        if (strcmp(rlimit_names[i].name, name) == 0)
            return rlimit_names[i].resource;
    return -1;
}

int spec_capability_from_name(const char *name)
{
    if (strncmp(name, "CAP_", 4) != 0)
        return -1;
    for (const char *p = name; *p; p++)
        if (*p >= 'a' && *p <= 'z')
            return -1;
    cap_value_t v;
    if (cap_from_name(name, &v) < 0)
        return -1;
    return (int)v;
}

static int parse_capability_set(json_t *caps, const char *key, uint64_t *mask, struct pea_error *err)
{
    char path[96];
    snprintf(path, sizeof path, "process.capabilities.%s", key);
    AUTO_STRV char **names = NULL;
    if (spec_get_strv(caps, key, path, &names, err) < 0)
        return -1;
    for (char **n = names; *n; n++) {
        int cap = spec_capability_from_name(*n);
        if (cap < 0)
            return spec_field_fail(err, path, "unknown capability \"%s\"", *n);
        if (cap < 64)
            *mask |= 1ULL << cap;
    }
    return 0;
}

static int parse_user(json_t *proc, struct pea_user *u, struct pea_error *err)
{
    json_t *user;
    if (spec_get_object(proc, "user", "process.user", &user, err) < 0)
        return -1;
    if (!user)
        return 0;
    long long v = 0;
    if (spec_get_int(user, "uid", "process.user.uid", 0, UINT32_MAX - 1, NULL, &v, err) < 0)
        return pea_fail(err, 0, "process.user.uid: must be a non-negative integer");
    u->uid = (uid_t)v;
    v = 0;
    if (spec_get_int(user, "gid", "process.user.gid", 0, UINT32_MAX - 1, NULL, &v, err) < 0)
        return pea_fail(err, 0, "process.user.gid: must be a non-negative integer");
    u->gid = (gid_t)v;
    if (spec_get_int(user, "umask", "process.user.umask", 0, 0777, &u->has_umask, &v, err) < 0)
        return -1;
    u->umask = (mode_t)v;
    json_t *gids;
    if (spec_get_array(user, "additionalGids", "process.user.additionalGids", &gids, err) < 0)
        return -1;
    if (gids) {
        u->n_additional_gids = json_array_size(gids);
        u->additional_gids = xcalloc(u->n_additional_gids, sizeof(gid_t));
        for (size_t i = 0; i < u->n_additional_gids; i++) {
            json_t *g = json_array_get(gids, i);
            if (!json_is_integer(g) || json_integer_value(g) < 0 || json_integer_value(g) >= UINT32_MAX)
                return pea_fail(err, 0, "process.user.additionalGids[%zu]: must be a non-negative integer", i);
            u->additional_gids[i] = (gid_t)json_integer_value(g);
        }
    }
    return 0;
}

static int parse_rlimits(json_t *proc, struct pea_process *p, struct pea_error *err)
{
    json_t *list;
    if (spec_get_array(proc, "rlimits", "process.rlimits", &list, err) < 0)
        return -1;
    if (!list)
        return 0;
    p->n_rlimits = json_array_size(list);
    p->rlimits = xcalloc(p->n_rlimits, sizeof *p->rlimits);
    for (size_t i = 0; i < p->n_rlimits; i++) {
        char path[64];
        snprintf(path, sizeof path, "process.rlimits[%zu]", i);
        json_t *r = json_array_get(list, i);
        if (!json_is_object(r))
            return spec_field_fail(err, path, "must be an object");
        AUTO_FREE char *type = NULL;
        char field[96];
        snprintf(field, sizeof field, "%s.type", path);
        if (spec_get_string(r, "type", field, true, &type, err) < 0)
            return -1;
        int res = spec_rlimit_from_name(type);
        if (res < 0)
            return spec_field_fail(err, field, "unknown rlimit \"%s\"", type);
        for (size_t j = 0; j < i; j++)
            if (p->rlimits[j].resource == res)
                return spec_field_fail(err, field, "duplicate rlimit \"%s\"", type);
        p->rlimits[i].resource = res;
        snprintf(field, sizeof field, "%s.soft", path);
        if (!json_object_get(r, "soft"))
            return spec_field_fail(err, field, "missing");
        if (spec_get_uint64(r, "soft", field, &p->rlimits[i].soft, err) < 0)
            return -1;
        snprintf(field, sizeof field, "%s.hard", path);
        if (!json_object_get(r, "hard"))
            return spec_field_fail(err, field, "missing");
        if (spec_get_uint64(r, "hard", field, &p->rlimits[i].hard, err) < 0)
            return -1;
    }
    return 0;
}

static bool is_absolute(const char *p) { return p && p[0] == '/'; }

/* execve refuses any one string longer than 32 pages (MAX_ARG_STRLEN): say so now, not from a container that
 * cannot start. */
static int check_exec_strings(char **strings, const char *path, struct pea_error *err)
{
    size_t limit = (size_t)sysconf(_SC_PAGESIZE) * 32;
    for (size_t i = 0; strings[i]; i++)
        if (strlen(strings[i]) >= limit)
            return pea_fail(err, 0, "%s[%zu]: longer than %zu bytes, the kernel's limit for one argument", path, i,
                            limit - 1);
    return 0;
}

static int parse_process(json_t *root, struct pea_spec *spec, struct pea_error *err)
{
    json_t *proc;
    if (spec_get_object(root, "process", "process", &proc, err) < 0)
        return -1;
    if (!proc)
        return 0;
    struct pea_process *p = xcalloc(1, sizeof *p);
    spec->process = p;
    if (spec_get_bool(proc, "terminal", "process.terminal", &p->terminal, err) < 0)
        return -1;
    json_t *size;
    if (spec_get_object(proc, "consoleSize", "process.consoleSize", &size, err) < 0)
        return -1;
    long long v;
    if (size) {
        v = 0;
        if (spec_get_int(size, "height", "process.consoleSize.height", 0, 65535, NULL, &v, err) < 0)
            return -1;
        p->console_height = (unsigned)v;
        v = 0;
        if (spec_get_int(size, "width", "process.consoleSize.width", 0, 65535, NULL, &v, err) < 0)
            return -1;
        p->console_width = (unsigned)v;
    }
    if (parse_user(proc, &p->user, err) < 0)
        return -1;
    if (!json_object_get(proc, "args"))
        return pea_fail(err, 0, "process.args: must hold at least one element");
    if (spec_get_strv(proc, "args", "process.args", &p->args, err) < 0)
        return -1;
    if (!p->args[0])
        return pea_fail(err, 0, "process.args: must hold at least one element");
    if (!p->args[0][0])
        return pea_fail(err, 0, "process.args[0]: must not be empty");
    if (spec_get_strv(proc, "env", "process.env", &p->env, err) < 0)
        return -1;
    if (check_exec_strings(p->args, "process.args", err) < 0 || check_exec_strings(p->env, "process.env", err) < 0)
        return -1;
    if (spec_get_string(proc, "cwd", "process.cwd", true, &p->cwd, err) < 0)
        return -1;
    if (!is_absolute(p->cwd))
        return pea_fail(err, 0, "process.cwd: must be an absolute path");
    if (strlen(p->cwd) >= PATH_MAX)
        return pea_fail(err, 0, "process.cwd: longer than %d bytes", PATH_MAX - 1);
    json_t *caps;
    if (spec_get_object(proc, "capabilities", "process.capabilities", &caps, err) < 0)
        return -1;
    if (caps) {
        p->has_capabilities = true;
        struct pea_capabilities *c = &p->capabilities;
        if (parse_capability_set(caps, "bounding", &c->bounding, err) < 0 ||
            parse_capability_set(caps, "effective", &c->effective, err) < 0 ||
            parse_capability_set(caps, "inheritable", &c->inheritable, err) < 0 ||
            parse_capability_set(caps, "permitted", &c->permitted, err) < 0 ||
            parse_capability_set(caps, "ambient", &c->ambient, err) < 0)
            return -1;
    }
    if (parse_rlimits(proc, p, err) < 0)
        return -1;
    if (spec_get_bool(proc, "noNewPrivileges", "process.noNewPrivileges", &p->no_new_privileges, err) < 0)
        return -1;
    v = 0;
    if (spec_get_int(proc, "oomScoreAdj", "process.oomScoreAdj", -1000, 1000, &p->has_oom_score_adj, &v, err) < 0)
        return -1;
    p->oom_score_adj = (int)v;
    if (spec_get_string(proc, "apparmorProfile", "process.apparmorProfile", false, &p->apparmor_profile, err) < 0 ||
        spec_get_string(proc, "selinuxLabel", "process.selinuxLabel", false, &p->selinux_label, err) < 0)
        return -1;
    return 0;
}

/* ---- mounts ---- */

static const struct {
    const char *name;
    unsigned long set, clear;
} mount_flags[] = {
    {"ro", MS_RDONLY, 0},        {"rw", 0, MS_RDONLY},          {"nosuid", MS_NOSUID, 0},
    {"suid", 0, MS_NOSUID},      {"nodev", MS_NODEV, 0},        {"dev", 0, MS_NODEV},
    {"noexec", MS_NOEXEC, 0},    {"exec", 0, MS_NOEXEC},        {"sync", MS_SYNCHRONOUS, 0},
    {"async", 0, MS_SYNCHRONOUS}, {"dirsync", MS_DIRSYNC, 0},   {"remount", MS_REMOUNT, 0},
    {"mand", MS_MANDLOCK, 0},    {"nomand", 0, MS_MANDLOCK},    {"atime", 0, MS_NOATIME},
    {"noatime", MS_NOATIME, 0},  {"diratime", 0, MS_NODIRATIME}, {"nodiratime", MS_NODIRATIME, 0},
    {"relatime", MS_RELATIME, 0}, {"norelatime", 0, MS_RELATIME}, {"strictatime", MS_STRICTATIME, 0},
    {"nostrictatime", 0, MS_STRICTATIME}, {"defaults", 0, 0},
};

static const struct {
    const char *name;
    unsigned long flags;
} propagation_names[] = {
    {"shared", MS_SHARED},          {"rshared", MS_SHARED | MS_REC},         {"slave", MS_SLAVE},
    {"rslave", MS_SLAVE | MS_REC},  {"private", MS_PRIVATE},                 {"rprivate", MS_PRIVATE | MS_REC},
    {"unbindable", MS_UNBINDABLE},  {"runbindable", MS_UNBINDABLE | MS_REC},
};

unsigned long spec_propagation_from_name(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(propagation_names); i++)
        if (strcmp(propagation_names[i].name, name) == 0)
            return propagation_names[i].flags;
    return 0;
}

/* The recursive attributes (runc's and the OCI spec's r-options), set with mount_setattr(AT_RECURSIVE) on the
 * whole mounted tree. Access time is one mode, not bits: each atime option sets its mode and clears the whole
 * MOUNT_ATTR__ATIME mask, as mount_setattr requires. The negative atime forms mean what mount(8) says: "ratime"
 * and "rnostrictatime" return to the kernel's default (relatime), "rnorelatime" updates every access. */
static const struct {
    const char *name;
    uint64_t set, clear;
} recursive_attrs[] = {
    {"rro", MOUNT_ATTR_RDONLY, 0},
    {"rrw", 0, MOUNT_ATTR_RDONLY},
    {"rnosuid", MOUNT_ATTR_NOSUID, 0},
    {"rsuid", 0, MOUNT_ATTR_NOSUID},
    {"rnodev", MOUNT_ATTR_NODEV, 0},
    {"rdev", 0, MOUNT_ATTR_NODEV},
    {"rnoexec", MOUNT_ATTR_NOEXEC, 0},
    {"rexec", 0, MOUNT_ATTR_NOEXEC},
    {"rnodiratime", MOUNT_ATTR_NODIRATIME, 0},
    {"rdiratime", 0, MOUNT_ATTR_NODIRATIME},
    {"rnosymfollow", MOUNT_ATTR_NOSYMFOLLOW, 0},
    {"rsymfollow", 0, MOUNT_ATTR_NOSYMFOLLOW},
    {"rnoatime", MOUNT_ATTR_NOATIME, MOUNT_ATTR__ATIME},
    {"rstrictatime", MOUNT_ATTR_STRICTATIME, MOUNT_ATTR__ATIME},
    {"rrelatime", MOUNT_ATTR_RELATIME, MOUNT_ATTR__ATIME},
    {"ratime", MOUNT_ATTR_RELATIME, MOUNT_ATTR__ATIME},
    {"rnostrictatime", MOUNT_ATTR_RELATIME, MOUNT_ATTR__ATIME},
    {"rnorelatime", MOUNT_ATTR_STRICTATIME, MOUNT_ATTR__ATIME},
};

static bool derive_known_option(struct pea_mount *m, const char *opt)
{
    if (strcmp(opt, "idmap") == 0 || strcmp(opt, "ridmap") == 0) {
        m->is_idmapped = true;
        m->is_idmap_recursive = opt[0] == 'r';
        return true;
    }
    if (strcmp(opt, "bind") == 0 || strcmp(opt, "rbind") == 0) {
        m->is_bind = true;
        m->is_recursive = opt[0] == 'r';
        return true;
    }
    if (strcmp(opt, "tmpcopyup") == 0) {
        m->is_tmpcopyup = true;
        return true;
    }
    for (size_t i = 0; i < ARRAY_SIZE(mount_flags); i++)
        if (strcmp(mount_flags[i].name, opt) == 0) {
            m->flags = (m->flags | mount_flags[i].set) & ~mount_flags[i].clear;
            m->clear_flags = (m->clear_flags | mount_flags[i].clear) & ~mount_flags[i].set;
            return true;
        }
    for (size_t i = 0; i < ARRAY_SIZE(recursive_attrs); i++)
        if (strcmp(recursive_attrs[i].name, opt) == 0) {
            m->rec_attr_set = (m->rec_attr_set & ~recursive_attrs[i].clear) | recursive_attrs[i].set;
            m->rec_attr_clr = (m->rec_attr_clr & ~recursive_attrs[i].set) | recursive_attrs[i].clear;
            return true;
        }
    unsigned long prop = spec_propagation_from_name(opt);
    if (prop)
        m->propagation = prop;
    return prop != 0;
}

/* Options become flags, recursive attributes and propagation; the rest is the filesystem's (data). A bind mount
 * has no filesystem to take data: an option it does not know there is an error, never data the kernel ignores. */
static int derive_mount_options(struct pea_mount *m, struct pea_error *err)
{
    size_t data_len = 0;
    const char *unknown = NULL;
    for (char **o = m->options; *o; o++) {
        const char *opt = *o;
        if (derive_known_option(m, opt))
            continue;
        if (!unknown)
            unknown = opt;
        size_t len = strlen(opt);
        m->data = xrealloc(m->data, data_len + len + 2);
        if (data_len)
            m->data[data_len++] = ',';
        memcpy(m->data + data_len, opt, len + 1);
        data_len += len;
    }
    if (m->type && strcmp(m->type, "bind") == 0)
        m->is_bind = true;
    const char *what = m->is_bind ? "bind" : (m->type ? m->type : "none");
    /* Only a bind has a source to show through other ids (and the root overlay, whose lower layers are idmapped);
     * the kernel would take the word as filesystem data. */
    bool is_root_overlay = m->type && strcmp(m->type, "overlay") == 0 && strcmp(m->destination, "/") == 0;
    if (m->is_idmapped && !m->is_bind && !is_root_overlay)
        return pea_fail(err, 0, "mount %s on %s: mount option \"%s\" is only for bind mounts", what, m->destination,
                        m->is_idmap_recursive ? "ridmap" : "idmap");
    if (m->is_bind && unknown)
        return pea_fail(err, 0, "mount bind on %s: unknown mount option \"%s\"", m->destination, unknown);
    return 0;
}

static int parse_mounts(json_t *root, struct pea_spec *spec, struct pea_error *err)
{
    json_t *list;
    if (spec_get_array(root, "mounts", "mounts", &list, err) < 0)
        return -1;
    if (!list)
        return 0;
    spec->n_mounts = json_array_size(list);
    spec->mounts = xcalloc(spec->n_mounts, sizeof *spec->mounts);
    for (size_t i = 0; i < spec->n_mounts; i++) {
        struct pea_mount *m = &spec->mounts[i];
        json_t *j = json_array_get(list, i);
        char path[64], field[96];
        snprintf(path, sizeof path, "mounts[%zu]", i);
        if (!json_is_object(j))
            return spec_field_fail(err, path, "must be an object");
        snprintf(field, sizeof field, "%s.destination", path);
        if (spec_get_string(j, "destination", field, true, &m->destination, err) < 0)
            return -1;
        if (!is_absolute(m->destination))
            return spec_field_fail(err, field, "must be an absolute path, not \"%s\"", m->destination);
        if (strlen(m->destination) >= PATH_MAX)
            return spec_field_fail(err, field, "longer than %d bytes", PATH_MAX - 1);
        /* pea's extension: a first mount on "/" (an overlay of image layers) replaces the bind of root.path. */
        if (strcmp(m->destination, "/") == 0 && i != 0)
            return spec_field_fail(err, field, "\"/\" is allowed only as the first mount (the root itself)");
        snprintf(field, sizeof field, "%s.type", path);
        if (spec_get_string(j, "type", field, false, &m->type, err) < 0)
            return -1;
        snprintf(field, sizeof field, "%s.source", path);
        if (spec_get_string(j, "source", field, false, &m->source, err) < 0)
            return -1;
        snprintf(field, sizeof field, "%s.options", path);
        if (spec_get_strv(j, "options", field, &m->options, err) < 0)
            return -1;
        if (derive_mount_options(m, err) < 0)
            return -1;
        if (m->is_bind && !m->source)
            return spec_field_fail(err, path, "a bind mount needs a source");
        /* An idmapped mount asked for and not made would give the container files under other owners. */
        static const char *const idmap_fields[] = {"uidMappings", "gidMappings"};
        for (size_t k = 0; k < ARRAY_SIZE(idmap_fields); k++)
            if (json_object_get(j, idmap_fields[k])) {
                snprintf(field, sizeof field, "%s.%s", path, idmap_fields[k]);
                return spec_field_fail(err, field, "idmapped mounts with mappings of their own are not supported "
                                                   "(\"idmap\" alone uses the container's)");
            }
    }
    return 0;
}

/* ---- hooks ---- */

static const char *const hook_names[PEA_HOOK_KIND_COUNT] = {
    "prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop",
};

const char *spec_hook_kind_name(enum pea_hook_kind kind) { return hook_names[kind]; }

static int parse_hooks(json_t *root, struct pea_spec *spec, struct pea_error *err)
{
    json_t *hooks;
    if (spec_get_object(root, "hooks", "hooks", &hooks, err) < 0)
        return -1;
    if (!hooks)
        return 0;
    for (int k = 0; k < PEA_HOOK_KIND_COUNT; k++) {
        char path[64];
        snprintf(path, sizeof path, "hooks.%s", hook_names[k]);
        json_t *list;
        if (spec_get_array(hooks, hook_names[k], path, &list, err) < 0)
            return -1;
        if (!list)
            continue;
        struct pea_hook_list *hl = &spec->hooks[k];
        hl->n = json_array_size(list);
        hl->hooks = xcalloc(hl->n, sizeof *hl->hooks);
        for (size_t i = 0; i < hl->n; i++) {
            struct pea_hook *h = &hl->hooks[i];
            json_t *j = json_array_get(list, i);
            char item[96], field[128];
            snprintf(item, sizeof item, "%s[%zu]", path, i);
            if (!json_is_object(j))
                return spec_field_fail(err, item, "must be an object");
            snprintf(field, sizeof field, "%s.path", item);
            if (spec_get_string(j, "path", field, true, &h->path, err) < 0)
                return -1;
            if (!is_absolute(h->path))
                return spec_field_fail(err, field, "must be an absolute path");
            snprintf(field, sizeof field, "%s.args", item);
            if (spec_get_strv(j, "args", field, &h->args, err) < 0)
                return -1;
            snprintf(field, sizeof field, "%s.env", item);
            if (spec_get_strv(j, "env", field, &h->env, err) < 0)
                return -1;
            snprintf(field, sizeof field, "%s.timeout", item);
            long long t = 0;
            bool has_timeout;
            if (spec_get_int(j, "timeout", field, LLONG_MIN, INT_MAX, &has_timeout, &t, err) < 0)
                return -1;
            if (has_timeout && t <= 0)
                return spec_field_fail(err, field, "must be greater than zero");
            h->timeout = (int)t;
        }
    }
    return 0;
}

/* ---- top level ---- */

struct pea_spec *spec_parse_json(json_t *root, struct pea_error *err)
{
    struct pea_spec *spec = xcalloc(1, sizeof *spec);
    if (!json_is_object(root)) {
        pea_fail(err, 0, "config.json: must be a JSON object");
        goto fail;
    }
    if (spec_get_string(root, "ociVersion", "ociVersion", true, &spec->oci_version, err) < 0)
        goto fail;
    json_t *rootobj;
    if (spec_get_object(root, "root", "root", &rootobj, err) < 0)
        goto fail;
    if (!rootobj) {
        pea_fail(err, 0, "root: missing");
        goto fail;
    }
    if (spec_get_string(rootobj, "path", "root.path", true, &spec->root_path, err) < 0 ||
        spec_get_bool(rootobj, "readonly", "root.readonly", &spec->root_readonly, err) < 0)
        goto fail;
    if (!spec->root_path[0]) {
        pea_fail(err, 0, "root.path: must not be empty");
        goto fail;
    }
    if (spec_get_string(root, "hostname", "hostname", false, &spec->hostname, err) < 0 ||
        spec_get_string(root, "domainname", "domainname", false, &spec->domainname, err) < 0)
        goto fail;
    json_t *annotations;
    if (spec_get_object(root, "annotations", "annotations", &annotations, err) < 0)
        goto fail;
    if (annotations) {
        const char *key;
        json_t *value;
        json_object_foreach(annotations, key, value) if (!json_is_string(value))
        {
            pea_fail(err, 0, "annotations.%s: must be a string", key);
            goto fail;
        }
        spec->annotations = json_incref(annotations);
    } else {
        spec->annotations = json_object();
    }
    if (parse_process(root, spec, err) < 0 || parse_mounts(root, spec, err) < 0 || parse_hooks(root, spec, err) < 0 ||
        spec_parse_linux(root, spec, err) < 0)
        goto fail;
    return spec;
fail:
    spec_free(spec);
    return NULL;
}

struct pea_spec *spec_parse_string(const char *text, struct pea_error *err)
{
    json_error_t jerr;
    AUTO_JSON json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        pea_fail(err, 0, "config.json: invalid JSON at line %d column %d: %s", jerr.line, jerr.column, jerr.text);
        return NULL;
    }
    return spec_parse_json(root, err);
}

struct pea_spec *spec_load(int bundle_fd, struct pea_error *err)
{
    /* O_NONBLOCK: a FIFO planted as config.json must not hang us; then only regular files are read. */
    AUTO_FD int fd = openat(bundle_fd, "config.json", O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
    if (fd < 0 && errno == ELOOP) {
        /* O_NOFOLLOW: a symlink could make us read (and quote in errors) any file of the host. */
        pea_fail(err, 0, "config.json: is a symlink: refused, it must be a regular file in the bundle");
        return NULL;
    }
    if (fd < 0) {
        pea_fail(err, errno, "open config.json");
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        pea_fail(err, 0, "config.json: not a regular file");
        return NULL;
    }
    if (st.st_size > SPEC_MAX_SIZE) {
        pea_fail(err, 0, "config.json: larger than %d bytes", SPEC_MAX_SIZE);
        return NULL;
    }
    AUTO_FREE char *text = read_fd_all(fd, SPEC_MAX_SIZE, NULL);
    if (!text) {
        pea_fail(err, errno, "read config.json");
        return NULL;
    }
    return spec_parse_string(text, err);
}
