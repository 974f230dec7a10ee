/* Cleanup helpers and small utilities shared by every module. */
#ifndef PEA_UTIL_H
#define PEA_UTIL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

#include "pea/error.h"

static inline void close_fdp(int *fd)
{
    if (*fd >= 0)
        close(*fd);
}
static inline void free_p(void *p) { free(*(void **)p); }
static inline void json_decref_p(json_t **j) { json_decref(*j); }
static inline void fclose_p(FILE **f)
{
    if (*f)
        fclose(*f);
}

#define AUTO_FD __attribute__((cleanup(close_fdp)))
#define AUTO_FREE __attribute__((cleanup(free_p)))
#define AUTO_JSON __attribute__((cleanup(json_decref_p)))
#define AUTO_FILE __attribute__((cleanup(fclose_p)))
void strv_free(char **v);
static inline void strv_free_p(char ***v) { strv_free(*v); }
#define AUTO_STRV __attribute__((cleanup(strv_free_p)))

/* Hand ownership out explicitly. */
static inline int take_fd(int *fd)
{
    int r = *fd;
    *fd = -1;
    return r;
}
static inline void *take_ptr(void *pp)
{
    void *r = *(void **)pp;
    *(void **)pp = NULL;
    return r;
}

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Allocation failures abort: a runtime that cannot allocate a few bytes cannot report anything useful. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
size_t strv_len(char *const *v);
/* Append a copy of s to *v (NULL-terminated, never NULL). */
void strv_append(char ***v, const char *s);

/* write(2)/read(2) until done, retrying EINTR. Return 0 or -1 with errno. */
int write_all(int fd, const void *buf, size_t len);
/* Read what is left of fd (at most max bytes); NUL-terminated. NULL with errno on failure. */
char *read_fd_all(int fd, size_t max, size_t *len_out);
/* Read a whole small file (at most max bytes) at dirfd/path; NUL-terminated. NULL with errno on failure. */
char *read_file_at(int dirfd, const char *path, size_t max, size_t *len_out);
/* Write buf to dirfd/path (O_WRONLY, no create, no truncate semantics beyond O_TRUNC). */
int write_file_at(int dirfd, const char *path, const char *buf, size_t len);
/* Write atomically: temp file in the same directory, fsync-free rename. */
int write_file_atomic_at(int dirfd, const char *name, const char *buf, size_t len, mode_t mode);

/* rm -rf of path: never follows symlinks, refuses to cross into another filesystem. Missing is not an error. */
int remove_tree(const char *path, struct pea_error *err);
/* The same for NAME in dir_fd (a file, a symlink or a tree; shown in messages). */
int remove_tree_at(int dir_fd, const char *name, const char *shown, struct pea_error *err);
/* mkdir -p; existing directories are fine. 0 or -1 with errno. */
int mkdir_p(const char *path, mode_t mode);

/* Parse a base-10 integer that must consume the whole string. */
int parse_int64(const char *s, long long *out);
int parse_uint64(const char *s, unsigned long long *out);

/* RFC 3339 UTC with nanoseconds, e.g. 2026-11-22T07:15:02.123456789Z. buf >= 40 bytes. */
void format_rfc3339_nano(const struct timespec *ts, char *buf, size_t len);

#endif
