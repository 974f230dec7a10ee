/* One container of a pod manifest: image layers, process, environment, mounts, resources, security context. */
#include <string.h>
#include <unistd.h>

#include "manifest_errors.h"
#include "manifest_internal.h"
#include "manifest_security.h"
#include "manifest_sources.h"
#include "pea/image_ref.h"
#include "pea/pod_image.h"
#include "pea/util.h"

void manifest_container_free(struct pea_pod_container *c)
{
    free(c->name);
    strv_free(c->image_layers);
    free(c->image_ref);
    pod_image_free(c->image);
    strv_free(c->command);
    strv_free(c->args);
    manifest_env_free(c);
    free(c->working_dir);
    for (size_t i = 0; i < c->n_volume_mounts; i++) {
        free(c->volume_mounts[i].name);
        free(c->volume_mounts[i].mount_path);
        free(c->volume_mounts[i].sub_path);
        free(c->volume_mounts[i].sub_path_expr);
    }
    free(c->volume_mounts);
    strv_free(c->security.capabilities_add);
    strv_free(c->security.capabilities_drop);
    free(c->security.seccomp_localhost_profile);
    free(c->security.apparmor_localhost_profile);
    free(c->identity);
    free(c->resources_json);
    for (size_t i = 0; i < c->n_restart_rules; i++)
        free(c->restart_rules[i].values);
    free(c->restart_rules);
    manifest_probes_free(c);
}

/* An image reference and its pull policy; the default as Kubernetes sets it: Always when the tag is "latest",
 * written or implied ("busybox", "busybox:latest"), else IfNotPresent (another tag, or only a digest). */
static int parse_image_ref(json_t *obj, const char *path, struct pea_pod_container *c, struct pea_error *err)
{
    struct pea_image_ref ref;
    struct pea_error why = {0};
    if (field_get_string(obj, path, "image", true, &c->image_ref, err) < 0)
        return -1;
    if (pea_image_ref_parse(c->image_ref, &ref, &why) < 0)
        return field_fail(err, path, "image", "%s (a directory must be an absolute path)", why.msg);
    static const char *const policies[] = {"Always", "IfNotPresent", "Never", NULL};
    int policy = strcmp(ref.tag, "latest") == 0 ? PEA_PULL_ALWAYS : PEA_PULL_IF_NOT_PRESENT;
    if (field_get_enum(obj, path, "imagePullPolicy", policies, &policy, err) < 0)
        return -1;
    c->pull_policy = (enum pea_pull_policy)policy;
    return 0;
}

/* `image: /DIR` or `image: [LOWER, ..., UPPER]`, every one an absolute path; any other string is an image of the
 * store. "./dir" and "../dir" are neither (no reference starts with a dot): refused, naming the rule. */
static int parse_image(json_t *obj, const char *path, struct pea_pod_container *c, struct pea_error *err)
{
    json_t *image = json_object_get(obj, "image");
    if (!image || json_is_null(image))
        return field_fail(err, path, "image", "missing");
    const char *text = json_string_value(image);
    if (text && text[0] == '.')
        return field_fail(err, path, "image", "\"%s\": a directory must be an absolute path", text);
    if (text && text[0] != '/')
        return parse_image_ref(obj, path, c, err);
    static const char *const policies[] = {"Always", "IfNotPresent", "Never", NULL};
    int policy = 0; /* validated; a directory has nothing to pull */
    if (field_get_enum(obj, path, "imagePullPolicy", policies, &policy, err) < 0)
        return -1;
    if (json_is_string(image)) {
        c->image_layers = xcalloc(2, sizeof(char *));
        if (field_get_string(obj, path, "image", true, &c->image_layers[0], err) < 0)
            return -1;
    } else if (json_is_array(image)) {
        if (field_get_strv(obj, path, "image", &c->image_layers, err) < 0)
            return -1;
    } else {
        return field_fail(err, path, "image", "must be a string or a list of strings");
    }
    c->n_image_layers = strv_len(c->image_layers);
    if (c->n_image_layers == 0)
        return field_fail(err, path, "image", "must hold at least one element");
    for (size_t i = 0; i < c->n_image_layers; i++)
        if (c->image_layers[i][0] != '/') {
            char field[FIELD_PATH_MAX];
            field_path(field, sizeof field, path, "image");
            if (json_is_string(image))
                return pea_fail(err, 0, "%s: must be an absolute path", field);
            return pea_fail(err, 0, "%s[%zu]: must be an absolute path", field, i);
        }
    return 0;
}

