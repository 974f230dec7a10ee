/* Authentication with a registry: the WWW-Authenticate challenge and the credential files podman and docker
 * write. Credentials never reach an error message. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <string.h>

#include "pea/util.h"
#include "registry_internal.h"

/* Longest challenge parameter we keep (realms are URLs, scopes name repositories). */
#define CHALLENGE_PARAM_MAX 4096
#define AUTH_FILE_MAX (1u << 20)

void registry_challenge_free(struct registry_challenge *c)
{
    free(c->realm);
    free(c->service);
    free(c->scope);
    memset(c, 0, sizeof *c);
}

static bool is_token_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static const char *skip_space(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* A parameter value: a quoted-string (backslash escapes) or a bare run up to ',' or space. */
static const char *read_value(const char *p, char **out, struct pea_error *err)
{
    char *buf = xmalloc(CHALLENGE_PARAM_MAX + 1);
    size_t n = 0;
    if (*p == '"') {
        for (p++; *p != '"'; p++) {
            if (*p == '\\' && p[1])
                p++;
            if (*p == '\0') {
                free(buf);
                pea_fail(err, 0, "WWW-Authenticate: unterminated quoted string");
                return NULL;
            }
            if (n == CHALLENGE_PARAM_MAX) {
                free(buf);
                pea_fail(err, 0, "WWW-Authenticate: parameter longer than %d bytes", CHALLENGE_PARAM_MAX);
                return NULL;
            }
            buf[n++] = *p;
        }
        p++;
    } else {
        for (; *p && *p != ',' && *p != ' ' && *p != '\t'; p++) {
            if (n == CHALLENGE_PARAM_MAX) {
                free(buf);
                pea_fail(err, 0, "WWW-Authenticate: parameter longer than %d bytes", CHALLENGE_PARAM_MAX);
                return NULL;
            }
            buf[n++] = *p;
        }
    }
    buf[n] = '\0';
    *out = buf;
    return p;
}

int registry_challenge_parse(const char *value, struct registry_challenge *out, struct pea_error *err)
{
    memset(out, 0, sizeof *out);
    struct registry_challenge bearer = {0};
    bool has_basic = false, in_bearer = false, in_challenge = false;
    const char *p = value;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (!*p)
            break;
        const char *start = p;
        while (is_token_char(*p))
            p++;
        if (p == start) {
            registry_challenge_free(&bearer);
            return pea_fail(err, 0, "WWW-Authenticate: unexpected character '%c'", *p);
        }
        size_t token_len = (size_t)(p - start);
        const char *after = skip_space(p);
        if (*after == '=' && in_challenge) {
            /* name=value of the current challenge (a token68 ends in '=' too, but then no value follows). */
            char *v = NULL;
            p = read_value(skip_space(after + 1), &v, err);
            if (!p) {
                registry_challenge_free(&bearer);
                return -1;
            }
            char **slot = NULL;
            if (in_bearer && token_len == 5 && strncasecmp(start, "realm", 5) == 0)
                slot = &bearer.realm;
            else if (in_bearer && token_len == 7 && strncasecmp(start, "service", 7) == 0)
                slot = &bearer.service;
            else if (in_bearer && token_len == 5 && strncasecmp(start, "scope", 5) == 0)
                slot = &bearer.scope;
            if (slot && !*slot)
                *slot = v;
            else
                free(v);
            continue;
        }
        if (*after == '=') {
            registry_challenge_free(&bearer);
            return pea_fail(err, 0, "WWW-Authenticate: parameter before any scheme");
        }
        /* A new challenge. Only the first Bearer one counts. */
        in_challenge = true;
        in_bearer = false;
        if (token_len == 6 && strncasecmp(start, "Bearer", 6) == 0 && bearer.scheme == REGISTRY_AUTH_NONE) {
            bearer.scheme = REGISTRY_AUTH_BEARER;
            in_bearer = true;
        } else if (token_len == 5 && strncasecmp(start, "Basic", 5) == 0) {
            has_basic = true;
        }
        p = after;
    }
    if (bearer.scheme == REGISTRY_AUTH_BEARER) {
        if (!bearer.realm || !bearer.realm[0]) {
            registry_challenge_free(&bearer);
            return pea_fail(err, 0, "WWW-Authenticate: Bearer challenge without a realm");
        }
        *out = bearer;
        return 0;
    }
    if (has_basic)
        out->scheme = REGISTRY_AUTH_BASIC;
    return 0;
}

/* ---- credential files ---- */

void registry_credentials_clear(struct registry_credentials *c)
{
    if (c->username) {
        explicit_bzero(c->username, strlen(c->username));
        free(c->username);
    }
    if (c->password) {
        explicit_bzero(c->password, strlen(c->password));
        free(c->password);
    }
    c->username = c->password = NULL;
}

static int base64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Standard base64, padding optional. NULL when malformed. */
static char *base64_decode(const char *in, size_t *len_out)
{
    size_t len = strlen(in);
    while (len && in[len - 1] == '=')
        len--;
    char *out = xmalloc(len * 3 / 4 + 1);
    size_t n = 0;
    unsigned int acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = base64_value(in[i]);
        if (v < 0) {
            explicit_bzero(out, n);
            free(out);
            return NULL;
        }
        acc = (acc << 6) | (unsigned int)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (char)((acc >> bits) & 0xff);
        }
    }
    out[n] = '\0';
    *len_out = n;
    return out;
}

