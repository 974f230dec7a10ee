/* libFuzzer target for what `pea image bundle` reads from an image: Config.User resolved against /etc/passwd and
 * /etc/group texts (the input split at NUL bytes: user, passwd, group), and an image config converted to a runtime
 * config (the whole input as JSON). Never a crash or a leak; a failure says why; a name resolves only to a user its
 * passwd text has. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pea/image_bundle.h"
#include "pea/spec.h"
#include "pea/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 2);
    if (!text)
        abort();
    memcpy(text, data, size);
    text[size] = text[size + 1] = '\0';
    const char *user = text;
    const char *passwd = memchr(text, '\0', size) ? user + strlen(user) + 1 : NULL;
    const char *group = passwd && passwd < text + size ? passwd + strlen(passwd) + 1 : NULL;
    if (group > text + size)
        group = NULL;
    struct pea_image_user u;
    struct pea_error err = {0};
    if (pea_image_user_resolve(user, passwd, group, &u, &err) < 0) {
        if (!err.msg[0])
            abort();
        u = (struct pea_image_user){0};
    } else if (u.n_additional_gids && !u.additional_gids) {
        abort();
    }
    json_t *image = json_loadb((const char *)data, size, 0, NULL);
    if (image) {
        json_t *spec = spec_default_json(false);
        char **notices = NULL;
        err = (struct pea_error){0};
        if (pea_image_runtime_config(spec, image, &u, false, &notices, &err) < 0 && !err.msg[0])
            abort();
        strv_free(notices);
        json_decref(spec);
        json_decref(image);
    }
    pea_image_user_clear(&u);
    free(text);
    return 0;
}
