/* The shim's container log files: <pod data dir>/logs/<container>.log in the CRI format, rotated by size; when a
 * container gets a new instance, the files of the one before become <container>.previous.log*. Their indexes
 * (cri_log_index.h) are <pod data dir>/log-index/<container>[.previous].log.index, out of the way of anything
 * that lists the log directory. `pea pod logs` reads the same files directly, so these names are shared with the
 * CLI. */
#ifndef PEA_SHIM_LOGS_H
#define PEA_SHIM_LOGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pea/error.h"
#include "pea/util.h"
#include "pea/supervise.h"

#define SHIM_LOG_DIR "logs"
#define SHIM_LOG_INDEX_DIR "log-index"
/* Rotation: at 10 MiB a file becomes .1, and two rotated files are kept. PEA_SHIM_LOG_MAX_BYTES overrides the
 * size (a tuning knob, documented in pea-shim.8; the tests use it to rotate without writing 10 MiB). */
#define SHIM_LOG_MAX_BYTES (10 * 1024 * 1024)
#define SHIM_LOG_ROTATED_FILES 2

/* "<container>.log" or "<container>.previous.log"; the caller frees. */
static inline char *shim_log_name(const char *container, bool is_previous)
{
    return xasprintf("%s%s.log", container, is_previous ? ".previous" : "");
}

struct shim_logs;

/* Create <data_dir>/logs (when missing) and get ready to write there. */
struct shim_logs *shim_logs_open(const char *data_dir, struct pea_error *err);
void shim_logs_free(struct shim_logs *logs);
/* Append one chunk of a container's output. Failures are logged to the shim's own log, never block the loop. */
void shim_logs_write(struct shim_logs *logs, const char *container, enum pod_stream stream, const char *buf,
                     size_t len);
/* The current instance's files become the previous ones (older previous files go). */
void shim_logs_new_instance(struct shim_logs *logs, const char *container);

#endif