/* execve refuses any one argument or environment string of 32 pages or more with its NUL (MAX_ARG_STRLEN): say so
 * with the field's path now, not from a container that cannot start. */
static size_t exec_string_max(void) { return (size_t)sysconf(_SC_PAGESIZE) * 32; }

static int check_exec_strings(char *const *strings, const char *path, const char *key, struct pea_error *err)
{
    for (size_t i = 0; strings && strings[i]; i++)
        if (strlen(strings[i]) >= exec_string_max()) {
            char field[FIELD_PATH_MAX];
            field_path(field, sizeof field, path, key);
            return pea_fail(err, 0, "%s[%zu]: longer than %zu bytes, the kernel's limit for one argument", field, i,
                            exec_string_max() - 1);
        }
    return 0;
}

/* command, args, workingDir, env and envFrom, each field's error kept on its own. is_image_known: the image field
 * was read (an error there says nothing about what the program is). */
static int parse_process(json_t *obj, const char *path, bool is_image_known, struct pea_pod_container *c,
                         struct manifest_collector *errors, struct pea_error *err)
{
    int r = field_get_strv(obj, path, "command", &c->command, err);
    if (r == 0 && c->command && !c->command[0])
        r = field_fail(err, path, "command", "must hold at least one element");
    if (r == 0)
        r = check_exec_strings(c->command, path, "command", err);
    bool is_program_known = r == 0;
    if (manifest_keep_error(r, errors, err) < 0)
        return -1;
    r = field_get_strv(obj, path, "args", &c->args, err);
    if (r == 0)
        r = check_exec_strings(c->args, path, "args", err);
    is_program_known &= r == 0;
    if (manifest_keep_error(r, errors, err) < 0)
        return -1;
    /* A directory has no entrypoint: something must name the program. An image's comes from its config. */
    if (is_image_known && is_program_known && !c->image_ref && !c->command && (!c->args || !c->args[0]) &&
        manifest_keep_error(field_fail(err, path, "command",
                              "missing (a directory image has no entrypoint: give command or args)"),
                   errors, err) < 0)
        return -1;
    r = field_get_string(obj, path, "workingDir", false, &c->working_dir, err);
    if (r == 0 && c->working_dir && c->working_dir[0] != '/')
        r = field_fail(err, path, "workingDir", "must be an absolute path");
    if (manifest_keep_error(r, errors, err) < 0)
        return -1;
    return manifest_parse_env(obj, path, c, errors, err);
}

/* Each mount's fields, each error kept on its own; a check that needs a field (its volume, its path) runs when the
 * field was read. */
