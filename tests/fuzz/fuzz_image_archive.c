/* libFuzzer target for image archives: any bytes loaded as a docker-archive or oci-archive (the tar, manifest.json,
 * index.json, manifests and configs inside, the layers) must fail or load cleanly, never crash, hang or leak, and
 * leave no spooled member behind. */
#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "image_internal.h"
#include "pea/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[] = "/tmp/pea-fuzz-archive-XXXXXX";
static struct pea_image_store *store;

static void remove_store(void)
{
    pea_image_store_close(store);
    remove_tree(dir, &(struct pea_error){0});
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct pea_error err = {0};
    if (!store) {
        struct pea_image_limits limits = {.max_layer_bytes = 4 << 20, .max_layer_entries = 4096,
                                          .max_document_bytes = 1 << 20};
        if (!mkdtemp(dir) || pea_image_store_open(dir, &limits, &store, &err) < 0)
            abort();
        atexit(remove_store);
    }
    int fd = memfd_create("archive", MFD_CLOEXEC);
    if (fd < 0 || write_all(fd, data, size) < 0 || lseek(fd, 0, SEEK_SET) < 0)
        abort();
    char **loaded = NULL;
    if (pea_image_load_archive(store, fd, NULL, &loaded, &err) < 0 && !err.msg[0])
        abort();
    strv_free(loaded);
    close(fd);
    DIR *d = fdopendir(dup(store->work_fd));
    if (!d)
        abort();
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.')
            abort();
    closedir(d);
    return 0;
}
