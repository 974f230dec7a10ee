/* The control protocol: request validation, message builders and the seqpacket transport with SCM_RIGHTS. */
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>

#include "pea/signals.h"
#include "pea/util.h"
#include "proto.h"

/* ---- requests ---- */

enum arg_kind {
    ARG_STRING,    /* non-empty string */
    ARG_PATH,      /* absolute path */
    ARG_BOOL,
    ARG_COUNT,     /* non-negative integer */
    ARG_TIMEOUT,   /* non-negative integer of seconds, also sets has_timeout */
    ARG_SIGNAL,    /* name or number */
    ARG_ARGV,      /* array of strings, at least one */
    ARG_ENV,       /* array of KEY=VALUE strings */
    ARG_WAIT_FOR,  /* "exit" or "running" */
};

struct arg_rule {
    const char *name;
    enum arg_kind kind;
    bool is_required;
    size_t offset; /* of the field in struct proto_request */
};

#define FIELD(f) offsetof(struct proto_request, f)
#define CONTAINER {"container", ARG_STRING, true, FIELD(container)}

static const struct op_rule {
    const char *name;
    struct arg_rule args[7]; /* ended by a NULL name */
} op_rules[] = {
    [PROTO_OP_STATUS] = {"status", {{0}}},
    [PROTO_OP_LIST] = {"list", {{0}}},
    [PROTO_OP_START] = {"start", {CONTAINER}},
    [PROTO_OP_STOP] = {"stop", {CONTAINER, {"timeout", ARG_TIMEOUT, false, FIELD(timeout_seconds)}}},
    [PROTO_OP_KILL] = {"kill", {CONTAINER, {"signal", ARG_SIGNAL, true, FIELD(signal)}}},
    [PROTO_OP_RESTART] = {"restart", {CONTAINER}},
    [PROTO_OP_EXEC] = {"exec",
                       {CONTAINER,
                        {"args", ARG_ARGV, true, FIELD(args)},
                        {"env", ARG_ENV, false, FIELD(env)},
                        {"cwd", ARG_PATH, false, FIELD(cwd)},
                        {"tty", ARG_BOOL, false, FIELD(tty)},
                        {"user", ARG_STRING, false, FIELD(user)}}},
    [PROTO_OP_ATTACH] = {"attach", {CONTAINER, {"stdin", ARG_BOOL, false, FIELD(stdin_wanted)}}},
    [PROTO_OP_LOGS] = {"logs",
                       {CONTAINER,
                        {"follow", ARG_BOOL, false, FIELD(follow)},
                        {"tail", ARG_COUNT, false, FIELD(tail)},
                        {"previous", ARG_BOOL, false, FIELD(previous)}}},
    [PROTO_OP_WAIT] = {"wait",
                       {{"container", ARG_STRING, false, FIELD(container)},
                        {"for", ARG_WAIT_FOR, false, FIELD(wait_for)}}},
    [PROTO_OP_APPLY] = {"apply",
                        {{"noWait", ARG_BOOL, false, FIELD(no_wait)}}},
    [PROTO_OP_EVENTS] = {"events", {{0}}},
    [PROTO_OP_SHUTDOWN] = {"shutdown", {{"timeout", ARG_TIMEOUT, false, FIELD(timeout_seconds)}}},
};

static int arg_fail(struct pea_error *err, const struct op_rule *op, const char *arg, const char *what)
{
    return pea_fail(err, 0, "%s.%s: %s", op->name, arg, what);
}

static bool is_count(json_t *v) { return json_is_integer(v) && json_integer_value(v) >= 0; }

static bool is_nonempty_string(json_t *v) { return json_is_string(v) && json_string_length(v) > 0; }

/* A NULL-terminated copy of an array of strings; env entries must read KEY=VALUE. */
static int parse_strv(json_t *v, const struct op_rule *op, const char *arg, bool is_env, char ***out,
                      struct pea_error *err)
{
    if (!json_is_array(v))
        return arg_fail(err, op, arg, "must be an array of strings");
    if (!is_env && json_array_size(v) == 0)
        return arg_fail(err, op, arg, "must hold at least one element");
    AUTO_STRV char **strv = xcalloc(json_array_size(v) + 1, sizeof *strv);
    size_t i;
    json_t *item;
    json_array_foreach(v, i, item) {
        const char *s = json_string_value(item);
        if (!s)
            return pea_fail(err, 0, "%s.%s[%zu]: must be a string", op->name, arg, i);
        if (is_env && (s[0] == '=' || !strchr(s, '=')))
            return pea_fail(err, 0, "%s.%s[%zu]: must be KEY=VALUE", op->name, arg, i);
        strv[i] = xstrdup(s);
    }
    *out = take_ptr(&strv);
    return 0;
}

