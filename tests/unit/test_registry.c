/* The registry client's parsers: WWW-Authenticate challenges, manifests and indexes, platform choice, and the
 * credential files. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "pea/util.h"
#include "registry_internal.h"

#define D1 "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define D2 "sha256:2222222222222222222222222222222222222222222222222222222222222222"
#define D3 "sha256:3333333333333333333333333333333333333333333333333333333333333333"

/* ---- challenges ---- */

Test(registry_challenge, bearer_with_quoted_params)
{
    struct registry_challenge c;
    struct pea_error err = {0};
    cr_assert_eq(registry_challenge_parse("Bearer realm=\"https://auth.docker.io/token\",service=\"registry.docker.io\","
                                          "scope=\"repository:library/busybox:pull\"", &c, &err), 0, "%s", err.msg);
    cr_assert_eq(c.scheme, REGISTRY_AUTH_BEARER);
    cr_assert_str_eq(c.realm, "https://auth.docker.io/token");
    cr_assert_str_eq(c.service, "registry.docker.io");
    cr_assert_str_eq(c.scope, "repository:library/busybox:pull");
    registry_challenge_free(&c);
}

Test(registry_challenge, bearer_preferred_over_basic_and_escapes)
{
    struct registry_challenge c;
    struct pea_error err = {0};
    cr_assert_eq(registry_challenge_parse("Basic realm=\"x\", Newauth foo=bar, bearer  realm = \"https://a/t\\\"q\" ,"
                                          " service=svc", &c, &err), 0, "%s", err.msg);
    cr_assert_eq(c.scheme, REGISTRY_AUTH_BEARER);
    cr_assert_str_eq(c.realm, "https://a/t\"q");
    cr_assert_str_eq(c.service, "svc");
    cr_assert_null(c.scope);
    registry_challenge_free(&c);
}

Test(registry_challenge, basic_and_unknown)
{
    struct registry_challenge c;
    struct pea_error err = {0};
    cr_assert_eq(registry_challenge_parse("Basic realm=\"Registry Realm\"", &c, &err), 0);
    cr_assert_eq(c.scheme, REGISTRY_AUTH_BASIC);
    registry_challenge_free(&c);
    cr_assert_eq(registry_challenge_parse("Negotiate", &c, &err), 0);
    cr_assert_eq(c.scheme, REGISTRY_AUTH_NONE);
}

Test(registry_challenge, malformed)
{
    struct registry_challenge c;
    struct pea_error err = {0};
    cr_assert_eq(registry_challenge_parse("Bearer realm=\"https://a", &c, &err), -1);
    cr_assert_str_eq(err.msg, "WWW-Authenticate: unterminated quoted string");
    cr_assert_eq(registry_challenge_parse("realm=x", &c, &err), -1);
    cr_assert_str_eq(err.msg, "WWW-Authenticate: parameter before any scheme");
    cr_assert_eq(registry_challenge_parse("Bearer service=x", &c, &err), -1);
    cr_assert_str_eq(err.msg, "WWW-Authenticate: Bearer challenge without a realm");
}

/* ---- manifests ---- */

static int parse(const char *json, const char *content_type, struct registry_manifest *m, struct pea_error *err)
{
    return registry_manifest_parse(json, strlen(json), content_type, 1000000, m, err);
}

#define IMAGE(layer_type, size) \
    "{\"schemaVersion\":2,\"mediaType\":\"" MEDIA_OCI_MANIFEST "\",\"config\":{\"mediaType\":" \
    "\"application/vnd.oci.image.config.v1+json\",\"digest\":\"" D1 "\",\"size\":10},\"layers\":[" \
    "{\"mediaType\":\"" layer_type "\",\"digest\":\"" D2 "\",\"size\":" size "}]}"

Test(registry_manifest, oci_image)
{
    struct registry_manifest m;
    struct pea_error err = {0};
    cr_assert_eq(parse(IMAGE("application/vnd.oci.image.layer.v1.tar+zstd", "5"), NULL, &m, &err), 0, "%s", err.msg);
    cr_assert_eq(m.kind, REGISTRY_KIND_IMAGE);
    cr_assert_str_eq(m.media_type, MEDIA_OCI_MANIFEST);
    cr_assert_str_eq(m.config.digest, D1);
    cr_assert_eq(m.n_entries, 1);
    cr_assert_str_eq(m.entries[0].digest, D2);
    cr_assert_eq(m.entries[0].size, 5);
    registry_manifest_free(&m);
}

