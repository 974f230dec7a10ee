/* libFuzzer target: whatever bytes arrive as runtime options (on `start`'s stdin as a packed Any, or as a
 * CreateTaskRequest's type URL and value), containerd-shim-pea-v2 either refuses them with a message naming the
 * problem or reads options it can honour: an absolute Root, an absolute ShimCgroup without "..", no other runtime;
 * nothing leaks. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runtime_options.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int rc, struct runtime_options *o, const struct pea_error *err)
{
    if (rc < 0) {
        if (!err->msg[0] || o->root || o->shim_cgroup)
            abort();
        return;
    }
    if ((o->root && o->root[0] != '/') || (o->shim_cgroup && (o->shim_cgroup[0] != '/' ||
                                                               strstr(o->shim_cgroup, "/../") ||
                                                               strcmp(o->shim_cgroup, "/..") == 0)))
        abort();
    runtime_options_release(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct runtime_options o;
    struct pea_error err = {0};
    check(runtime_options_parse_any(data, size, &o, &err), &o, &err);
    /* The same bytes as the value of each type the shim knows. */
    static const char *const types[] = {"containerd.runc.v1.Options", "containerd.linux.runc.CreateOptions",
                                        "runtimeoptions.v1.Options", "x/containerd.runc.v1.Options"};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        err = (struct pea_error){0};
        check(runtime_options_parse(types[i], data, size, &o, &err), &o, &err);
    }
    return 0;
}
