#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image_internal.h"
#include "pea/util.h"

static const char *cleaned(const char *path)
{
    static char out[64];
    if (unpack_clean_path(path, out, sizeof out) < 0)
        return errno == EXDEV ? "EXDEV" : errno == ENAMETOOLONG ? "ENAMETOOLONG" : "?";
    return out;
}

Test(image_unpack, entry_paths_are_made_relative_and_dotdot_refused)
{
    cr_assert_str_eq(cleaned("./etc/passwd"), "etc/passwd");
    cr_assert_str_eq(cleaned("/etc//passwd/"), "etc/passwd");
    cr_assert_str_eq(cleaned("././a/./b"), "a/b");
    cr_assert_str_eq(cleaned("./"), "");
    cr_assert_str_eq(cleaned("/"), "");
    cr_assert_str_eq(cleaned("a/..b/c.."), "a/..b/c..");
    cr_assert_str_eq(cleaned(".wh..wh..opq"), ".wh..wh..opq");
    cr_assert_str_eq(cleaned("../etc/shadow"), "EXDEV");
    cr_assert_str_eq(cleaned("a/../../etc"), "EXDEV");
    cr_assert_str_eq(cleaned("a/b/.."), "EXDEV");
    cr_assert_str_eq(cleaned("/.."), "EXDEV");
    cr_assert_str_eq(cleaned("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"), "ENAMETOOLONG");
}

static int pick(const char *platform, const char *manifests_json)
{
    struct image_platform p;
    struct pea_error err = {0};
    cr_assert_eq(image_platform_parse(platform, &p, &err), 0, "%s", err.msg);
    json_t *m = json_loads(manifests_json, 0, NULL);
    cr_assert_not_null(m);
    int r = image_platform_pick(m, &p, &err);
    json_decref(m);
    return r;
}

#define ENTRY(os, arch, variant) "{\"platform\":{\"os\":\"" os "\",\"architecture\":\"" arch "\",\"variant\":\"" variant "\"}}"

Test(image_platform, matches_as_containerd_does)
{
    const char *list = "[" ENTRY("linux", "arm", "v5") "," ENTRY("linux", "arm", "v6") "," ENTRY("linux", "arm64", "v8")
        "," ENTRY("linux", "amd64", "") "," ENTRY("windows", "amd64", "") "," ENTRY("linux", "arm", "v7") "]";
    cr_assert_eq(pick("linux/amd64", list), 3);
    cr_assert_eq(pick("linux/x86_64", list), 3);
    cr_assert_eq(pick("linux/arm64", list), 2);
    cr_assert_eq(pick("linux/aarch64", list), 2);
    cr_assert_eq(pick("linux/arm64/v8", list), 2);
    cr_assert_eq(pick("linux/arm/v7", list), 5);
    cr_assert_eq(pick("linux/arm", list), 5);   /* arm means v7 */
    cr_assert_eq(pick("linux/arm/v6", list), 1); /* never a newer variant */
    cr_assert_eq(pick("linux/arm/v5", list), 0);
    /* A v7 host runs v6 when there is no v7, the newest it can. */
    cr_assert_eq(pick("linux/arm/v7", "[" ENTRY("linux", "arm", "v5") "," ENTRY("linux", "arm", "v6") "]"), 1);
    cr_assert_eq(pick("linux/amd64/v1", "[" ENTRY("linux", "amd64", "v1") "]"), 0);
}

Test(image_platform, says_what_the_index_has_when_nothing_matches)
{
    struct image_platform p;
    struct pea_error err = {0};
    cr_assert_eq(image_platform_parse("linux/s390x", &p, &err), 0);
    json_t *m = json_loads("[" ENTRY("linux", "arm64", "v8") "," ENTRY("linux", "amd64", "") "]", 0, NULL);
    cr_assert_eq(image_platform_pick(m, &p, &err), -1);
    cr_assert_str_eq(err.msg, "no image for linux/s390x in the index (it has: linux/arm64/v8, linux/amd64/)");
    json_decref(m);
    cr_assert_eq(image_platform_parse("linux", &p, &err), -1);
    cr_assert_str_eq(err.msg, "platform \"linux\": not os/arch[/variant]");
}

/* ---- holds, against a store with one image made by hand ------------------------------------------------------- */

static char dir[PATH_MAX];

static void write_file(const char *rel, const void *data, size_t len)
{
    char path[PATH_MAX * 2];
    snprintf(path, sizeof path, "%s/layout/%s", dir, rel);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
    cr_assert_eq(write_all(fd, data, len), 0);
    close(fd);
}

static void write_blob(const void *data, size_t len, char digest[PEA_DIGEST_SIZE])
{
    pea_digest_buffer(data, len, digest);
    char rel[128];
    snprintf(rel, sizeof rel, "blobs/sha256/%s", pea_digest_hex(digest));
    write_file(rel, data, len);
}