/* The registry a key of an "auths" map names, with podman's optional /namespace/repo path: docker writes URLs
 * ("https://index.docker.io/v1/"), which name a host only. */
static void auth_key_normalise(const char *key, char *out, size_t size)
{
    bool was_url = false;
    if (strncmp(key, "https://", 8) == 0)
        key += 8, was_url = true;
    else if (strncmp(key, "http://", 7) == 0)
        key += 7, was_url = true;
    size_t n = was_url ? strcspn(key, "/") : strlen(key);
    while (n && key[n - 1] == '/')
        n--;
    if (n >= size)
        n = 0; /* too long to match anything */
    memcpy(out, key, n);
    out[n] = '\0';
}

static bool is_docker_hub(const char *host)
{
    return !strcmp(host, "docker.io") || !strcmp(host, "index.docker.io") || !strcmp(host, "registry-1.docker.io");
}

/* How well a normalised key matches registry/repository: 0 not at all, else 1 + the length of its path, so
 * "host/ns/repo" beats "host/ns" beats "host". */
static size_t auth_key_score(const char *key, const char *registry, const char *repository)
{
    size_t host_len = strcspn(key, "/");
    char host[256];
    if (host_len >= sizeof host)
        return 0;
    memcpy(host, key, host_len);
    host[host_len] = '\0';
    bool host_matches = is_docker_hub(registry) ? is_docker_hub(host) : strcmp(host, registry) == 0;
    if (!host_matches)
        return 0;
    const char *path = key + host_len;
    if (*path == '\0')
        return 1;
    path++;
    size_t plen = strlen(path);
    if (strncmp(repository, path, plen) == 0 && (repository[plen] == '\0' || repository[plen] == '/'))
        return 1 + plen;
    return 0;
}

/* 1 with credentials from file, 0 when it has none for the registry (or does not exist), -1 on error. */
static int lookup_in_file(const char *file, const char *registry, const char *repository,
                          struct registry_credentials *out, struct pea_error *err)
{
    size_t len;
    AUTO_FREE char *text = read_file_at(AT_FDCWD, file, AUTH_FILE_MAX, &len);
    if (!text) {
        if (errno == ENOENT || errno == ENOTDIR)
            return 0;
        return pea_fail(err, errno, "read credentials file %s", file);
    }
    json_error_t jerr;
    AUTO_JSON json_t *root = json_loadb(text, len, 0, &jerr);
    explicit_bzero(text, len);
    if (!json_is_object(root))
        return pea_fail(err, 0, "credentials file %s: not a JSON object (line %d)", file, jerr.line);
    json_t *auths = json_object_get(root, "auths");
    if (!auths)
        return 0;
    if (!json_is_object(auths))
        return pea_fail(err, 0, "credentials file %s: auths is not an object", file);
    const char *key, *best_auth = NULL, *best_key = NULL;
    size_t best = 0;
    json_t *entry;
    json_object_foreach(auths, key, entry) {
        char normal[512];
        auth_key_normalise(key, normal, sizeof normal);
        size_t score = auth_key_score(normal, registry, repository);
        json_t *auth = json_object_get(entry, "auth");
        if (score > best && json_is_string(auth) && json_string_length(auth) > 0) {
            best = score;
            best_auth = json_string_value(auth);
            best_key = key;
        }
    }
    if (!best_auth)
        return 0;
    size_t decoded_len;
    char *decoded = base64_decode(best_auth, &decoded_len);
    char *colon = decoded ? memchr(decoded, ':', decoded_len) : NULL;
    if (!colon || strlen(decoded) != decoded_len) {
        if (decoded) {
            explicit_bzero(decoded, decoded_len);
            free(decoded);
        }
        return pea_fail(err, 0, "credentials file %s: auths.\"%.100s\".auth is not base64 of user:password", file,
                        best_key);
    }
    *colon = '\0';
    out->username = xstrdup(decoded);
    out->password = xstrdup(colon + 1);
    explicit_bzero(decoded, decoded_len);
    free(decoded);
    return 1;
}

int registry_credentials_lookup(const char *const *files, const char *registry, const char *repository,
                                struct registry_credentials *out, struct pea_error *err)
{
    memset(out, 0, sizeof *out);
    for (size_t i = 0; files && files[i]; i++) {
        int r = lookup_in_file(files[i], registry, repository, out, err);
        if (r != 0)
            return r;
    }
    return 0;
}

char **registry_default_auth_files(void)
{
    char **files = xcalloc(5, sizeof *files);
    size_t n = 0;
    const char *env = getenv("REGISTRY_AUTH_FILE");
    if (env && *env)
        files[n++] = xstrdup(env);
    env = getenv("XDG_RUNTIME_DIR");
    if (env && *env)
        files[n++] = xasprintf("%s/containers/auth.json", env);
    const char *home = getenv("HOME");
    env = getenv("XDG_CONFIG_HOME");
    if (env && *env)
        files[n++] = xasprintf("%s/containers/auth.json", env);
    else if (home && *home)
        files[n++] = xasprintf("%s/.config/containers/auth.json", home);
    env = getenv("DOCKER_CONFIG");
    if (env && *env)
        files[n++] = xasprintf("%s/config.json", env);
    else if (home && *home)
        files[n++] = xasprintf("%s/.docker/config.json", home);
    return files;
}
