/* A process's stdio as containerd hands it over: the paths of fifos it made, file:// or binary:// log URIs
 * (stdio_uri.h), or a terminal.
 *
 * Without a terminal the process writes straight into containerd's fifos: no copy, no buffer in the shim. The shim
 * keeps a reader of each output fifo open, so the process never gets EPIPE while no client reads (containerd
 * restarting), and a writer of the stdin fifo, so the process sees EOF only after CloseIO. With a terminal, the
 * shim copies between the fifos and the pty master, which pea sends over a console socket.
 *
 * binary:///PATH?K=V: as containerd's shims do, the shim starts the logging binary PATH with the arguments K V, its
 * fd 3 the read end of the process's stdout pipe, fd 4 of its stderr pipe, fd 5 a pipe it closes or writes a byte
 * to once it is ready, and only CONTAINER_ID and CONTAINER_NAMESPACE in its environment. The process is created
 * only after that signal; a logger that exits first or sends nothing within STDIO_LOGGER_READY_TIMEOUT_MS fails the
 * create with an error naming it. The logger is the shim's child: the loop reaps it, and it gets SIGTERM when the
 * process is deleted (as containerd's shim sends it). */
#ifndef PEA_SHIM_V2_PROCESS_STDIO_H
#define PEA_SHIM_V2_PROCESS_STDIO_H

#include <stdbool.h>
#include <sys/types.h>

#include "pea/error.h"

#define STDIO_LOGGER_READY_TIMEOUT_MS 10000

struct stdio_pump;

struct shim_stdio {
    char *stdin_path, *stdout_path, *stderr_path;
    bool terminal;
    int child[3];              /* what the process gets as fds 0-2; closed once it runs */
    int stdin_writer;          /* held until CloseIO */
    int stdout_reader, stderr_reader;
    int stdin_reader;          /* terminal: the stdin fifo, copied to the pty */
    int console_out;           /* terminal: the stdout fifo, copied from the pty */
    int console;               /* terminal: the pty master, for resizing */
    struct stdio_pump *input, *output;
    pid_t logger_pid;          /* binary://: the logging binary (0: none) */
    int logger_pidfd;          /* ... to signal it by, whoever has reaped it */
};

/* Who the process's stdio belongs to besides the shim. */
struct stdio_context {
    const char *container_id;  /* a logging binary's CONTAINER_ID */
    bool has_io_owner;         /* runtime options IoUid/IoGid: the fifos and pipes the process writes to and reads */
    uid_t io_uid;              /* from are given to this owner, so a process running as it can open them again */
    gid_t io_gid;              /* (/dev/stdout is /proc/self/fd/1) */
};

/* The containerd namespace a logging binary is told (CONTAINER_NAMESPACE); set once when the shim starts. */
void stdio_set_namespace(const char *namespace);

/* Open what the process needs; on failure nothing stays open and no logger runs. Paths "" mean /dev/null. */
int stdio_open(struct shim_stdio *io, const char *in, const char *out, const char *err_path, bool terminal,
               const struct stdio_context *context, struct pea_error *err);
/* The process runs: the shim no longer needs its copies of the process's own fds. */
void stdio_close_child_ends(struct shim_stdio *io);
/* Terminal: start copying between the fifos and the pty master (ownership of master passes). */
int stdio_attach_console(struct shim_stdio *io, int master, struct pea_error *err);
void stdio_close_stdin(struct shim_stdio *io);
int stdio_resize(struct shim_stdio *io, unsigned width, unsigned height, struct pea_error *err);
/* Close everything (the process is deleted). */
void stdio_release(struct shim_stdio *io);

/* A unix socket the runtime sends the pty master to (runc's --console-socket), in a private temporary directory. */
struct console_socket {
    char dir[64];
    char path[96];
    int fd;
};
int console_socket_open(struct console_socket *s, struct pea_error *err);
/* The master the runtime sent; it has already connected when create/exec returns. */
int console_socket_receive(struct console_socket *s, int *master, struct pea_error *err);
void console_socket_close(struct console_socket *s);

#endif
