/* libFuzzer target: what a registry sends before any blob (manifests, indexes, WWW-Authenticate challenges) must
 * never crash, hang or leak, and a refusal always says why. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "registry_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct pea_error err = {0};
    struct registry_manifest m;
    /* The parser takes a length: no NUL terminator is added, so reads past the end show up under ASan. */
    if (registry_manifest_parse((const char *)data, size, NULL, 1u << 30, &m, &err) == 0) {
        if (m.kind == REGISTRY_KIND_INDEX) {
            struct registry_platform_spec want;
            registry_platform_resolve(&(struct registry_platform){.os = "linux", .architecture = "arm64"}, &want);
            registry_platform_select(&m, &want, &err);
        }
        registry_manifest_free(&m);
    } else if (err.msg[0] == '\0') {
        abort();
    }

    /* A header value is a C string (curl hands over one line). */
    char *header = malloc(size + 1);
    memcpy(header, data, size);
    header[size] = '\0';
    struct registry_challenge c;
    err.msg[0] = '\0';
    if (registry_challenge_parse(header, &c, &err) == 0)
        registry_challenge_free(&c);
    else if (err.msg[0] == '\0')
        abort();
    free(header);
    return 0;
}
