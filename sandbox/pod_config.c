/* A pod's containers as OCI configs: what the manifest says, in the shapes the container layer takes. Members join
 * the namespaces pinned under the pod's directory; the infra owns them. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/capability.h>

#include "pea/pod.h"
#include "pea/pod_env.h"
#include "pea/pod_image.h"
#include "pea/spec.h"
#include "pea/util.h"
#include "pea/volume.h"
#include "pod_security.h"
#include "pod_userns.h"

#define DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* The capabilities a Kubernetes container gets from containerd and CRI-O when the manifest asks for none. */
static const char *const default_capabilities[] = {
    "CAP_CHOWN",    "CAP_DAC_OVERRIDE", "CAP_FSETID",     "CAP_FOWNER",           "CAP_MKNOD",
    "CAP_NET_RAW",  "CAP_SETGID",       "CAP_SETUID",     "CAP_SETFCAP",          "CAP_SETPCAP",
    "CAP_KILL",     "CAP_AUDIT_WRITE",  "CAP_SYS_CHROOT", "CAP_NET_BIND_SERVICE", NULL,
};

static bool has_own_network(const struct pea_pod_manifest *m) { return m->network_mode != PEA_NETWORK_HOST; }

/* Host-network pods keep the host's UTS namespace, as in Kubernetes. */
static bool has_own_uts(const struct pea_pod_manifest *m) { return m->network_mode != PEA_NETWORK_HOST; }

static json_t *bind_mount(const char *destination, const char *source, bool read_only)
{
    return json_pack("{s:s, s:s, s:s, s:[s, s, s]}", "destination", destination, "type", "bind", "source", source,
                     "options", "rbind", "rprivate", read_only ? "ro" : "rw");
}

static void set_namespace(json_t *list, const char *type, const char *path)
{
    json_t *ns = json_pack("{s:s}", "type", type);
    if (path)
        json_object_set_new(ns, "path", json_string(path));
    json_array_append_new(list, ns);
}

/* "NET_ADMIN" or "CAP_NET_ADMIN" → "CAP_NET_ADMIN", checked against libcap. */
static char *capability_name(const char *name, const char *field, struct pea_error *err)
{
    char *full = strncmp(name, "CAP_", 4) == 0 ? xstrdup(name) : xasprintf("CAP_%s", name);
    if (spec_capability_from_name(full) < 0) {
        free(full);
        pea_fail(err, 0, "%s: unknown capability \"%s\"", field, name);
        return NULL;
    }
    return full;
}

static bool has_all(char *const *names)
{
    for (; names && *names; names++)
        if (strcmp(*names, "ALL") == 0)
            return true;
    return false;
}

static void remove_string(json_t *array, const char *value)
{
    for (size_t i = json_array_size(array); i-- > 0;)
        if (strcmp(json_string_value(json_array_get(array, i)), value) == 0)
            json_array_remove(array, i);
}

static json_t *capability_set(const struct pea_pod_container *c, const char *field, struct pea_error *err)
{
    json_t *caps = json_array();
    if (c->security.privileged) {
        /* Every capability pea itself may hand on, as containerd's privileged containers get the current ones: one
         * outside our bounding set (CAP_SYS_RESOURCE in a CI job's container) would fail the start. */
        for (cap_value_t cap = 0; cap <= CAP_LAST_CAP; cap++) {
            if (prctl(PR_CAPBSET_READ, cap) != 1)
                continue;
            /* libcap names are lower case; the OCI names are the upper-case constants. */
            char *lower = cap_to_name(cap);
            AUTO_FREE char *name = xasprintf("%s", lower ? lower : "");
            cap_free(lower);
            for (char *p = name; *p; p++)
                *p = (char)(*p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p);
            if (spec_capability_from_name(name) >= 0)
                json_array_append_new(caps, json_string(name));
        }
        return caps;
    }
    if (!has_all(c->security.capabilities_drop))
        for (const char *const *n = default_capabilities; *n; n++)
            json_array_append_new(caps, json_string(*n));
    for (char *const *d = c->security.capabilities_drop; d && *d; d++) {
        if (strcmp(*d, "ALL") == 0)
            continue;
        AUTO_FREE char *name = capability_name(*d, field, err);
        if (!name) {
            json_decref(caps);
            return NULL;
        }
        remove_string(caps, name);
    }
    for (char *const *a = c->security.capabilities_add; a && *a; a++) {
        AUTO_FREE char *name = capability_name(*a, field, err);
        if (!name) {
            json_decref(caps);
            return NULL;
        }
        remove_string(caps, name);
        json_array_append_new(caps, json_string(name));
    }
    return caps;
}

