/* A process's stdio as containerd hands it over: the paths of fifos it made (or file:// URIs), or a terminal.
 *
 * Without a terminal the process writes straight into containerd's fifos: no copy, no buffer in the shim. The shim
 * keeps a reader of each output fifo open, so the process never gets EPIPE while no client reads (containerd
 * restarting), and a writer of the stdin fifo, so the process sees EOF only after CloseIO. With a terminal, the
 * shim copies between the fifos and the pty master, which pea sends over a console socket. */
#ifndef PEA_SHIM_V2_PROCESS_STDIO_H
#define PEA_SHIM_V2_PROCESS_STDIO_H

#include <stdbool.h>

#include "pea/error.h"

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
};

/* Open what the process needs; on failure nothing stays open. Paths "" mean /dev/null. */
int stdio_open(struct shim_stdio *io, const char *in, const char *out, const char *err_path, bool terminal,
               struct pea_error *err);
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
