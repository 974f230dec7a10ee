/* Container log files in the CRI format the kubelet and crictl read: one record a line,
 *   <RFC 3339 timestamp> <stdout|stderr> <F|P> <text>
 * where P marks a piece of a line that continues in the next record of the same stream and F ends the line.
 * The writer never holds data back: what a read from the container's pipe returned is on disk when
 * cri_log_write returns, an unfinished line as a P record. */
#ifndef PEA_SHIM_CRI_LOG_H
#define PEA_SHIM_CRI_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "pea/error.h"

enum cri_stream { CRI_STDOUT, CRI_STDERR };

/* The longest text one record carries; a longer line becomes several P records and a last F. */
#define CRI_LOG_MAX_PIECE (16 * 1024)
/* Room for the longest timestamp the parser accepts ("2026-11-22T07:15:02.123456789+01:00") and its NUL. */
#define CRI_LOG_TIMESTAMP_MAX 40

struct cri_log;

/* "name" for index 0, "name.N" for the Nth rotated file. The caller frees. */
char *cri_log_file_name(const char *name, unsigned index);
/* The next file is made as "<name>" CRI_LOG_NEW_SUFFIX, then renamed to name. */
#define CRI_LOG_NEW_SUFFIX ".new"

/* Open or create dir_fd/name (0640, appending), and its index index_dir_fd/<name>.index (cri_log_index.h). When a
 * write would take the file past max_bytes, it is renamed to name.1 (name.1 to name.2, ..., at most max_files
 * rotated files, fewer than CRI_LOG_INDEX_MAX_FILES, the oldest dropped) and a new name is created; max_bytes 0
 * never rotates. A single record larger than max_bytes still goes whole into one file. Files found at open go on
 * (with the index, when it describes them; else as a new instance, counted from their records). */
struct cri_log *cri_log_open(int dir_fd, int index_dir_fd, const char *name, uint64_t max_bytes,
                             unsigned max_files, struct pea_error *err);

/* Write one chunk read from a container's stream, timestamped now: each complete line as an F record (longer ones
 * split as above), a trailing piece without newline as a P record. Nothing is written for len 0. The chunk's
 * records go out in one write(2) unless a rotation falls between them. */
int cri_log_write(struct cri_log *log, enum cri_stream stream, const char *buf, size_t len,
                  const struct timespec *now, struct pea_error *err);

void cri_log_close(struct cri_log *log);

/* One record, pointing into the parsed text. */
struct cri_log_line {
    const char *timestamp; /* RFC 3339: fraction of 0 to 9 digits, Z or a +hh:mm / -hh:mm offset */
    size_t timestamp_len;
    enum cri_stream stream;
    bool is_partial; /* P */
    const char *text;
    size_t text_len;
};

/* Parse one record of len bytes, without its newline. Fails on any other shape, saying which field is wrong. */
int cri_log_parse_line(const char *line, size_t len, struct cri_log_line *out, struct pea_error *err);

/* Receives one full line (P pieces joined, no newline; text is NUL-terminated) and the timestamp of its first
 * piece. Return 0 to go on; a negative value, with errno set, stops the read. */
typedef int (*cri_log_emit_fn)(enum cri_stream stream, const char *text, size_t len, const char *timestamp,
                               void *ctx);

/* Read dir_fd/name (after name.N ... name.1 when include_rotated) and emit its full lines in order; P pieces
 * join per stream. A line whose F is not written yet is emitted at the end as it stands. tail > 0 emits only the
 * last tail lines. Fails on a malformed record, naming file and line. */
int cri_log_read(int dir_fd, const char *name, bool include_rotated, size_t tail, cri_log_emit_fn emit,
                 void *ctx, struct pea_error *err);

#endif
