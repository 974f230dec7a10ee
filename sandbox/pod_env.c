/* A container's environment as the kubelet makes it (envFrom first, then env in order, each value's $(VAR)
 * expanded against what came before it), $(VAR) in command and args, and the values the downward API reads: pod
 * fields, the node's, and container resources with the kubelet's rounding. */
#include <arpa/inet.h>
#include <ctype.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "pea/pod_env.h"
#include "pea/util.h"

/* ---- $(VAR) ---- */

struct text_buf {
    char *data;
    size_t len, cap;
};

static void buf_add(struct text_buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->data = xrealloc(b->data, b->cap);
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

/* The rules of Kubernetes' expansion package: "$$" is "$"; "$(NAME)" is NAME's value when vars has it, else stays
 * as written; "$(" without a ")" and a "$" before anything else stay as written; a "$" at the end stays. */
/* missing: NULL, or an object that gets each name referred to that vars lacks or has empty (then expanded to ""),
 * as the kubelet's expansion of a subPathExpr records them. */
static char *expand(const char *input, const json_t *vars, json_t *missing)
{
    struct text_buf out = {0};
    buf_add(&out, "", 0);
    size_t len = strlen(input), done = 0;
    for (size_t i = 0; i + 1 < len; i++) {
        if (input[i] != '$')
            continue;
        buf_add(&out, input + done, i - done);
        const char *next = input + i + 1;
        if (*next == '$') {
            buf_add(&out, "$", 1);
            i += 1;
        } else if (*next == '(') {
            const char *close = strchr(next + 1, ')');
            if (!close) {
                /* Kept, and the scan goes on after the "(". */
                buf_add(&out, "$(", 2);
                i += 1;
            } else {
                AUTO_FREE char *name = xasprintf("%.*s", (int)(close - next - 1), next + 1);
                const json_t *value = json_object_get(vars, name);
                if (missing && (!value || json_string_length(value) == 0))
                    json_object_set_new(missing, name, json_true());
                else if (value)
                    buf_add(&out, json_string_value(value), json_string_length(value));
                else
                    buf_add(&out, next - 1, (size_t)(close - next) + 2);
                i = (size_t)(close - input);
            }
        } else {
            /* "$x": both kept, the scan goes on after x. */
            buf_add(&out, input + i, 2);
            i += 1;
        }
        done = i + 1;
    }
    buf_add(&out, input + done, len - done);
    return out.data;
}

char *pod_env_expand(const char *input, const json_t *vars) { return expand(input, vars, NULL); }

static int compare_strings(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int pod_env_expand_sub_path(const char *expr, const json_t *vars, char **out, struct pea_error *err)
{
    AUTO_JSON json_t *missing = json_object();
    AUTO_FREE char *sub_path = expand(expr, vars, missing);
    if (json_object_size(missing)) {
        /* The kubelet's words: "missing value for A, B", the names sorted. */
        size_t n = 0;
        const char *name;
        json_t *ignored;
        AUTO_FREE const char **names = xcalloc(json_object_size(missing), sizeof *names);
        json_object_foreach(missing, name, ignored)
            names[n++] = name;
        qsort(names, n, sizeof *names, compare_strings);
        struct text_buf list = {0};
        buf_add(&list, "", 0);
        for (size_t i = 0; i < n; i++) {
            if (i)
                buf_add(&list, ", ", 2);
            buf_add(&list, names[i], strlen(names[i]));
        }
        pea_fail(err, 0, "subPathExpr %s: missing value for %s", expr, list.data);
        free(list.data);
        return -1;
    }
    /* The kubelet refuses what leads anywhere but below the volume before it looks at the volume at all. */
    if (sub_path[0] == '/')
        return pea_fail(err, 0, "subPathExpr %s expands to %s, an absolute path: refused", expr, sub_path);
    for (const char *p = sub_path; *p;) {
        size_t n = strcspn(p, "/");
        if (n == 2 && p[0] == '.' && p[1] == '.')
            return pea_fail(err, 0, "subPathExpr %s expands to %s, which contains \"..\": refused", expr, sub_path);
        p += n;
        p += strspn(p, "/");
    }
    *out = take_ptr(&sub_path);
    return 0;
}

/* ---- pod and node fields ---- */

/* The node's address, as a kubelet without --node-ip takes one: the first IPv4 address of an interface that is up
 * and not loopback, else such an IPv6 address outside fe80::/10; "" when there is none. */
static char *node_address(void)
{
    struct ifaddrs *list = NULL;
    if (getifaddrs(&list) < 0)
        return xstrdup("");
    char found[INET6_ADDRSTRLEN] = "";
    for (int family_pass = 0; family_pass < 2 && !found[0]; family_pass++)
        for (struct ifaddrs *a = list; a && !found[0]; a = a->ifa_next) {
            if (!a->ifa_addr || !(a->ifa_flags & IFF_UP) || (a->ifa_flags & IFF_LOOPBACK))
                continue;
            if (family_pass == 0 && a->ifa_addr->sa_family == AF_INET)
                inet_ntop(AF_INET, &((struct sockaddr_in *)a->ifa_addr)->sin_addr, found, sizeof found);
            if (family_pass == 1 && a->ifa_addr->sa_family == AF_INET6) {
                const struct in6_addr *addr = &((struct sockaddr_in6 *)a->ifa_addr)->sin6_addr;
                if (!IN6_IS_ADDR_LINKLOCAL(addr))
                    inet_ntop(AF_INET6, addr, found, sizeof found);
            }
        }
    freeifaddrs(list);
    return xstrdup(found);
}

static char *pod_address(const struct pea_pod_manifest *m)
{
    if (m->network_mode == PEA_NETWORK_HOST)
        return node_address();
    if (m->network_mode == PEA_NETWORK_BRIDGE && m->address)
        return xasprintf("%.*s", (int)strcspn(m->address, "/"), m->address);
    /* Loopback only, or a namespace someone else set up: pea knows no address of the pod. */
    return xstrdup("");
}

/* Go's %q of a string, as the kubelet writes label and annotation values. */
static void quote_go(struct text_buf *b, const char *s)
{
    buf_add(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        static const char escapes[] = "\a\b\f\n\r\t\v\\\"", letters[] = "abfnrtv\\\"";
        const char *e = *p ? strchr(escapes, *p) : NULL;
        char tmp[8];
        if (e) {
            tmp[0] = '\\';
            tmp[1] = letters[e - escapes];
            buf_add(b, tmp, 2);
        } else if (*p < 0x20 || *p == 0x7f) {
            snprintf(tmp, sizeof tmp, "\\x%02x", *p);
            buf_add(b, tmp, 4);
        } else if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
            /* U+0080..U+009F, C1 controls: not printable for Go. */
            snprintf(tmp, sizeof tmp, "\\u%04x", p[1]);
            buf_add(b, tmp, 6);
            p++;
        } else {
            buf_add(b, (const char *)p, 1);
        }
    }
    buf_add(b, "\"", 1);
}

/* metadata.labels or .annotations as a volume file: key="value" lines, keys sorted, no newline at the end. */
static char *format_map(const json_t *map)
{
    size_t n = json_object_size(map), i = 0;
    AUTO_FREE const char **keys = xcalloc(n ? n : 1, sizeof *keys);
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)map, key, value) keys[i++] = key;
    qsort(keys, n, sizeof *keys, compare_strings);
    struct text_buf out = {0};
    buf_add(&out, "", 0);
    for (i = 0; i < n; i++) {
        if (i)
            buf_add(&out, "\n", 1);
        buf_add(&out, keys[i], strlen(keys[i]));
        buf_add(&out, "=", 1);
        quote_go(&out, json_string_value(json_object_get(map, keys[i])));
    }
    return out.data;
}

