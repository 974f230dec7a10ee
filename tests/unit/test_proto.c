#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pea/util.h"
#include "proto.h"

/* ---- requests ---- */

static void parse_ok(const char *text, struct proto_request *req)
{
    struct pea_error err = {0};
    cr_assert_eq(proto_parse_request(text, strlen(text), req, &err), 0, "%s: %s", text, err.msg);
}

/* Expects the parse to fail with message; returns what the request keeps for the error reply. */
static struct proto_request parse_error(const char *text, const char *message)
{
    struct proto_request req;
    struct pea_error err = {0};
    cr_assert_eq(proto_parse_request(text, strlen(text), &req, &err), -1, "%s parsed", text);
    cr_assert_str_eq(err.msg, message, "for %s", text);
    return req;
}

static void parse_fails(const char *text, const char *message) { (void)parse_error(text, message); }

Test(proto, parses_ops_without_arguments)
{
    const char *names[] = {"status", "list", "events", "shutdown"};
    enum proto_op ops[] = {PROTO_OP_STATUS, PROTO_OP_LIST, PROTO_OP_EVENTS, PROTO_OP_SHUTDOWN};
    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
        AUTO_FREE char *text = xasprintf("{\"v\":1,\"id\":%zu,\"op\":\"%s\"}", i + 10, names[i]);
        struct proto_request req;
        parse_ok(text, &req);
        cr_assert(req.has_id);
        cr_assert_eq(req.id, i + 10);
        cr_assert_eq(req.op, ops[i]);
        proto_request_clear(&req);
    }
}

Test(proto, parses_container_ops)
{
    struct proto_request req;
    parse_ok("{\"v\":1,\"id\":1,\"op\":\"restart\",\"container\":\"web\"}", &req);
    cr_assert_eq(req.op, PROTO_OP_RESTART);
    cr_assert_str_eq(req.container, "web");
    proto_request_clear(&req);
    parse_ok("{\"op\":\"stop\",\"v\":1,\"id\":2,\"container\":\"db\",\"timeout\":0}", &req);
    cr_assert_eq(req.op, PROTO_OP_STOP);
    cr_assert(req.has_timeout);
    cr_assert_eq(req.timeout_seconds, 0);
    proto_request_clear(&req);
    parse_ok("{\"v\":1,\"id\":3,\"op\":\"stop\",\"container\":\"db\"}", &req);
    cr_assert_not(req.has_timeout);
    proto_request_clear(&req);
}

Test(proto, kill_takes_signal_names_and_numbers)
{
    const char *signals[] = {"\"TERM\"", "\"SIGKILL\"", "10", "\"SIGRTMIN+1\""};
    int expect[] = {SIGTERM, SIGKILL, 10, SIGRTMIN + 1};
    for (size_t i = 0; i < ARRAY_SIZE(signals); i++) {
        AUTO_FREE char *text =
            xasprintf("{\"v\":1,\"id\":1,\"op\":\"kill\",\"container\":\"c\",\"signal\":%s}", signals[i]);
        struct proto_request req;
        parse_ok(text, &req);
        cr_assert_eq(req.signal, expect[i], "%s", signals[i]);
        proto_request_clear(&req);
    }
    const char *bad[] = {"\"NOPE\"", "0", "-9", "1000", "true", "9.0", "\"\""};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        AUTO_FREE char *text =
            xasprintf("{\"v\":1,\"id\":1,\"op\":\"kill\",\"container\":\"c\",\"signal\":%s}", bad[i]);
        parse_fails(text, "kill.signal: must be a signal name or number");
    }
    parse_fails("{\"v\":1,\"id\":1,\"op\":\"kill\",\"container\":\"c\"}", "kill.signal: missing");
}

