/* Image references: the grammar of the distribution project's reference package, normalised as docker does. */
#include <stdio.h>
#include <string.h>

#include "pea/image_ref.h"

static bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
static bool is_alnum(char c) { return is_lower_alnum(c) || (c >= 'A' && c <= 'Z'); }
static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* path-component := [a-z0-9]+ (separator [a-z0-9]+)*, separator := [_.] | "__" | "-"+ */
static bool is_path_component(const char *s, size_t n)
{
    size_t i = 0;
    if (n == 0 || !is_lower_alnum(s[0]) || !is_lower_alnum(s[n - 1]))
        return false;
    while (i < n) {
        if (is_lower_alnum(s[i])) {
            i++;
            continue;
        }
        size_t start = i;
        if (s[i] == '-') {
            while (i < n && s[i] == '-')
                i++;
        } else if (s[i] == '_' && i + 1 < n && s[i + 1] == '_') {
            i += 2;
        } else if (s[i] == '.' || s[i] == '_') {
            i++;
        } else {
            return false;
        }
        if (i == start || i >= n || !is_lower_alnum(s[i]))
            return false;
    }
    return true;
}

static bool is_path(const char *s)
{
    for (;;) {
        const char *slash = strchr(s, '/');
        size_t n = slash ? (size_t)(slash - s) : strlen(s);
        if (!is_path_component(s, n))
            return false;
        if (!slash)
            return true;
        s = slash + 1;
    }
}

/* domain-component := [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9] */
static bool is_host_name(const char *s, size_t n)
{
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != '.') {
            if (!is_alnum(s[i]) && s[i] != '-')
                return false;
            continue;
        }
        if (i == start || s[start] == '-' || s[i - 1] == '-')
            return false;
        start = i + 1;
    }
    return true;
}

static bool is_ipv6_literal(const char *s, size_t n)
{
    if (n < 4 || s[0] != '[' || s[n - 1] != ']')
        return false;
    for (size_t i = 1; i + 1 < n; i++)
        if (!(is_alnum(s[i]) || s[i] == ':' || s[i] == '.'))
            return false;
    return true;
}

static bool is_domain(const char *s)
{
    size_t n = strlen(s);
    const char *colon = strrchr(s, ':');
    const char *bracket = strrchr(s, ']');
    if (colon && (!bracket || colon > bracket)) {
        if (!colon[1])
            return false;
        for (const char *p = colon + 1; *p; p++)
            if (!is_digit(*p))
                return false;
        n = (size_t)(colon - s);
    }
    return s[0] == '[' ? is_ipv6_literal(s, n) : n > 0 && is_host_name(s, n);
}

/* tag := [\w][\w.-]{0,127} */
static bool is_tag(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > PEA_IMAGE_TAG_MAX || s[0] == '.' || s[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_alnum(s[i]) && s[i] != '_' && s[i] != '.' && s[i] != '-')
            return false;
    return true;
}

static bool is_hex64(const char *s)
{
    size_t i = 0;
    for (; s[i]; i++)
        if (!is_digit(s[i]) && !(s[i] >= 'a' && s[i] <= 'f'))
            return false;
    return i == 64;
}

/* Copy when it fits (the compiler cannot see that the checks above bound every part). */
static bool copy_text(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap)
        return false;
    memcpy(dst, src, n + 1);
    return true;
}

static int invalid(struct pea_error *err, const char *text, const char *why)
{
    return pea_fail(err, 0, "invalid reference format: %s: %s", text, why);
}

