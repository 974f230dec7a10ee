/* Task events to containerd, through the binary containerd names with -publish-binary:
 * `CONTAINERD --address ADDRESS publish --topic /tasks/exit --namespace NS`, the event as a protobuf Any on stdin.
 * One publisher runs at a time, so containerd sees the events in the order they happened; a failed one (containerd
 * restarting) is retried after 1, 2, ... 5 seconds, then dropped with a line in the shim's log. */
#ifndef PEA_SHIM_V2_EVENTS_H
#define PEA_SHIM_V2_EVENTS_H

#include <stdbool.h>
#include <sys/types.h>

#include <protobuf-c/protobuf-c.h>

int events_init(const char *publish_binary, const char *address, const char *namespace);
/* Queue the event (type URL: the message's full protobuf name, e.g. "containerd.events.TaskExit"). */
void events_publish(const char *topic, const ProtobufCMessage *event);
/* A child exited: true when it was the publisher (the event is done or queued again). */
bool events_child_exited(pid_t pid, int status);
/* Events still queued or on their way. */
bool events_pending(void);

#endif
