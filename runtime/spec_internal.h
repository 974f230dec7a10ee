/* Typed JSON getters shared by the parts of the config parser (spec.c, spec_linux.c). Each fails with
 * "<field path>: <what is wrong>". */
#ifndef PEA_SPEC_INTERNAL_H
#define PEA_SPEC_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "pea/error.h"
#include "pea/spec.h"

#define SPEC_MAX_SIZE (16 << 20)

int spec_field_fail(struct pea_error *err, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int spec_get_string(json_t *obj, const char *key, const char *path, bool required, char **out,
                    struct pea_error *err);
int spec_get_bool(json_t *obj, const char *key, const char *path, bool *out, struct pea_error *err);
int spec_get_int(json_t *obj, const char *key, const char *path, long long min, long long max, bool *present,
                 long long *out, struct pea_error *err);
int spec_get_uint64(json_t *obj, const char *key, const char *path, uint64_t *out, struct pea_error *err);
int spec_get_strv(json_t *obj, const char *key, const char *path, char ***out, struct pea_error *err);
int spec_get_object(json_t *obj, const char *key, const char *path, json_t **out, struct pea_error *err);
int spec_get_array(json_t *obj, const char *key, const char *path, json_t **out, struct pea_error *err);
unsigned long spec_propagation_from_name(const char *name);

/* The "linux" object: namespaces, id maps, devices, cgroups, sysctl, masked paths, seccomp. */
int spec_parse_linux(json_t *root, struct pea_spec *spec, struct pea_error *err);

#endif
