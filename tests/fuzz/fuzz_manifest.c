/* libFuzzer target: pod manifests (YAML or JSON) must never crash, hang or leak, and a failure always says why. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "pea/pod_manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct pea_error err = {0};
    /* The parser takes a length: no NUL terminator is added, so reads past the end show up under ASan. */
    struct pea_pod_manifest *m = manifest_parse((const char *)data, size, &err);
    if (!m && err.msg[0] == '\0')
        abort();
    manifest_free(m);
    return 0;
}
