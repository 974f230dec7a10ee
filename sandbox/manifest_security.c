/* The security fields of a pod manifest beyond a container's identity and capabilities: runAsNonRoot,
 * appArmorProfile and procMount of a container; fsGroup, supplementalGroups, their policies, seccompProfile,
 * appArmorProfile and runAsNonRoot of the pod (defaults for its containers, as the kubelet's
 * DetermineEffectiveSecurityContext); spec.hostUsers; and which sysctls a pod may set. */
#include <string.h>

#include "manifest_errors.h"
#include "manifest_internal.h"
#include "manifest_security.h"
#include "pea/util.h"

/* keep: the error kept by errors (the parse goes on: 0), or the first that ends it (-1). */
#define keep(r) manifest_keep_error((r), errors, err)

static int parse_apparmor_profile(json_t *security, const char *path, struct pea_pod_security *s,
                                  struct manifest_collector *errors, struct pea_error *err)
{
    static const char *const fields[] = {"type", "localhostProfile", NULL};
    static const char *const types[] = {"RuntimeDefault", "Unconfined", "Localhost", NULL};
    json_t *profile;
    char profile_path[FIELD_PATH_MAX];
    field_path(profile_path, sizeof profile_path, path, "appArmorProfile");
    if (field_get_object(security, path, "appArmorProfile", false, &profile, err) < 0)
        return keep(-1);
    if (!profile)
        return 0;
    if (manifest_check_known_each(profile, profile_path, fields, errors, err) < 0)
        return -1;
    json_t *type_value = json_object_get(profile, "type");
    int type = 0;
    int type_read = !type_value || json_is_null(type_value)
                        ? field_fail(err, profile_path, "type", "missing")
                        : field_get_enum(profile, profile_path, "type", types, &type, err);
    if (keep(type_read) < 0)
        return -1;
    int name_read =
        field_get_string(profile, profile_path, "localhostProfile", false, &s->apparmor_localhost_profile, err);
    if (keep(name_read) < 0)
        return -1;
    if (type_read < 0 || name_read < 0)
        return 0;
    s->has_apparmor_profile = true;
    s->apparmor_profile = (enum pea_apparmor_profile_type)type;
    bool is_localhost = s->apparmor_profile == PEA_APPARMOR_PROFILE_LOCALHOST;
    if (is_localhost && (!s->apparmor_localhost_profile || !s->apparmor_localhost_profile[0]))
        return keep(field_fail(err, profile_path, "localhostProfile", "missing (type is Localhost)"));
    if (!is_localhost && s->apparmor_localhost_profile)
        return keep(field_fail(err, profile_path, "localhostProfile", "only valid with type Localhost"));
    /* A profile name goes into "exec NAME" for the kernel: one line. */
    if (is_localhost && strpbrk(s->apparmor_localhost_profile, "\n"))
        return keep(field_fail(err, profile_path, "localhostProfile", "must be one line"));
    return 0;
}

/* runAsNonRoot, appArmorProfile, and for a container procMount, each field's error kept by errors. */
static int parse_security_extras(json_t *security, const char *path, bool is_container, struct pea_pod_security *s,
                                 struct manifest_collector *errors, struct pea_error *err)
{
    json_t *non_root = json_object_get(security, "runAsNonRoot");
    s->has_run_as_non_root = non_root && !json_is_null(non_root);
    if (keep(field_get_bool(security, path, "runAsNonRoot", &s->run_as_non_root, err)) < 0 ||
        parse_apparmor_profile(security, path, s, errors, err) < 0)
        return -1;
    if (!is_container)
        return 0;
    static const char *const proc_mounts[] = {"Default", "Unmasked", NULL};
    int proc_mount = 0;
    if (keep(field_get_enum(security, path, "procMount", proc_mounts, &proc_mount, err)) < 0)
        return -1;
    s->is_proc_mount_unmasked = proc_mount == 1;
    return 0;
}

int manifest_parse_security_extras(json_t *security, const char *path, bool is_container, struct pea_pod_security *s,
                                   struct pea_error *err)
{
    return parse_security_extras(security, path, is_container, s, NULL, err);
}