Test(proto, exec_takes_all_its_arguments)
{
    struct proto_request req;
    parse_ok("{\"v\":1,\"id\":4,\"op\":\"exec\",\"container\":\"c\",\"args\":[\"sh\",\"-c\",\"id\"],"
             "\"env\":[\"A=1\",\"B=\"],\"cwd\":\"/tmp\",\"tty\":true,\"user\":\"1000:1000\"}",
             &req);
    cr_assert_eq(req.op, PROTO_OP_EXEC);
    cr_assert_eq(strv_len(req.args), 3);
    cr_assert_str_eq(req.args[2], "id");
    cr_assert_eq(strv_len(req.env), 2);
    cr_assert_str_eq(req.env[1], "B=");
    cr_assert_str_eq(req.cwd, "/tmp");
    cr_assert(req.tty);
    cr_assert_str_eq(req.user, "1000:1000");
    proto_request_clear(&req);
    parse_ok("{\"v\":1,\"id\":4,\"op\":\"exec\",\"container\":\"c\",\"args\":[\"true\"]}", &req);
    cr_assert_null(req.env);
    cr_assert_null(req.cwd);
    cr_assert_not(req.tty);
    proto_request_clear(&req);
}

Test(proto, exec_rejects_bad_arguments)
{
#define EXEC "{\"v\":1,\"id\":4,\"op\":\"exec\",\"container\":\"c\""
    parse_fails(EXEC "}", "exec.args: missing");
    parse_fails(EXEC ",\"args\":[]}", "exec.args: must hold at least one element");
    parse_fails(EXEC ",\"args\":\"sh\"}", "exec.args: must be an array of strings");
    parse_fails(EXEC ",\"args\":[\"sh\",1]}", "exec.args[1]: must be a string");
    parse_fails(EXEC ",\"args\":[\"sh\"],\"env\":[\"A\"]}", "exec.env[0]: must be KEY=VALUE");
    parse_fails(EXEC ",\"args\":[\"sh\"],\"env\":[\"=A\"]}", "exec.env[0]: must be KEY=VALUE");
    parse_fails(EXEC ",\"args\":[\"sh\"],\"cwd\":\"tmp\"}", "exec.cwd: must be an absolute path");
    parse_fails(EXEC ",\"args\":[\"sh\"],\"tty\":\"yes\"}", "exec.tty: must be a boolean");
    parse_fails(EXEC ",\"args\":[\"sh\"],\"user\":\"\"}", "exec.user: must be a non-empty string");
    parse_fails(EXEC ",\"args\":[\"sh\"],\"stdin\":true}", "exec.stdin: unknown argument");
#undef EXEC
}

Test(proto, failed_parse_keeps_only_the_id)
{
    struct proto_request req = parse_error(
        "{\"v\":1,\"id\":9,\"op\":\"exec\",\"container\":\"c\",\"args\":[\"sh\"],\"env\":[1]}",
        "exec.env[0]: must be a string");
    cr_assert(req.has_id);
    cr_assert_eq(req.id, 9);
    cr_assert_null(req.container);
    cr_assert_null(req.args);
}

Test(proto, logs_wait_and_apply)
{
    struct proto_request req;
    parse_ok("{\"v\":1,\"id\":1,\"op\":\"logs\",\"container\":\"c\",\"follow\":true,\"tail\":20,\"previous\":false}",
             &req);
    cr_assert(req.follow);
    cr_assert_eq(req.tail, 20);
    cr_assert_not(req.previous);
    proto_request_clear(&req);
    parse_ok("{\"v\":1,\"id\":1,\"op\":\"wait\"}", &req);
    cr_assert_null(req.container);
    cr_assert_eq(req.wait_for, PROTO_WAIT_EXIT);
    proto_request_clear(&req);
    parse_ok("{\"v\":1,\"id\":1,\"op\":\"wait\",\"container\":\"c\",\"for\":\"running\"}", &req);
    cr_assert_str_eq(req.container, "c");
    cr_assert_eq(req.wait_for, PROTO_WAIT_RUNNING);
    proto_request_clear(&req);
    parse_ok("{\"v\":1,\"id\":1,\"op\":\"apply\",\"noWait\":true}", &req);
    cr_assert(req.no_wait);
    proto_request_clear(&req);

    parse_fails("{\"v\":1,\"id\":1,\"op\":\"logs\",\"container\":\"c\",\"tail\":-1}",
                "logs.tail: must be a non-negative integer");
    parse_ok("{\"v\":1,\"id\":1,\"op\":\"wait\",\"for\":\"started\"}", &req);
    cr_assert_eq(req.wait_for, PROTO_WAIT_STARTED);
    proto_request_clear(&req);
    parse_fails("{\"v\":1,\"id\":1,\"op\":\"wait\",\"for\":\"ready\"}",
                "wait.for: must be \"exit\", \"running\" or \"started\"");
    /* The manifest comes as a descriptor: an older client's object is refused by name. */
    parse_fails("{\"v\":1,\"id\":1,\"op\":\"apply\",\"manifest\":{}}", "apply.manifest: unknown argument");
}

