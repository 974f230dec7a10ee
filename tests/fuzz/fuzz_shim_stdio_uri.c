/* libFuzzer target: whatever string containerd (or a client through it) gives as a process's stdout, stderr or stdin,
 * containerd-shim-pea-v2's URI reader either refuses it with a message or yields an absolute path without NUL bytes
 * and, for binary://, a NULL-terminated list of key/value arguments; nothing leaks. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pea/util.h"
#include "stdio_uri.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    AUTO_FREE char *text = xmalloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0'; /* protobuf strings may hold NUL bytes; the shim sees what precedes the first */
    struct stdio_uri uri;
    struct pea_error err = {0};
    if (stdio_uri_parse(text, &uri, &err) < 0) {
        if (!err.msg[0] || uri.path || uri.args)
            abort();
        return 0;
    }
    if (uri.kind == STDIO_URI_NONE ? uri.path != NULL : (!uri.path || uri.path[0] != '/'))
        abort();
    if (uri.n_args % 2 != 0 || (uri.n_args && uri.args[uri.n_args] != NULL))
        abort();
    for (size_t i = 0; i < uri.n_args; i += 2)
        if (!uri.args[i][0])
            abort(); /* an empty key is dropped, as Go drops it */
    stdio_uri_release(&uri);
    return 0;
}