static int parse_supplemental_groups(json_t *security, const char *path, struct pea_pod_groups *g,
                                     struct manifest_collector *errors, struct pea_error *err)
{
    json_t *list;
    if (field_get_array(security, path, "supplementalGroups", &list, err) < 0)
        return keep(-1);
    if (!list)
        return 0;
    char key[FIELD_PATH_MAX];
    g->n_supplemental_groups = json_array_size(list);
    g->supplemental_groups = xcalloc(g->n_supplemental_groups + 1, sizeof *g->supplemental_groups);
    for (size_t i = 0; i < g->n_supplemental_groups; i++) {
        /* field_get_id reads a key of an object: wrap the element so that the error names it as [i]. */
        snprintf(key, sizeof key, "supplementalGroups[%zu]", i);
        AUTO_JSON json_t *one = json_pack("{s:O}", key, json_array_get(list, i));
        bool present = false;
        uint32_t id = 0;
        int r = field_get_id(one, path, key, &present, &id, err);
        if (r == 0 && !present)
            r = field_fail(err, path, key, "must be a group id");
        if (keep(r) < 0)
            return -1;
        g->supplemental_groups[i] = id;
    }
    return 0;
}

/* fsGroup, supplementalGroups, their policies (into m->groups), and seccompProfile, appArmorProfile and
 * runAsNonRoot (into *pod, the containers' defaults). */
static int parse_pod_security_extras(json_t *security, const char *path, struct pea_pod_manifest *m,
                                     struct pea_pod_security *pod, struct manifest_collector *errors,
                                     struct pea_error *err)
{
    static const char *const change_policies[] = {"Always", "OnRootMismatch", NULL};
    static const char *const group_policies[] = {"Merge", "Strict", NULL};
    struct pea_pod_groups *g = &m->groups;
    uint32_t id = 0;
    int change = 0, policy = 0;
    if (keep(field_get_id(security, path, "fsGroup", &g->has_fs_group, &id, err)) < 0)
        return -1;
    g->fs_group = id;
    if (keep(field_get_enum(security, path, "fsGroupChangePolicy", change_policies, &change, err)) < 0 ||
        keep(field_get_enum(security, path, "supplementalGroupsPolicy", group_policies, &policy, err)) < 0 ||
        parse_supplemental_groups(security, path, g, errors, err) < 0 ||
        keep(manifest_parse_seccomp_profile(security, path, pod, err)) < 0 ||
        parse_security_extras(security, path, false, pod, errors, err) < 0)
        return -1;
    g->is_fs_group_change_on_root_mismatch = change == 1;
    g->is_supplemental_groups_strict = policy == 1;
    return 0;
}

/* One entry of spec.securityContext.sysctls, each field's error kept by errors; *is_bad says whether it had any. */
static int parse_sysctl(json_t *j, const char *item, struct pea_pod_sysctl *sysctl, bool *is_bad,
                        struct manifest_collector *errors, struct pea_error *err)
{
    static const char *const sysctl_fields[] = {"name", "value", NULL};
    size_t before = errors ? errors->n : 0;
    if (!json_is_object(j))
        return *is_bad = true, keep(pea_fail(err, 0, "%s: must be an object", item));
    if (manifest_check_known_each(j, item, sysctl_fields, errors, err) < 0)
        return -1;
    int name = field_get_string(j, item, "name", true, &sysctl->name, err);
    if (keep(name) < 0 || keep(field_get_string(j, item, "value", true, &sysctl->value, err)) < 0)
        return -1;
    /* 253: Kubernetes' SysctlMaxLength. */
    if (name == 0 && (!sysctl->name[0] || strchr(sysctl->name, '/') || !path_is_confined(sysctl->name) ||
                      strlen(sysctl->name) > 253) &&
        keep(field_fail(err, item, "name", "must be a sysctl name like net.ipv4.ip_forward (at most 253)")) < 0)
        return -1;
    *is_bad = errors && errors->n != before;
    return 0;
}