static int parse_volume_mount(json_t *j, const char *item, size_t i, json_t *volume_names, json_t *mount_paths,
                              struct pea_pod_volume_mount *vm, struct manifest_collector *errors,
                              struct pea_error *err)
{
    static const char *const mount_fields[] = {"name",     "mountPath",        "subPath",           "subPathExpr",
                                               "readOnly", "mountPropagation", "recursiveReadOnly", NULL};
    /* In the order of enum pea_mount_propagation and enum pea_recursive_read_only. */
    static const char *const propagations[] = {"None", "HostToContainer", "Bidirectional", NULL};
    static const char *const recursive_modes[] = {"Disabled", "IfPossible", "Enabled", NULL};
    if (manifest_check_known_each(j, item, mount_fields, errors, err) < 0)
        return -1;
    int r = field_get_string(j, item, "name", true, &vm->name, err);
    if (r == 0 && !json_object_get(volume_names, vm->name))
        r = field_fail(err, item, "name", "no volume named \"%s\" in spec.volumes", vm->name);
    if (manifest_keep_error(r, errors, err) < 0)
        return -1;
    r = field_get_string(j, item, "mountPath", true, &vm->mount_path, err);
    if (r == 0 && (vm->mount_path[0] != '/' || !path_is_confined(vm->mount_path)))
        r = field_fail(err, item, "mountPath", "must be an absolute path without \"..\"");
    if (r == 0) {
        AUTO_FREE char *normalized = path_normalize(vm->mount_path);
        json_t *earlier = json_object_get(mount_paths, normalized);
        if (earlier)
            r = field_fail(err, item, "mountPath", "\"%s\" is already mounted by volumeMounts[%" JSON_INTEGER_FORMAT
                           "]", vm->mount_path, json_integer_value(earlier));
        else
            json_object_set_new_nocheck(mount_paths, normalized, json_integer((json_int_t)i));
    }
    if (manifest_keep_error(r, errors, err) < 0)
        return -1;
    r = field_get_string(j, item, "subPath", false, &vm->sub_path, err);
    if (r == 0 && vm->sub_path && (vm->sub_path[0] == '/' || !path_is_confined(vm->sub_path)))
        r = field_fail(err, item, "subPath", "must be a relative path without \"..\"");
    if (manifest_keep_error(r, errors, err) < 0)
        return -1;
    /* Checked as written, as the API server does; what it expands to is checked again at each start. */
    r = field_get_string(j, item, "subPathExpr", false, &vm->sub_path_expr, err);
    if (r == 0 && vm->sub_path_expr && !vm->sub_path_expr[0]) /* "" is unset, as in Kubernetes */
        free(take_ptr(&vm->sub_path_expr));
    if (r == 0 && vm->sub_path_expr && vm->sub_path)
        r = field_fail(err, item, "subPathExpr", "subPathExpr and subPath are mutually exclusive");
    else if (r == 0 && vm->sub_path_expr && (vm->sub_path_expr[0] == '/' || !path_is_confined(vm->sub_path_expr)))
        r = field_fail(err, item, "subPathExpr", "must be a relative path without \"..\"");
    if (manifest_keep_error(r, errors, err) < 0)
        return -1;
    if (manifest_keep_error(field_get_bool(j, item, "readOnly", &vm->read_only, err), errors, err) < 0)
        return -1;
    int propagation = 0, recursive = 0;
    r = field_get_enum(j, item, "mountPropagation", propagations, &propagation, err);
    vm->propagation = (enum pea_mount_propagation)propagation;
    if (manifest_keep_error(r, errors, err) < 0)
        return -1;
    r = field_get_enum(j, item, "recursiveReadOnly", recursive_modes, &recursive, err);
    vm->recursive_read_only = (enum pea_recursive_read_only)recursive;
    /* Kubernetes' validateMountRecursiveReadOnly, in its words. */
    if (r == 0 && vm->recursive_read_only != PEA_RECURSIVE_READ_ONLY_DISABLED && !vm->read_only)
        r = field_fail(err, item, "recursiveReadOnly", "may only be specified when readOnly is true");
    else if (r == 0 && vm->recursive_read_only != PEA_RECURSIVE_READ_ONLY_DISABLED &&
             vm->propagation != PEA_MOUNT_PROPAGATION_NONE)
        r = field_fail(err, item, "recursiveReadOnly",
                       "may only be specified when mountPropagation is None or not specified");
    return manifest_keep_error(r, errors, err);
}

static int parse_volume_mounts(json_t *obj, const char *path, json_t *volume_names, struct pea_pod_container *c,
                               struct manifest_collector *errors, struct pea_error *err)
{
    json_t *list;
    if (field_get_array(obj, path, "volumeMounts", &list, err) < 0)
        return manifest_keep_error(-1, errors, err);
    if (!list)
        return 0;
    c->n_volume_mounts = json_array_size(list);
    c->volume_mounts = xcalloc(c->n_volume_mounts, sizeof *c->volume_mounts);
    AUTO_JSON json_t *mount_paths = json_object(); /* normalized mountPath → its index */
    for (size_t i = 0; i < c->n_volume_mounts; i++) {
        char item[FIELD_PATH_MAX];
        snprintf(item, sizeof item, "%s.volumeMounts[%zu]", path, i);
        json_t *j = json_array_get(list, i);
        int r = json_is_object(j) ? parse_volume_mount(j, item, i, volume_names, mount_paths, &c->volume_mounts[i],
                                                       errors, err)
                                  : manifest_keep_error(pea_fail(err, 0, "%s: must be an object", item), errors, err);
        if (r < 0)
            return -1;
    }
    return 0;
}

