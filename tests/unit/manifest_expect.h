/* Unit tests of manifest files: the error lines a file gives, every one, in document order. */
#ifndef PEA_TESTS_MANIFEST_EXPECT_H
#define PEA_TESTS_MANIFEST_EXPECT_H

#include <criterion/criterion.h>
#include <string.h>

#include "pea/pod_workload.h"
#include "pea/util.h"

/* The file's objects, or NULL with its error lines in *errors (and a message when the file has none). */
static inline struct pea_manifest_objects *parse_manifest_objects(const char *text, struct pea_manifest_errors *errors)
{
    struct pea_error err = {0};
    struct pea_manifest_objects *o = manifest_parse_objects(text, strlen(text), errors, &err);
    if (!o)
        cr_assert_neq(err.msg[0], '\0');
    return o;
}

static inline void expect_error_lines(const char *text, const char *const *expected, size_t n_expected)
{
    struct pea_manifest_errors errors = {0};
    struct pea_error err = {0};
    cr_assert_null(manifest_parse_objects(text, strlen(text), &errors, &err), "the file was accepted");
    for (size_t i = 0; i < errors.n && i < n_expected; i++)
        cr_expect_str_eq(errors.lines[i], expected[i], "line %zu: %s", i, errors.lines[i]);
    cr_expect_eq(errors.n, n_expected, "%zu lines, not %zu", errors.n, n_expected);
    manifest_errors_free(&errors);
}

#endif
