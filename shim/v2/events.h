/* Task events to containerd, queued and sent one at a time so containerd sees them in the order they happened.
 *
 * With TTRPC_ADDRESS in the environment (containerd sets it for its shims) each event is one
 * containerd.services.events.ttrpc.v1.Events/Forward call on a single persistent connection to containerd's ttrpc
 * socket, the next sent once the previous is answered; a connection that breaks (containerd restarting) is made
 * again for the next attempt. Without it, the binary containerd names with -publish-binary is run per event:
 * `CONTAINERD --address ADDRESS publish --topic /tasks/exit --namespace NS`, the event as a protobuf Any on stdin.
 * Either way a failed event is retried after 1, 2, ... 4 seconds, then dropped with a line in the shim's log. */
#ifndef PEA_SHIM_V2_EVENTS_H
#define PEA_SHIM_V2_EVENTS_H

#include <stdbool.h>
#include <sys/types.h>

#include <protobuf-c/protobuf-c.h>

/* ttrpc_address: containerd's ttrpc socket, or NULL to run publish_binary per event. */
int events_init(const char *ttrpc_address, const char *publish_binary, const char *address, const char *namespace);
/* Queue the event (type URL: the message's full protobuf name, e.g. "containerd.events.TaskExit"). */
void events_publish(const char *topic, const ProtobufCMessage *event);
/* A child exited: true when it was the publisher (the event is done or queued again). */
bool events_child_exited(pid_t pid, int status);
/* Events still queued or on their way. */
bool events_pending(void);

#endif