/* has_pids: NULL where pids is not a resource (a container's). */
static int parse_resource_set(json_t *resources, const char *path, const char *key, bool *has_cpu, uint64_t *cpu,
                              bool *has_memory, uint64_t *memory, bool *has_pids, uint64_t *pids,
                              struct pea_error *err)
{
    json_t *set;
    char set_path[FIELD_PATH_MAX];
    field_path(set_path, sizeof set_path, path, key);
    static const char *const quantity_fields[] = {"cpu", "memory", NULL};
    static const char *const pod_quantity_fields[] = {"cpu", "memory", "pids", NULL};
    if (field_get_object(resources, path, key, false, &set, err) < 0)
        return -1;
    if (!set)
        return 0;
    if (field_check_known(set, set_path, has_pids ? pod_quantity_fields : quantity_fields, err) < 0 ||
        field_get_quantity(set, set_path, "cpu", true, has_cpu, cpu, err) < 0 ||
        field_get_quantity(set, set_path, "memory", false, has_memory, memory, err) < 0 ||
        (has_pids && field_get_quantity(set, set_path, "pids", false, has_pids, pids, err) < 0))
        return -1;
    if (has_pids && *has_pids && *pids == 0)
        return pea_fail(err, 0, "%s.pids: must be at least 1", set_path);
    return 0;
}

int manifest_parse_resources(json_t *obj, const char *path, bool is_pod, struct pea_pod_resources *r,
                             struct manifest_collector *errors, struct pea_error *err)
{
    json_t *resources;
    char res_path[FIELD_PATH_MAX];
    field_path(res_path, sizeof res_path, path, "resources");
    static const char *const resource_fields[] = {"limits", "requests", NULL};
    if (field_get_object(obj, path, "resources", false, &resources, err) < 0)
        return manifest_keep_error(-1, errors, err);
    if (!resources)
        return 0;
    if (manifest_check_known_each(resources, res_path, resource_fields, errors, err) < 0)
        return -1;
    /* limits and requests each on its own; compared only when both were read. */
    int limits = parse_resource_set(resources, res_path, "limits", &r->has_cpu_limit, &r->cpu_limit_millis,
                                    &r->has_memory_limit, &r->memory_limit_bytes,
                                    is_pod ? &r->has_pids_limit : NULL, &r->pids_limit, err);
    if (manifest_keep_error(limits, errors, err) < 0)
        return -1;
    int requests = parse_resource_set(resources, res_path, "requests", &r->has_cpu_request, &r->cpu_request_millis,
                                      &r->has_memory_request, &r->memory_request_bytes, NULL, NULL, err);
    if (manifest_keep_error(requests, errors, err) < 0)
        return -1;
    if (limits < 0 || requests < 0)
        return 0;
    if (r->has_cpu_limit && r->has_cpu_request && r->cpu_request_millis > r->cpu_limit_millis &&
        manifest_keep_error(pea_fail(err, 0, "%s.requests.cpu: must not exceed limits.cpu", res_path), errors, err) < 0)
        return -1;
    if (r->has_memory_limit && r->has_memory_request && r->memory_request_bytes > r->memory_limit_bytes &&
        manifest_keep_error(pea_fail(err, 0, "%s.requests.memory: must not exceed limits.memory", res_path), errors, err) < 0)
        return -1;
    return 0;
}

