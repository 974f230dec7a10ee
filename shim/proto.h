/* The pea-shim control protocol: one JSON object per SOCK_SEQPACKET datagram of at most PROTO_MAX_MESSAGE bytes.
 *   request  {"v":1,"id":N,"op":"<name>", ...arguments}
 *   reply    {"v":1,"id":N,"ok":true,"result":<any>}  or  {"v":1,"id":N,"ok":false,"error":"<one line>"}
 *   stream   {"v":1,"id":N,"event":<any>} ... then {"v":1,"id":N,"end":true}
 * File descriptors (exec's stdio, apply's manifest) travel with the request as SCM_RIGHTS. */
#ifndef PEA_SHIM_PROTO_H
#define PEA_SHIM_PROTO_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "pea/error.h"

#define PROTO_VERSION 1
#define PROTO_MAX_MESSAGE (64 * 1024)
/* The most fds one message may carry (exec passes three). */
#define PROTO_MAX_FDS 8

enum proto_op {
    PROTO_OP_STATUS,   /* {} */
    PROTO_OP_LIST,     /* {} */
    PROTO_OP_START,    /* {container} */
    PROTO_OP_STOP,     /* {container, timeout?: seconds} */
    PROTO_OP_KILL,     /* {container, signal: "TERM", "SIGTERM" or 15} */
    PROTO_OP_RESTART,  /* {container} */
    PROTO_OP_EXEC,     /* {container, args[], env[]?, cwd?, tty?, user?} */
    PROTO_OP_ATTACH,   /* {container, stdin?}: reply {tty, stdin} with fds: the output pipe (the pty's, or stdout
                          then stderr), then what writes the container's stdin when stdin was asked for; the
                          session streams {exitCode?, reason?} then end when it ends */
    PROTO_OP_LOGS,     /* {container, follow?, tail?: lines, previous?} */
    PROTO_OP_WAIT,     /* {container?, for?: "exit" | "running" | "started"} */
    PROTO_OP_APPLY,    /* {noWait?} + one fd: the manifest as a sealed memfd (larger than a datagram may be) */
    PROTO_OP_EVENTS,   /* {} */
    PROTO_OP_SHUTDOWN, /* {timeout?: seconds, the grace period instead of the manifest's (0: SIGKILL at once)} */
};

/* started: each container has started once (or failed to), or waits for its turn behind the init containers. */
enum proto_wait_for { PROTO_WAIT_EXIT, PROTO_WAIT_RUNNING, PROTO_WAIT_STARTED };

/* A validated request. Arguments an op does not take stay zero / NULL. */
struct proto_request {
    bool has_id; /* set as soon as "id" is valid, even when the rest fails: the error reply carries it */
    uint64_t id;
    enum proto_op op;
    char *container; /* NULL for wait on the whole pod */
    bool has_timeout;
    uint64_t timeout_seconds; /* stop, shutdown */
    int signal;               /* kill */
    char **args;              /* exec: NULL-terminated, at least one */
    char **env;               /* exec: NULL-terminated KEY=VALUE, NULL when absent */
    char *cwd;                /* exec */
    char *user;               /* exec: as given, "uid[:gid]" or a name */
    bool tty;                 /* exec */
    bool stdin_wanted;        /* attach: the client writes the container's stdin */
    bool follow, previous;    /* logs */
    uint64_t tail;            /* logs: last lines, 0 = all */
    enum proto_wait_for wait_for;
    bool no_wait;     /* apply: answer at once, not once the recreated and added containers have started */
};

/* Parse and validate one request strictly: an unknown op or argument, a missing or wrongly typed one, fails with
 * "<op>.<argument>: <what is wrong>"; a bad envelope with "id: ...", "v: ...", "op: ..." or "unsupported protocol
 * version 2 (this shim speaks 1)". On failure *req holds nothing but has_id and id. */
int proto_parse_request(const char *buf, size_t len, struct proto_request *req, struct pea_error *err);
/* The same for a message proto_recv returned (msg is borrowed). */
int proto_request_from_json(json_t *msg, struct proto_request *req, struct pea_error *err);
void proto_request_clear(struct proto_request *req);

/* Message builders; each returns a new reference. Ids stay below 2^63: jansson's integers are signed 64-bit. */
json_t *proto_request_new(uint64_t id, const char *op);       /* callers add the arguments */
json_t *proto_reply_ok(uint64_t id, json_t *result);          /* result stolen; NULL sends null */
json_t *proto_reply_error(uint64_t id, const char *message);  /* newlines become spaces */
json_t *proto_event(uint64_t id, json_t *event);              /* event stolen; NULL sends null */
json_t *proto_end(uint64_t id);

/* Send msg (not consumed) in one datagram, with n_fds descriptors when n_fds > 0. Fails when the compact
 * encoding exceeds PROTO_MAX_MESSAGE. Never raises SIGPIPE. */
int proto_send(int fd, json_t *msg, const int *fds, size_t n_fds, struct pea_error *err);

/* Receive one message into *msg (a new reference) and up to max_fds descriptors (close-on-exec) into fds.
 * Returns 0 with *msg NULL on orderly shutdown of the peer. On failure -1, and every descriptor that came with
 * the datagram is closed: too large, more descriptors than max_fds, not JSON, not an object. */
int proto_recv(int fd, json_t **msg, int *fds, size_t max_fds, size_t *n_fds, struct pea_error *err);

/* Only root and the shim's owner may talk to it. */
bool proto_peer_allowed(uid_t peer, uid_t owner);
/* proto_peer_allowed on the uid SO_PEERCRED reports; fails with "peer uid U is not allowed". */
int proto_check_peer(int fd, uid_t owner, struct pea_error *err);

#endif
