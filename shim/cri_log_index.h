/* The index of a container's log files: which files (by inode) hold which part of the container's output. The
 * writer rewrites it (atomically) at each rotation, before the new file takes the log's name, so that a reader who
 * holds one file can tell which file comes next and how much output went with the files it never opened.
 *
 *   pea-cri-log-index 1 <instance, 16 hex digits>
 *   <seq> <inode> <stdout bytes> <stdout lines> <stdout mid-line> <stderr bytes> <stderr lines> <stderr mid-line>
 *   ...
 *
 * one line per living file, oldest first; seq counts the instance's files from 0; the numbers of a file are where
 * it begins in the instance's output (see struct cri_log_position). A new instance of the container (a restart)
 * gets a new random instance number. */
#ifndef PEA_SHIM_CRI_LOG_INDEX_H
#define PEA_SHIM_CRI_LOG_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cri_log.h"
#include "pea/error.h"

/* The most files (the current one and the rotated ones) an index describes. */
#define CRI_LOG_INDEX_MAX_FILES 64

/* A point in one instance's output, per stream (indexed by enum cri_stream). */
struct cri_log_position {
    uint64_t bytes[2];     /* output bytes before it: the text of the records, and a newline for each F */
    uint64_t lines[2];     /* lines ended before it (F records) */
    bool is_mid_line[2];   /* the stream's last record before it was P: a line is open */
};

/* Account for one record of `stream`: what the writer does when it writes it and a reader when it reads it. */
static inline void cri_log_position_add(struct cri_log_position *at, enum cri_stream stream, size_t text_len,
                                        bool is_partial)
{
    at->bytes[stream] += text_len + !is_partial;
    at->lines[stream] += !is_partial;
    at->is_mid_line[stream] = is_partial;
}

struct cri_log_index_file {
    uint64_t seq;
    uint64_t inode;
    struct cri_log_position start;
};

struct cri_log_index {
    uint64_t instance;
    size_t n_files;
    struct cri_log_index_file files[CRI_LOG_INDEX_MAX_FILES]; /* oldest first, seq rising */
};

/* The index file of the log called name: "<name>.index". The caller frees. */
char *cri_log_index_name(const char *name);

/* Parse an index's text; fails on any other shape, saying what is wrong. */
int cri_log_index_parse(const char *text, size_t len, struct cri_log_index *out, struct pea_error *err);
/* The text of an index; the caller frees. */
char *cri_log_index_format(const struct cri_log_index *index);

/* Read dir_fd/<name>.index. Fails with errnum ENOENT when there is none. */
int cri_log_index_load(int dir_fd, const char *name, struct cri_log_index *out, struct pea_error *err);
/* Replace dir_fd/<name>.index at once (a temporary file renamed over it). */
int cri_log_index_save(int dir_fd, const char *name, const struct cri_log_index *index, struct pea_error *err);

/* The file of index with that seq, or NULL. */
const struct cri_log_index_file *cri_log_index_find(const struct cri_log_index *index, uint64_t seq);

#endif