int manifest_parse_seccomp_profile(json_t *security, const char *path, struct pea_pod_security *s,
                                   struct pea_error *err)
{
    static const char *const profile_fields[] = {"type", "localhostProfile", NULL};
    static const char *const profile_types[] = {"RuntimeDefault", "Unconfined", "Localhost", NULL};
    json_t *profile;
    char profile_path[FIELD_PATH_MAX];
    field_path(profile_path, sizeof profile_path, path, "seccompProfile");
    if (field_get_object(security, path, "seccompProfile", false, &profile, err) < 0)
        return -1;
    if (!profile)
        return 0;
    if (field_check_known(profile, profile_path, profile_fields, err) < 0)
        return -1;
    if (!json_object_get(profile, "type") || json_is_null(json_object_get(profile, "type")))
        return field_fail(err, profile_path, "type", "missing");
    int type = 0;
    if (field_get_enum(profile, profile_path, "type", profile_types, &type, err) < 0 ||
        field_get_string(profile, profile_path, "localhostProfile", false, &s->seccomp_localhost_profile, err) < 0)
        return -1;
    s->has_seccomp_profile = true;
    s->seccomp_profile = (enum pea_seccomp_profile_type)type;
    bool is_localhost = s->seccomp_profile == PEA_SECCOMP_PROFILE_LOCALHOST;
    if (is_localhost && !s->seccomp_localhost_profile)
        return field_fail(err, profile_path, "localhostProfile", "missing (type is Localhost)");
    if (!is_localhost && s->seccomp_localhost_profile)
        return field_fail(err, profile_path, "localhostProfile", "only valid with type Localhost");
    return 0;
}

/* cgroupOptions (KEP-5474): mountMode ReadOnly (the default) or ReadWrite. Whether the host allows ReadWrite is
 * checked when the container is made (pod_config.c). */
static int parse_cgroup_options(json_t *security, const char *path, struct pea_pod_security *s, struct pea_error *err)
{
    static const char *const option_fields[] = {"mountMode", NULL};
    static const char *const modes[] = {"ReadOnly", "ReadWrite", NULL};
    json_t *options;
    char options_path[FIELD_PATH_MAX];
    field_path(options_path, sizeof options_path, path, "cgroupOptions");
    if (field_get_object(security, path, "cgroupOptions", false, &options, err) < 0)
        return -1;
    if (!options)
        return 0;
    int mode = 0;
    if (field_check_known(options, options_path, option_fields, err) < 0 ||
        field_get_enum(options, options_path, "mountMode", modes, &mode, err) < 0)
        return -1;
    s->is_cgroup_writable = mode == 1;
    return 0;
}

/* securityContext, each field's error kept on its own (capabilities and seccompProfile as one each; the fields of
 * manifest_security.c as one). */
static int parse_security(json_t *obj, const char *path, struct pea_pod_security *s, struct manifest_collector *errors,
                          struct pea_error *err)
{
    static const char *const security_fields[] = {
        "runAsUser",    "runAsGroup",     "readOnlyRootFilesystem", "privileged", "allowPrivilegeEscalation",
        "capabilities", "seccompProfile", "cgroupOptions", MANIFEST_CONTAINER_SECURITY_EXTRA_FIELDS, NULL};
    static const char *const capability_fields[] = {"add", "drop", NULL};
    json_t *security, *caps;
    char sec_path[FIELD_PATH_MAX], caps_path[FIELD_PATH_MAX];
    field_path(sec_path, sizeof sec_path, path, "securityContext");
    field_path(caps_path, sizeof caps_path, sec_path, "capabilities");
    if (field_get_object(obj, path, "securityContext", false, &security, err) < 0 &&
        manifest_keep_error(-1, errors, err) < 0)
        return -1;
    if (security) {
        uint32_t user = 0, group = 0;
        json_t *escalation = json_object_get(security, "allowPrivilegeEscalation");
        s->has_allow_privilege_escalation = escalation && !json_is_null(escalation);
        if (manifest_check_known_each(security, sec_path, security_fields, errors, err) < 0 ||
            manifest_keep_error(field_get_id(security, sec_path, "runAsUser", &s->has_run_as_user, &user, err), errors,
                       err) < 0 ||
            manifest_keep_error(field_get_id(security, sec_path, "runAsGroup", &s->has_run_as_group, &group, err), errors,
                       err) < 0 ||
            manifest_keep_error(field_get_bool(security, sec_path, "readOnlyRootFilesystem", &s->read_only_root_filesystem,
                                      err), errors, err) < 0 ||
            manifest_keep_error(field_get_bool(security, sec_path, "privileged", &s->privileged, err), errors, err) < 0 ||
            manifest_keep_error(field_get_bool(security, sec_path, "allowPrivilegeEscalation", &s->allow_privilege_escalation,
                                      err), errors, err) < 0)
            return -1;
        s->run_as_user = user;
        s->run_as_group = group;
        int r = field_get_object(security, sec_path, "capabilities", false, &caps, err);
        if (r == 0 && caps)
            r = field_check_known(caps, caps_path, capability_fields, err) < 0 ||
                        field_get_strv(caps, caps_path, "add", &s->capabilities_add, err) < 0 ||
                        field_get_strv(caps, caps_path, "drop", &s->capabilities_drop, err) < 0
                    ? -1
                    : 0;
        if (manifest_keep_error(r, errors, err) < 0 ||
            manifest_keep_error(manifest_parse_seccomp_profile(security, sec_path, s, err), errors, err) < 0 ||
            manifest_keep_error(parse_cgroup_options(security, sec_path, s, err), errors, err) < 0 ||
            manifest_keep_error(manifest_parse_security_extras(security, sec_path, true, s, err), errors, err) < 0)
            return -1;
    }
    if (!s->capabilities_add)
        s->capabilities_add = xcalloc(1, sizeof(char *));
    if (!s->capabilities_drop)
        s->capabilities_drop = xcalloc(1, sizeof(char *));
    return 0;
}