Test(proto, rejects_missing_or_bad_container)
{
    parse_fails("{\"v\":1,\"id\":1,\"op\":\"start\"}", "start.container: missing");
    parse_fails("{\"v\":1,\"id\":1,\"op\":\"attach\",\"container\":\"\"}", "attach.container: must be a non-empty string");
    parse_fails("{\"v\":1,\"id\":1,\"op\":\"stop\",\"container\":null}", "stop.container: must be a non-empty string");
    parse_fails("{\"v\":1,\"id\":1,\"op\":\"stop\",\"container\":\"c\",\"timeout\":1.5}",
                "stop.timeout: must be a non-negative integer");
}

Test(proto, rejects_unknown_ops_and_arguments)
{
    struct proto_request req =
        parse_error("{\"v\":1,\"id\":12,\"op\":\"frobnicate\"}", "op: unknown operation \"frobnicate\"");
    cr_assert(req.has_id);
    cr_assert_eq(req.id, 12);
    parse_fails("{\"v\":1,\"id\":1,\"op\":\"status\",\"verbose\":true}", "status.verbose: unknown argument");
    parse_fails("{\"v\":1,\"id\":1,\"op\":5}", "op: must be a string");
    parse_fails("{\"v\":1,\"id\":1}", "op: missing");
}

Test(proto, version_mismatch_is_answered_to_the_id)
{
    struct proto_request req = parse_error("{\"v\":2,\"id\":7,\"op\":\"status\"}",
                                           "unsupported protocol version 2 (this shim speaks 1)");
    cr_assert(req.has_id);
    cr_assert_eq(req.id, 7);
    parse_fails("{\"id\":1,\"op\":\"status\"}", "v: missing");
    parse_fails("{\"v\":\"1\",\"id\":1,\"op\":\"status\"}", "v: must be an integer");
}

Test(proto, id_is_required)
{
    struct proto_request req = parse_error("{\"v\":1,\"op\":\"status\"}", "id: missing");
    cr_assert_not(req.has_id);
    parse_fails("{\"v\":1,\"id\":-1,\"op\":\"status\"}", "id: must be a non-negative integer");
    parse_fails("{\"v\":1,\"id\":\"1\",\"op\":\"status\"}", "id: must be a non-negative integer");
}

Test(proto, rejects_garbage_and_truncated_json)
{
    const char *bad[] = {"", "not json", "{\"v\":1,\"id\":3,\"op\":\"sta", "{\"v\":1,\"v\":1,\"id\":1,\"op\":\"list\"}",
                         "{\"v\":1,\"id\":1,\"op\":\"list\"} trailing"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        struct proto_request req;
        struct pea_error err = {0};
        cr_assert_eq(proto_parse_request(bad[i], strlen(bad[i]), &req, &err), -1, "%s parsed", bad[i]);
        cr_assert_eq(strncmp(err.msg, "request: invalid JSON at byte ", 30), 0, "%s", err.msg);
        cr_assert_not(req.has_id);
    }
    parse_fails("[1]", "request: must be a JSON object");
}

/* ---- builders ---- */

static void assert_encodes(json_t *msg, const char *expect)
{
    AUTO_FREE char *text = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    cr_assert_str_eq(text, expect);
}

