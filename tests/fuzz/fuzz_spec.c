/* libFuzzer target: config.json parsing and validation must never crash, hang or leak, whatever the input. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pea/spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    struct pea_error err = {0};
    struct pea_spec *spec = spec_parse_string(text, &err);
    /* A failure must always say why. */
    if (!spec && err.msg[0] == '\0')
        abort();
    spec_free(spec);
    free(text);
    return 0;
}