static char *map_entry(const json_t *map, const char *path, const char *prefix)
{
    size_t n = strlen(prefix), len = strlen(path);
    AUTO_FREE char *key = xasprintf("%.*s", (int)(len - n - 4), path + n + 2);
    const char *value = json_string_value(json_object_get(map, key));
    return xstrdup(value ? value : "");
}

char *pod_field_value(const struct pea_pod *pod, const struct pea_pod_manifest *m, const char *path)
{
    if (strcmp(path, "metadata.name") == 0)
        return xstrdup(m->name);
    if (strcmp(path, "metadata.namespace") == 0)
        return xstrdup(m->namespace ? m->namespace : "default");
    if (strcmp(path, "metadata.uid") == 0) {
        const char *uid = json_string_value(json_object_get(pod->state, "uid"));
        return xstrdup(uid ? uid : "");
    }
    if (strcmp(path, "metadata.labels") == 0)
        return format_map(m->labels);
    if (strcmp(path, "metadata.annotations") == 0)
        return format_map(m->annotations);
    if (strncmp(path, "metadata.labels[", 16) == 0)
        return map_entry(m->labels, path, "metadata.labels");
    if (strncmp(path, "metadata.annotations[", 21) == 0)
        return map_entry(m->annotations, path, "metadata.annotations");
    if (strcmp(path, "spec.serviceAccountName") == 0)
        return xstrdup(m->service_account_name ? m->service_account_name : "default");
    if (strcmp(path, "spec.nodeName") == 0) {
        /* The kubelet's node name: the host name in lower case. */
        struct utsname u;
        char *name = xstrdup(uname(&u) == 0 ? u.nodename : "");
        for (char *p = name; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        return name;
    }
    /* One address each: the lists (podIPs, hostIPs) are joined with ",", which for one is that one. */
    if (strcmp(path, "status.podIP") == 0 || strcmp(path, "status.podIPs") == 0)
        return pod_address(m);
    if (strcmp(path, "status.hostIP") == 0 || strcmp(path, "status.hostIPs") == 0)
        return node_address();
    return xstrdup(""); /* the parser lets no other path through */
}

/* ---- resources ---- */

static const struct pea_pod_container *container_named(const struct pea_pod_manifest *m, const char *name)
{
    for (size_t i = 0; i < m->n_containers; i++)
        if (strcmp(m->containers[i].name, name) == 0)
            return &m->containers[i];
    for (size_t i = 0; i < m->n_init_containers; i++)
        if (strcmp(m->init_containers[i].name, name) == 0)
            return &m->init_containers[i];
    return NULL;
}

/* The node's allocatable, which the kubelet gives for a limit not set: its CPUs (millicores), its memory, the size
 * of the filesystem holding the pod's data. */
static uint64_t node_allocatable(const struct pea_pod *pod, const char *resource)
{
    if (strstr(resource, "cpu")) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        return (uint64_t)(cpus > 0 ? cpus : 1) * 1000;
    }
    if (strstr(resource, "memory")) {
        struct sysinfo si;
        return sysinfo(&si) == 0 ? (uint64_t)si.totalram * si.mem_unit : 0;
    }
    struct statvfs fs;
    return pod->data_dir && statvfs(pod->data_dir, &fs) == 0 ? (uint64_t)fs.f_blocks * fs.f_frsize : 0;
}

