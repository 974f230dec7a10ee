/* Errors that say what failed: the operation, the object and errno, as one line. */
#ifndef PEA_ERROR_H
#define PEA_ERROR_H

#include <stddef.h>

struct pea_error {
    int errnum;    /* errno of the call that failed, 0 for a validation error */
    char msg[1024]; /* "mount proc on /proc: Operation not permitted" */
};

/* Fill *err with the formatted text and, when errnum != 0, ": strerror(errnum)". Returns -1. */
int pea_fail(struct pea_error *err, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefix context as the error travels up: "create c1: " + existing message. Returns -1. */
int pea_wrap(struct pea_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
