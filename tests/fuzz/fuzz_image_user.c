/* libFuzzer target for an image's User looked up in its own /etc/passwd and /etc/group (text the image's author
 * wrote): the input is split at its first two NUL bytes into the User, passwd and group. Never a crash or a read
 * past the input; a failure says why. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pea/pod_image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 2);
    if (!text)
        abort();
    memcpy(text, data, size);
    text[size] = text[size + 1] = '\0';
    char *passwd = NULL, *groups = NULL;
    char *nul = memchr(text, '\0', size);
    if (nul) {
        passwd = nul + 1;
        char *second = memchr(passwd, '\0', (size_t)(text + size - passwd));
        groups = second ? second + 1 : NULL;
    }
    uid_t uid;
    gid_t gid;
    struct pea_error err = {0};
    if (pod_image_user_ids(text, passwd, groups, &uid, &gid, &err) < 0 && !err.msg[0])
        abort();
    free(text);
    return 0;
}
