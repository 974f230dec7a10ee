/* The "linux" part of config.json, and freeing a parsed spec. */
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "pea/spec.h"
#include "pea/util.h"
#include "spec_internal.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

static const struct {
    const char *name;
    int flag;
} ns_table[PEA_NS_COUNT] = {
    [PEA_NS_PID] = {"pid", CLONE_NEWPID},           [PEA_NS_NETWORK] = {"network", CLONE_NEWNET},
    [PEA_NS_MOUNT] = {"mount", CLONE_NEWNS},        [PEA_NS_IPC] = {"ipc", CLONE_NEWIPC},
    [PEA_NS_UTS] = {"uts", CLONE_NEWUTS},           [PEA_NS_USER] = {"user", CLONE_NEWUSER},
    [PEA_NS_CGROUP] = {"cgroup", CLONE_NEWCGROUP},  [PEA_NS_TIME] = {"time", CLONE_NEWTIME},
};

const char *spec_ns_name(enum pea_ns_type type) { return ns_table[type].name; }
int spec_ns_clone_flag(enum pea_ns_type type) { return ns_table[type].flag; }

static int parse_namespaces(json_t *linux, struct pea_spec *spec, struct pea_error *err)
{
    json_t *list;
    if (spec_get_array(linux, "namespaces", "linux.namespaces", &list, err) < 0)
        return -1;
    for (size_t i = 0; list && i < json_array_size(list); i++) {
        char item[64], field[96];
        snprintf(item, sizeof item, "linux.namespaces[%zu]", i);
        json_t *j = json_array_get(list, i);
        if (!json_is_object(j))
            return spec_field_fail(err, item, "must be an object");
        AUTO_FREE char *type = NULL;
        snprintf(field, sizeof field, "%s.type", item);
        if (spec_get_string(j, "type", field, true, &type, err) < 0)
            return -1;
        int t = -1;
        for (int k = 0; k < PEA_NS_COUNT; k++)
            if (strcmp(ns_table[k].name, type) == 0)
                t = k;
        if (t < 0)
            return spec_field_fail(err, field, "unknown namespace type \"%s\"", type);
        if (spec->namespaces[t].is_present)
            return spec_field_fail(err, field, "duplicate namespace type \"%s\"", type);
        spec->namespaces[t].is_present = true;
        snprintf(field, sizeof field, "%s.path", item);
        if (spec_get_string(j, "path", field, false, &spec->namespaces[t].path, err) < 0)
            return -1;
        if (spec->namespaces[t].path && !spec->namespaces[t].path[0]) {
            free(spec->namespaces[t].path);
            spec->namespaces[t].path = NULL;
        } else if (spec->namespaces[t].path && spec->namespaces[t].path[0] != '/') {
            return spec_field_fail(err, field, "must be an absolute path");
        }
    }
    return 0;
}

static int parse_mappings(json_t *linux, const char *key, struct pea_id_mapping **out, size_t *n,
                          struct pea_error *err)
{
    char path[64];
    snprintf(path, sizeof path, "linux.%s", key);
    json_t *list;
    if (spec_get_array(linux, key, path, &list, err) < 0)
        return -1;
    if (!list)
        return 0;
    *n = json_array_size(list);
    *out = xcalloc(*n, sizeof **out);
    for (size_t i = 0; i < *n; i++) {
        char item[96], field[128];
        snprintf(item, sizeof item, "%s[%zu]", path, i);
        json_t *j = json_array_get(list, i);
        if (!json_is_object(j))
            return spec_field_fail(err, item, "must be an object");
        static const char *const keys[] = {"containerID", "hostID", "size"};
        uint32_t *dst[] = {&(*out)[i].container_id, &(*out)[i].host_id, &(*out)[i].size};
        for (size_t k = 0; k < 3; k++) {
            long long v;
            bool present;
            snprintf(field, sizeof field, "%s.%s", item, keys[k]);
            if (spec_get_int(j, keys[k], field, 0, UINT32_MAX, &present, &v, err) < 0)
                return -1;
            if (!present)
                return spec_field_fail(err, field, "missing");
            *dst[k] = (uint32_t)v;
        }
    }
    return 0;
}

