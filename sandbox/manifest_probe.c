/* A container's probes (livenessProbe, readinessProbe, startupProbe) and lifecycle (postStart, preStop,
 * stopSignal), validated as the Kubernetes API server does, with the kubelet's defaults filled in. */
#include <signal.h>
#include <string.h>

#include "manifest_errors.h"
#include "manifest_internal.h"
#include "pea/signals.h"
#include "pea/util.h"

static void handler_free(struct pea_pod_handler *h)
{
    strv_free(h->command);
    free(h->host);
    free(h->path);
    for (size_t i = 0; i < h->n_headers; i++) {
        free(h->headers[i].name);
        free(h->headers[i].value);
    }
    free(h->headers);
    free(h->grpc_service);
}

void manifest_probes_free(struct pea_pod_container *c)
{
    handler_free(&c->liveness_probe.handler);
    handler_free(&c->readiness_probe.handler);
    handler_free(&c->startup_probe.handler);
    handler_free(&c->post_start);
    handler_free(&c->pre_stop);
}

/* Kubernetes' IANA_SVC_NAME: at most 15 of [a-z0-9-], at least one letter, no leading, trailing or double '-'. */
static bool is_port_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 15 || s[0] == '-' || s[n - 1] == '-' || strstr(s, "--"))
        return false;
    return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-") == n && strpbrk(s, "abcdefghijklmnopqrstuvwxyz");
}

/* port: a number, or the name of one of the container's ports (resolved here: a name that matches none would fail
 * every probe for the container's whole life, so it is refused now). */
static int parse_port(json_t *obj, const char *path, json_t *container, bool allow_name, int *out,
                      struct pea_error *err)
{
    json_t *port = json_object_get(obj, "port");
    if (!port || json_is_null(port))
        return field_fail(err, path, "port", "missing");
    if (json_is_integer(port)) {
        long long n = 0;
        if (field_get_int(obj, path, "port", 1, 65535, NULL, &n, err) < 0)
            return -1;
        *out = (int)n;
        return 0;
    }
    if (!allow_name || !json_is_string(port))
        return field_fail(err, path, "port", allow_name ? "must be a number or a port name" : "must be a number");
    const char *name = json_string_value(port);
    if (!is_port_name(name))
        return field_fail(err, path, "port", "must be a number or a port name (at most 15 of [a-z0-9-], with a "
                          "letter), not \"%s\"", name);
    json_t *ports = json_object_get(container, "ports"), *p;
    size_t i;
    json_array_foreach(ports, i, p) {
        const char *pname = json_string_value(json_object_get(p, "name"));
        json_t *number = json_object_get(p, "containerPort");
        if (pname && strcmp(pname, name) == 0 && json_is_integer(number)) {
            *out = (int)json_integer_value(number);
            return 0;
        }
    }
    return field_fail(err, path, "port", "no port named \"%s\" in the container's ports", name);
}

/* keep: the error kept by errors (the parse goes on: 0), or the first that ends it (-1). */
#define keep(r) manifest_keep_error((r), errors, err)

