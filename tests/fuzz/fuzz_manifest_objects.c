/* libFuzzer target: manifest files of several objects (Pods, controllers, List, ConfigMaps, Secrets) must never
 * crash, hang or leak; a failure always says why, and every object accepted makes a pod manifest that parses. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "pea/pod_workload.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct pea_error err = {0};
    struct pea_manifest_errors errors = {0};
    struct pea_manifest_objects *o = manifest_parse_objects((const char *)data, size, &errors, &err);
    if (!o && err.msg[0] == '\0')
        abort();
    if (!o && errors.n == 0 && err.msg[0] == '\0')
        abort();
    for (size_t i = 0; o && i < o->n; i++) {
        struct pea_error pod_err = {0};
        struct pea_pod_manifest *m = manifest_workload_pod(o, &o->items[i], o->items[i].first_index, &pod_err);
        if (!m && pod_err.msg[0] == '\0')
            abort();
        manifest_free(m);
    }
    manifest_errors_free(&errors);
    manifest_objects_free(o);
    return 0;
}
