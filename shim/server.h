/* pea-shim's control socket: accepts clients (root or the pod's owner only), parses their requests with proto.c,
 * runs them against the supervisor, and answers; replies that wait on the pod (stop, restart, wait, exec's exit)
 * are kept pending and answered from the supervisor's on_change. Everything is non-blocking: a client that does
 * not read is dropped, never waited for. */
#ifndef PEA_SHIM_SERVER_H
#define PEA_SHIM_SERVER_H

#include <sys/types.h>

#include "logs.h"
#include "pea/error.h"
#include "pea/pod.h"
#include "pea/supervise.h"

#define SHIM_SOCKET_NAME "shim.sock"
/* Clients at once; one more is told so and closed. */
#define SHIM_MAX_CLIENTS 64

struct shim_server;

/* The server owns listen_fd (a listening, non-blocking SOCK_SEQPACKET socket); pod and logs stay the caller's. */
struct shim_server *server_new(struct pea_pod *pod, struct shim_logs *logs, int listen_fd, uid_t owner);
/* The supervisor callbacks that write the logs and feed the server; their ctx is the server. */
const struct pod_supervisor_ops *server_supervisor_ops(void);
/* Start serving in sup's loop. */
int server_start(struct shim_server *server, struct pod_supervisor *sup, struct pea_error *err);
/* The loop has ended and the pod is torn down: answer waits on the pod's exit, end event streams, close every
 * client. */
void server_finish(struct shim_server *server, int exit_code);
void server_free(struct shim_server *server);

#endif