/* Kubernetes' validateMountPropagation, in its words: a container that sends its mounts to the host must be
 * privileged. Read once the securityContext is. */
static int check_mount_propagation(const char *path, const struct pea_pod_container *c, struct pea_error *err)
{
    for (size_t i = 0; i < c->n_volume_mounts; i++)
        if (c->volume_mounts[i].propagation == PEA_MOUNT_PROPAGATION_BIDIRECTIONAL && !c->security.privileged)
            return pea_fail(err, 0, "%s.volumeMounts[%zu].mountPropagation: Bidirectional mount propagation is "
                            "available only to privileged containers", path, i);
    return 0;
}

/* ports are accepted for compatibility with manifests written for Kubernetes; pea publishes nothing. */
static int check_port(json_t *p, const char *item, struct pea_error *err)
{
    static const char *const port_fields[] = {"containerPort", "name", "protocol", "hostPort", NULL};
    long long n;
    if (!json_is_object(p))
        return pea_fail(err, 0, "%s: must be an object", item);
    if (field_check_known(p, item, port_fields, err) < 0 ||
        field_get_int(p, item, "containerPort", 1, 65535, NULL, &n, err) < 0 ||
        field_get_int(p, item, "hostPort", 1, 65535, NULL, &n, err) < 0 ||
        field_get_string(p, item, "name", false, NULL, err) < 0 ||
        field_get_string(p, item, "protocol", false, NULL, err) < 0)
        return -1;
    return 0;
}

/* Each port's first error kept. */
static int check_ports(json_t *obj, const char *path, struct manifest_collector *errors, struct pea_error *err)
{
    json_t *ports;
    if (field_get_array(obj, path, "ports", &ports, err) < 0)
        return manifest_keep_error(-1, errors, err);
    for (size_t i = 0; ports && i < json_array_size(ports); i++) {
        char item[FIELD_PATH_MAX];
        snprintf(item, sizeof item, "%s.ports[%zu]", path, i);
        if (manifest_keep_error(check_port(json_array_get(ports, i), item, err), errors, err) < 0)
            return -1;
    }
    return 0;
}

/* restartPolicy: Always, OnFailure or Never on any container (Kubernetes 1.34's container restart rules); on an init
 * container Always makes it a sidecar. */
static int parse_restart_policy(json_t *obj, const char *path, bool is_init, struct pea_pod_container *c,
                                struct pea_error *err)
{
    /* In the order of enum pea_restart_policy. */
    static const char *const policies[] = {"Always", "OnFailure", "Never", NULL};
    int policy = -1;
    if (field_get_enum(obj, path, "restartPolicy", policies, &policy, err) < 0)
        return -1;
    c->has_restart_policy = policy >= 0;
    c->restart_policy = c->has_restart_policy ? (enum pea_restart_policy)policy : PEA_RESTART_ALWAYS;
    c->is_sidecar = is_init && c->has_restart_policy && c->restart_policy == PEA_RESTART_ALWAYS;
    return 0;
}