static json_t *expanded_string(const char *text, const json_t *vars)
{
    AUTO_FREE char *expanded = pod_env_expand(text, vars);
    return json_string(expanded);
}

/* command then args, each with $(VAR) expanded from the container's variables, as the kubelet does. */
static json_t *arguments(const struct pea_pod_container *c, const json_t *vars, const char *field,
                         struct pea_error *err)
{
    json_t *args = json_array();
    for (char *const *a = c->command; a && *a; a++)
        json_array_append_new(args, expanded_string(*a, vars));
    for (char *const *a = c->args; a && *a; a++)
        json_array_append_new(args, expanded_string(*a, vars));
    if (json_array_size(args) == 0) {
        json_decref(args);
        pea_fail(err, 0, "%s: command or args must be given (a directory image has no entrypoint)", field);
        return NULL;
    }
    return args;
}

/* Kubernetes' conversions: cpu shares from the request, a CFS quota over a 100 ms period from the limit. */
json_t *pod_config_resources(const struct pea_pod_resources *r)
{
    json_t *res = json_object();
    if (r->has_memory_limit)
        json_object_set_new(res, "memory", json_pack("{s:I}", "limit", (json_int_t)r->memory_limit_bytes));
    json_t *cpu = json_object();
    if (r->has_cpu_request) {
        uint64_t shares = r->cpu_request_millis * 1024 / 1000;
        json_object_set_new(cpu, "shares", json_integer((json_int_t)(shares < 2 ? 2 : shares)));
    }
    if (r->has_cpu_limit) {
        uint64_t quota = r->cpu_limit_millis * 100;
        json_object_set_new(cpu, "quota", json_integer((json_int_t)(quota < 1000 ? 1000 : quota)));
        json_object_set_new(cpu, "period", json_integer(100000));
    }
    if (json_object_size(cpu))
        json_object_set_new(res, "cpu", cpu);
    else
        json_decref(cpu);
    return res;
}

/* Pod-level limits as the kubelet computes them: spec.resources where the pod gives them (pod-level resources),
 * else the sum over app containers when every one has a limit, and at least the largest init container's. */
json_t *pod_config_limits(const struct pea_pod_manifest *m)
{
    struct pea_pod_resources r = {.has_memory_limit = m->n_containers > 0, .has_cpu_limit = m->n_containers > 0};
    for (size_t i = 0; i < m->n_containers; i++) {
        r.has_memory_limit &= m->containers[i].resources.has_memory_limit;
        r.has_cpu_limit &= m->containers[i].resources.has_cpu_limit;
        r.memory_limit_bytes += m->containers[i].resources.memory_limit_bytes;
        r.cpu_limit_millis += m->containers[i].resources.cpu_limit_millis;
    }
    for (size_t i = 0; i < m->n_init_containers; i++) {
        const struct pea_pod_resources *init = &m->init_containers[i].resources;
        if (init->has_memory_limit && init->memory_limit_bytes > r.memory_limit_bytes)
            r.memory_limit_bytes = init->memory_limit_bytes;
        if (init->has_cpu_limit && init->cpu_limit_millis > r.cpu_limit_millis)
            r.cpu_limit_millis = init->cpu_limit_millis;
    }
    const struct pea_pod_resources *pod = &m->resources;
    if (pod->has_memory_limit)
        r.has_memory_limit = true, r.memory_limit_bytes = pod->memory_limit_bytes;
    if (pod->has_cpu_limit)
        r.has_cpu_limit = true, r.cpu_limit_millis = pod->cpu_limit_millis;
    r.has_cpu_request = pod->has_cpu_request;
    r.cpu_request_millis = pod->cpu_request_millis;
    if (!r.has_memory_limit && !r.has_cpu_limit && !r.has_cpu_request && !pod->has_pids_limit)
        return NULL;
    json_t *res = pod_config_resources(&r);
    if (pod->has_pids_limit)
        json_object_set_new(res, "pids", json_pack("{s:I}", "limit", (json_int_t)pod->pids_limit));
    return res;
}

