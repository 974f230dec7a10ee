/* What server.c (clients, pending replies, supervisor callbacks) and server_ops.c (one handler per request) share. */
#ifndef PEA_SHIM_SERVER_INTERNAL_H
#define PEA_SHIM_SERVER_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "proto.h"
#include "server.h"

struct client {
    struct client *next;
    struct shim_server *server;
    int fd;
    bool is_dead;       /* a send failed or the peer went: freed at the outermost callback */
    bool is_subscribed; /* events: every on_event/on_change goes to it under events_id */
    uint64_t events_id;
};

enum pending_kind {
    PENDING_LEAVE_RUNNING, /* stop, restart: answered once the container's record is no longer "running" */
    PENDING_EXITED,        /* wait for exit of a container */
    PENDING_RUNNING,       /* wait for running: a container, or every app container when none is named */
    PENDING_POD_EXIT,      /* wait for exit of the pod: answered when the shim ends */
    PENDING_EXEC,          /* an exec'd process: its exit code goes as an event, then end */
    PENDING_APPLY,         /* apply: answered once each recreated or added container has started (or failed to) */
    PENDING_STARTED,       /* wait for started: each awaited container has started once, failed to, or waits */
    PENDING_ATTACH,        /* an attach session: output goes to its pipes until its container's instance ends */
};

struct pending {
    struct pending *next;
    struct shim_server *server;
    enum pending_kind kind;
    struct client *client; /* NULL once the client has gone (an exec is still reaped) */
    uint64_t id;
    char *container; /* NULL: the pod */
    int pidfd;       /* exec */
    char *instance;  /* exec, attach: its container's startedAt when it began; it ends with that instance */
    int out_fds[3];  /* attach: write ends (non-blocking) of the output pipes by stream; -1 when none */
    bool has_tty;    /* attach: the container's pty, one stream (out_fds[POD_STDOUT]) */
    bool has_stdin;  /* attach: the client was given the container's stdin */
    /* attach: output the pipe had no room for, written when it has (watched for EPOLLOUT meanwhile) */
    char *queued[3];
    size_t queued_len[3];
    bool is_waiting_room[3];
    json_t *result;  /* apply: the summary to answer with */
    json_t *awaited; /* apply, started: {container: its startedAt before, or null}; met once it differs */
};

struct shim_server {
    struct pea_pod *pod;
    struct pod_supervisor *sup;
    struct shim_logs *logs;
    int listen_fd;
    uid_t owner;
    struct client *clients;
    size_t n_clients;
    struct pending *pending;
    int depth; /* nesting of our callbacks: dead clients are freed at the outermost only */
};

/* Send to a client; a failure (EAGAIN included: it does not read) marks it dead. msg is consumed. */
void client_send(struct client *c, json_t *msg, const int *fds, size_t n_fds);
void client_reply_error(struct client *c, uint64_t id, const char *message);

struct pending *pending_add(struct shim_server *s, enum pending_kind kind, struct client *c, uint64_t id,
                            const char *container);
void pending_remove(struct shim_server *s, struct pending *p);
/* Answer every pending request whose condition holds now. */
void pending_check(struct shim_server *s);

/* The record of one container in the supervisor's list (borrowed from containers), NULL when unknown. */
json_t *containers_find(json_t *containers, const char *name);

/* The processes exec'd into container that has just changed to record: once that instance is not running (stopped,
 * exited, replaced) they are killed and reaped, and their clients told why. A process exec'd into a container is our
 * child: its container's init, dying, waits until we have reaped it, and so would the teardown. */
void server_end_execs(struct shim_server *s, const char *container, const json_t *record);

/* End an attach session: tell its client why (reason NULL: the client has gone, or the instance exited with
 * exit_code >= 0), close its pipes, and let stdinOnce close the container's stdin. */
void server_end_attach(struct pending *p, int exit_code, const char *reason);
/* The attach sessions to container that has just changed to record: they end with its instance. */
void server_end_attaches(struct shim_server *s, const char *container, const json_t *record);
/* Copy a container's output to its attach sessions; a session that does not keep up is ended, never waited for. */
void server_attach_output(struct shim_server *s, const char *container, int stream, const char *buf, size_t len);

/* attach: a session with the container's output (and stdin, when asked for) */
void server_handle_attach(struct client *c, const struct proto_request *req);

/* Run one validated request; fds (exec's stdio) are the handler's to close. */
void server_handle(struct client *c, struct proto_request *req, int *fds, size_t n_fds);

#endif
