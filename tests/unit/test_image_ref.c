#include <criterion/criterion.h>
#include <string.h>

#include "pea/image_ref.h"

static const char *normalised(const char *text)
{
    static char out[PEA_IMAGE_REF_TEXT_MAX];
    struct pea_image_ref ref;
    static struct pea_error err;
    if (pea_image_ref_parse(text, &ref, &err) < 0)
        return err.msg;
    pea_image_ref_format(&ref, out, sizeof out);
    return out;
}

#define DIGEST "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

Test(image_ref, docker_hub_names_get_library_and_latest)
{
    cr_assert_str_eq(normalised("busybox"), "docker.io/library/busybox:latest");
    cr_assert_str_eq(normalised("busybox:1.36"), "docker.io/library/busybox:1.36");
    cr_assert_str_eq(normalised("user/app"), "docker.io/user/app:latest");
    cr_assert_str_eq(normalised("docker.io/busybox"), "docker.io/library/busybox:latest");
    cr_assert_str_eq(normalised("index.docker.io/library/busybox:1"), "docker.io/library/busybox:1");
    cr_assert_str_eq(normalised("docker.io/library/busybox:latest"), "docker.io/library/busybox:latest");
}

Test(image_ref, registries_keep_their_host_and_port)
{
    cr_assert_str_eq(normalised("localhost:5000/x"), "localhost:5000/x:latest");
    cr_assert_str_eq(normalised("localhost/x:y"), "localhost/x:y");
    cr_assert_str_eq(normalised("registry.k8s.io/pause:3.9"), "registry.k8s.io/pause:3.9");
    cr_assert_str_eq(normalised("127.0.0.1:5000/a/b/c:t"), "127.0.0.1:5000/a/b/c:t");
    cr_assert_str_eq(normalised("[::1]:5000/x"), "[::1]:5000/x:latest");
    cr_assert_str_eq(normalised("Registry.Example/x"), "Registry.Example/x:latest");
    /* Without a slash, "localhost:5000" is the name localhost with tag 5000, as docker reads it. */
    cr_assert_str_eq(normalised("localhost:5000"), "docker.io/library/localhost:5000");
}

Test(image_ref, digests_pin_and_keep_a_tag_given_with_them)
{
    cr_assert_str_eq(normalised("busybox@" DIGEST), "docker.io/library/busybox@" DIGEST);
    cr_assert_str_eq(normalised("busybox:1.36@" DIGEST), "docker.io/library/busybox:1.36@" DIGEST);
    cr_assert_str_eq(normalised("localhost:5000/x@" DIGEST), "localhost:5000/x@" DIGEST);
}

Test(image_ref, rejects_what_docker_rejects)
{
    cr_assert_str_eq(normalised(""), "invalid reference format: empty reference");
    cr_assert_str_eq(normalised("Busybox"), "invalid reference format: Busybox: repository name must be lowercase");
    cr_assert_str_eq(normalised("user/App"), "invalid reference format: user/App: repository name must be lowercase");
    cr_assert(strstr(normalised("busybox:"), "a tag is at most 128"));
    cr_assert(strstr(normalised("busybox:-x"), "a tag is at most 128"));
    cr_assert(strstr(normalised("busybox@sha256:abc"), "64 lowercase hex"));
    cr_assert(strstr(normalised("busybox@md5:abc"), "only sha256"));
    cr_assert(strstr(normalised("a//b"), "lowercase components"));
    cr_assert(strstr(normalised("a/-b"), "lowercase components"));
    cr_assert(strstr(normalised("a/b_"), "lowercase components"));
    cr_assert(strstr(normalised("a/b___c"), "lowercase components"));
    cr_assert(strstr(normalised("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"), "64 hexadecimal"));
    cr_assert(strstr(normalised("host.com:x/y"), "bad registry host"));
    char long_name[400];
    memset(long_name, 'a', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    cr_assert(strstr(normalised(long_name), "longer than 255"));
}

Test(image_ref, separators_as_the_grammar_allows)
{
    cr_assert_str_eq(normalised("x/a.b_c__d-e---f"), "docker.io/x/a.b_c__d-e---f:latest");
    /* A first component with a dot is a registry host, where "_" has no place. */
    cr_assert(strstr(normalised("a.b_c/g"), "bad registry host"));
    cr_assert_str_eq(normalised("x:A_b.c-D"), "docker.io/library/x:A_b.c-D");
}

Test(image_ref, registry_host_and_loopback)
{
    struct pea_image_ref ref;
    struct pea_error err;
    cr_assert_eq(pea_image_ref_parse("busybox", &ref, &err), 0);
    cr_assert_str_eq(pea_image_ref_registry_host(&ref), "registry-1.docker.io");
    cr_assert_not(pea_image_ref_is_loopback(&ref));
    const char *loopback[] = {"localhost/x", "localhost:5000/x", "127.0.0.1:5000/x", "127.1.2.3/x", "[::1]:443/x"};
    for (size_t i = 0; i < sizeof loopback / sizeof *loopback; i++) {
        cr_assert_eq(pea_image_ref_parse(loopback[i], &ref, &err), 0, "%s", loopback[i]);
        cr_assert(pea_image_ref_is_loopback(&ref), "%s", loopback[i]);
    }
    const char *remote[] = {"ghcr.io/x", "127.0.0.1.example.com/x", "localhost.example/x", "[::2]:5000/x"};
    for (size_t i = 0; i < sizeof remote / sizeof *remote; i++) {
        cr_assert_eq(pea_image_ref_parse(remote[i], &ref, &err), 0, "%s", remote[i]);
        cr_assert_not(pea_image_ref_is_loopback(&ref), "%s", remote[i]);
    }
}
