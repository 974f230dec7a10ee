/* Manifests and indexes as registries serve them (OCI and Docker schema 2), and choosing a platform from an
 * index the way containerd does. Everything here reads hostile input: bounded, strict, one clear error. */
#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>

#include "pea/util.h"
#include "registry_internal.h"

static const char *const layer_media_types[] = {
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
};

static const char *const config_media_types[] = {
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
};

static bool is_one_of(const char *s, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s, list[i]) == 0)
            return true;
    return false;
}

static bool is_manifest_media_type(const char *s)
{
    static const char *const types[] = {MEDIA_OCI_INDEX, MEDIA_OCI_MANIFEST, MEDIA_DOCKER_LIST,
                                        MEDIA_DOCKER_MANIFEST};
    return is_one_of(s, types, ARRAY_SIZE(types));
}

static bool is_index_media_type(const char *s)
{
    return strcmp(s, MEDIA_OCI_INDEX) == 0 || strcmp(s, MEDIA_DOCKER_LIST) == 0;
}

void registry_manifest_free(struct registry_manifest *m)
{
    if (!m)
        return;
    free(m->media_type);
    free(m->config.media_type);
    for (size_t i = 0; i < m->n_entries; i++) {
        struct registry_descriptor *d = &m->entries[i];
        free(d->media_type);
        free(d->os);
        free(d->architecture);
        free(d->variant);
    }
    free(m->entries);
    memset(m, 0, sizeof *m);
}

/* An optional short string member; "" when absent. */
static int optional_string(json_t *obj, const char *key, char **out, const char *where, struct pea_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return 0;
    if (!json_is_string(v) || json_string_length(v) > 64 || strlen(json_string_value(v)) != json_string_length(v))
        return pea_fail(err, 0, "%s.%s: not a short string", where, key);
    *out = xstrdup(json_string_value(v));
    return 0;
}

static int parse_descriptor(json_t *j, const char *where, uint64_t max_size, struct registry_descriptor *d,
                            struct pea_error *err)
{
    if (!json_is_object(j))
        return pea_fail(err, 0, "%s: not an object", where);
    json_t *mt = json_object_get(j, "mediaType");
    json_t *digest = json_object_get(j, "digest");
    json_t *size = json_object_get(j, "size");
    if (!json_is_string(mt) || json_string_length(mt) == 0 || json_string_length(mt) > 255)
        return pea_fail(err, 0, "%s.mediaType: missing or not a string", where);
    if (!json_is_string(digest))
        return pea_fail(err, 0, "%s.digest: missing or not a string", where);
    if (!json_is_integer(size) || json_integer_value(size) < 0)
        return pea_fail(err, 0, "%s.size: missing or not a non-negative integer", where);
    if (pea_digest_check(json_string_value(digest), NULL, err) < 0)
        return pea_wrap(err, "%s", where);
    if ((uint64_t)json_integer_value(size) > max_size)
        return pea_fail(err, 0, "%s: blob %s of %lld bytes exceeds the limit of %llu", where,
                        json_string_value(digest), (long long)json_integer_value(size),
                        (unsigned long long)max_size);
    d->media_type = xstrdup(json_string_value(mt));
    snprintf(d->digest, sizeof d->digest, "%s", json_string_value(digest));
    d->size = (uint64_t)json_integer_value(size);
    return 0;
}

static int parse_index(json_t *root, struct registry_manifest *m, struct pea_error *err)
{
    if (json_object_get(root, "layers") || json_object_get(root, "config"))
        return pea_fail(err, 0, "index: has layers or config, which only an image manifest has");
    json_t *list = json_object_get(root, "manifests");
    if (!json_is_array(list))
        return pea_fail(err, 0, "index.manifests: missing or not an array");
    if (json_array_size(list) > REGISTRY_MAX_ENTRIES)
        return pea_fail(err, 0, "index.manifests: more than %d entries", REGISTRY_MAX_ENTRIES);
    m->entries = xcalloc(json_array_size(list) + 1, sizeof *m->entries);
    size_t i;
    json_t *entry;
    json_array_foreach(list, i, entry) {
        char where[64];
        snprintf(where, sizeof where, "index.manifests[%zu]", i);
        struct registry_descriptor *d = &m->entries[m->n_entries++];
        if (parse_descriptor(entry, where, REGISTRY_MAX_JSON, d, err) < 0)
            return -1;
        json_t *platform = json_object_get(entry, "platform");
        if (!platform)
            continue;
        if (!json_is_object(platform))
            return pea_fail(err, 0, "%s.platform: not an object", where);
        if (optional_string(platform, "os", &d->os, where, err) < 0 ||
            optional_string(platform, "architecture", &d->architecture, where, err) < 0 ||
            optional_string(platform, "variant", &d->variant, where, err) < 0)
            return -1;
    }
    return 0;
}

