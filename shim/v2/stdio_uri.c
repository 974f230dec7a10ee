#include "stdio_uri.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pea/util.h"

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decode len bytes of s ('+' a space when plus_is_space, as in a query). NULL when an escape is broken or
 * decodes to a NUL byte (no path or argument can hold one). */
static char *decode(const char *s, size_t len, bool plus_is_space)
{
    char *out = xmalloc(len + 1);
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '%') {
            int hi = i + 1 < len ? hex_value(s[i + 1]) : -1;
            int lo = i + 2 < len ? hex_value(s[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                free(out);
                return NULL;
            }
            out[n++] = (char)(hi << 4 | lo);
            i += 2;
        } else if (s[i] == '+' && plus_is_space) {
            out[n++] = ' ';
        } else {
            out[n++] = s[i];
        }
    }
    out[n] = '\0';
    return out;
}

static bool has_key(char **args, size_t n_args, const char *key)
{
    for (size_t i = 0; i < n_args; i += 2)
        if (strcmp(args[i], key) == 0)
            return true;
    return false;
}

/* The query as containerd's shim turns it into arguments (url.Query): pairs split on '&', a pair without '=' has
 * the value "", a pair with ';' or a broken escape is skipped (Go reports and drops it), a repeated key keeps its
 * first value. Go visits the keys in map order, that is in no order; here they keep the URI's. */
static void parse_query(const char *query, size_t len, struct stdio_uri *uri)
{
    size_t start = 0;
    while (start <= len) {
        const char *pair = query + start;
        const char *amp = memchr(pair, '&', len - start);
        size_t pair_len = amp ? (size_t)(amp - pair) : len - start;
        start += pair_len + 1;
        if (pair_len == 0 || memchr(pair, ';', pair_len))
            continue;
        const char *eq = memchr(pair, '=', pair_len);
        size_t key_len = eq ? (size_t)(eq - pair) : pair_len;
        char *key = decode(pair, key_len, true);
        char *value = eq ? decode(eq + 1, pair_len - key_len - 1, true) : xstrdup("");
        if (!key || !value || !*key || has_key(uri->args, uri->n_args, key)) {
            free(key);
            free(value);
            continue;
        }
        uri->args = xrealloc(uri->args, (uri->n_args + 3) * sizeof *uri->args);
        uri->args[uri->n_args++] = key;
        uri->args[uri->n_args++] = value;
        uri->args[uri->n_args] = NULL;
    }
}

int stdio_uri_parse(const char *text, struct stdio_uri *uri, struct pea_error *err)
{
    *uri = (struct stdio_uri){.kind = STDIO_URI_NONE};
    if (!text || !*text)
        return 0;
    const char *sep = strstr(text, "://");
    if (!sep || strncasecmp(text, "fifo://", 7) == 0) {
        /* A fifo's name is taken as it is, as containerd's shim opens it. */
        const char *path = sep ? sep + 3 : text;
        if (path[0] != '/')
            return pea_fail(err, 0, "stdio %s: not an absolute path", text);
        uri->kind = STDIO_URI_FIFO;
        uri->path = xstrdup(path);
        return 0;
    }
    size_t scheme_len = (size_t)(sep - text);
    if (scheme_len == 4 && strncasecmp(text, "file", 4) == 0)
        uri->kind = STDIO_URI_FILE;
    else if (scheme_len == 6 && strncasecmp(text, "binary", 6) == 0)
        uri->kind = STDIO_URI_BINARY;
    else
        return pea_fail(err, 0, "stdio %s: unsupported scheme %.*s (fifo, file and binary are)", text,
                        (int)scheme_len, text);
    const char *rest = sep + 3;
    size_t end = strcspn(rest, "#"); /* a fragment means nothing here */
    size_t path_start = strcspn(rest, "/?#");
    if (path_start > 0) {
        *uri = (struct stdio_uri){.kind = STDIO_URI_NONE};
        return pea_fail(err, 0, "stdio %s: a host is not supported; the path must follow the scheme's \"://\"", text);
    }
    size_t path_len = strcspn(rest, "?#");
    char *path = decode(rest, path_len, false);
    if (!path || path[0] != '/') {
        free(path);
        *uri = (struct stdio_uri){.kind = STDIO_URI_NONE};
        return pea_fail(err, 0, "stdio %s: %s", text, path ? "the path is not absolute" : "invalid escape in the path");
    }
    uri->path = path;
    if (rest[path_len] == '?') {
        if (uri->kind != STDIO_URI_BINARY) {
            stdio_uri_release(uri);
            return pea_fail(err, 0, "stdio %s: a query means nothing for a file:// URI", text);
        }
        parse_query(rest + path_len + 1, end - path_len - 1, uri);
    }
    return 0;
}

void stdio_uri_release(struct stdio_uri *uri)
{
    free(uri->path);
    for (size_t i = 0; i < uri->n_args; i++)
        free(uri->args[i]);
    free(uri->args);
    *uri = (struct stdio_uri){.kind = STDIO_URI_NONE};
}