static int parse_http_header(json_t *j, const char *item, struct pea_pod_http_header *header,
                             struct manifest_collector *errors, struct pea_error *err)
{
    static const char *const header_fields[] = {"name", "value", NULL};
    if (!json_is_object(j))
        return keep(pea_fail(err, 0, "%s: must be an object", item));
    if (manifest_check_known_each(j, item, header_fields, errors, err) < 0)
        return -1;
    int name = field_get_string(j, item, "name", true, &header->name, err);
    if (keep(name) < 0)
        return -1;
    int value = field_get_string(j, item, "value", true, &header->value, err);
    if (keep(value) < 0)
        return -1;
    /* An HTTP token, as Kubernetes checks it; a value without line breaks, so that no header can smuggle another. */
    const char *text = header->name;
    if (name == 0 && (!text[0] || strspn(text, "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
                                               "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != strlen(text)) &&
        keep(field_fail(err, item, "name", "must be an HTTP header name, not \"%s\"", text)) < 0)
        return -1;
    if (value == 0 && strpbrk(header->value, "\r\n") && keep(field_fail(err, item, "value", "must not contain line breaks")) < 0)
        return -1;
    return 0;
}

static int parse_http_get(json_t *http, const char *path, json_t *container, struct pea_pod_handler *h,
                          struct manifest_collector *errors, struct pea_error *err)
{
    static const char *const fields[] = {"path", "port", "host", "scheme", "httpHeaders", NULL};
    static const char *const schemes[] = {"HTTP", "HTTPS", NULL};
    int scheme = 0;
    json_t *headers = NULL;
    if (manifest_check_known_each(http, path, fields, errors, err) < 0 ||
        keep(parse_port(http, path, container, true, &h->port, err)) < 0)
        return -1;
    int url_path = field_get_string(http, path, "path", false, &h->path, err);
    if (keep(url_path) < 0)
        return -1;
    int host = field_get_string(http, path, "host", false, &h->host, err);
    if (keep(host) < 0 || keep(field_get_enum(http, path, "scheme", schemes, &scheme, err)) < 0 ||
        keep(field_get_array(http, path, "httpHeaders", &headers, err)) < 0)
        return -1;
    h->is_https = scheme == 1;
    if (!h->path || !h->path[0]) {
        free(h->path);
        h->path = xstrdup("/");
    }
    /* It goes into the request line as it is: no white space or control characters that would end it. */
    for (const char *p = h->path; url_path == 0 && *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f) {
            if (keep(field_fail(err, path, "path", "must not contain white space or control characters")) < 0)
                return -1;
            break;
        }
    if (host == 0 && h->host && (!h->host[0] || strpbrk(h->host, " \t\r\n/")) &&
        keep(field_fail(err, path, "host", "must be an address or a host name, not \"%s\"", h->host)) < 0)
        return -1;
    h->n_headers = json_array_size(headers);
    h->headers = xcalloc(h->n_headers + 1, sizeof *h->headers);
    for (size_t i = 0; i < h->n_headers; i++) {
        char item[FIELD_PATH_MAX + 48];
        snprintf(item, sizeof item, "%s.httpHeaders[%zu]", path, i);
        if (parse_http_header(json_array_get(headers, i), item, &h->headers[i], errors, err) < 0)
            return -1;
    }
    return 0;
}

/* The fields of the handler of type h->type, found at sub. */
static int parse_handler_fields(json_t *found, const char *sub, json_t *container, struct pea_pod_handler *h,
                                struct manifest_collector *errors, struct pea_error *err)
{
    switch (h->type) {
    case PEA_HANDLER_EXEC: {
        static const char *const fields[] = {"command", NULL};
        if (manifest_check_known_each(found, sub, fields, errors, err) < 0)
            return -1;
        int r = field_get_strv(found, sub, "command", &h->command, err);
        if (r == 0 && (!h->command || !h->command[0]))
            r = field_fail(err, sub, "command", "must hold at least one element");
        return keep(r);
    }
    case PEA_HANDLER_HTTP_GET: return parse_http_get(found, sub, container, h, errors, err);
    case PEA_HANDLER_TCP_SOCKET: {
        static const char *const fields[] = {"port", "host", NULL};
        if (manifest_check_known_each(found, sub, fields, errors, err) < 0 ||
            keep(parse_port(found, sub, container, true, &h->port, err)) < 0)
            return -1;
        int r = field_get_string(found, sub, "host", false, &h->host, err);
        if (r == 0 && h->host && (!h->host[0] || strpbrk(h->host, " \t\r\n/")))
            r = field_fail(err, sub, "host", "must be an address or a host name, not \"%s\"", h->host);
        return keep(r);
    }
    case PEA_HANDLER_GRPC: {
        static const char *const fields[] = {"port", "service", NULL};
        if (manifest_check_known_each(found, sub, fields, errors, err) < 0 ||
            keep(parse_port(found, sub, container, false, &h->port, err)) < 0)
            return -1;
        int r = field_get_string(found, sub, "service", false, &h->grpc_service, err);
        if (!h->grpc_service)
            h->grpc_service = xstrdup("");
        /* Its length goes into one byte of the request (a protobuf varint below 128). */
        if (r == 0 && strlen(h->grpc_service) > 127)
            r = field_fail(err, sub, "service", "longer than 127 bytes");
        return keep(r);
    }
    case PEA_HANDLER_SLEEP: {
        static const char *const fields[] = {"seconds", NULL};
        bool has_seconds = false;
        if (manifest_check_known_each(found, sub, fields, errors, err) < 0)
            return -1;
        int r = field_get_int(found, sub, "seconds", 0, INT32_MAX, &has_seconds, &h->sleep_seconds, err);
        if (r == 0 && !has_seconds)
            r = field_fail(err, sub, "seconds", "missing");
        return keep(r);
    }
    case PEA_HANDLER_NONE: break;
    }
    return 0;
}

/* One handler: exactly one of the kinds allowed (allowed[type] true). */
static int parse_handler(json_t *obj, const char *path, json_t *container, const bool *allowed,
                         struct pea_pod_handler *h, struct manifest_collector *errors, struct pea_error *err)
{
    static const char *const kinds[] = {NULL, "exec", "httpGet", "tcpSocket", "grpc", "sleep"};
    json_t *found = NULL;
    bool is_any_unreadable = false;
    for (int t = PEA_HANDLER_EXEC; t <= PEA_HANDLER_SLEEP; t++) {
        json_t *j;
        if (field_get_object(obj, path, kinds[t], false, &j, err) < 0) {
            if (keep(-1) < 0)
                return -1;
            is_any_unreadable = true;
            continue;
        }
        if (!j)
            continue;
        if (found)
            return keep(pea_fail(err, 0, "%s: may not set more than one handler (%s and %s)", path, kinds[h->type],
                                 kinds[t]));
        found = j;
        h->type = (enum pea_pod_handler_type)t;
    }
    if (!found) {
        if (is_any_unreadable)
            return 0;
        char list[128] = "";
        for (int t = PEA_HANDLER_EXEC; t <= PEA_HANDLER_SLEEP; t++)
            if (allowed[t])
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", list[0] ? ", " : "", kinds[t]);
        return keep(pea_fail(err, 0, "%s: must set one handler (%s)", path, list));
    }
    char sub[FIELD_PATH_MAX];
    field_path(sub, sizeof sub, path, kinds[h->type]);
    if (!allowed[h->type])
        return keep(pea_fail(err, 0, "%s: not supported here", sub));
    return parse_handler_fields(found, sub, container, h, errors, err);
}

enum probe_kind { PROBE_LIVENESS, PROBE_READINESS, PROBE_STARTUP };

static int parse_probe(json_t *container, const char *parent, const char *key, enum probe_kind kind,
                       struct pea_pod_probe *p, struct manifest_collector *errors, struct pea_error *err)
{
    static const char *const fields[] = {
        "exec", "httpGet", "tcpSocket", "grpc", "initialDelaySeconds", "periodSeconds", "timeoutSeconds",
        "successThreshold", "failureThreshold", "terminationGracePeriodSeconds", NULL};
    static const bool allowed[PEA_HANDLER_SLEEP + 1] = {[PEA_HANDLER_EXEC] = true, [PEA_HANDLER_HTTP_GET] = true,
                                   [PEA_HANDLER_TCP_SOCKET] = true, [PEA_HANDLER_GRPC] = true};
    json_t *probe;
    char path[FIELD_PATH_MAX];
    field_path(path, sizeof path, parent, key);
    p->termination_grace_seconds = -1;
    if (field_get_object(container, parent, key, false, &probe, err) < 0)
        return keep(-1);
    if (!probe)
        return 0;
    long long delay = 0, period = 0, timeout = 0, success = 0, failure = 0, grace = -1;
    bool has_grace = false;
    if (manifest_check_known_each(probe, path, fields, errors, err) < 0 ||
        parse_handler(probe, path, container, allowed, &p->handler, errors, err) < 0 ||
        keep(field_get_int(probe, path, "initialDelaySeconds", 0, INT32_MAX, NULL, &delay, err)) < 0 ||
        keep(field_get_int(probe, path, "periodSeconds", 0, INT32_MAX, NULL, &period, err)) < 0 ||
        keep(field_get_int(probe, path, "timeoutSeconds", 0, INT32_MAX, NULL, &timeout, err)) < 0)
        return -1;
    int success_read = field_get_int(probe, path, "successThreshold", 0, INT32_MAX, NULL, &success, err);
    if (keep(success_read) < 0 ||
        keep(field_get_int(probe, path, "failureThreshold", 0, INT32_MAX, NULL, &failure, err)) < 0)
        return -1;
    int grace_read = field_get_int(probe, path, "terminationGracePeriodSeconds", 1, INT32_MAX, &has_grace, &grace, err);
    if (keep(grace_read) < 0)
        return -1;
    /* The API server's defaults: an unset or zero field takes them. */
    p->initial_delay_seconds = (int)delay;
    p->period_seconds = period ? (int)period : 10;
    p->timeout_seconds = timeout ? (int)timeout : 1;
    p->success_threshold = success ? (int)success : 1;
    p->failure_threshold = failure ? (int)failure : 3;
    if (success_read == 0 && kind != PROBE_READINESS && p->success_threshold != 1 &&
        keep(field_fail(err, path, "successThreshold", "must be 1 for liveness and startup probes")) < 0)
        return -1;
    if (grace_read == 0 && kind == PROBE_READINESS && has_grace &&
        keep(field_fail(err, path, "terminationGracePeriodSeconds", "must not be set for readiness probes")) < 0)
        return -1;
    p->termination_grace_seconds = has_grace ? grace : -1;
    return 0;
}

static int parse_lifecycle(json_t *container, const char *parent, struct pea_pod_container *c,
                           struct manifest_collector *errors, struct pea_error *err)
{
    static const char *const fields[] = {"postStart", "preStop", "stopSignal", NULL};
    /* tcpSocket is in the API for old manifests only: the kubelet runs nothing for it. */
    static const bool allowed[PEA_HANDLER_SLEEP + 1] = {[PEA_HANDLER_EXEC] = true, [PEA_HANDLER_HTTP_GET] = true,
                                   [PEA_HANDLER_SLEEP] = true};
    json_t *lifecycle, *hook;
    char path[FIELD_PATH_MAX], hook_path[FIELD_PATH_MAX];
    field_path(path, sizeof path, parent, "lifecycle");
    c->stop_signal = SIGTERM;
    if (field_get_object(container, parent, "lifecycle", false, &lifecycle, err) < 0)
        return keep(-1);
    if (!lifecycle)
        return 0;
    if (manifest_check_known_each(lifecycle, path, fields, errors, err) < 0)
        return -1;
    static const char *const hooks[] = {"postStart", "preStop"};
    struct pea_pod_handler *handlers[] = {&c->post_start, &c->pre_stop};
    for (size_t i = 0; i < ARRAY_SIZE(hooks); i++) {
        if (field_get_object(lifecycle, path, hooks[i], false, &hook, err) < 0) {
            if (keep(-1) < 0)
                return -1;
            continue;
        }
        if (!hook)
            continue;
        field_path(hook_path, sizeof hook_path, path, hooks[i]);
        static const char *const hook_fields[] = {"exec", "httpGet", "tcpSocket", "sleep", NULL};
        if (manifest_check_known_each(hook, hook_path, hook_fields, errors, err) < 0 ||
            parse_handler(hook, hook_path, container, allowed, handlers[i], errors, err) < 0)
            return -1;
    }
    AUTO_FREE char *stop_signal = NULL;
    if (field_get_string(lifecycle, path, "stopSignal", false, &stop_signal, err) < 0)
        return keep(-1);
    if (stop_signal) {
        /* Kubernetes spells them SIGTERM, SIGRTMIN+1, ...: the SIG prefix is required. */
        int sig = strncmp(stop_signal, "SIG", 3) == 0 ? signal_parse(stop_signal) : -1;
        if (sig <= 0)
            return keep(field_fail(err, path, "stopSignal", "must be a signal name like SIGTERM or SIGUSR1, not \"%s\"",
                                   stop_signal));
        c->stop_signal = sig;
        c->has_stop_signal = true;
    }
    return 0;
}

int manifest_parse_probes(json_t *obj, const char *path, bool is_init, struct pea_pod_container *c,
                          struct manifest_collector *errors, struct pea_error *err)
{
    static const char *const keys[] = {"livenessProbe", "readinessProbe", "startupProbe", "lifecycle"};
    if (is_init && !c->is_sidecar) {
        bool has_any = false;
        for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
            json_t *v = json_object_get(obj, keys[i]);
            if (v && !json_is_null(v)) {
                has_any = true;
                if (keep(field_fail(err, path, keys[i],
                                    "may not be set for init containers without restartPolicy: Always")) < 0)
                    return -1;
            }
        }
        /* Their fields would be read for nothing. */
        if (has_any)
            return 0;
    }
    if (parse_probe(obj, path, "livenessProbe", PROBE_LIVENESS, &c->liveness_probe, errors, err) < 0 ||
        parse_probe(obj, path, "readinessProbe", PROBE_READINESS, &c->readiness_probe, errors, err) < 0 ||
        parse_probe(obj, path, "startupProbe", PROBE_STARTUP, &c->startup_probe, errors, err) < 0 ||
        parse_lifecycle(obj, path, c, errors, err) < 0)
        return -1;
    return 0;
}

#undef keep

/* A sleep hook may not outlast the grace period it runs in (Kubernetes' validateSleepAction). */
static int check_sleep(const struct pea_pod_handler *h, const char *list, size_t i, const char *hook,
                       long long grace, struct pea_error *err)
{
    if (h->type == PEA_HANDLER_SLEEP && h->sleep_seconds > grace)
        return pea_fail(err, 0, "spec.%s[%zu].lifecycle.%s.sleep.seconds: must not exceed "
                        "terminationGracePeriodSeconds (%lld)", list, i, hook, grace);
    return 0;
}

int manifest_check_lifecycle(const struct pea_pod_manifest *m, struct pea_error *err)
{
    for (size_t i = 0; i < m->n_init_containers; i++)
        if (check_sleep(&m->init_containers[i].post_start, "initContainers", i, "postStart",
                        m->termination_grace_seconds, err) < 0 ||
            check_sleep(&m->init_containers[i].pre_stop, "initContainers", i, "preStop",
                        m->termination_grace_seconds, err) < 0)
            return -1;
    for (size_t i = 0; i < m->n_containers; i++)
        if (check_sleep(&m->containers[i].post_start, "containers", i, "postStart", m->termination_grace_seconds,
                        err) < 0 ||
            check_sleep(&m->containers[i].pre_stop, "containers", i, "preStop", m->termination_grace_seconds,
                        err) < 0)
            return -1;
    return 0;
}
