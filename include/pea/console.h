/* The container's terminal: a pty made from the container's own devpts, handed to the caller over the console
 * socket (SCM_RIGHTS), or proxied to our stdio by a foreground `run`/`exec`. */
#ifndef PEA_CONSOLE_H
#define PEA_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>
#include <termios.h>
#include <sys/types.h>

#include "pea/error.h"

/* In the container, after pivot_root: open /dev/pts/ptmx (verified devpts), get the peer slave race-free
 * (TIOCGPTPEER), give it to owner (the process's uid), set the window size, optionally bind the slave onto
 * /dev/console, make it the controlling terminal and stdin/stdout/stderr. Returns the master fd. */
int console_setup_in_container(unsigned height, unsigned width, bool bind_dev_console, uid_t owner,
                               struct pea_error *err);

/* Send one fd with a payload over a unix socket (SCM_RIGHTS). */
int console_send_fd(int sock, int fd, const void *payload, size_t len);
/* Receive a message that may carry one fd; *fd is -1 when none came. Returns the payload length or -1. */
ssize_t console_recv_fd(int sock, int *fd, void *payload, size_t len);

/* Connect to the unix stream socket at socket_path and send fd with payload (what names the socket in errors:
 * "console socket", "pidfd socket"). */
int console_send_fd_to_socket(const char *socket_path, const char *what, int fd, const char *payload,
                              struct pea_error *err);
/* Connect to the caller's console socket and send the master with the pty's name (what go-runc and conmon
 * expect). */
int console_send_to_socket(const char *socket_path, int master, struct pea_error *err);

/* Put our terminal (fd) in raw mode for proxying; *saved receives the old settings. false when fd is no tty. */
bool console_make_raw(int fd, struct termios *saved);
/* Move what is readable from one fd to the other; false when the source is done. */
bool console_pump(int from, int to);
void console_copy_window_size(int from, int to);

#endif
