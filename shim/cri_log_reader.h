/* Reading a container's log files in order while the shim writes and rotates them (what `pea pod logs` does, with
 * or without -f). The follower goes through the files of one instance of the container, oldest first, by their
 * index (cri_log_index.h): it keeps reading a file it has opened after that file is rotated or removed, to its
 * end, then opens the next one. Output that was gone before it could be read (files rotated away and dropped
 * meanwhile) is reported as a gap, once, between the lines before and after it: never a silent hole, never a line
 * made of the pieces on either side of one. The writer never waits for a follower. */
#ifndef PEA_SHIM_CRI_LOG_READER_H
#define PEA_SHIM_CRI_LOG_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cri_log.h"
#include "pea/error.h"

struct cri_log_gap {
    uint64_t bytes; /* output bytes in the files that were gone */
    uint64_t lines; /* lines not emitted because of it: lost whole, or in part (never emitted torn) */
    /* The instance's files were replaced by ones the follower cannot place (the shim rebuilt them): what it lost
     * is not known, bytes and lines are 0. */
    bool is_unknown;
};

/* Receives one gap. Return 0 to go on; a negative value, with errno set, stops the read. */
typedef int (*cri_log_gap_fn)(const struct cri_log_gap *gap, void *ctx);

struct cri_log_follower;

/* Read dir_fd/name, name.1, ... by the index index_dir_fd/<name>.index. moved_name, when not NULL, is where the
 * files go when the container gets a new instance (the follower then finishes its instance there). tail > 0 emits
 * only the last tail lines of what the first read finds. is_following keeps lines whose end is not written yet
 * for a later read; without it, one read and cri_log_follower_finish give the files as they are. */
struct cri_log_follower *cri_log_follower_new(int dir_fd, int index_dir_fd, const char *name, const char *moved_name,
                                              size_t tail, bool is_following, cri_log_emit_fn emit,
                                              cri_log_gap_fn on_gap, void *ctx);

enum cri_log_follow_result {
    CRI_LOG_CAUGHT_UP, /* everything written so far is read (more may come) */
    CRI_LOG_ENDED,     /* the instance followed has ended: a new one took the name, nothing more will come */
};

/* Read what has been written since the last call. Fails on a malformed record or index, naming the file, and on
 * log files without an index (written by a pea-shim older than the index: cri_log_read reads those). */
int cri_log_follower_read(struct cri_log_follower *f, enum cri_log_follow_result *result, struct pea_error *err);

/* Emit the lines whose end never came, as they stand, in the order they began (and with tail, the kept lines). */
int cri_log_follower_finish(struct cri_log_follower *f, struct pea_error *err);

void cri_log_follower_free(struct cri_log_follower *f);

#endif