static void sysctls_clear(struct pea_pod_manifest *m)
{
    for (size_t i = 0; i < m->n_sysctls; i++) {
        free(m->sysctls[i].name);
        free(m->sysctls[i].value);
    }
    free(m->sysctls);
    m->sysctls = NULL;
    m->n_sysctls = 0;
}

static int parse_sysctls(json_t *security, const char *path, struct pea_pod_manifest *m,
                         struct manifest_collector *errors, struct pea_error *err)
{
    json_t *sysctls;
    if (field_get_array(security, path, "sysctls", &sysctls, err) < 0)
        return keep(-1);
    if (!sysctls)
        return 0;
    m->n_sysctls = json_array_size(sysctls);
    m->sysctls = xcalloc(m->n_sysctls, sizeof *m->sysctls);
    bool has_bad = false;
    for (size_t i = 0; i < m->n_sysctls; i++) {
        char item[FIELD_PATH_MAX];
        snprintf(item, sizeof item, "%s.sysctls[%zu]", path, i);
        bool is_bad = false;
        if (parse_sysctl(json_array_get(sysctls, i), item, &m->sysctls[i], &is_bad, errors, err) < 0)
            return -1;
        has_bad |= is_bad;
    }
    /* What reads the list later (which namespace each sysctl is of) needs every entry whole: a list with a bad
     * entry has had its errors, and is dropped. */
    if (has_bad)
        sysctls_clear(m);
    return 0;
}

int manifest_parse_pod_security(json_t *spec, struct pea_pod_manifest *m, struct pea_pod_security *pod,
                                struct manifest_collector *errors, struct pea_error *err)
{
    static const char *const fields[] = {"sysctls", "runAsUser", "runAsGroup", MANIFEST_POD_SECURITY_EXTRA_FIELDS,
                                         NULL};
    json_t *security;
    const char *path = "spec.securityContext";
    uint32_t id = 0;
    if (field_get_object(spec, "spec", "securityContext", false, &security, err) < 0)
        return keep(-1);
    if (!security)
        return 0;
    if (manifest_check_known_each(security, path, fields, errors, err) < 0 ||
        keep(field_get_id(security, path, "runAsUser", &pod->has_run_as_user, &id, err)) < 0)
        return -1;
    pod->run_as_user = id;
    id = 0;
    if (keep(field_get_id(security, path, "runAsGroup", &pod->has_run_as_group, &id, err)) < 0)
        return -1;
    pod->run_as_group = id;
    if (parse_pod_security_extras(security, path, m, pod, errors, err) < 0 || parse_sysctls(security, path, m, errors, err) < 0)
        return -1;
    return 0;
}

int manifest_parse_host_users(json_t *spec, struct pea_pod_manifest *m, struct pea_error *err)
{
    bool host_users = true;
    json_t *value = json_object_get(spec, "hostUsers");
    if (value && !json_is_null(value) && field_get_bool(spec, "spec", "hostUsers", &host_users, err) < 0)
        return -1;
    m->has_own_users = !host_users;
    return 0;
}

/* ---- sysctls ---- */

/* Kubernetes' namespaced sysctls (pkg/kubelet/sysctl/namespace.go), safe and unsafe alike: these, and every name
 * under the prefixes. Any other sysctl is the host's: setting it from a pod would change the machine. */
static const char *const ipc_sysctls[] = {"kernel.sem",    "kernel.shmall",          "kernel.shmmax",
                                          "kernel.shmmni", "kernel.shm_rmid_forced", "kernel.msgmax",
                                          "kernel.msgmnb", "kernel.msgmni",          NULL};
static const char *const uts_sysctls[] = {"kernel.hostname", "kernel.domainname", NULL};

static bool is_listed(const char *name, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(name, *list) == 0)
            return true;
    return false;
}

static bool has_prefix(const char *name, const char *prefix) { return strncmp(name, prefix, strlen(prefix)) == 0; }

