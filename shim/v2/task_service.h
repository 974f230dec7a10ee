/* containerd.task.v2.Task over ttrpc: decode each request, act through the backend, answer, publish events. */
#ifndef PEA_SHIM_V2_TASK_SERVICE_H
#define PEA_SHIM_V2_TASK_SERVICE_H

#include <stdbool.h>

#include "ttrpc.h"

#define TASK_SERVICE_NAME "containerd.task.v2.Task"

/* Where the shim's pea and its default state root are, and its containerd namespace: a task's runtime option Root
 * replaces the root (ROOT/NAMESPACE) while it is the shim's only task. Call before serving. */
void task_service_configure(const char *default_root, const char *namespace);
/* The file in a bundle naming the state root its task was created under, when Root moved it: the `delete`
 * subcommand cleans up there. */
#define TASK_STATE_ROOT_FILE "pea-root"

/* The ttrpc_request_handler of every connection. */
void task_service_handle(struct ttrpc_conn *conn, const struct ttrpc_request *req, void *ctx);
/* Shutdown was asked for and no task is left: the daemon exits once its answers are out. */
bool task_service_should_exit(void);

#endif