/* Kubernetes' limits on restartPolicyRules and on one rule's exit codes. */
#define RESTART_RULES_MAX 20
#define RESTART_RULE_VALUES_MAX 255

static int parse_exit_codes(json_t *rule, const char *item, struct pea_restart_rule *r, struct pea_error *err)
{
    static const char *const exit_code_fields[] = {"operator", "values", NULL};
    static const char *const operators[] = {"In", "NotIn", NULL};
    json_t *codes, *values;
    char codes_path[FIELD_PATH_MAX];
    field_path(codes_path, sizeof codes_path, item, "exitCodes");
    if (field_get_object(rule, item, "exitCodes", true, &codes, err) < 0 ||
        field_check_known(codes, codes_path, exit_code_fields, err) < 0)
        return -1;
    int op = -1;
    if (field_get_enum(codes, codes_path, "operator", operators, &op, err) < 0)
        return -1;
    if (op < 0)
        return field_fail(err, codes_path, "operator", "missing");
    r->is_not_in = op == 1;
    if (field_get_array(codes, codes_path, "values", &values, err) < 0)
        return -1;
    r->n_values = values ? json_array_size(values) : 0;
    if (r->n_values > RESTART_RULE_VALUES_MAX)
        return field_fail(err, codes_path, "values", "at most %d exit codes, not %zu", RESTART_RULE_VALUES_MAX,
                          r->n_values);
    r->values = xcalloc(r->n_values ? r->n_values : 1, sizeof *r->values);
    for (size_t i = 0; i < r->n_values; i++) {
        json_t *v = json_array_get(values, i);
        if (!json_is_integer(v) || json_integer_value(v) < INT32_MIN || json_integer_value(v) > INT32_MAX) {
            char field[FIELD_PATH_MAX];
            field_path(field, sizeof field, codes_path, "values");
            return pea_fail(err, 0, "%s[%zu]: must be a 32-bit integer", field, i);
        }
        r->values[i] = (int32_t)json_integer_value(v);
    }
    return 0;
}

static int parse_restart_rule(json_t *rule, const char *item, const struct pea_pod_container *c,
                              struct pea_restart_rule *r, struct pea_error *err)
{
    static const char *const rule_fields[] = {"action", "exitCodes", NULL};
    /* In the order of enum pea_restart_action. */
    static const char *const actions[] = {"Restart", "RestartAllContainers", NULL};
    if (!json_is_object(rule))
        return pea_fail(err, 0, "%s: must be an object", item);
    if (field_check_known(rule, item, rule_fields, err) < 0)
        return -1;
    int action = -1;
    if (field_get_enum(rule, item, "action", actions, &action, err) < 0)
        return -1;
    if (action < 0)
        return field_fail(err, item, "action", "missing");
    r->action = (enum pea_restart_action)action;
    /* A sidecar starts again whatever it exits with: only restarting the whole pod means something for it. */
    if (c->is_sidecar && r->action == PEA_RESTART_ACTION_RESTART)
        return field_fail(err, item, "action", "a sidecar (restartPolicy Always) always restarts: only "
                          "\"RestartAllContainers\" may be used");
    return parse_exit_codes(rule, item, r, err);
}