int pea_image_ref_parse(const char *text, struct pea_image_ref *ref, struct pea_error *err)
{
    memset(ref, 0, sizeof *ref);
    if (!text || !*text)
        return pea_fail(err, 0, "invalid reference format: empty reference");
    size_t len = strlen(text);
    if (len >= PEA_IMAGE_REF_TEXT_MAX)
        return pea_fail(err, 0, "invalid reference format: reference of %zu bytes is too long", len);
    char name[PEA_IMAGE_REF_TEXT_MAX];
    memcpy(name, text, len + 1);

    char *at = strchr(name, '@');
    if (at) {
        *at = '\0';
        const char *digest = at + 1;
        if (strncmp(digest, PEA_DIGEST_PREFIX, sizeof PEA_DIGEST_PREFIX - 1) != 0)
            return invalid(err, text, "only sha256 digests are supported");
        if (!pea_digest_is_valid(digest))
            return invalid(err, text, "a digest is sha256: and 64 lowercase hex digits");
        copy_text(ref->digest, sizeof ref->digest, digest);
    }
    /* The tag follows the last ':' after the last '/' (an earlier ':' belongs to a port). */
    char *slash = strrchr(name, '/');
    char *colon = strrchr(slash ? slash : name, ':');
    if (colon) {
        *colon = '\0';
        if (!is_tag(colon + 1))
            return invalid(err, text, "a tag is at most 128 of [A-Za-z0-9_.-], not starting with . or -");
        copy_text(ref->tag, sizeof ref->tag, colon + 1);
    }
    if (!name[0])
        return invalid(err, text, "no repository name");
    if (!at && !colon && is_hex64(name))
        return invalid(err, text, "a repository name cannot be 64 hexadecimal digits");

    /* The first component is a registry when it looks like one: a dot, a port, "localhost" or capitals. */
    char *first_slash = strchr(name, '/');
    const char *path = name;
    if (first_slash) {
        *first_slash = '\0';
        bool is_registry = strpbrk(name, ".:[") || strcmp(name, "localhost") == 0;
        for (const char *p = name; !is_registry && *p; p++)
            is_registry = *p >= 'A' && *p <= 'Z';
        if (is_registry) {
            if (!is_domain(name))
                return invalid(err, text, "bad registry host");
            if (!copy_text(ref->domain, sizeof ref->domain, strcmp(name, "index.docker.io") == 0 ? "docker.io" : name))
                return invalid(err, text, "registry host longer than 255 characters");
            path = first_slash + 1;
        } else {
            *first_slash = '/';
        }
    }
    if (!ref->domain[0])
        snprintf(ref->domain, sizeof ref->domain, "docker.io");
    for (const char *p = path; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            return invalid(err, text, "repository name must be lowercase");
    if (!is_path(path))
        return invalid(err, text, "a repository path is lowercase components of [a-z0-9] joined by . _ __ or -");
    bool needs_library = strcmp(ref->domain, "docker.io") == 0 && !strchr(path, '/');
    size_t prefix = needs_library ? strlen("library/") : 0, n = prefix + strlen(path);
    if (strlen(ref->domain) + 1 + n > PEA_IMAGE_NAME_MAX)
        return invalid(err, text, "repository name longer than 255 characters");
    memcpy(ref->path, "library/", prefix);
    memcpy(ref->path + prefix, path, strlen(path) + 1);
    if (!ref->tag[0] && !ref->digest[0])
        snprintf(ref->tag, sizeof ref->tag, "latest");
    return 0;
}

size_t pea_image_ref_repository(const struct pea_image_ref *ref, char *buf, size_t len)
{
    int n = snprintf(buf, len, "%s/%s", ref->domain, ref->path);
    return n < 0 ? 0 : (size_t)n;
}

size_t pea_image_ref_format(const struct pea_image_ref *ref, char *buf, size_t len)
{
    int n = snprintf(buf, len, "%s/%s%s%s%s%s", ref->domain, ref->path, ref->tag[0] ? ":" : "", ref->tag,
                     ref->digest[0] ? "@" : "", ref->digest);
    return n < 0 ? 0 : (size_t)n;
}

const char *pea_image_ref_registry_host(const struct pea_image_ref *ref)
{
    return strcmp(ref->domain, "docker.io") == 0 ? "registry-1.docker.io" : ref->domain;
}

bool pea_image_ref_is_loopback(const struct pea_image_ref *ref)
{
    char host[sizeof ref->domain];
    snprintf(host, sizeof host, "%s", ref->domain);
    char *end = host[0] == '[' ? strchr(host, ']') : strchr(host, ':');
    if (host[0] == '[')
        return end && strncmp(host, "[::1]", 5) == 0 && (end[1] == '\0' || end[1] == ':');
    if (end)
        *end = '\0';
    if (strcmp(host, "localhost") == 0)
        return true;
    unsigned a, b, c, d;
    char extra;
    return sscanf(host, "%u.%u.%u.%u%c", &a, &b, &c, &d, &extra) == 4 && a == 127 && b < 256 && c < 256 && d < 256;
}
