/* A process's stdio as containerd names it in CreateTaskRequest/ExecProcessRequest: a fifo path (bare or fifo://),
 * file:///PATH (a log file), or binary:///PATH?KEY=VALUE&... (a logging binary), read as Go's net/url reads them:
 * the path and the query percent-decoded, '+' in the query a space. */
#ifndef PEA_SHIM_V2_STDIO_URI_H
#define PEA_SHIM_V2_STDIO_URI_H

#include <stddef.h>

#include "pea/error.h"

enum stdio_uri_kind {
    STDIO_URI_NONE,   /* "": /dev/null */
    STDIO_URI_FIFO,   /* "/p" or "fifo:///p": a fifo containerd made (or any file, written as it is) */
    STDIO_URI_FILE,   /* "file:///p": appended to, created 0644 with its directories as containerd's shim does */
    STDIO_URI_BINARY, /* "binary:///p?k=v": the logger binary /p, started with the arguments k v */
};

struct stdio_uri {
    enum stdio_uri_kind kind;
    char *path;     /* decoded, absolute; NULL for STDIO_URI_NONE */
    char **args;    /* binary: the query as argv words, each key then its first value, NULL-terminated */
    size_t n_args;
};

/* Parse text; on failure *uri is empty and err says what is wrong with it. */
int stdio_uri_parse(const char *text, struct stdio_uri *uri, struct pea_error *err);
void stdio_uri_release(struct stdio_uri *uri);

#endif