/* An OCI layout of one image with one empty layer (a tar of two zero blocks). Returns the manifest digest. */
static void make_layout(char manifest_digest[PEA_DIGEST_SIZE])
{
    char path[PATH_MAX * 2];
    snprintf(path, sizeof path, "%s/layout/blobs/sha256", dir);
    cr_assert_eq(mkdir_p(path, 0755), 0);
    static const char empty_tar[1024];
    char layer[PEA_DIGEST_SIZE], config_digest[PEA_DIGEST_SIZE];
    write_blob(empty_tar, sizeof empty_tar, layer);
    char *config = xasprintf("{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\","
                             "\"diff_ids\":[\"%s\"]}}", layer);
    write_blob(config, strlen(config), config_digest);
    char *manifest = xasprintf("{\"schemaVersion\":2,\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\","
                               "\"digest\":\"%s\",\"size\":%zu},\"layers\":[{\"mediaType\":"
                               "\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"%s\",\"size\":1024}]}",
                               config_digest, strlen(config), layer);
    write_blob(manifest, strlen(manifest), manifest_digest);
    char *index = xasprintf("{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":"
                            "\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"%s\",\"size\":%zu}]}",
                            manifest_digest, strlen(manifest));
    write_file("index.json", index, strlen(index));
    write_file("oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}", 30);
    free(config);
    free(manifest);
    free(index);
}

static void make_dir(void)
{
    snprintf(dir, sizeof dir, "/tmp/pea-store-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void remove_dir(void)
{
    struct pea_error err;
    remove_tree(dir, &err);
}

TestSuite(image_store, .init = make_dir, .fini = remove_dir);

Test(image_store, a_held_image_is_kept_until_released)
{
    char manifest[PEA_DIGEST_SIZE], data_root[PATH_MAX * 2], layout[PATH_MAX * 2];
    make_layout(manifest);
    snprintf(data_root, sizeof data_root, "%s/data", dir);
    snprintf(layout, sizeof layout, "%s/layout", dir);
    struct pea_error err = {0};
    struct pea_image_store *s = NULL;
    cr_assert_eq(pea_image_store_open(data_root, NULL, &s, &err), 0, "%s", err.msg);
    char **loaded = NULL;
    struct pea_image_import_options o = {.name = "app:1"};
    cr_assert_eq(pea_image_import_layout(s, layout, &o, &loaded, &err), 0, "%s", err.msg);
    cr_assert_str_eq(loaded[0], "docker.io/library/app:1");
    strv_free(loaded);

    struct pea_image *img = NULL;
    cr_assert_eq(pea_image_resolve(s, "app:1", &img, &err), 0, "%s", err.msg);
    cr_assert_str_eq(img->manifest_digest, manifest);
    cr_assert_eq(img->n_layers, 1);
    struct stat st;
    cr_assert_eq(stat(img->layer_dirs[0], &st), 0);
    pea_image_free(img);

    cr_assert_eq(pea_image_hold(s, "pod-a", manifest, &err), 0, "%s", err.msg);
    cr_assert_eq(pea_image_hold(s, "pod-b", manifest, &err), 0, "%s", err.msg);
    cr_assert_eq(pea_image_hold(s, "pod-a", manifest, &err), 0, "holding twice is once");
    cr_assert_eq(pea_image_remove(s, "app:1", false, NULL, &err), -1);
    cr_assert_str_eq(err.msg, "image app:1 is in use by pod-a, pod-b: refused");
    cr_assert_eq(err.errnum, EBUSY);
    cr_assert_eq(pea_image_prune(s, true, NULL, &err), 0, "%s", err.msg);
    cr_assert_eq(pea_image_release(s, "pod-a", manifest, &err), 0, "%s", err.msg);
    cr_assert_eq(pea_image_remove(s, manifest, false, NULL, &err), -1);
    cr_assert(strstr(err.msg, "is in use by pod-b: refused"), "%s", err.msg); /* pod-b still holds it */
    cr_assert_eq(pea_image_release(s, "pod-b", NULL, &err), 0, "%s", err.msg);
    char **report = NULL;
    cr_assert_eq(pea_image_remove(s, "app:1", false, &report, &err), 0, "%s", err.msg);
    cr_assert_str_eq(report[0], "Untagged: docker.io/library/app:1");
    strv_free(report);
    cr_assert_eq(pea_image_resolve(s, manifest, &img, &err), -1);
    cr_assert_eq(err.errnum, ENOENT);

    /* Holding what is not there fails; so does a holder name that could be a path. */
    cr_assert_eq(pea_image_hold(s, "pod-a", manifest, &err), -1);
    cr_assert_eq(pea_image_hold(s, "../x", manifest, &err), -1);
    cr_assert(strstr(err.msg, "image holder \"../x\""));
    pea_image_store_close(s);
}

/* The portable SHA-256 (documents, and the shim's socket name) against FIPS 180-4's examples and the streaming one
 * (libcrypto), across the padding's one-block and two-block cases. */
Test(digest, portable_sha256_matches_the_streaming_one)
{
    char portable[PEA_DIGEST_SIZE], streamed[PEA_DIGEST_SIZE];
    pea_digest_buffer("abc", 3, portable);
    cr_assert_str_eq(portable, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    pea_digest_buffer(two_blocks, strlen(two_blocks), portable);
    cr_assert_str_eq(portable, "sha256:248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    pea_digest_buffer("", 0, portable);
    cr_assert_str_eq(portable, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    static char data[1000];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (char)(i * 7 + 3);
    for (size_t len = 0; len <= sizeof data; len += len < 130 ? 1 : 97) {
        pea_digest_buffer(data, len, portable);
        struct pea_hasher *h = pea_hasher_new(PEA_DIGEST_SHA256);
        pea_hasher_update(h, data, len);
        pea_hasher_finish(h, streamed);
        cr_assert_str_eq(portable, streamed, "length %zu", len);
    }
}