static int parse_arg(json_t *v, const struct op_rule *op, const struct arg_rule *rule, struct proto_request *req,
                     struct pea_error *err)
{
    void *field = (char *)req + rule->offset;
    switch (rule->kind) {
    case ARG_STRING:
        if (!is_nonempty_string(v))
            return arg_fail(err, op, rule->name, "must be a non-empty string");
        *(char **)field = xstrdup(json_string_value(v));
        break;
    case ARG_PATH:
        if (!json_is_string(v) || json_string_value(v)[0] != '/')
            return arg_fail(err, op, rule->name, "must be an absolute path");
        *(char **)field = xstrdup(json_string_value(v));
        break;
    case ARG_BOOL:
        if (!json_is_boolean(v))
            return arg_fail(err, op, rule->name, "must be a boolean");
        *(bool *)field = json_is_true(v);
        break;
    case ARG_COUNT:
    case ARG_TIMEOUT:
        if (!is_count(v))
            return arg_fail(err, op, rule->name, "must be a non-negative integer");
        *(uint64_t *)field = (uint64_t)json_integer_value(v);
        req->has_timeout |= rule->kind == ARG_TIMEOUT;
        break;
    case ARG_SIGNAL: {
        int sig = -1;
        if (json_is_string(v))
            sig = signal_parse(json_string_value(v));
        else if (json_is_integer(v) && json_integer_value(v) > 0 && json_integer_value(v) <= SIGRTMAX)
            sig = (int)json_integer_value(v);
        if (sig < 0)
            return arg_fail(err, op, rule->name, "must be a signal name or number");
        *(int *)field = sig;
        break;
    }
    case ARG_ARGV:
    case ARG_ENV:
        return parse_strv(v, op, rule->name, rule->kind == ARG_ENV, (char ***)field, err);
    case ARG_WAIT_FOR: {
        const char *s = json_string_value(v);
        if (s && strcmp(s, "exit") == 0)
            *(enum proto_wait_for *)field = PROTO_WAIT_EXIT;
        else if (s && strcmp(s, "running") == 0)
            *(enum proto_wait_for *)field = PROTO_WAIT_RUNNING;
        else if (s && strcmp(s, "started") == 0)
            *(enum proto_wait_for *)field = PROTO_WAIT_STARTED;
        else
            return arg_fail(err, op, rule->name, "must be \"exit\", \"running\" or \"started\"");
        break;
    }
    }
    return 0;
}

static const struct arg_rule *find_arg(const struct op_rule *op, const char *name)
{
    for (const struct arg_rule *rule = op->args; rule->name; rule++)
        if (strcmp(rule->name, name) == 0)
            return rule;
    return NULL;
}

static const struct op_rule *find_op(const char *name, enum proto_op *op)
{
    for (size_t i = 0; i < ARRAY_SIZE(op_rules); i++)
        if (strcmp(op_rules[i].name, name) == 0) {
            *op = (enum proto_op)i;
            return &op_rules[i];
        }
    return NULL;
}

/* The envelope first, id before everything, so that any later error can still be answered to that id. */
static int parse_envelope(json_t *msg, struct proto_request *req, const struct op_rule **op, struct pea_error *err)
{
    json_t *id = json_object_get(msg, "id");
    if (!id)
        return pea_fail(err, 0, "id: missing");
    if (!is_count(id))
        return pea_fail(err, 0, "id: must be a non-negative integer");
    req->id = (uint64_t)json_integer_value(id);
    req->has_id = true;

    json_t *v = json_object_get(msg, "v");
    if (!v)
        return pea_fail(err, 0, "v: missing");
    if (!json_is_integer(v))
        return pea_fail(err, 0, "v: must be an integer");
    if (json_integer_value(v) != PROTO_VERSION)
        return pea_fail(err, 0, "unsupported protocol version %" JSON_INTEGER_FORMAT " (this shim speaks %d)",
                        json_integer_value(v), PROTO_VERSION);

    json_t *name = json_object_get(msg, "op");
    if (!name)
        return pea_fail(err, 0, "op: missing");
    if (!json_is_string(name))
        return pea_fail(err, 0, "op: must be a string");
    *op = find_op(json_string_value(name), &req->op);
    if (!*op)
        return pea_fail(err, 0, "op: unknown operation \"%.64s\"", json_string_value(name));
    return 0;
}