int pod_resource_value(const struct pea_pod *pod, const struct pea_pod_manifest *m,
                       const struct pea_pod_container *c, const struct pea_value_ref *r, char **out,
                       struct pea_error *err)
{
    const struct pea_pod_container *target = r->name ? container_named(m, r->name) : c;
    if (!target)
        return pea_fail(err, 0, "resourceFieldRef: no container \"%s\" in the pod", r->name);
    const struct pea_pod_resources *res = &target->resources;
    bool is_limit = strncmp(r->key, "limits.", 7) == 0;
    bool has_limit = false, has_request = false;
    uint64_t limit = 0, request = 0;
    if (strstr(r->key, ".cpu")) {
        has_limit = res->has_cpu_limit, limit = res->cpu_limit_millis;
        has_request = res->has_cpu_request, request = res->cpu_request_millis;
    } else if (strstr(r->key, ".memory")) {
        has_limit = res->has_memory_limit, limit = res->memory_limit_bytes;
        has_request = res->has_memory_request, request = res->memory_request_bytes;
    }
    uint64_t amount;
    if (is_limit)
        amount = has_limit ? limit : node_allocatable(pod, r->key);
    else
        /* A request not given is the limit when that is given (the API server's defaulting), else 0. */
        amount = has_request ? request : has_limit ? limit : 0;
    /* Rounded up, as the kubelet does (math.Ceil of the quotient). */
    uint64_t divisor = r->divisor ? r->divisor : 1;
    *out = xasprintf("%llu", (unsigned long long)(amount / divisor + (amount % divisor != 0)));
    return 0;
}

/* ---- the environment ---- */

