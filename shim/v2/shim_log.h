/* The shim daemon's log: its stderr, which is the `log` fifo containerd opens in the bundle and copies into its
 * own log (or /dev/null while containerd is away). */
#ifndef PEA_SHIM_V2_SHIM_LOG_H
#define PEA_SHIM_V2_SHIM_LOG_H

#include <stdbool.h>

void shim_log_open(bool debug);
void shim_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void shim_log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