static int parse_time_offsets(json_t *linux, struct pea_spec *spec, struct pea_error *err)
{
    json_t *offsets;
    if (spec_get_object(linux, "timeOffsets", "linux.timeOffsets", &offsets, err) < 0)
        return -1;
    if (!offsets)
        return 0;
    spec->has_time_offsets = true;
    static const char *const clocks[] = {"monotonic", "boottime"};
    struct pea_time_offset *dst[] = {&spec->time_monotonic, &spec->time_boottime};
    for (size_t i = 0; i < 2; i++) {
        char path[64], field[96];
        snprintf(path, sizeof path, "linux.timeOffsets.%s", clocks[i]);
        json_t *o;
        if (spec_get_object(offsets, clocks[i], path, &o, err) < 0)
            return -1;
        if (!o)
            continue;
        long long v = 0;
        snprintf(field, sizeof field, "%s.secs", path);
        if (spec_get_int(o, "secs", field, INT64_MIN, INT64_MAX, NULL, &v, err) < 0)
            return -1;
        dst[i]->secs = v;
        v = 0;
        snprintf(field, sizeof field, "%s.nanosecs", path);
        if (spec_get_int(o, "nanosecs", field, 0, 999999999, NULL, &v, err) < 0)
            return -1;
        dst[i]->nanosecs = (uint32_t)v;
    }
    if (spec->namespaces[PEA_NS_TIME].path)
        return pea_fail(err, 0, "linux.timeOffsets: cannot be set when joining an existing time namespace");
    return 0;
}

static int parse_devices(json_t *linux, struct pea_spec *spec, struct pea_error *err)
{
    json_t *list;
    if (spec_get_array(linux, "devices", "linux.devices", &list, err) < 0)
        return -1;
    if (!list)
        return 0;
    spec->n_devices = json_array_size(list);
    spec->devices = xcalloc(spec->n_devices, sizeof *spec->devices);
    for (size_t i = 0; i < spec->n_devices; i++) {
        struct pea_device *d = &spec->devices[i];
        char item[64], field[96];
        snprintf(item, sizeof item, "linux.devices[%zu]", i);
        json_t *j = json_array_get(list, i);
        if (!json_is_object(j))
            return spec_field_fail(err, item, "must be an object");
        AUTO_FREE char *type = NULL;
        snprintf(field, sizeof field, "%s.type", item);
        if (spec_get_string(j, "type", field, true, &type, err) < 0)
            return -1;
        if (strlen(type) != 1 || !strchr("cbup", type[0]))
            return spec_field_fail(err, field, "unknown device type \"%s\"", type);
        d->type = type[0];
        snprintf(field, sizeof field, "%s.path", item);
        if (spec_get_string(j, "path", field, true, &d->path, err) < 0)
            return -1;
        if (d->path[0] != '/')
            return spec_field_fail(err, field, "must be an absolute path");
        bool has_major, has_minor, has_mode, has_uid, has_gid;
        long long v = 0;
        snprintf(field, sizeof field, "%s.major", item);
        if (spec_get_int(j, "major", field, 0, UINT32_MAX, &has_major, &v, err) < 0)
            return -1;
        d->major = v;
        snprintf(field, sizeof field, "%s.minor", item);
        if (spec_get_int(j, "minor", field, 0, UINT32_MAX, &has_minor, &v, err) < 0)
            return -1;
        d->minor = v;
        if (d->type != 'p' && (!has_major || !has_minor))
            return spec_field_fail(err, item, "major and minor are required for type %c", d->type);
        snprintf(field, sizeof field, "%s.fileMode", item);
        if (spec_get_int(j, "fileMode", field, 0, 07777, &has_mode, &v, err) < 0)
            return -1;
        d->has_file_mode = has_mode;
        d->file_mode = (mode_t)v;
        snprintf(field, sizeof field, "%s.uid", item);
        if (spec_get_int(j, "uid", field, 0, UINT32_MAX - 1, &has_uid, &v, err) < 0)
            return -1;
        d->has_uid = has_uid;
        d->uid = (uid_t)v;
        snprintf(field, sizeof field, "%s.gid", item);
        if (spec_get_int(j, "gid", field, 0, UINT32_MAX - 1, &has_gid, &v, err) < 0)
            return -1;
        d->has_gid = has_gid;
        d->gid = (gid_t)v;
    }
    return 0;
}