Test(proto, builders_write_the_envelope)
{
    assert_encodes(proto_reply_ok(5, json_pack("{s:i}", "a", 1)), "{\"v\":1,\"id\":5,\"ok\":true,\"result\":{\"a\":1}}");
    assert_encodes(proto_reply_ok(5, NULL), "{\"v\":1,\"id\":5,\"ok\":true,\"result\":null}");
    assert_encodes(proto_reply_error(6, "start c1: exec failed\nsecond line"),
                   "{\"v\":1,\"id\":6,\"ok\":false,\"error\":\"start c1: exec failed second line\"}");
    assert_encodes(proto_reply_error(6, "open /tmp/\xff\xfe: bad"),
                   "{\"v\":1,\"id\":6,\"ok\":false,\"error\":\"open /tmp/??: bad\"}");
    assert_encodes(proto_event(7, json_string("started")), "{\"v\":1,\"id\":7,\"event\":\"started\"}");
    assert_encodes(proto_end(7), "{\"v\":1,\"id\":7,\"end\":true}");
    json_t *req = proto_request_new(8, "kill");
    json_object_set_new(req, "container", json_string("c"));
    json_object_set_new(req, "signal", json_string("TERM"));
    assert_encodes(req, "{\"v\":1,\"id\":8,\"op\":\"kill\",\"container\":\"c\",\"signal\":\"TERM\"}");
}

Test(proto, built_request_parses_back)
{
    AUTO_JSON json_t *msg = proto_request_new(99, "logs");
    json_object_set_new(msg, "container", json_string("c"));
    json_object_set_new(msg, "tail", json_integer(5));
    struct proto_request req;
    struct pea_error err = {0};
    cr_assert_eq(proto_request_from_json(msg, &req, &err), 0, "%s", err.msg);
    cr_assert_eq(req.id, 99);
    cr_assert_eq(req.op, PROTO_OP_LOGS);
    cr_assert_eq(req.tail, 5);
    proto_request_clear(&req);
}

/* ---- transport ---- */

static int sv[2] = {-1, -1};

static void make_pair(void) { cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0); }

static void close_pair(void)
{
    close(sv[0]);
    close(sv[1]);
}

TestSuite(proto_transport, .init = make_pair, .fini = close_pair);

static void recv_fails(size_t max_fds, const char *message)
{
    json_t *msg = (json_t *)1;
    int fds[PROTO_MAX_FDS];
    size_t n_fds = 99;
    struct pea_error err = {0};
    cr_assert_eq(proto_recv(sv[1], &msg, fds, max_fds, &n_fds, &err), -1);
    cr_assert_str_eq(err.msg, message);
    cr_assert_null(msg);
    cr_assert_eq(n_fds, 0);
}

/* Hands the write end of a fresh pipe to send() and returns the read end: it reads EOF once every copy of the
 * write end, the one in flight included, is closed. */
static int pipe_for_flight(int *write_end)
{
    int p[2];
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    *write_end = p[1];
    return p[0];
}

static void assert_closed_everywhere(int read_end)
{
    char c;
    cr_assert_eq(read(read_end, &c, 1), 0, "a copy of the write end is still open");
    close(read_end);
}

Test(proto_transport, round_trip_with_two_fds)
{
    int p1[2], p2[2];
    cr_assert_eq(pipe2(p1, O_CLOEXEC), 0);
    cr_assert_eq(pipe2(p2, O_CLOEXEC), 0);
    AUTO_JSON json_t *sent = proto_request_new(3, "exec");
    json_object_set_new(sent, "args", json_pack("[s]", "sh"));
    int pass[2] = {p1[1], p2[1]};
    struct pea_error err = {0};
    cr_assert_eq(proto_send(sv[0], sent, pass, 2, &err), 0, "%s", err.msg);

    AUTO_JSON json_t *got = NULL;
    int fds[PROTO_MAX_FDS];
    size_t n_fds = 0;
    cr_assert_eq(proto_recv(sv[1], &got, fds, PROTO_MAX_FDS, &n_fds, &err), 0, "%s", err.msg);
    cr_assert(json_equal(sent, got));
    cr_assert_eq(n_fds, 2);
    for (size_t i = 0; i < 2; i++) {
        cr_assert(fcntl(fds[i], F_GETFD) & FD_CLOEXEC);
        char c = 'a' + (char)i, back;
        cr_assert_eq(write(fds[i], &c, 1), 1);
        cr_assert_eq(read(i == 0 ? p1[0] : p2[0], &back, 1), 1);
        cr_assert_eq(back, c);
        close(fds[i]);
    }
}