static int parse_request_object(json_t *msg, struct proto_request *req, struct pea_error *err)
{
    if (!json_is_object(msg))
        return pea_fail(err, 0, "request: must be a JSON object");
    const struct op_rule *op;
    if (parse_envelope(msg, req, &op, err) < 0)
        return -1;
    const char *key;
    json_t *value;
    json_object_foreach(msg, key, value) {
        if (strcmp(key, "v") == 0 || strcmp(key, "id") == 0 || strcmp(key, "op") == 0)
            continue;
        const struct arg_rule *rule = find_arg(op, key);
        if (!rule)
            return pea_fail(err, 0, "%s.%.64s: unknown argument", op->name, key);
        if (parse_arg(value, op, rule, req, err) < 0)
            return -1;
    }
    for (const struct arg_rule *rule = op->args; rule->name; rule++)
        if (rule->is_required && !json_object_get(msg, rule->name))
            return arg_fail(err, op, rule->name, "missing");
    return 0;
}

int proto_request_from_json(json_t *msg, struct proto_request *req, struct pea_error *err)
{
    memset(req, 0, sizeof *req);
    if (parse_request_object(msg, req, err) == 0)
        return 0;
    /* Keep only what the error reply needs. */
    bool has_id = req->has_id;
    uint64_t id = req->id;
    proto_request_clear(req);
    req->has_id = has_id;
    req->id = id;
    return -1;
}

int proto_parse_request(const char *buf, size_t len, struct proto_request *req, struct pea_error *err)
{
    memset(req, 0, sizeof *req);
    if (len > PROTO_MAX_MESSAGE)
        return pea_fail(err, 0, "request: %zu bytes exceed the limit of %d", len, PROTO_MAX_MESSAGE);
    json_error_t jerr;
    AUTO_JSON json_t *msg = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!msg)
        return pea_fail(err, 0, "request: invalid JSON at byte %d: %s", jerr.position, jerr.text);
    return proto_request_from_json(msg, req, err);
}

void proto_request_clear(struct proto_request *req)
{
    free(req->container);
    strv_free(req->args);
    strv_free(req->env);
    free(req->cwd);
    free(req->user);
    memset(req, 0, sizeof *req);
}

/* ---- builders ---- */

static json_t *envelope(uint64_t id)
{
    json_t *msg = json_object();
    json_object_set_new(msg, "v", json_integer(PROTO_VERSION));
    json_object_set_new(msg, "id", json_integer((json_int_t)id));
    return msg;
}

json_t *proto_request_new(uint64_t id, const char *op)
{
    json_t *msg = envelope(id);
    json_object_set_new(msg, "op", json_string(op));
    return msg;
}

json_t *proto_reply_ok(uint64_t id, json_t *result)
{
    json_t *msg = envelope(id);
    json_object_set_new(msg, "ok", json_true());
    json_object_set_new(msg, "result", result ? result : json_null());
    return msg;
}