static int parse_image(json_t *root, uint64_t max_blob_size, struct registry_manifest *m, struct pea_error *err)
{
    if (json_object_get(root, "manifests"))
        return pea_fail(err, 0, "manifest: has manifests, which only an index has");
    if (parse_descriptor(json_object_get(root, "config"), "manifest.config", REGISTRY_MAX_CONFIG, &m->config, err) < 0)
        return -1;
    if (!is_one_of(m->config.media_type, config_media_types, ARRAY_SIZE(config_media_types)))
        return pea_fail(err, 0, "manifest.config: media type %s is not a container image config",
                        m->config.media_type);
    json_t *layers = json_object_get(root, "layers");
    if (!json_is_array(layers))
        return pea_fail(err, 0, "manifest.layers: missing or not an array");
    if (json_array_size(layers) > REGISTRY_MAX_ENTRIES)
        return pea_fail(err, 0, "manifest.layers: more than %d layers", REGISTRY_MAX_ENTRIES);
    m->entries = xcalloc(json_array_size(layers) + 1, sizeof *m->entries);
    size_t i;
    json_t *entry;
    json_array_foreach(layers, i, entry) {
        char where[64];
        snprintf(where, sizeof where, "manifest.layers[%zu]", i);
        struct registry_descriptor *d = &m->entries[m->n_entries++];
        if (parse_descriptor(entry, where, max_blob_size, d, err) < 0)
            return -1;
        if (!is_one_of(d->media_type, layer_media_types, ARRAY_SIZE(layer_media_types)))
            return pea_fail(err, 0, "%s: unsupported layer media type %s", where, d->media_type);
    }
    return 0;
}

/* The Content-Type without parameters, or "" */
static void bare_content_type(const char *content_type, char *out, size_t size)
{
    out[0] = '\0';
    if (!content_type)
        return;
    while (*content_type == ' ')
        content_type++;
    size_t n = strcspn(content_type, "; \t");
    if (n < size) {
        memcpy(out, content_type, n);
        out[n] = '\0';
    }
}

int registry_manifest_parse(const char *body, size_t len, const char *content_type, uint64_t max_blob_size,
                            struct registry_manifest *out, struct pea_error *err)
{
    memset(out, 0, sizeof *out);
    if (len > REGISTRY_MAX_JSON)
        return pea_fail(err, 0, "manifest: larger than %u bytes", REGISTRY_MAX_JSON);
    json_error_t jerr;
    /* Duplicate keys would let two parsers read two different manifests from one digest. */
    AUTO_JSON json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return pea_fail(err, 0, "manifest: invalid JSON at line %d: %s", jerr.line, jerr.text);
    if (!json_is_object(root))
        return pea_fail(err, 0, "manifest: not a JSON object");
    json_t *schema = json_object_get(root, "schemaVersion");
    if (json_is_integer(schema) && json_integer_value(schema) == 1)
        return pea_fail(err, 0, "manifest: Docker schema 1 is not supported");
    if (!json_is_integer(schema) || json_integer_value(schema) != 2)
        return pea_fail(err, 0, "manifest: schemaVersion is not 2");

    char header_type[128];
    bare_content_type(content_type, header_type, sizeof header_type);
    json_t *mt = json_object_get(root, "mediaType");
    const char *media_type;
    if (mt) {
        if (!json_is_string(mt) || !is_manifest_media_type(json_string_value(mt)))
            return pea_fail(err, 0, "manifest: unsupported mediaType %.100s",
                            json_is_string(mt) ? json_string_value(mt) : "(not a string)");
        media_type = json_string_value(mt);
        if (is_manifest_media_type(header_type) && strcmp(header_type, media_type) != 0)
            return pea_fail(err, 0, "manifest: served as %s but its mediaType is %s", header_type, media_type);
    } else if (is_manifest_media_type(header_type)) {
        media_type = header_type;
    } else {
        /* OCI documents may leave mediaType out; what they hold tells them apart (both is refused below). */
        media_type = json_object_get(root, "manifests") ? MEDIA_OCI_INDEX : MEDIA_OCI_MANIFEST;
    }

    out->media_type = xstrdup(media_type);
    int r;
    if (is_index_media_type(media_type)) {
        out->kind = REGISTRY_KIND_INDEX;
        r = parse_index(root, out, err);
    } else {
        out->kind = REGISTRY_KIND_IMAGE;
        r = parse_image(root, max_blob_size, out, err);
    }
    if (r < 0)
        registry_manifest_free(out);
    return r;
}

/* ---- platforms ---- */

static void copy_lower(char *dst, size_t size, const char *src)
{
    size_t i = 0;
    for (; src && src[i] && i + 1 < size; i++)
        dst[i] = (char)tolower((unsigned char)src[i]);
    dst[i] = '\0';
}