static int check_sysctls(const struct pea_pod_manifest *m, struct manifest_collector *errors, struct pea_error *err)
{
    for (size_t i = 0; i < m->n_sysctls; i++) {
        const char *name = m->sysctls[i].name;
        bool is_ipc = is_listed(name, ipc_sysctls) || has_prefix(name, "fs.mqueue.");
        bool is_uts = is_listed(name, uts_sysctls);
        if (!is_ipc && !is_uts && !has_prefix(name, "net.") &&
            keep(pea_fail(err, 0,
                          "spec.securityContext.sysctls[%zu]: %s is not a namespaced sysctl (net.*, fs.mqueue.*, "
                          "kernel.sem, kernel.shm*, kernel.msg*, kernel.hostname, kernel.domainname): setting it "
                          "would change the host",
                          i, name)) < 0)
            return -1;
        /* A host-network pod keeps the host's UTS namespace. (net.* is checked with the network.) */
        if (is_uts && m->network_mode == PEA_NETWORK_HOST &&
            keep(pea_fail(err, 0, "spec.securityContext.sysctls[%zu]: %s: the pod shares the host's UTS namespace "
                          "(host network)", i, name)) < 0)
            return -1;
    }
    return 0;
}

/* ---- the pod's values as the containers' defaults ---- */

static void inherit(struct pea_pod_security *s, const struct pea_pod_security *pod)
{
    if (!s->has_seccomp_profile && pod->has_seccomp_profile) {
        s->has_seccomp_profile = true;
        s->seccomp_profile = pod->seccomp_profile;
        s->seccomp_localhost_profile = pod->seccomp_localhost_profile ? xstrdup(pod->seccomp_localhost_profile)
                                                                      : NULL;
    }
    if (!s->has_apparmor_profile && pod->has_apparmor_profile) {
        s->has_apparmor_profile = true;
        s->apparmor_profile = pod->apparmor_profile;
        s->apparmor_localhost_profile = pod->apparmor_localhost_profile ? xstrdup(pod->apparmor_localhost_profile)
                                                                        : NULL;
    }
    if (!s->has_run_as_non_root && pod->has_run_as_non_root) {
        s->has_run_as_non_root = true;
        s->run_as_non_root = pod->run_as_non_root;
    }
}

static int check_container(const struct pea_pod_manifest *m, const struct pea_pod_container *c, const char *path,
                           struct pea_error *err)
{
    if (c->security.is_proc_mount_unmasked && !m->has_own_users)
        return pea_fail(err, 0, "%s.securityContext.procMount: Unmasked needs spec.hostUsers: false, as in Kubernetes",
                        path);
    return 0;
}

int manifest_apply_pod_security(struct pea_pod_manifest *m, const struct pea_pod_security *pod,
                                struct manifest_collector *errors, struct pea_error *err)
{
    for (size_t i = 0; i < m->n_init_containers + m->n_containers; i++) {
        bool is_init = i < m->n_init_containers;
        struct pea_pod_container *c = is_init ? &m->init_containers[i] : &m->containers[i - m->n_init_containers];
        char path[FIELD_PATH_MAX];
        snprintf(path, sizeof path, "spec.%s[%zu]", is_init ? "initContainers" : "containers",
                 is_init ? i : i - m->n_init_containers);
        inherit(&c->security, pod);
        if (keep(check_container(m, c, path, err)) < 0)
            return -1;
    }
    /* Kubernetes' rule for user namespaces: the host's network, PID and IPC namespaces are the host users'. */
    if (m->has_own_users && m->network_mode == PEA_NETWORK_HOST &&
        keep(pea_fail(err, 0, "spec.hostUsers: false cannot be combined with the host's network (hostNetwork or "
                      "pea.network.mode host)")) < 0)
        return -1;
    return check_sysctls(m, errors, err);
}

#undef keep

void manifest_pod_security_free(struct pea_pod_manifest *m)
{
    free(m->groups.supplemental_groups);
    m->groups.supplemental_groups = NULL;
}

void manifest_security_defaults_free(struct pea_pod_security *s)
{
    free(s->seccomp_localhost_profile);
    free(s->apparmor_localhost_profile);
    s->seccomp_localhost_profile = s->apparmor_localhost_profile = NULL;
}