/* restartPolicyRules, each rule's error kept on its own. Read after restartPolicy, which they need. */
static int parse_restart_rules(json_t *obj, const char *path, struct pea_pod_container *c,
                               struct manifest_collector *errors, struct pea_error *err)
{
    json_t *list;
    if (field_get_array(obj, path, "restartPolicyRules", &list, err) < 0)
        return manifest_keep_error(-1, errors, err);
    if (!list || json_array_size(list) == 0)
        return 0;
    if (!c->has_restart_policy &&
        manifest_keep_error(field_fail(err, path, "restartPolicy", "missing (restartPolicyRules need the container's own "
                              "restartPolicy)"), errors, err) < 0)
        return -1;
    if (json_array_size(list) > RESTART_RULES_MAX)
        return manifest_keep_error(field_fail(err, path, "restartPolicyRules", "at most %d rules, not %zu", RESTART_RULES_MAX,
                                     json_array_size(list)), errors, err);
    c->n_restart_rules = json_array_size(list);
    c->restart_rules = xcalloc(c->n_restart_rules, sizeof *c->restart_rules);
    for (size_t i = 0; i < c->n_restart_rules; i++) {
        char item[FIELD_PATH_MAX];
        snprintf(item, sizeof item, "%s.restartPolicyRules[%zu]", path, i);
        if (manifest_keep_error(parse_restart_rule(json_array_get(list, i), item, c, &c->restart_rules[i], err), errors,
                       err) < 0)
            return -1;
    }
    return 0;
}

int manifest_parse_container(json_t *obj, const char *path, bool is_init, json_t *volume_names,
                             struct pea_pod_container *c, struct manifest_collector *errors, struct pea_error *err)
{
    static const char *const container_fields[] = {
        "name", "image", "command", "args", "env", "envFrom", "workingDir", "volumeMounts", "resources",
        "securityContext", "restartPolicy", "restartPolicyRules", "imagePullPolicy", "ports", "livenessProbe", "readinessProbe",
        "startupProbe", "lifecycle", "stdin", "stdinOnce", "tty", MANIFEST_CLUSTER_CONTAINER_FIELDS, NULL};
    if (!json_is_object(obj))
        return pea_fail(err, 0, "%s: must be an object", path);
    if (manifest_check_known_each(obj, path, container_fields, errors, err) < 0)
        return -1;
    int r = field_get_string(obj, path, "name", true, &c->name, err);
    if (r == 0 && !name_is_dns_label(c->name))
        r = field_fail(err, path, "name", "must be a DNS label ([a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63), not \"%s\"",
                       c->name);
    if (manifest_keep_error(r, errors, err) < 0)
        return -1;
    /* Each part on its own: a mistake in one does not hide another's. The probes come after restartPolicy, which
     * tells them whether this is a sidecar. */
    r = parse_image(obj, path, c, err);
    bool is_image_known = r == 0;
    if (manifest_keep_error(r, errors, err) < 0 || parse_process(obj, path, is_image_known, c, errors, err) < 0 ||
        parse_volume_mounts(obj, path, volume_names, c, errors, err) < 0 ||
        manifest_parse_resources(obj, path, false, &c->resources, errors, err) < 0 ||
        parse_security(obj, path, &c->security, errors, err) < 0 ||
        manifest_keep_error(check_mount_propagation(path, c, err), errors, err) < 0 || check_ports(obj, path, errors, err) < 0)
        return -1;
    r = parse_restart_policy(obj, path, is_init, c, err);
    bool is_restart_known = r == 0;
    if (manifest_keep_error(r, errors, err) < 0 || (is_restart_known && parse_restart_rules(obj, path, c, errors, err) < 0) ||
        manifest_keep_error(field_get_bool(obj, path, "stdin", &c->has_stdin, err), errors, err) < 0 ||
        manifest_keep_error(field_get_bool(obj, path, "stdinOnce", &c->is_stdin_once, err), errors, err) < 0 ||
        manifest_keep_error(field_get_bool(obj, path, "tty", &c->has_tty, err), errors, err) < 0 ||
        (is_restart_known && manifest_keep_error(manifest_parse_probes(obj, path, is_init, c, errors, err), errors, err) < 0))
        return -1;
    /* A shallow copy without resources: the values are shared, not copied. An env list counts as empty here (the
     * YAML parser leaves a placeholder in the tree) and its entries are compared from c->env. */
    AUTO_JSON json_t *rest = json_object();
    json_object_update(rest, obj);
    if (json_is_array(json_object_get(rest, "env")))
        json_object_set_new(rest, "env", json_array());
    json_t *resources = json_object_get(obj, "resources");
    if (resources) {
        c->resources_json = manifest_canonical_json(resources);
        json_object_del(rest, "resources");
    }
    c->identity = manifest_canonical_json(rest);
    return 0;
}