static int parse_sysctl(json_t *linux, struct pea_spec *spec, struct pea_error *err)
{
    json_t *obj;
    if (spec_get_object(linux, "sysctl", "linux.sysctl", &obj, err) < 0)
        return -1;
    if (!obj)
        return 0;
    spec->sysctls = xcalloc(json_object_size(obj) + 1, sizeof *spec->sysctls);
    const char *key;
    json_t *value;
    json_object_foreach(obj, key, value)
    {
        if (!json_is_string(value))
            return pea_fail(err, 0, "linux.sysctl.%s: must be a string", key);
        spec->sysctls[spec->n_sysctls].key = xstrdup(key);
        spec->sysctls[spec->n_sysctls].value = xstrdup(json_string_value(value));
        spec->n_sysctls++;
    }
    return 0;
}

static const char *const seccomp_actions[] = {
    [PEA_SECCOMP_KILL] = "SCMP_ACT_KILL",       [PEA_SECCOMP_KILL_PROCESS] = "SCMP_ACT_KILL_PROCESS",
    [PEA_SECCOMP_KILL_THREAD] = "SCMP_ACT_KILL_THREAD", [PEA_SECCOMP_TRAP] = "SCMP_ACT_TRAP",
    [PEA_SECCOMP_ERRNO] = "SCMP_ACT_ERRNO",     [PEA_SECCOMP_TRACE] = "SCMP_ACT_TRACE",
    [PEA_SECCOMP_ALLOW] = "SCMP_ACT_ALLOW",     [PEA_SECCOMP_LOG] = "SCMP_ACT_LOG",
    [PEA_SECCOMP_NOTIFY] = "SCMP_ACT_NOTIFY",
};

static const char *const seccomp_ops[] = {
    [PEA_SECCOMP_OP_NE] = "SCMP_CMP_NE", [PEA_SECCOMP_OP_LT] = "SCMP_CMP_LT", [PEA_SECCOMP_OP_LE] = "SCMP_CMP_LE",
    [PEA_SECCOMP_OP_EQ] = "SCMP_CMP_EQ", [PEA_SECCOMP_OP_GE] = "SCMP_CMP_GE", [PEA_SECCOMP_OP_GT] = "SCMP_CMP_GT",
    [PEA_SECCOMP_OP_MASKED_EQ] = "SCMP_CMP_MASKED_EQ",
};

static int lookup_name(const char *const *table, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(table[i], name) == 0)
            return (int)i;
    return -1;
}

static int parse_action(json_t *obj, const char *key, const char *path, bool required,
                        enum pea_seccomp_action *out, struct pea_error *err)
{
    AUTO_FREE char *name = NULL;
    if (spec_get_string(obj, key, path, required, &name, err) < 0)
        return -1;
    int a = lookup_name(seccomp_actions, ARRAY_SIZE(seccomp_actions), name);
    if (a < 0)
        return spec_field_fail(err, path, "unknown action \"%s\"", name);
    *out = (enum pea_seccomp_action)a;
    return 0;
}

static int parse_seccomp_rule(json_t *j, const char *item, struct pea_seccomp_rule *r, struct pea_error *err)
{
    char field[160];
    if (!json_is_object(j))
        return spec_field_fail(err, item, "must be an object");
    snprintf(field, sizeof field, "%s.names", item);
    if (spec_get_strv(j, "names", field, &r->names, err) < 0)
        return -1;
    snprintf(field, sizeof field, "%s.action", item);
    if (parse_action(j, "action", field, true, &r->action, err) < 0)
        return -1;
    long long v = 0;
    snprintf(field, sizeof field, "%s.errnoRet", item);
    if (spec_get_int(j, "errnoRet", field, 0, 4095, &r->has_errno_ret, &v, err) < 0)
        return -1;
    r->errno_ret = (unsigned)v;
    json_t *args;
    snprintf(field, sizeof field, "%s.args", item);
    if (spec_get_array(j, "args", field, &args, err) < 0)
        return -1;
    r->n_args = args ? json_array_size(args) : 0;
    r->args = xcalloc(r->n_args, sizeof *r->args);
    for (size_t i = 0; i < r->n_args; i++) {
        char arg[192], f[224];
        snprintf(arg, sizeof arg, "%s.args[%zu]", item, i);
        json_t *a = json_array_get(args, i);
        if (!json_is_object(a))
            return spec_field_fail(err, arg, "must be an object");
        bool present;
        snprintf(f, sizeof f, "%s.index", arg);
        if (spec_get_int(a, "index", f, 0, 5, &present, &v, err) < 0)
            return -1;
        if (!present)
            return spec_field_fail(err, f, "missing");
        r->args[i].index = (unsigned)v;
        snprintf(f, sizeof f, "%s.value", arg);
        if (spec_get_uint64(a, "value", f, &r->args[i].value, err) < 0)
            return -1;
        snprintf(f, sizeof f, "%s.valueTwo", arg);
        if (spec_get_uint64(a, "valueTwo", f, &r->args[i].value_two, err) < 0)
            return -1;
        AUTO_FREE char *op = NULL;
        snprintf(f, sizeof f, "%s.op", arg);
        if (spec_get_string(a, "op", f, true, &op, err) < 0)
            return -1;
        int o = lookup_name(seccomp_ops, ARRAY_SIZE(seccomp_ops), op);
        if (o < 0)
            return spec_field_fail(err, f, "unknown operator \"%s\"", op);
        r->args[i].op = (enum pea_seccomp_op)o;
    }
    return 0;
}

