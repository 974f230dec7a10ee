/* libFuzzer target: a control request, whatever its bytes, parses or fails with a reason, and the error reply
 * built from that reason is valid JSON; nothing crashes or leaks. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct proto_request req;
    struct pea_error err = {0};
    if (proto_parse_request((const char *)data, size, &req, &err) == 0) {
        proto_request_clear(&req);
        return 0;
    }
    if (err.msg[0] == '\0')
        abort();
    json_t *reply = proto_reply_error(req.has_id ? req.id : 0, err.msg);
    if (!json_is_string(json_object_get(reply, "error")))
        abort();
    json_decref(reply);
    proto_request_clear(&req);
    return 0;
}