Test(proto_transport, message_of_exactly_the_limit_passes)
{
    /* {"s":"..."} is 8 bytes around the string. */
    size_t len = PROTO_MAX_MESSAGE - 8;
    AUTO_FREE char *s = xmalloc(len + 1);
    memset(s, 'x', len);
    s[len] = '\0';
    AUTO_JSON json_t *sent = json_pack("{s:s}", "s", s);
    struct pea_error err = {0};
    cr_assert_eq(proto_send(sv[0], sent, NULL, 0, &err), 0, "%s", err.msg);
    AUTO_JSON json_t *got = NULL;
    size_t n_fds;
    cr_assert_eq(proto_recv(sv[1], &got, NULL, 0, &n_fds, &err), 0, "%s", err.msg);
    cr_assert(json_equal(sent, got));
}

Test(proto_transport, oversized_message_is_not_sent)
{
    AUTO_FREE char *s = xmalloc(70 * 1024);
    memset(s, 'x', 70 * 1024 - 1);
    s[70 * 1024 - 1] = '\0';
    AUTO_JSON json_t *msg = proto_event(1, json_string(s));
    struct pea_error err = {0};
    cr_assert_eq(proto_send(sv[0], msg, NULL, 0, &err), -1);
    cr_assert_str_eq(err.msg, "send message: 71704 bytes exceed the limit of 65536");
}

Test(proto_transport, oversized_datagram_is_refused_and_its_fds_closed)
{
    int write_end;
    int read_end = pipe_for_flight(&write_end);
    size_t len = 70 * 1024;
    AUTO_FREE char *raw = xmalloc(len);
    memset(raw, ' ', len);
    struct iovec iov = {.iov_base = raw, .iov_len = len};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control = {0};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                        .msg_controllen = sizeof control.buf};
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&mh);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cmsg), &write_end, sizeof(int));
    cr_assert_eq(sendmsg(sv[0], &mh, 0), (ssize_t)len);
    close(write_end);
    recv_fails(PROTO_MAX_FDS, "receive message: message too large (more than 65536 bytes)");
    assert_closed_everywhere(read_end);

    /* The socket stays usable. */
    AUTO_JSON json_t *next = proto_end(2);
    struct pea_error err = {0};
    cr_assert_eq(proto_send(sv[0], next, NULL, 0, &err), 0);
    AUTO_JSON json_t *got = NULL;
    size_t n_fds;
    cr_assert_eq(proto_recv(sv[1], &got, NULL, 0, &n_fds, &err), 0, "%s", err.msg);
    cr_assert(json_equal(next, got));
}

Test(proto_transport, more_fds_than_expected_are_closed)
{
    int write_end;
    int read_end = pipe_for_flight(&write_end);
    AUTO_JSON json_t *msg = proto_request_new(1, "attach");
    int pass[2] = {write_end, write_end};
    struct pea_error err = {0};
    cr_assert_eq(proto_send(sv[0], msg, pass, 2, &err), 0, "%s", err.msg);
    close(write_end);
    recv_fails(1, "receive message: 2 descriptors where at most 1 are expected");
    assert_closed_everywhere(read_end);
}

Test(proto_transport, too_many_fds_are_not_sent)
{
    int pass[PROTO_MAX_FDS + 1] = {0};
    AUTO_JSON json_t *msg = proto_end(1);
    struct pea_error err = {0};
    cr_assert_eq(proto_send(sv[0], msg, pass, PROTO_MAX_FDS + 1, &err), -1);
    cr_assert_str_eq(err.msg, "send message: 9 descriptors exceed the limit of 8");
}