static int value_of(const struct pea_pod *pod, const struct pea_pod_container *c, const struct pea_pod_env *e,
                    const json_t *vars, char **out, struct pea_error *err)
{
    const struct pea_pod_manifest *m = pod->manifest;
    const struct pea_value_ref *r = &e->from;
    switch (r->source) {
    case PEA_VALUE_LITERAL:
        *out = pod_env_expand(e->value ? e->value : "", vars);
        return 0;
    case PEA_VALUE_FIELD:
        *out = pod_field_value(pod, m, r->key);
        return 0;
    case PEA_VALUE_RESOURCE:
        return pod_resource_value(pod, m, c, r, out, err);
    case PEA_VALUE_CONFIG_MAP_KEY:
    case PEA_VALUE_SECRET_KEY:
        break;
    }
    bool is_secret = r->source == PEA_VALUE_SECRET_KEY;
    const struct pea_config_entry *entry = manifest_config_entry(manifest_config_find(m, r->name, is_secret), r->key);
    if (entry && (is_secret || !entry->is_binary)) {
        if (memchr(entry->value, '\0', entry->len))
            return pea_fail(err, 0, "env %s: the value holds a NUL byte", e->name);
        *out = xstrdup(entry->value);
        return 0;
    }
    *out = NULL;
    if (r->is_optional)
        return 0;
    return pea_fail(err, 0, "env %s: key \"%s\" not found in %s \"%s\"", e->name, r->key,
                    is_secret ? "Secret" : "ConfigMap", r->name);
}

/* Of several entries of one name the last wins, at its own place: the list reads as if each entry replaced the
 * earlier ones of its name and went to the end. */
struct env_list {
    json_t *vars;  /* name → value */
    json_t *order; /* every name set, in order */
    json_t *last;  /* name → its last index in order */
};

/* An environment string is text up to its NUL, so a value with a NUL byte cannot be one (execve would cut it), and
 * pea's OCI configs are JSON, which holds UTF-8 only: refused, naming the variable but never showing the value. */
static int env_set(struct env_list *l, const char *name, const char *value, size_t len, struct pea_error *err)
{
    json_t *j = memchr(value, '\0', len) ? NULL : json_stringn(value, len);
    if (!j)
        return pea_fail(err, 0, "env %s: the value %s", name,
                        memchr(value, '\0', len) ? "holds a NUL byte" : "is not valid UTF-8");
    json_object_set_new(l->last, name, json_integer((json_int_t)json_array_size(l->order)));
    json_array_append_new(l->order, json_string(name));
    json_object_set_new(l->vars, name, j);
    return 0;
}

int pod_env_build(const struct pea_pod *pod, const struct pea_pod_container *c, const char *default_path,
                  const char *hostname, json_t **env_out, json_t **vars_out, struct pea_error *err)
{
    const struct pea_pod_manifest *m = pod->manifest;
    AUTO_JSON json_t *vars = json_object(), *order = json_array(), *last = json_object();
    struct env_list l = {vars, order, last};
    for (size_t i = 0; i < c->n_env_from; i++) {
        const struct pea_pod_env_from *f = &c->env_from[i];
        const struct pea_config_object *o = manifest_config_find(m, f->name, f->is_secret);
        if (!o && !f->is_optional)
            return pea_fail(err, 0, "envFrom: %s \"%s\" not found", f->is_secret ? "Secret" : "ConfigMap", f->name);
        for (size_t k = 0; o && k < o->n_entries; k++) {
            /* envFrom reads a ConfigMap's data, not its binaryData. */
            if (!f->is_secret && o->entries[k].is_binary)
                continue;
            AUTO_FREE char *name = xasprintf("%s%s", f->prefix ? f->prefix : "", o->entries[k].key);
            if (env_set(&l, name, o->entries[k].value, o->entries[k].len, err) < 0)
                return -1;
        }
    }
    for (size_t i = 0; i < c->n_env; i++) {
        AUTO_FREE char *value = NULL;
        if (value_of(pod, c, &c->env[i], vars, &value, err) < 0)
            return -1;
        if (value && env_set(&l, c->env[i].name, value, strlen(value), err) < 0)
            return -1;
    }
    /* PATH and HOSTNAME are the runtime's defaults (the image's and the pod's), not the kubelet's: a $(PATH) is
     * not expanded from them, and the container's own env overrides them. */
    json_t *env = json_array();
    if (!json_object_get(vars, "PATH"))
        json_array_append_new(env, json_sprintf("PATH=%s", default_path));
    if (!json_object_get(vars, "HOSTNAME"))
        json_array_append_new(env, json_sprintf("HOSTNAME=%s", hostname));
    size_t i;
    json_t *name;
    json_array_foreach(order, i, name) {
        if (json_integer_value(json_object_get(last, json_string_value(name))) != (json_int_t)i)
            continue;
        const json_t *value = json_object_get(vars, json_string_value(name));
        AUTO_FREE char *entry = xasprintf("%s=%s", json_string_value(name), json_string_value(value));
        json_array_append_new(env, json_string(entry));
    }
    *env_out = env;
    *vars_out = take_ptr(&vars);
    return 0;
}
