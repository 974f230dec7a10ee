/* The stdio names containerd hands containerd-shim-pea-v2: fifo paths, file:// and binary:// URIs, read as Go's
 * net/url reads them in containerd's shims. */
#include <criterion/criterion.h>

#include "stdio_uri.h"

static struct stdio_uri parse_ok(const char *text)
{
    struct stdio_uri uri;
    struct pea_error err = {0};
    cr_assert_eq(stdio_uri_parse(text, &uri, &err), 0, "%s: %s", text, err.msg);
    return uri;
}

static void assert_refused(const char *text, const char *message)
{
    struct stdio_uri uri;
    struct pea_error err = {0};
    cr_assert_eq(stdio_uri_parse(text, &uri, &err), -1, "%s was accepted", text);
    cr_assert_str_eq(err.msg, message);
    cr_assert_null(uri.path);
    cr_assert_null(uri.args);
}

Test(shim_stdio_uri, empty_is_dev_null)
{
    struct stdio_uri uri = parse_ok("");
    cr_assert_eq(uri.kind, STDIO_URI_NONE);
    cr_assert_null(uri.path);
}

Test(shim_stdio_uri, bare_and_fifo_paths_are_taken_as_they_are)
{
    struct stdio_uri uri = parse_ok("/run/containerd/fifo/123/c1-stdout");
    cr_assert_eq(uri.kind, STDIO_URI_FIFO);
    cr_assert_str_eq(uri.path, "/run/containerd/fifo/123/c1-stdout");
    stdio_uri_release(&uri);
    uri = parse_ok("fifo:///tmp/a%20b?x");
    cr_assert_eq(uri.kind, STDIO_URI_FIFO);
    cr_assert_str_eq(uri.path, "/tmp/a%20b?x");
    stdio_uri_release(&uri);
}

Test(shim_stdio_uri, file_path_is_decoded)
{
    struct stdio_uri uri = parse_ok("file:///var/log/c%201.log");
    cr_assert_eq(uri.kind, STDIO_URI_FILE);
    cr_assert_str_eq(uri.path, "/var/log/c 1.log");
    cr_assert_eq(uri.n_args, 0);
    stdio_uri_release(&uri);
}

Test(shim_stdio_uri, binary_query_becomes_key_then_value_arguments)
{
    struct stdio_uri uri = parse_ok("binary:///usr/bin/logger?tag=a+b&dir=%2Fvar%2Flog&flag&tag=second#frag");
    cr_assert_eq(uri.kind, STDIO_URI_BINARY);
    cr_assert_str_eq(uri.path, "/usr/bin/logger");
    cr_assert_eq(uri.n_args, 6);
    const char *expected[] = {"tag", "a b", "dir", "/var/log", "flag", ""};
    for (size_t i = 0; i < 6; i++)
        cr_assert_str_eq(uri.args[i], expected[i], "argument %zu", i);
    cr_assert_null(uri.args[6]);
    stdio_uri_release(&uri);
}

Test(shim_stdio_uri, query_pairs_go_drops_are_dropped)
{
    /* Go's ParseQuery skips a pair holding ';' or a broken escape, and empty pairs. */
    struct stdio_uri uri = parse_ok("binary:///l?a=1;b=2&&c=%zz&d=%41");
    cr_assert_eq(uri.n_args, 2);
    cr_assert_str_eq(uri.args[0], "d");
    cr_assert_str_eq(uri.args[1], "A");
    stdio_uri_release(&uri);
}

Test(shim_stdio_uri, scheme_is_case_insensitive)
{
    struct stdio_uri uri = parse_ok("BINARY:///l");
    cr_assert_eq(uri.kind, STDIO_URI_BINARY);
    stdio_uri_release(&uri);
}

Test(shim_stdio_uri, refusals_say_why)
{
    assert_refused("relative/path", "stdio relative/path: not an absolute path");
    assert_refused("http:///x", "stdio http:///x: unsupported scheme http (fifo, file and binary are)");
    assert_refused("binary://host/logger",
                   "stdio binary://host/logger: a host is not supported; the path must follow the scheme's \"://\"");
    assert_refused("binary://", "stdio binary://: the path is not absolute");
    assert_refused("file:///a%2", "stdio file:///a%2: invalid escape in the path");
    assert_refused("file:///a%00b", "stdio file:///a%00b: invalid escape in the path");
    assert_refused("file:///log?x=1", "stdio file:///log?x=1: a query means nothing for a file:// URI");
}
