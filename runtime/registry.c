/* Pull one image into an OCI image layout: resolve the reference to a manifest (through an index for the wanted
 * platform), fetch its config and layers, write index.json. The layout is the hand-over to the image store. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "pea/util.h"
#include "registry_internal.h"

#define MANIFEST_ACCEPT MEDIA_OCI_INDEX ", " MEDIA_OCI_MANIFEST ", " MEDIA_DOCKER_LIST ", " MEDIA_DOCKER_MANIFEST

/* GET manifests/REF, check it against expected_digest (when given) and parse it. *digest_out receives its
 * digest, *body_out its bytes. */
static int fetch_manifest(struct registry_session *s, const char *ref, const char *expected_digest,
                          uint64_t expected_size, struct registry_manifest *m, char *digest_out,
                          struct registry_response *resp, struct pea_error *err)
{
    AUTO_FREE char *suffix = xasprintf("manifests/%s", ref);
    AUTO_FREE char *what = xasprintf("manifest %s/%s%s%s", s->registry, s->repository,
                                     strchr(ref, ':') ? "@" : ":", ref);
    if (registry_get_small(s, suffix, MANIFEST_ACCEPT, REGISTRY_MAX_JSON, what, resp, err) < 0)
        return -1;
    if (expected_digest) {
        if (pea_digest_verify(resp->body, resp->len, expected_digest, "manifest", err) < 0)
            return pea_wrap(err, "%s", what);
        if (expected_size != UINT64_MAX && resp->len != expected_size)
            return pea_fail(err, 0, "%s: %zu bytes, the index gives %llu", what, resp->len,
                            (unsigned long long)expected_size);
        snprintf(digest_out, REGISTRY_DIGEST_MAX, "%s", expected_digest);
    } else {
        pea_digest_buffer(resp->body, resp->len, digest_out);
    }
    if (registry_manifest_parse(resp->body, resp->len, resp->content_type, s->max_blob_size, m, err) < 0)
        return pea_wrap(err, "%s", what);
    return 0;
}

static json_t *platform_json(const struct registry_descriptor *d)
{
    json_t *p = json_object();
    json_object_set_new(p, "architecture", json_string(d->architecture));
    json_object_set_new(p, "os", json_string(d->os));
    if (d->variant && d->variant[0])
        json_object_set_new(p, "variant", json_string(d->variant));
    return p;
}

static int write_index(struct registry_layout *layout, const char *media_type, const char *digest, size_t size,
                       const char *tag, const struct registry_descriptor *chosen, struct pea_error *err)
{
    AUTO_JSON json_t *entry = json_pack("{s:s, s:s, s:I}", "mediaType", media_type, "digest", digest, "size",
                                        (json_int_t)size);
    if (tag)
        json_object_set_new(entry, "annotations", json_pack("{s:s}", "org.opencontainers.image.ref.name", tag));
    if (chosen)
        json_object_set_new(entry, "platform", platform_json(chosen));
    AUTO_JSON json_t *index = json_pack("{s:i, s:s, s:[O]}", "schemaVersion", 2, "mediaType", MEDIA_OCI_INDEX,
                                        "manifests", entry);
    AUTO_FREE char *text = json_dumps(index, JSON_COMPACT);
    static const char layout_marker[] = "{\"imageLayoutVersion\":\"1.0.0\"}";
    if (write_file_atomic_at(layout->dir_fd, "oci-layout", layout_marker, strlen(layout_marker), 0644) < 0)
        return pea_fail(err, errno, "write oci-layout");
    if (write_file_atomic_at(layout->dir_fd, "index.json", text, strlen(text), 0644) < 0)
        return pea_fail(err, errno, "write index.json");
    return 0;
}

/* The blobs to fetch: config then layers, each digest once, less those the caller already holds. */
static size_t blobs_to_fetch(struct registry_manifest *m, const struct registry_pull_request *req,
                             struct registry_descriptor **out)
{
    size_t n = 0;
    for (size_t i = 0; i <= m->n_entries; i++) {
        struct registry_descriptor *d = i == 0 ? &m->config : &m->entries[i - 1];
        bool is_seen = false;
        for (size_t j = 0; j < n && !is_seen; j++)
            is_seen = strcmp(out[j]->digest, d->digest) == 0;
        if (!is_seen && !(req->have_blob && req->have_blob(req->have_blob_ctx, d->digest)))
            out[n++] = d;
    }
    return n;
}