static int parse_seccomp(json_t *linux, struct pea_spec *spec, struct pea_error *err)
{
    json_t *obj;
    if (spec_get_object(linux, "seccomp", "linux.seccomp", &obj, err) < 0)
        return -1;
    if (!obj)
        return 0;
    struct pea_seccomp *s = xcalloc(1, sizeof *s);
    spec->seccomp = s;
    if (parse_action(obj, "defaultAction", "linux.seccomp.defaultAction", true, &s->default_action, err) < 0)
        return -1;
    long long v = 0;
    if (spec_get_int(obj, "defaultErrnoRet", "linux.seccomp.defaultErrnoRet", 0, 4095, &s->has_default_errno_ret,
                     &v, err) < 0)
        return -1;
    s->default_errno_ret = (unsigned)v;
    if (spec_get_strv(obj, "architectures", "linux.seccomp.architectures", &s->architectures, err) < 0 ||
        spec_get_strv(obj, "flags", "linux.seccomp.flags", &s->flags, err) < 0)
        return -1;
    json_t *rules;
    if (spec_get_array(obj, "syscalls", "linux.seccomp.syscalls", &rules, err) < 0)
        return -1;
    s->n_rules = rules ? json_array_size(rules) : 0;
    s->rules = xcalloc(s->n_rules, sizeof *s->rules);
    for (size_t i = 0; i < s->n_rules; i++) {
        char item[64];
        snprintf(item, sizeof item, "linux.seccomp.syscalls[%zu]", i);
        if (parse_seccomp_rule(json_array_get(rules, i), item, &s->rules[i], err) < 0)
            return -1;
    }
    if (spec_get_string(obj, "listenerPath", "linux.seccomp.listenerPath", false, &s->listener_path, err) < 0 ||
        spec_get_string(obj, "listenerMetadata", "linux.seccomp.listenerMetadata", false, &s->listener_metadata,
                        err) < 0)
        return -1;
    if (s->listener_path && !*s->listener_path) /* "" is how Go callers write "not set" */
        free(take_ptr(&s->listener_path));
    if (s->listener_metadata && *s->listener_metadata && !s->listener_path)
        return spec_field_fail(err, "linux.seccomp.listenerMetadata", "must not be set without listenerPath");
    /* The agent is who answers a notified syscall: without one the container would wait forever. */
    for (size_t i = 0; i < s->n_rules && !s->listener_path; i++)
        if (s->rules[i].action == PEA_SECCOMP_NOTIFY)
            return spec_field_fail(err, "linux.seccomp.listenerPath", "required by SCMP_ACT_NOTIFY");
    return 0;
}