/* A volume mount as the kubelet asks the runtime for it: mountPropagation None, HostToContainer and Bidirectional
 * are rprivate, rslave and rshared; recursiveReadOnly makes every submount read-only too ("rro": mount_setattr with
 * AT_RECURSIVE on the tree before it is attached). */
static json_t *volume_bind_mount(const struct pea_pod_volume_mount *vm, const char *source, bool read_only)
{
    static const char *const propagations[] = {
        [PEA_MOUNT_PROPAGATION_NONE] = "rprivate",
        [PEA_MOUNT_PROPAGATION_HOST_TO_CONTAINER] = "rslave",
        [PEA_MOUNT_PROPAGATION_BIDIRECTIONAL] = "rshared",
    };
    json_t *options = json_pack("[s, s, s]", "rbind", propagations[vm->propagation], read_only ? "ro" : "rw");
    if (read_only && vm->recursive_read_only != PEA_RECURSIVE_READ_ONLY_DISABLED)
        json_array_append_new(options, json_string("rro"));
    return json_pack("{s:s, s:s, s:s, s:o}", "destination", vm->mount_path, "type", "bind", "source", source,
                     "options", options);
}

/* A Bidirectional mount only reaches the host from a container whose "/" shares the host's peer groups (what
 * containerd sets for it); HostToContainer needs no more than the default rslave. */
static bool has_bidirectional_mount(const struct pea_pod_container *c)
{
    for (size_t i = 0; i < c->n_volume_mounts; i++)
        if (c->volume_mounts[i].propagation == PEA_MOUNT_PROPAGATION_BIDIRECTIONAL)
            return true;
    return false;
}

static int add_volume_mounts(const struct pea_pod *pod, const struct pea_pod_container *c, json_t *mounts,
                             struct pea_error *err)
{
    for (size_t i = 0; i < c->n_volume_mounts; i++) {
        const struct pea_pod_volume_mount *vm = &c->volume_mounts[i];
        const struct pea_pod_volume *v = volume_find(pod->manifest, vm->name);
        if (!v)
            return pea_fail(err, 0, "container %s: volumeMounts[%zu]: no volume \"%s\"", c->name, i, vm->name);
        AUTO_FREE char *base = volume_host_path(pod, v);
        AUTO_FREE char *source = vm->sub_path ? xasprintf("%s/%s", base, vm->sub_path) : xstrdup(base);
        /* The kubelet mounts volumes of files it writes read-only, whatever readOnly says. */
        json_t *mount = volume_bind_mount(vm, source, vm->read_only || v->is_read_only || volume_is_written(v));
        /* An image volume's bind keeps the flags of its mount (a bind remount would clear those not named). */
        if (v->type == PEA_VOLUME_IMAGE) {
            AUTO_JSON json_t *flags = json_pack("[s, s, s]", "noexec", "nosuid", "nodev");
            json_array_extend(json_object_get(mount, "options"), flags);
        }
        json_array_append_new(mounts, mount);
    }
    return 0;
}

/* The container's root: one plain directory, or an overlay of the layers (lowest first in the manifest; overlayfs
 * wants the top first) over a fresh upper directory of its own. */
static int set_root(const struct pea_pod *pod, const struct pea_pod_container *c, json_t *cfg, json_t *mounts,
                    struct pea_error *err)
{
    json_t *root = json_object_get(cfg, "root");
    json_object_set_new(root, "readonly", json_boolean(c->security.read_only_root_filesystem));
    /* An image of the store is always an overlay: its layers are shared and read-only. */
    char *const *layers = c->image ? c->image->layer_dirs : c->image_layers;
    size_t n_layers = c->image ? c->image->n_layers : c->n_image_layers;
    if (!c->image && n_layers == 1) {
        json_object_set_new(root, "path", json_string(layers[0]));
        return 0;
    }
    const char *bad = NULL;
    AUTO_FREE char *lower = pod_image_lowerdir(layers, n_layers, &bad);
    if (!lower)
        return pea_fail(err, 0, "container %s: image layer %s: ':' and ',' cannot be used in overlay paths", c->name,
                        bad);
    AUTO_FREE char *dir = xasprintf("%s/containers/%s", pod->data_dir, c->name);
    AUTO_FREE char *options = xasprintf("lowerdir=%s,upperdir=%s/upper,workdir=%s/work", lower, dir, dir);
    AUTO_FREE char *mountpoint = xasprintf("%s/rootfs", dir);
    json_object_set_new(root, "path", json_string(mountpoint));
    json_array_insert_new(mounts, 0,
                          json_pack("{s:s, s:s, s:s, s:[s]}", "destination", "/", "type", "overlay", "source",
                                    "overlay", "options", options));
    return 0;
}

