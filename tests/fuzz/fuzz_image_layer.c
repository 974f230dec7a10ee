/* libFuzzer target for the layer reader: any bytes, as a layer blob (tar, gzip or zstd), are unpacked into a store
 * under /tmp. Never a crash, a hang or a leak; the diff ID expected never matches, so every layer fails, and then
 * nothing may be left in the store's work directory or its layers. */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image_internal.h"
#include "pea/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[] = "/tmp/pea-fuzz-layer-XXXXXX";
static struct pea_image_store *store;

static void remove_store(void)
{
    pea_image_store_close(store);
    remove_tree(dir, &(struct pea_error){0});
}

static struct pea_image_store *open_store(void)
{
    if (store)
        return store;
    struct pea_image_limits limits = {.max_layer_bytes = 4 << 20, .max_layer_entries = 4096,
                                      .max_document_bytes = 1 << 20};
    struct pea_error err = {0};
    if (!mkdtemp(dir) || pea_image_store_open(dir, &limits, &store, &err) < 0)
        abort();
    atexit(remove_store);
    return store;
}

struct memory {
    const uint8_t *data;
    size_t size, at;
};

static ssize_t memory_read(void *ctx, void *buf, size_t len, struct pea_error *err)
{
    (void)err;
    struct memory *m = ctx;
    size_t n = m->size - m->at < len ? m->size - m->at : len;
    memcpy(buf, m->data + m->at, n);
    m->at += n;
    return (ssize_t)n;
}

static bool is_empty(int dir_fd)
{
    DIR *d = fdopendir(dup(dir_fd));
    if (!d)
        abort();
    struct dirent *de;
    bool empty = true;
    while ((de = readdir(d)))
        empty = empty && de->d_name[0] == '.';
    closedir(d);
    return empty;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct pea_image_store *s = open_store();
    struct memory m = {.data = data, .size = size};
    struct layer_source src = {.read = memory_read, .ctx = &m};
    struct layer_expect expect = {
        .blob_digest = NULL,
        .blob_size = -1,
        .diff_id = "sha256:0000000000000000000000000000000000000000000000000000000000000000",
    };
    struct pea_error err = {0};
    uint64_t tar_size = 0;
    if (store_unpack_layer(s, &src, &expect, &tar_size, &err) == 0 || !err.msg[0])
        abort();
    if (!is_empty(s->work_fd) || !is_empty(s->layers_fd))
        abort();
    return 0;
}