json_t *proto_reply_error(uint64_t id, const char *message)
{
    AUTO_FREE char *line = xstrdup(message);
    for (char *p = line; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    json_t *text = json_string(line);
    if (!text) {
        /* Not UTF-8 (a file name, say): keep the ASCII, mark the rest. */
        for (char *p = line; *p; p++)
            if ((unsigned char)*p >= 0x80)
                *p = '?';
        text = json_string(line);
    }
    json_t *msg = envelope(id);
    json_object_set_new(msg, "ok", json_false());
    json_object_set_new(msg, "error", text);
    return msg;
}

json_t *proto_event(uint64_t id, json_t *event)
{
    json_t *msg = envelope(id);
    json_object_set_new(msg, "event", event ? event : json_null());
    return msg;
}

json_t *proto_end(uint64_t id)
{
    json_t *msg = envelope(id);
    json_object_set_new(msg, "end", json_true());
    return msg;
}

/* ---- transport ---- */

union fd_control {
    char buf[CMSG_SPACE(sizeof(int) * PROTO_MAX_FDS)];
    struct cmsghdr align;
};

int proto_send(int fd, json_t *msg, const int *fds, size_t n_fds, struct pea_error *err)
{
    if (n_fds > PROTO_MAX_FDS)
        return pea_fail(err, 0, "send message: %zu descriptors exceed the limit of %d", n_fds, PROTO_MAX_FDS);
    AUTO_FREE char *text = json_dumps(msg, JSON_COMPACT);
    if (!text)
        return pea_fail(err, 0, "send message: cannot encode it as JSON");
    size_t len = strlen(text);
    if (len > PROTO_MAX_MESSAGE)
        return pea_fail(err, 0, "send message: %zu bytes exceed the limit of %d", len, PROTO_MAX_MESSAGE);

    struct iovec iov = {.iov_base = text, .iov_len = len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    union fd_control control;
    if (n_fds > 0) {
        memset(&control, 0, sizeof control);
        mh.msg_control = control.buf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
        struct cmsghdr *cmsg = CMSG_FIRSTHDR(&mh);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
        memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * n_fds);
    }
    ssize_t n;
    do
        n = sendmsg(fd, &mh, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return pea_fail(err, errno, "send message");
    if ((size_t)n != len)
        return pea_fail(err, 0, "send message: %zd of %zu bytes sent", n, len);
    return 0;
}

/* Descriptors that came with a datagram: closed unless handed out. */
struct received_fds {
    int fd[PROTO_MAX_FDS];
    size_t n;
};

static void received_fds_close(struct received_fds *r)
{
    while (r->n > 0)
        close(r->fd[--r->n]);
}

static void collect_fds(struct msghdr *mh, struct received_fds *out)
{
    for (struct cmsghdr *cmsg = CMSG_FIRSTHDR(mh); cmsg; cmsg = CMSG_NXTHDR(mh, cmsg)) {
        if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS)
            continue;
        size_t count = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count && out->n < PROTO_MAX_FDS; i++)
            memcpy(&out->fd[out->n++], CMSG_DATA(cmsg) + i * sizeof(int), sizeof(int));
    }
}

int proto_recv(int fd, json_t **msg, int *fds, size_t max_fds, size_t *n_fds, struct pea_error *err)
{
    *msg = NULL;
    *n_fds = 0;
    /* One byte more than the limit, so that a datagram over it shows even where MSG_TRUNC would not. */
    AUTO_FREE char *buf = xmalloc(PROTO_MAX_MESSAGE + 1);
    struct iovec iov = {.iov_base = buf, .iov_len = PROTO_MAX_MESSAGE + 1};
    union fd_control control;
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                        .msg_controllen = sizeof control.buf};
    ssize_t n;
    do
        n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return pea_fail(err, errno, "receive message");

    __attribute__((cleanup(received_fds_close))) struct received_fds received = {.n = 0};
    collect_fds(&mh, &received);
    if (mh.msg_flags & MSG_CTRUNC)
        return pea_fail(err, 0, "receive message: more than %d descriptors", PROTO_MAX_FDS);
    if (n == 0)
        return 0;
    if ((mh.msg_flags & MSG_TRUNC) || n > PROTO_MAX_MESSAGE)
        return pea_fail(err, 0, "receive message: message too large (more than %d bytes)", PROTO_MAX_MESSAGE);
    if (received.n > max_fds)
        return pea_fail(err, 0, "receive message: %zu descriptors where at most %zu are expected", received.n,
                        max_fds);
    json_error_t jerr;
    AUTO_JSON json_t *root = json_loadb(buf, (size_t)n, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return pea_fail(err, 0, "receive message: invalid JSON at byte %d: %s", jerr.position, jerr.text);
    if (!json_is_object(root))
        return pea_fail(err, 0, "receive message: not a JSON object");
    if (received.n > 0)
        memcpy(fds, received.fd, received.n * sizeof(int));
    *n_fds = received.n;
    received.n = 0;
    *msg = take_ptr(&root);
    return 0;
}

/* ---- peers ---- */

bool proto_peer_allowed(uid_t peer, uid_t owner) { return peer == 0 || peer == owner; }

int proto_check_peer(int fd, uid_t owner, struct pea_error *err)
{
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
        return pea_fail(err, errno, "read peer credentials");
    if (!proto_peer_allowed(cred.uid, owner))
        return pea_fail(err, 0, "peer uid %u is not allowed", (unsigned)cred.uid);
    return 0;
}
