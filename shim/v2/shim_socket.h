/* The shim's socket in /run/containerd/s and the lock that makes every decision about it atomic.
 *
 * Beside each socket PATH, PATH.lock exists while someone holds it; whoever binds, probes, replaces or removes the socket holds an exclusive
 * flock on it: `start` from its bind to its daemon's start (or to its join), `delete` while it removes a dead shim's
 * socket, and the daemon while it withdraws its socket before it exits. So two `start`s for one pod cannot both
 * take a stale socket over, and a `start` cannot join a shim that has already decided to exit: the daemon unlinks
 * its socket, under the lock, before it stops listening.
 *
 * A `start` that joins a running shim tells it so (SHIM_GROUP_SERVICE/SHIM_GROUP_JOIN, while it holds the lock): the
 * shim then stays, even after a Shutdown, until containerd's Create for that task has come or a while has passed. */
#ifndef PEA_SHIM_V2_SHIM_SOCKET_H
#define PEA_SHIM_V2_SHIM_SOCKET_H

#include <stdbool.h>

#include "pea/error.h"
#include "ttrpc.h"

/* A ttrpc service of pea's own; its one method's payload is a message whose field 1 is the joining task's id (the
 * shape of containerd's ConnectRequest, which encodes it). */
#define SHIM_GROUP_SERVICE "pea.shim.v1.Group"
#define SHIM_GROUP_JOIN "Join"

/* Lock SOCKET_PATH's lock file (made when missing). WAIT false: -1 with errno EWOULDBLOCK when another holds it.
 * Returns the lock's fd (close it to unlock) or -1 with err filled. */
int shim_socket_lock(const char *socket_path, bool wait, struct pea_error *err);

/* Unlock; first unlink the socket too when REMOVE_SOCKET. The lock file goes as well (before the unlock, so
 * every waiter finds its file gone and locks the one the name holds then): no lock file outlives its holder.
 * *lock_fd becomes -1. */
void shim_socket_unlock(int *lock_fd, const char *socket_path, bool remove_socket);

/* Bind a socket to PATH with mode 0600 from the start (under a umask: never reachable with wider permissions) and
 * listen. -1 with errno EADDRINUSE (err filled) when something is there already; the caller, holding the lock,
 * decides whether it is a live shim. */
int shim_socket_listen(const char *path, struct pea_error *err);

/* Whether a listening socket is at PATH: a connection is taken or its backlog is full. Without blocking. */
bool shim_socket_answers(const char *path);

enum shim_join_result {
    SHIM_JOINED,  /* the shim at PATH expects TASK_ID's Create */
    SHIM_IS_GONE, /* nothing listens at PATH, or the shim closed the connection unanswered: it died */
    SHIM_IS_LEAVING, /* the shim is exiting (SIGTERM): it withdraws its socket once the lock is free */
};

/* The code a leaving shim answers Join with. */
#define SHIM_JOIN_LEAVING_CODE TTRPC_FAILED_PRECONDITION

/* With the lock held: ask the shim at PATH to expect TASK_ID. -1 with err filled when it answers with an error or
 * does not answer in time. A shim without the Group service (an older one) answers Unimplemented: joined. */
int shim_socket_join(const char *path, const char *task_id, enum shim_join_result *result, struct pea_error *err);

#endif