static int pull(struct registry_session *s, const struct registry_pull_request *req,
                struct registry_layout *layout, struct registry_pull_result *result, struct pea_error *err)
{
    struct registry_manifest top = {0}, image = {0};
    struct registry_response top_resp = {0}, image_resp = {0};
    char top_digest[REGISTRY_DIGEST_MAX];
    const struct registry_descriptor *chosen = NULL;
    struct registry_descriptor **blobs = NULL;
    int r = fetch_manifest(s, req->tag ? req->tag : req->digest, req->digest, UINT64_MAX, &top, top_digest,
                           &top_resp, err);
    struct registry_manifest *m = &top;
    struct registry_response *m_resp = &top_resp;
    char *m_digest = top_digest;
    char image_digest[REGISTRY_DIGEST_MAX];
    if (r == 0 && top.kind == REGISTRY_KIND_INDEX) {
        struct registry_platform_spec want;
        registry_platform_resolve(&req->platform, &want);
        int i = registry_platform_select(&top, &want, err);
        if (i < 0) {
            r = pea_wrap(err, "%s/%s", s->registry, s->repository);
        } else {
            chosen = &top.entries[i];
            snprintf(result->index_digest, sizeof result->index_digest, "%s", top_digest);
            r = fetch_manifest(s, chosen->digest, chosen->digest, chosen->size, &image, image_digest, &image_resp,
                               err);
            if (r == 0 && image.kind != REGISTRY_KIND_IMAGE)
                r = pea_fail(err, 0, "manifest %s: an index inside an index is not supported", chosen->digest);
            else if (r == 0 && strcmp(image.media_type, chosen->media_type) != 0)
                r = pea_fail(err, 0, "manifest %s: is %s, the index says %s", chosen->digest, image.media_type,
                             chosen->media_type);
            m = &image, m_resp = &image_resp, m_digest = image_digest;
        }
    }
    if (r == 0) {
        snprintf(result->manifest_digest, sizeof result->manifest_digest, "%s", m_digest);
        snprintf(result->manifest_media_type, sizeof result->manifest_media_type, "%s", m->media_type);
        blobs = xcalloc(m->n_entries + 1, sizeof *blobs);
        size_t n = blobs_to_fetch(m, req, blobs);
        r = registry_layout_put(layout, m_digest, m_resp->body, m_resp->len, err);
        if (r == 0 && registry_fetch_blobs(s, layout, blobs, n, req, err) < 0)
            r = pea_wrap(err, "pull %s/%s", s->registry, s->repository);
        if (r == 0)
            r = write_index(layout, m->media_type, m_digest, m_resp->len, req->tag, chosen, err);
    }
    free(blobs);
    registry_manifest_free(&top);
    registry_manifest_free(&image);
    registry_response_free(&top_resp);
    registry_response_free(&image_resp);
    return r;
}

int registry_pull_to_layout(const struct registry_pull_request *req, const char *layout_dir,
                            struct registry_pull_result *result, struct pea_error *err)
{
    memset(result, 0, sizeof *result);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return pea_fail(err, 0, "initialise libcurl");
    struct registry_session s;
    int r = registry_session_open(&s, req, err);
    if (r == 0 && mkdir(layout_dir, 0755) < 0)
        r = pea_fail(err, errno, "create image layout %s", layout_dir);
    else if (r == 0) {
        struct registry_layout layout = {.blobs_fd = {-1, -1}};
        layout.dir_fd = open(layout_dir, O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_PATH);
        if (layout.dir_fd < 0)
            r = pea_fail(err, errno, "open image layout %s", layout_dir);
        else
            r = pull(&s, req, &layout, result, err);
        for (size_t i = 0; i < ARRAY_SIZE(layout.blobs_fd); i++)
            if (layout.blobs_fd[i] >= 0)
                close(layout.blobs_fd[i]);
        if (layout.dir_fd >= 0)
            close(layout.dir_fd);
        if (r < 0) {
            struct pea_error ignored = {0};
            remove_tree(layout_dir, &ignored); /* a failed pull leaves nothing behind */
            memset(result, 0, sizeof *result);
        }
    }
    registry_session_close(&s);
    curl_global_cleanup();
    return r;
}
