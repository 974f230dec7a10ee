/* libFuzzer target for image references: parsing never crashes or reads past the input, a failure says why, and
 * what parses formats to a reference that parses to itself. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pea/image_ref.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        abort();
    memcpy(text, data, size);
    text[size] = '\0';
    struct pea_image_ref ref, again;
    struct pea_error err = {0};
    if (pea_image_ref_parse(text, &ref, &err) < 0) {
        if (!err.msg[0])
            abort();
    } else {
        char out[PEA_IMAGE_REF_TEXT_MAX], out2[PEA_IMAGE_REF_TEXT_MAX];
        pea_image_ref_format(&ref, out, sizeof out);
        if (pea_image_ref_parse(out, &again, &err) < 0)
            abort();
        pea_image_ref_format(&again, out2, sizeof out2);
        if (strcmp(out, out2) != 0)
            abort();
        pea_image_ref_is_loopback(&ref);
    }
    free(text);
    return 0;
}