static json_t *seccomp_profile(const struct pea_pod *pod, const struct pea_pod_container *c, struct pea_error *err)
{
    if (c->security.privileged || (c->security.has_seccomp_profile &&
                                   c->security.seccomp_profile == PEA_SECCOMP_PROFILE_UNCONFINED))
        return json_null();
    if (c->security.has_seccomp_profile && c->security.seccomp_profile == PEA_SECCOMP_PROFILE_LOCALHOST)
        return pod_security_localhost_seccomp(pod, c, err);
    return spec_default_seccomp_json();
}

/* Whether env (KEY=VALUE strings) sets TERM. */
static bool env_has_term(json_t *env)
{
    size_t i;
    json_t *item;
    json_array_foreach(env, i, item) {
        const char *s = json_string_value(item);
        if (s && strncmp(s, "TERM=", 5) == 0)
            return true;
    }
    return false;
}

/* Whether the cgroup2 hierarchy is mounted with nsdelegate: a cgroup namespace's root is then a delegation
 * boundary (its own interface files cannot be written from inside, and processes cannot move out of it). */
static bool cgroup_is_delegation_safe(void)
{
    AUTO_FILE FILE *f = fopen("/proc/self/mountinfo", "re");
    char line[8192];
    while (f && fgets(line, sizeof line, f)) {
        /* "40 30 0:37 / /sys/fs/cgroup rw,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate" */
        char *sep = strstr(line, " - cgroup2 ");
        if (!sep)
            continue;
        char *options = strrchr(sep, ' ');
        if (!options)
            continue;
        options[strcspn(options, "\n")] = '\0';
        char *save = NULL;
        for (char *o = strtok_r(options + 1, ",", &save); o; o = strtok_r(NULL, ",", &save))
            if (strcmp(o, "nsdelegate") == 0)
                return true;
    }
    return false;
}