Test(proto_transport, received_garbage_is_an_error)
{
    cr_assert_eq(send(sv[0], "not json", 8, 0), 8);
    json_t *msg = NULL;
    size_t n_fds;
    struct pea_error err = {0};
    cr_assert_eq(proto_recv(sv[1], &msg, NULL, 0, &n_fds, &err), -1);
    cr_assert_eq(strncmp(err.msg, "receive message: invalid JSON at byte ", 38), 0, "%s", err.msg);
    cr_assert_eq(send(sv[0], "{\"v\":1", 6, 0), 6);
    cr_assert_eq(proto_recv(sv[1], &msg, NULL, 0, &n_fds, &err), -1);
    cr_assert_eq(strncmp(err.msg, "receive message: invalid JSON at byte ", 38), 0, "%s", err.msg);
    cr_assert_eq(send(sv[0], "[1,2]", 5, 0), 5);
    recv_fails(0, "receive message: not a JSON object");
}

Test(proto_transport, orderly_shutdown_reads_as_no_message)
{
    close(sv[0]);
    sv[0] = -1;
    json_t *msg = (json_t *)1;
    size_t n_fds = 5;
    struct pea_error err = {0};
    cr_assert_eq(proto_recv(sv[1], &msg, NULL, 0, &n_fds, &err), 0, "%s", err.msg);
    cr_assert_null(msg);
    cr_assert_eq(n_fds, 0);
}

Test(proto_transport, send_to_a_closed_peer_fails_without_sigpipe)
{
    close(sv[1]);
    sv[1] = -1;
    AUTO_JSON json_t *msg = proto_end(1);
    struct pea_error err = {0};
    cr_assert_eq(proto_send(sv[0], msg, NULL, 0, &err), -1);
    cr_assert_str_eq(err.msg, "send message: Broken pipe");
}

/* ---- peers ---- */

Test(proto, peer_decision)
{
    cr_assert(proto_peer_allowed(0, 1000));
    cr_assert(proto_peer_allowed(1000, 1000));
    cr_assert_not(proto_peer_allowed(1001, 1000));
    cr_assert(proto_peer_allowed(0, 0));
    cr_assert_not(proto_peer_allowed(1000, 0));
}

Test(proto_transport, own_uid_is_allowed)
{
    struct pea_error err = {0};
    cr_assert_eq(proto_check_peer(sv[1], getuid(), &err), 0, "%s", err.msg);
}

/* A peer of another uid: as root, a child that drops to nobody and connects; otherwise ourselves against an owner
 * we are not. */
Test(proto, other_uid_is_refused)
{
    uid_t owner = getuid() + 1;
    uid_t stranger = getuid();
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf(addr.sun_path + 1, sizeof addr.sun_path - 1, "pea-test-proto-%d", (int)getpid());
    socklen_t addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(addr.sun_path + 1));
    AUTO_FD int listener = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    cr_assert_geq(listener, 0);
    cr_assert_eq(bind(listener, (struct sockaddr *)&addr, addr_len), 0);
    cr_assert_eq(listen(listener, 1), 0);
    pid_t child = -1;
    AUTO_FD int client = -1;
    if (geteuid() == 0) {
        owner = 1000;
        stranger = 65534;
        child = fork();
        cr_assert_geq(child, 0);
        if (child == 0) {
            int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
            char c;
            if (s < 0 || setresuid(stranger, stranger, stranger) < 0 ||
                connect(s, (struct sockaddr *)&addr, addr_len) < 0)
                _exit(1);
            (void)!read(s, &c, 1);
            _exit(0);
        }
    } else {
        client = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        cr_assert_eq(connect(client, (struct sockaddr *)&addr, addr_len), 0);
    }
    AUTO_FD int conn = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
    cr_assert_geq(conn, 0);
    struct pea_error err = {0};
    cr_assert_eq(proto_check_peer(conn, owner, &err), -1);
    AUTO_FREE char *expect = xasprintf("peer uid %u is not allowed", (unsigned)stranger);
    cr_assert_str_eq(err.msg, expect);
    if (child > 0) {
        close(conn);
        conn = -1;
        int status;
        cr_assert_eq(waitpid(child, &status, 0), child);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
}
