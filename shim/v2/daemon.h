/* The long-lived shim: serves the Task service on the socket `start` made (fd 3), reaps as the subreaper of its
 * containers, and exits after Shutdown once no task is left and no `start` that joined it still waits for its
 * task's Create (or on SIGTERM/SIGINT, leaving containers running). Before it decides to exit it withdraws its
 * socket under the socket's lock, so a later `start` starts a fresh shim instead of joining this one. */
#ifndef PEA_SHIM_V2_DAEMON_H
#define PEA_SHIM_V2_DAEMON_H

#include <spawn.h>
#include <stdbool.h>

struct daemon_config {
    const char *namespace;
    const char *id;
    const char *address;         /* containerd's gRPC socket, for the publisher */
    const char *publish_binary;
    const char *ttrpc_address;   /* containerd's ttrpc socket for events, NULL: run publish_binary */
    const char *pea_root;
    bool debug;
    int listener;
    const char *socket_path; /* the listener's name, withdrawn (under its lock, shim_socket.h) before the exit */
};

/* Returns the process's exit status. */
int daemon_serve(const struct daemon_config *config);

/* Undo in a process the shim spawns what daemon_serve did to the shim's signals (those its signalfd reads are
 * blocked, SIGPIPE is ignored): the publisher starts with none blocked and SIGPIPE at its
 * default. Sets the attr's flags. */
void daemon_spawn_with_clean_signals(posix_spawnattr_t *attr);

#endif