Test(registry_manifest, refusals)
{
    struct registry_manifest m;
    struct pea_error err = {0};
    cr_assert_eq(parse(IMAGE("application/vnd.oci.image.layer.v1.tar+gzip", "1000001"), NULL, &m, &err), -1);
    cr_assert_str_eq(err.msg, "manifest.layers[0]: blob " D2 " of 1000001 bytes exceeds the limit of 1000000");
    cr_assert_eq(parse(IMAGE("application/vnd.oci.image.layer.v1.tar+encrypted", "1"), NULL, &m, &err), -1);
    cr_assert_str_eq(err.msg, "manifest.layers[0]: unsupported layer media type "
                              "application/vnd.oci.image.layer.v1.tar+encrypted");
    cr_assert_eq(parse(IMAGE("application/vnd.oci.image.layer.v1.tar", "-1"), NULL, &m, &err), -1);
    cr_assert_str_eq(err.msg, "manifest.layers[0].size: missing or not a non-negative integer");
    cr_assert_eq(parse(IMAGE("application/vnd.oci.image.layer.v1.tar", "1"), MEDIA_DOCKER_MANIFEST, &m, &err), -1);
    cr_assert_str_eq(err.msg, "manifest: served as " MEDIA_DOCKER_MANIFEST " but its mediaType is " MEDIA_OCI_MANIFEST);
    cr_assert_eq(parse("{\"schemaVersion\":1,\"fsLayers\":[]}", NULL, &m, &err), -1);
    cr_assert_str_eq(err.msg, "manifest: Docker schema 1 is not supported");
    cr_assert_eq(parse("{\"schemaVersion\":2,\"schemaVersion\":2}", NULL, &m, &err), -1);
    cr_assert(strstr(err.msg, "duplicate"), "%s", err.msg);
    cr_assert_eq(parse("{\"schemaVersion\":2,\"manifests\":[],\"layers\":[]}", NULL, &m, &err), -1);
    cr_assert_str_eq(err.msg, "index: has layers or config, which only an image manifest has");
    cr_assert_eq(parse("{\"schemaVersion\":2,\"mediaType\":\"" MEDIA_OCI_MANIFEST "\",\"config\":{\"mediaType\":\"a\","
                       "\"digest\":\"sha256:../../etc/passwd\",\"size\":1},\"layers\":[]}", NULL, &m, &err), -1);
    cr_assert_str_eq(err.msg, "manifest.config: digest \"sha256:../../etc/passwd\": not 64 lowercase hex digits");
    cr_assert_eq(parse("{\"schemaVersion\":2,\"config\":{\"mediaType\":\"application/vnd.cncf.helm.config.v1+json\","
                       "\"digest\":\"" D1 "\",\"size\":1},\"layers\":[]}", NULL, &m, &err), -1);
    cr_assert_str_eq(err.msg, "manifest.config: media type application/vnd.cncf.helm.config.v1+json is not a "
                              "container image config");
}

static const char index_json[] =
    "{\"schemaVersion\":2,\"mediaType\":\"" MEDIA_DOCKER_LIST "\",\"manifests\":["
    "{\"mediaType\":\"" MEDIA_DOCKER_MANIFEST "\",\"digest\":\"" D1 "\",\"size\":7,"
    "\"platform\":{\"os\":\"linux\",\"architecture\":\"arm\",\"variant\":\"v6\"}},"
    "{\"mediaType\":\"" MEDIA_DOCKER_MANIFEST "\",\"digest\":\"" D2 "\",\"size\":7,"
    "\"platform\":{\"os\":\"linux\",\"architecture\":\"386\"}},"
    "{\"mediaType\":\"" MEDIA_DOCKER_MANIFEST "\",\"digest\":\"" D3 "\",\"size\":7,"
    "\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\",\"variant\":\"v1\"}}]}";

static int select_for(const struct registry_manifest *m, const char *arch, const char *variant, struct pea_error *err)
{
    struct registry_platform want = {.os = "linux", .architecture = arch, .variant = variant};
    struct registry_platform_spec spec;
    registry_platform_resolve(&want, &spec);
    return registry_platform_select(m, &spec, err);
}

Test(registry_manifest, platform_choice_as_containerd)
{
    struct registry_manifest m;
    struct pea_error err = {0};
    cr_assert_eq(parse(index_json, NULL, &m, &err), 0, "%s", err.msg);
    cr_assert_eq(m.kind, REGISTRY_KIND_INDEX);
    cr_assert_eq(select_for(&m, "x86_64", NULL, &err), 2);   /* amd64/v1 is amd64 */
    cr_assert_eq(select_for(&m, "amd64", "v3", &err), 2);    /* v3 runs v1 */
    cr_assert_eq(select_for(&m, "arm", "v7", &err), 0);      /* v7 runs v6 */
    cr_assert_eq(select_for(&m, "aarch64", NULL, &err), 0);  /* arm64 runs 32-bit arm */
    cr_assert_eq(select_for(&m, "arm", "v5", &err), -1);
    cr_assert_str_eq(err.msg, "no manifest for linux/arm/v5 in the index (it has linux/arm/v6, linux/386, "
                              "linux/amd64/v1)");
    registry_manifest_free(&m);
}