/* containerd's normal forms: GOARCH names, no variant where it is the architecture's baseline, arm's "vN". */
static void platform_normalise(const char *os, const char *arch, const char *variant, struct registry_platform_spec *p)
{
    copy_lower(p->os, sizeof p->os, os);
    copy_lower(p->architecture, sizeof p->architecture, arch);
    copy_lower(p->variant, sizeof p->variant, variant);
    char *a = p->architecture, *v = p->variant;
    if (!strcmp(a, "i386") || !strcmp(a, "i686"))
        strcpy(a, "386");
    else if (!strcmp(a, "x86_64") || !strcmp(a, "x86-64"))
        strcpy(a, "amd64");
    else if (!strcmp(a, "aarch64"))
        strcpy(a, "arm64");
    else if (!strcmp(a, "armhf"))
        strcpy(a, "arm"), strcpy(v, "v7");
    else if (!strcmp(a, "armel"))
        strcpy(a, "arm"), strcpy(v, "v6");

    if (!strcmp(a, "amd64") && !strcmp(v, "v1"))
        v[0] = '\0';
    else if (!strcmp(a, "arm64") && (!strcmp(v, "8") || !strcmp(v, "v8")))
        v[0] = '\0';
    else if (!strcmp(a, "arm")) {
        if (v[0] == '\0')
            strcpy(v, "v7");
        else if (v[0] >= '5' && v[0] <= '8' && v[1] == '\0')
            v[1] = v[0], v[0] = 'v', v[2] = '\0';
    }
}

void registry_platform_resolve(const struct registry_platform *want, struct registry_platform_spec *out)
{
    struct utsname u;
    const char *arch = want->architecture, *variant = want->variant;
    char host_variant[8] = "";
    if (!arch) {
        if (uname(&u) < 0)
            strcpy(u.machine, "unknown");
        arch = u.machine;
        /* armv7l, armv6l: the variant is in the machine name. */
        if (!variant && strncmp(u.machine, "armv", 4) == 0 && isdigit((unsigned char)u.machine[4])) {
            snprintf(host_variant, sizeof host_variant, "v%c", u.machine[4]);
            variant = host_variant;
            arch = "arm";
        }
    }
    platform_normalise(want->os ? want->os : "linux", arch, variant ? variant : "", out);
}

static bool platform_equal(const struct registry_platform_spec *a, const struct registry_platform_spec *b)
{
    return !strcmp(a->os, b->os) && !strcmp(a->architecture, b->architecture) && !strcmp(a->variant, b->variant);
}

/* What a host of platform want also runs, best first (containerd's Only): lower amd64 levels and 386 for amd64,
 * lower arm versions for arm, 32-bit arm for arm64. */
static size_t platform_candidates(const struct registry_platform_spec *want, struct registry_platform_spec *out,
                                  size_t max)
{
    size_t n = 0;
    out[n++] = *want;
    const char *a = want->architecture, *v = want->variant;
    int level = (v[0] == 'v' && v[1] >= '1' && v[1] <= '9' && v[2] == '\0') ? v[1] - '0' : 0;
    if (!strcmp(a, "amd64")) {
        for (int l = level - 1; l >= 1 && n < max; l--) {
            out[n] = *want;
            if (l == 1)
                out[n].variant[0] = '\0';
            else
                snprintf(out[n].variant, sizeof out[n].variant, "v%d", l);
            n++;
        }
        if (n < max) {
            out[n] = *want;
            strcpy(out[n].architecture, "386"), out[n].variant[0] = '\0';
            n++;
        }
    } else if (!strcmp(a, "arm") || !strcmp(a, "arm64")) {
        if (!strcmp(a, "arm64"))
            level = v[0] == '\0' ? 9 : 0; /* arm64 (v8) runs arm v8 and below */
        for (int l = level - 1; l >= 5 && n < max; l--) {
            out[n] = *want;
            strcpy(out[n].architecture, "arm");
            snprintf(out[n].variant, sizeof out[n].variant, "v%d", l);
            n++;
        }
    }
    return n;
}

int registry_platform_select(const struct registry_manifest *index, const struct registry_platform_spec *want,
                             struct pea_error *err)
{
    struct registry_platform_spec candidates[12];
    size_t n_candidates = platform_candidates(want, candidates, ARRAY_SIZE(candidates));
    for (size_t c = 0; c < n_candidates; c++) {
        for (size_t i = 0; i < index->n_entries; i++) {
            const struct registry_descriptor *d = &index->entries[i];
            if (!d->os || !d->architecture)
                continue;
            struct registry_platform_spec p;
            platform_normalise(d->os, d->architecture, d->variant ? d->variant : "", &p);
            if (platform_equal(&p, &candidates[c]))
                return (int)i;
        }
    }
    char offered[256] = "";
    size_t len = 0;
    for (size_t i = 0; i < index->n_entries && len < sizeof offered - 1; i++) {
        const struct registry_descriptor *d = &index->entries[i];
        int k = snprintf(offered + len, sizeof offered - len, "%s%s/%s%s%s", len ? ", " : "",
                         d->os ? d->os : "?", d->architecture ? d->architecture : "?",
                         d->variant && d->variant[0] ? "/" : "", d->variant ? d->variant : "");
        if (k < 0)
            break;
        len += (size_t)k;
    }
    return pea_fail(err, 0, "no manifest for %s/%s%s%s in the index (it has %s)", want->os, want->architecture,
                    want->variant[0] ? "/" : "", want->variant, len ? offered : "no platforms");
}