json_t *pod_config_member(const struct pea_pod *pod, const struct pea_pod_container *c, struct pea_error *err)
{
    const struct pea_pod_manifest *m = pod->manifest;
    char field[128];
    snprintf(field, sizeof field, "container %s", c->name);
    AUTO_JSON json_t *cfg = spec_default_json(false);
    json_t *process = json_object_get(cfg, "process");
    json_t *linux = json_object_get(cfg, "linux");
    AUTO_JSON json_t *env = NULL, *vars = NULL;
    if (pod_env_build(pod, c, &DEFAULT_PATH[strlen("PATH=")], m->hostname ? m->hostname : m->name, &env, &vars,
                      err) < 0) {
        pea_wrap(err, "%s", field);
        return NULL;
    }
    if (c->image_ref && !c->image) {
        pea_fail(err, 0, "%s: image %s was not resolved in the store", field, c->image_ref);
        return NULL;
    }
    json_t *args = c->image ? pod_image_args(c, vars, err) : arguments(c, vars, field, err);
    json_t *caps = args ? capability_set(c, field, err) : NULL;
    if (!caps) {
        json_decref(args);
        return NULL;
    }
    json_object_set_new(process, "args", args);
    json_object_set_new(process, "terminal", json_boolean(c->has_tty));
    json_t *process_env = c->image ? pod_image_env(c->image, env, vars) : json_incref(env);
    if (c->has_tty && !env_has_term(process_env))
        json_array_append_new(process_env, json_string("TERM=xterm")); /* as containerd's CRI does for a tty */
    json_object_set_new(process, "env", process_env);
    const char *cwd = c->working_dir ? c->working_dir : c->image && c->image->working_dir ? c->image->working_dir : "/";
    json_object_set_new(process, "cwd", json_string(cwd));
    /* The image's user stands in for what securityContext leaves out. */
    bool is_image_user = !c->security.has_run_as_user && c->image && c->image->has_ids;
    uid_t uid = is_image_user ? c->image->uid : c->security.run_as_user;
    gid_t gid = is_image_user && !c->security.has_run_as_group ? c->image->gid : c->security.run_as_group;
    json_object_set_new(process, "user", json_pack("{s:I, s:I}", "uid", (json_int_t)uid, "gid", (json_int_t)gid));
    json_object_set_new(process, "capabilities",
                        json_pack("{s:O, s:O, s:O}", "bounding", caps, "effective", caps, "permitted", caps));
    json_decref(caps);
    /* Kubernetes lets a process gain privileges unless allowPrivilegeEscalation is false. */
    bool no_new_privileges = c->security.has_allow_privilege_escalation && !c->security.allow_privilege_escalation &&
                             !c->security.privileged;
    json_object_set_new(process, "noNewPrivileges", json_boolean(no_new_privileges));
    json_object_del(process, "rlimits");
    json_object_del(cfg, "hostname");

    json_t *mounts = json_object_get(cfg, "mounts");
    if (c->security.is_cgroup_writable && !cgroup_is_delegation_safe()) {
        pea_fail(err, 0, "%s: securityContext.cgroupOptions.mountMode ReadWrite needs the host's cgroup2 mounted "
                 "with nsdelegate (without it the container could raise its own limits); this host's is not", field);
        return NULL;
    }
    for (size_t i = 0; i < json_array_size(mounts); i++) {
        json_t *mnt = json_array_get(mounts, i);
        const char *destination = json_string_value(json_object_get(mnt, "destination"));
        if (c->security.privileged && strcmp(destination, "/sys") == 0)
            json_object_set_new(mnt, "options", json_pack("[s, s, s]", "nosuid", "noexec", "nodev"));
        /* Its own cgroup namespace shows the container its own cgroup as the root; nsdelegate keeps that root's
         * files (its limits) read-only to it while it manages the cgroups below. */
        if (c->security.is_cgroup_writable && strcmp(destination, "/sys/fs/cgroup") == 0)
            json_object_set_new(mnt, "options", json_pack("[s, s, s, s]", "nosuid", "noexec", "nodev", "relatime"));
    }
    static const char *const etc_files[] = {"hostname", "hosts", "resolv.conf"};
    for (size_t i = 0; i < ARRAY_SIZE(etc_files); i++) {
        AUTO_FREE char *destination = xasprintf("/etc/%s", etc_files[i]);
        AUTO_FREE char *source = xasprintf("%s/etc/%s", pod->dir, etc_files[i]);
        json_array_append_new(mounts, bind_mount(destination, source, false));
    }
    if (add_volume_mounts(pod, c, mounts, err) < 0 || set_root(pod, c, cfg, mounts, err) < 0)
        return NULL;
    if (has_bidirectional_mount(c))
        json_object_set_new(json_object_get(cfg, "linux"), "rootfsPropagation", json_string("rshared"));

    json_t *namespaces = json_array();
    AUTO_FREE char *ns_pid = xasprintf("%s/ns/pid", pod->dir);
    AUTO_FREE char *ns_net = xasprintf("%s/ns/net", pod->dir);
    AUTO_FREE char *ns_ipc = xasprintf("%s/ns/ipc", pod->dir);
    AUTO_FREE char *ns_uts = xasprintf("%s/ns/uts", pod->dir);
    set_namespace(namespaces, "pid", m->share_process_namespace ? ns_pid : NULL);
    if (has_own_network(m))
        set_namespace(namespaces, "network", ns_net);
    set_namespace(namespaces, "ipc", ns_ipc);
    if (has_own_uts(m))
        set_namespace(namespaces, "uts", ns_uts);
    set_namespace(namespaces, "mount", NULL);
    set_namespace(namespaces, "cgroup", NULL);
    json_object_set_new(linux, "namespaces", namespaces);
    AUTO_FREE char *cgroups_path = xasprintf("%s/%s", pod->cgroup, c->name);
    json_object_set_new(linux, "cgroupsPath", json_string(cgroups_path));
    json_t *res = pod_config_resources(&c->resources);
    json_object_set_new(res, "devices", json_pack("[{s:b, s:s}]", "allow", 0, "access", "rwm"));
    json_object_set_new(linux, "resources", res);
    json_t *seccomp = seccomp_profile(pod, c, err);
    if (!seccomp)
        return NULL;
    if (json_is_null(seccomp))
        json_object_del(linux, "seccomp");
    else
        json_object_set_new(linux, "seccomp", seccomp);
    if (c->security.privileged) {
        json_object_set_new(linux, "maskedPaths", json_array());
        json_object_set_new(linux, "readonlyPaths", json_array());
        json_object_set_new(res, "devices", json_pack("[{s:b, s:s}]", "allow", 1, "access", "rwm"));
    }
    json_object_set_new(cfg, "annotations", json_pack("{s:s, s:s}", "run.pea.pod", m->name, "run.pea.container",
                                                      c->name));
    if (pod_security_configure(pod, c, cfg, err) < 0 || pod_userns_configure(pod, cfg, false, err) < 0)
        return NULL;
    return take_ptr(&cfg);
}