int spec_parse_linux(json_t *root, struct pea_spec *spec, struct pea_error *err)
{
    json_t *linux;
    if (spec_get_object(root, "linux", "linux", &linux, err) < 0)
        return -1;
    spec->masked_paths = xcalloc(1, sizeof(char *));
    spec->readonly_paths = xcalloc(1, sizeof(char *));
    if (!linux)
        return 0;
    free(spec->masked_paths);
    free(spec->readonly_paths);
    spec->masked_paths = spec->readonly_paths = NULL;
    if (parse_namespaces(linux, spec, err) < 0 ||
        parse_mappings(linux, "uidMappings", &spec->uid_mappings, &spec->n_uid_mappings, err) < 0 ||
        parse_mappings(linux, "gidMappings", &spec->gid_mappings, &spec->n_gid_mappings, err) < 0 ||
        parse_time_offsets(linux, spec, err) < 0 || parse_devices(linux, spec, err) < 0 ||
        parse_sysctl(linux, spec, err) < 0 || parse_seccomp(linux, spec, err) < 0)
        return -1;
    if (spec_get_string(linux, "cgroupsPath", "linux.cgroupsPath", false, &spec->cgroups_path, err) < 0 ||
        spec_get_string(linux, "mountLabel", "linux.mountLabel", false, &spec->mount_label, err) < 0)
        return -1;
    if (spec->cgroups_path && !spec->cgroups_path[0]) {
        free(spec->cgroups_path);
        spec->cgroups_path = NULL;
    }
    json_t *resources;
    if (spec_get_object(linux, "resources", "linux.resources", &resources, err) < 0)
        return -1;
    spec->resources = json_incref(resources);
    AUTO_FREE char *propagation = NULL;
    if (spec_get_string(linux, "rootfsPropagation", "linux.rootfsPropagation", false, &propagation, err) < 0)
        return -1;
    if (propagation && propagation[0] && !(spec->rootfs_propagation = spec_propagation_from_name(propagation)))
        return pea_fail(err, 0, "linux.rootfsPropagation: unknown propagation \"%s\"", propagation);
    if (spec_get_strv(linux, "maskedPaths", "linux.maskedPaths", &spec->masked_paths, err) < 0 ||
        spec_get_strv(linux, "readonlyPaths", "linux.readonlyPaths", &spec->readonly_paths, err) < 0)
        return -1;
    return 0;
}

void spec_free(struct pea_spec *spec)
{
    if (!spec)
        return;
    free(spec->oci_version);
    if (spec->process) {
        struct pea_process *p = spec->process;
        free(p->user.additional_gids);
        strv_free(p->args);
        strv_free(p->env);
        free(p->cwd);
        free(p->rlimits);
        free(p->apparmor_profile);
        free(p->selinux_label);
        free(p);
    }
    free(spec->root_path);
    free(spec->hostname);
    free(spec->domainname);
    for (size_t i = 0; i < spec->n_mounts; i++) {
        free(spec->mounts[i].destination);
        free(spec->mounts[i].type);
        free(spec->mounts[i].source);
        strv_free(spec->mounts[i].options);
        free(spec->mounts[i].data);
        if (spec->mounts[i].has_source_tree)
            close(spec->mounts[i].source_tree_fd);
    }
    free(spec->mounts);
    if (spec->has_host_sources)
        close(spec->host_sources_fd);
    for (int k = 0; k < PEA_HOOK_KIND_COUNT; k++) {
        for (size_t i = 0; i < spec->hooks[k].n; i++) {
            free(spec->hooks[k].hooks[i].path);
            strv_free(spec->hooks[k].hooks[i].args);
            strv_free(spec->hooks[k].hooks[i].env);
        }
        free(spec->hooks[k].hooks);
    }
    json_decref(spec->annotations);
    for (int t = 0; t < PEA_NS_COUNT; t++)
        free(spec->namespaces[t].path);
    free(spec->uid_mappings);
    free(spec->gid_mappings);
    for (size_t i = 0; i < spec->n_devices; i++)
        free(spec->devices[i].path);
    free(spec->devices);
    free(spec->cgroups_path);
    json_decref(spec->resources);
    strv_free(spec->masked_paths);
    strv_free(spec->readonly_paths);
    for (size_t i = 0; i < spec->n_sysctls; i++) {
        free(spec->sysctls[i].key);
        free(spec->sysctls[i].value);
    }
    free(spec->sysctls);
    if (spec->seccomp) {
        struct pea_seccomp *s = spec->seccomp;
        strv_free(s->architectures);
        strv_free(s->flags);
        for (size_t i = 0; i < s->n_rules; i++) {
            strv_free(s->rules[i].names);
            free(s->rules[i].args);
        }
        free(s->rules);
        free(s->listener_path);
        free(s->listener_metadata);
        free(s);
    }
    free(spec->mount_label);
    free(spec);
}
