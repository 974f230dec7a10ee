/* SCMP_ACT_NOTIFY: the container process loads its filter with a listener, hands it to the runtime over the sync
 * socket and closes its own copy (a process holding the listener of its own filter could answer for itself); the
 * runtime passes it on to the seccomp agent, as the runtime-spec's linux.seccomp.listenerPath describes. */
#include <errno.h>
#include <jansson.h>

#include "pea/console.h"
#include "pea/seccomp.h"
#include "pea/util.h"

int seccomp_notify_send_to_agent(const struct pea_seccomp *profile, pid_t pid, const char *state_json,
                                 int listener_fd, struct pea_error *err)
{
    if (!profile->listener_path)
        return pea_fail(err, 0, "seccomp: a listener but no listenerPath to send it to");
    AUTO_JSON json_t *state = state_json ? json_loads(state_json, 0, NULL) : NULL;
    if (!json_is_object(state))
        return pea_fail(err, 0, "seccomp agent %s: no container state to send", profile->listener_path);
    AUTO_JSON json_t *message = json_pack("{s:s, s:[s], s:i, s:O}", "ociVersion", PEA_OCI_VERSION, "fds",
                                          "seccompFd", "pid", (json_int_t)pid, "state", state);
    /* Left out when empty, as runc (Go's omitempty) does. */
    if (message && profile->listener_metadata && *profile->listener_metadata)
        json_object_set_new(message, "metadata", json_string(profile->listener_metadata));
    AUTO_FREE char *text = message ? json_dumps(message, JSON_COMPACT) : NULL;
    if (!text)
        return pea_fail(err, ENOMEM, "seccomp agent %s: build the container process state", profile->listener_path);
    return console_send_fd_to_socket(profile->listener_path, "seccomp agent", listener_fd, text, err);
}