static bool has_effective_capability(cap_value_t cap)
{
    cap_t caps = cap_get_proc();
    cap_flag_value_t value = CAP_CLEAR;
    if (caps)
        cap_get_flag(caps, cap, CAP_EFFECTIVE, &value);
    cap_free(caps);
    return value == CAP_SET;
}

json_t *pod_config_infra(const struct pea_pod *pod, struct pea_error *err)
{
    const struct pea_pod_manifest *m = pod->manifest;
    AUTO_FREE char *infra_root = xasprintf("%s/infra", pod->dir);
    json_t *namespaces = json_array();
    set_namespace(namespaces, "pid", NULL);
    set_namespace(namespaces, "ipc", NULL);
    set_namespace(namespaces, "mount", NULL);
    set_namespace(namespaces, "cgroup", NULL);
    if (m->network_mode == PEA_NETWORK_NONE || m->network_mode == PEA_NETWORK_BRIDGE)
        set_namespace(namespaces, "network", NULL);
    else if (m->network_mode == PEA_NETWORK_NETNS)
        set_namespace(namespaces, "network", m->netns_path);
    if (has_own_uts(m))
        set_namespace(namespaces, "uts", NULL);
    json_t *sysctl = json_object();
    if (manifest_network_namespace_is_pea_made(m)) {
        /* What containerd gives every sandbox with its own network: low ports and ping without privileges. Never
         * in a namespace the pod joins: there they would outlive the pod, for every process of that namespace. */
        json_object_set_new(sysctl, "net.ipv4.ip_unprivileged_port_start", json_string("0"));
        /* In the pod's own user namespace only its 65536 groups exist (the kernel refuses unmapped ones). */
        json_object_set_new(sysctl, "net.ipv4.ping_group_range",
                            json_string(m->has_own_users ? "0 65535" : "0 2147483647"));
    }
    for (size_t i = 0; i < m->n_sysctls; i++)
        json_object_set_new(sysctl, m->sysctls[i].name, json_string(m->sysctls[i].value));
    AUTO_FREE char *cgroups_path = xasprintf("%s/%s", pod->cgroup, PEA_POD_INFRA_ID);
    json_t *linux = json_pack("{s:o, s:s, s:o, s:o}", "namespaces", namespaces, "cgroupsPath", cgroups_path,
                              "sysctl", sysctl, "seccomp", spec_default_seccomp_json());
    /* The infra runs as nobody with nothing: it only has to exist and reap. */
    json_t *process = json_pack("{s:b, s:{s:i, s:i}, s:[s], s:[s], s:s, s:{s:[], s:[], s:[]}, s:b}", "terminal", 0,
                                "user", "uid", 65535, "gid", 65535, "args", "/pea-pause", "env", DEFAULT_PATH, "cwd",
                                "/", "capabilities", "bounding", "effective", "permitted", "noNewPrivileges", 1);
    /* Last to be killed under memory pressure, as kubelet's sandboxes; lowering the score takes CAP_SYS_RESOURCE,
     * which a runtime inside a CI container may lack: then the infra keeps the default. */
    if (has_effective_capability(CAP_SYS_RESOURCE))
        json_object_set_new(process, "oomScoreAdj", json_integer(-998));
    json_t *cfg = json_pack("{s:s, s:o, s:{s:s, s:b}, s:[], s:o, s:{s:s, s:s}}", "ociVersion", PEA_OCI_VERSION,
                            "process", process, "root", "path", infra_root, "readonly", 1, "mounts", "linux", linux,
                            "annotations", "run.pea.pod", m->name, "run.pea.container", PEA_POD_INFRA_ID);
    if (has_own_uts(m))
        json_object_set_new(cfg, "hostname", json_string(m->hostname ? m->hostname : m->name));
    if (pod_userns_configure(pod, cfg, true, err) < 0) {
        json_decref(cfg);
        return NULL;
    }
    return cfg;
}