/* ---- credential files ---- */

static char *write_temp(const char *text)
{
    char *path = xstrdup("/tmp/pea-test-auth-XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write_all(fd, text, strlen(text)), 0);
    close(fd);
    return path;
}

/* base64("alice:pw1") = YWxpY2U6cHcx, ("bob:pw:2") = Ym9iOnB3OjI=, ("carol:x") = Y2Fyb2w6eA== */
Test(registry_auth, lookup_order_and_keys)
{
    AUTO_FREE char *podman = write_temp("{\"auths\":{\"quay.io\":{\"auth\":\"YWxpY2U6cHcx\"},"
                                        "\"quay.io/team/app\":{\"auth\":\"Y2Fyb2w6eA==\"}}}");
    AUTO_FREE char *docker = write_temp("{\"auths\":{\"https://index.docker.io/v1/\":{\"auth\":\"Ym9iOnB3OjI=\"},"
                                        "\"quay.io\":{\"auth\":\"Ym9iOnB3OjI=\"}}}");
    const char *files[] = {"/nonexistent/auth.json", podman, docker, NULL};
    struct registry_credentials c;
    struct pea_error err = {0};
    cr_assert_eq(registry_credentials_lookup(files, "docker.io", "library/busybox", &c, &err), 1, "%s", err.msg);
    cr_assert_str_eq(c.username, "bob");
    cr_assert_str_eq(c.password, "pw:2");
    registry_credentials_clear(&c);
    cr_assert_eq(registry_credentials_lookup(files, "quay.io", "other/app", &c, &err), 1);
    cr_assert_str_eq(c.username, "alice"); /* the first file with an entry wins */
    registry_credentials_clear(&c);
    cr_assert_eq(registry_credentials_lookup(files, "quay.io", "team/app", &c, &err), 1);
    cr_assert_str_eq(c.username, "carol"); /* the most specific key wins */
    registry_credentials_clear(&c);
    cr_assert_eq(registry_credentials_lookup(files, "quay.io", "team/application", &c, &err), 1);
    cr_assert_str_eq(c.username, "alice"); /* a key matches whole path components only */
    registry_credentials_clear(&c);
    cr_assert_eq(registry_credentials_lookup(files, "ghcr.io", "x/y", &c, &err), 0);
    cr_assert_null(c.username);
    unlink(podman);
    unlink(docker);
}

Test(registry_auth, malformed_file_names_file_not_secret)
{
    AUTO_FREE char *bad = write_temp("{\"auths\":{\"quay.io\":{\"auth\":\"bm9jb2xvbi1zZWNyZXQ=\"}}}");
    const char *files[] = {bad, NULL};
    struct registry_credentials c;
    struct pea_error err = {0};
    cr_assert_eq(registry_credentials_lookup(files, "quay.io", "a/b", &c, &err), -1);
    cr_assert(strstr(err.msg, "is not base64 of user:password"), "%s", err.msg);
    cr_assert_null(strstr(err.msg, "nocolon-secret"));
    cr_assert_null(strstr(err.msg, "bm9jb2xvbi1zZWNyZXQ"));
    unlink(bad);
}

Test(registry_digest, syntax)
{
    struct pea_error err = {0};
    cr_assert_eq(pea_digest_check(D1, NULL, &err), 0);
    cr_assert_eq(pea_digest_check("sha256:ABCDEF1111111111111111111111111111111111111111111111111111111111", NULL,
                                  &err), -1);
    cr_assert_eq(pea_digest_check("md5:d41d8cd98f00b204e9800998ecf8427e", NULL, &err), -1);
    cr_assert_str_eq(err.msg, "digest \"md5:d41d8cd98f00b204e9800998ecf8427e\": unsupported algorithm (sha256 and "
                              "sha512 are)");
    cr_assert_eq(pea_digest_verify("", 0, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                                   "blob", &err), 0);
    cr_assert_eq(pea_digest_verify("x", 1, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                                   "blob", &err), -1);
    cr_assert_str_eq(err.msg, "blob sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855: content "
                              "has digest sha256:2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881");
    /* A registry may name blobs by sha512: the streaming hasher does both. */
    const char *empty_sha512 = "sha512:cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8"
                               "318d2877eec2f63b931bd47417a81a538327af927da3e";
    enum pea_digest_algorithm alg = PEA_DIGEST_SHA256;
    cr_assert_eq(pea_digest_check(empty_sha512, &alg, &err), 0);
    cr_assert_eq(alg, PEA_DIGEST_SHA512);
    cr_assert_eq(pea_digest_verify("", 0, empty_sha512, "blob", &err), 0, "%s", err.msg);
}
