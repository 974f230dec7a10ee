/* HTTP with one registry over libcurl: TLS trust, which scheme a registry may use, redirects, bounded small
 * documents, and answering authentication challenges. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <string.h>
#include <sys/stat.h>

#include "pea/util.h"
#include "registry_internal.h"

#define CA_FILE_MAX (16u << 20)
#define TOKEN_MAX (64u << 10)

/* ---- names ---- */

/* "host", "host:port", "[v6]:port" → the host alone (brackets dropped), into out. */
static void host_of(const char *hostport, char *out, size_t size)
{
    size_t n;
    if (hostport[0] == '[') {
        hostport++;
        n = strcspn(hostport, "]");
    } else {
        n = strcspn(hostport, ":");
        if (strchr(hostport + n + (hostport[n] ? 1 : 0), ':'))
            n = strlen(hostport); /* a bare IPv6 address */
    }
    if (n >= size)
        n = size - 1;
    memcpy(out, hostport, n);
    out[n] = '\0';
}

static bool is_loopback_address(const char *ip)
{
    unsigned char a[16];
    if (inet_pton(AF_INET, ip, a) == 1)
        return a[0] == 127;
    if (inet_pton(AF_INET6, ip, a) == 1) {
        static const unsigned char loopback[16] = {[15] = 1};
        static const unsigned char mapped[12] = {[10] = 0xff, [11] = 0xff};
        return memcmp(a, loopback, 16) == 0 || (memcmp(a, mapped, 12) == 0 && a[12] == 127);
    }
    return false;
}

/* Docker's rule: a registry named by a loopback address, or "localhost", may speak plain HTTP. */
static bool is_loopback_name(const char *hostport)
{
    char host[256];
    host_of(hostport, host, sizeof host);
    return strcasecmp(host, "localhost") == 0 || is_loopback_address(host);
}

static bool is_named_insecure(const char *const *insecure, const char *hostport)
{
    char host[256];
    host_of(hostport, host, sizeof host);
    for (size_t i = 0; insecure && insecure[i]; i++) {
        bool has_port = strchr(insecure[i], ']') ? strstr(insecure[i], "]:") != NULL
                                                  : strchr(insecure[i], ':') != NULL;
        if (strcasecmp(insecure[i], has_port ? hostport : host) == 0)
            return true;
    }
    return false;
}

static bool is_valid_host(const char *s)
{
    /* No leading dot: the name becomes a directory under /etc/containers/certs.d, and ".." must not climb. */
    if (!*s || *s == '.' || strlen(s) > 255)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              strchr(".-:[]", *s)))
            return false;
    return true;
}

/* The distribution spec's repository grammar, loosely: lowercase components of [a-z0-9._-] joined by '/'.
 * Strictness here keeps a name from reaching another path or query on the server. */
static bool is_valid_repository(const char *s)
{
    if (!*s || strlen(s) > 255)
        return false;
    for (const char *c = s; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || strchr("._-/", *c)))
            return false;
    for (const char *comp = s; comp; comp = strchr(comp, '/') ? strchr(comp, '/') + 1 : NULL) {
        size_t n = strcspn(comp, "/");
        if (n == 0 || (n == 1 && comp[0] == '.') || (n == 2 && comp[0] == '.' && comp[1] == '.'))
            return false;
    }
    return true;
}

static bool is_valid_tag(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 128 || s[0] == '.' || s[0] == '-')
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || strchr("._-", *s)))
            return false;
    return true;
}

/* ---- TLS trust ---- */

static void append_file(char **buf, size_t *len, const char *path)
{
    size_t n;
    AUTO_FREE char *text = read_file_at(AT_FDCWD, path, CA_FILE_MAX, &n);
    if (!text)
        return;
    *buf = xrealloc(*buf, *len + n + 2);
    memcpy(*buf + *len, text, n);
    *len += n;
    (*buf)[(*len)++] = '\n';
    (*buf)[*len] = '\0';
}

static bool has_suffix(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a > b && strcmp(s + a - b, suffix) == 0;
}

/* skopeo's --cert-dir: CAs from *.crt, a client certificate from NAME.cert with NAME.key. */
static int load_cert_dir(struct registry_session *s, const char *dir, bool must_exist, struct pea_error *err)
{
    DIR *d = opendir(dir);
    if (!d) {
        if (!must_exist && errno == ENOENT)
            return 0;
        return pea_fail(err, errno, "open certificate directory %s", dir);
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        AUTO_FREE char *path = xasprintf("%s/%s", dir, e->d_name);
        if (has_suffix(e->d_name, ".crt")) {
            append_file(&s->ca_pem, &s->ca_pem_len, path);
        } else if (has_suffix(e->d_name, ".cert") && !s->client_cert) {
            char *key = xasprintf("%.*s.key", (int)(strlen(path) - 5), path);
            if (access(key, R_OK) < 0) {
                closedir(d);
                pea_fail(err, errno, "client certificate %s: its key %s", path, key);
                free(key);
                return -1;
            }
            s->client_cert = take_ptr(&path);
            s->client_key = key;
        }
    }
    closedir(d);
    return 0;
}

static int load_trust(struct registry_session *s, const struct registry_pull_request *req, struct pea_error *err)
{
    /* curl takes one CA bundle: the system's plus the caller's, so both are trusted. */
    CURL *probe = curl_easy_init();
    char *system_ca = NULL;
    if (probe && curl_easy_getinfo(probe, CURLINFO_CAINFO, &system_ca) == CURLE_OK && system_ca)
        append_file(&s->ca_pem, &s->ca_pem_len, system_ca);
    curl_easy_cleanup(probe);
    size_t system_len = s->ca_pem_len;
    if (req->ca_file) {
        size_t before = s->ca_pem_len;
        append_file(&s->ca_pem, &s->ca_pem_len, req->ca_file);
        if (s->ca_pem_len == before)
            return pea_fail(err, errno ? errno : EINVAL, "read CA file %s", req->ca_file);
    }
    if (req->cert_dir) {
        if (load_cert_dir(s, req->cert_dir, true, err) < 0)
            return -1;
    } else {
        static const char *const roots[] = {"/etc/containers/certs.d", "/etc/docker/certs.d"};
        for (size_t i = 0; i < ARRAY_SIZE(roots); i++) {
            AUTO_FREE char *dir = xasprintf("%s/%s", roots[i], s->registry);
            struct stat st;
            if (stat(dir, &st) == 0)
                return load_cert_dir(s, dir, true, err);
        }
    }
    if (s->ca_pem_len == system_len) { /* nothing added: curl's own default serves */
        free(s->ca_pem);
        s->ca_pem = NULL;
        s->ca_pem_len = 0;
    }
    return 0;
}

/* ---- the session ---- */

int registry_session_open(struct registry_session *s, const struct registry_pull_request *req,
                          struct pea_error *err)
{
    memset(s, 0, sizeof *s);
    if (!req->registry || !is_valid_host(req->registry))
        return pea_fail(err, 0, "registry \"%.100s\": not a host name with an optional port",
                        req->registry ? req->registry : "");
    if (!req->repository || !is_valid_repository(req->repository))
        return pea_fail(err, 0, "repository \"%.100s\": not a valid repository name",
                        req->repository ? req->repository : "");
    if (!!req->tag == !!req->digest)
        return pea_fail(err, 0, "pull %s: give a tag or a digest, not %s", req->repository,
                        req->tag ? "both" : "neither");
    if (req->tag && !is_valid_tag(req->tag))
        return pea_fail(err, 0, "tag \"%.130s\": not a valid tag", req->tag);
    if (req->digest && pea_digest_check(req->digest, NULL, err) < 0)
        return -1;

    s->registry = xstrdup(req->registry);
    bool is_hub = !strcmp(req->registry, "docker.io") || !strcmp(req->registry, "index.docker.io");
    s->host = xstrdup(is_hub ? "registry-1.docker.io" : req->registry);
    s->repository = xstrdup(req->repository);
    s->insecure_registries = req->insecure_registries;
    s->is_insecure = is_named_insecure(req->insecure_registries, req->registry);
    s->may_use_plain_http = s->is_insecure || is_loopback_name(req->registry);
    s->auth_files = req->auth_files;
    if (req->username) {
        s->credentials.username = xstrdup(req->username);
        s->credentials.password = xstrdup(req->password ? req->password : "");
        s->credentials_loaded = true;
    }
    s->max_blob_size = req->max_blob_size ? req->max_blob_size : (64ull << 30);
    s->share = curl_share_init();
    if (!s->share)
        return pea_fail(err, ENOMEM, "curl_share_init");
    curl_share_setopt(s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    curl_share_setopt(s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
    return load_trust(s, req, err);
}

void registry_session_close(struct registry_session *s)
{
    free(s->registry);
    free(s->host);
    free(s->repository);
    free(s->ca_pem);
    free(s->client_cert);
    free(s->client_key);
    registry_credentials_clear(&s->credentials);
    if (s->authorization) {
        explicit_bzero(s->authorization, strlen(s->authorization));
        free(s->authorization);
    }
    if (s->share)
        curl_share_cleanup(s->share);
    memset(s, 0, sizeof *s);
}

char *registry_url(const struct registry_session *s, const char *suffix)
{
    return xasprintf("%s://%s/v2/%s/%s", s->use_plain_http ? "http" : "https", s->host, s->repository, suffix);
}

/* Called once a connection is made, before the request goes out: plain HTTP only to a loopback peer or to a
 * registry named insecure. The address checked is the one the request will use, so a loopback name that
 * resolves elsewhere is caught. */
static int check_connection(void *clientp, char *primary_ip, char *local_ip, int primary_port, int local_port)
{
    (void)local_ip, (void)local_port;
    struct registry_request *rq = clientp;
    char *scheme = NULL;
    if (curl_easy_getinfo(rq->easy, CURLINFO_SCHEME, &scheme) != CURLE_OK || !scheme)
        return CURL_PREREQFUNC_ABORT;
    if (strcasecmp(scheme, "http") != 0 || is_loopback_address(primary_ip))
        return CURL_PREREQFUNC_OK;
    char *url = NULL, *host = NULL;
    CURLU *u = curl_url();
    bool allowed = false;
    if (u && curl_easy_getinfo(rq->easy, CURLINFO_EFFECTIVE_URL, &url) == CURLE_OK && url &&
        curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK && curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
        char hostport[300];
        snprintf(hostport, sizeof hostport, "%s:%d", host, primary_port);
        allowed = is_named_insecure(rq->session->insecure_registries, hostport);
        snprintf(rq->refused_peer, sizeof rq->refused_peer, "%s (%s)", host, primary_ip);
    }
    curl_free(host);
    curl_url_cleanup(u);
    return allowed ? CURL_PREREQFUNC_OK : CURL_PREREQFUNC_ABORT;
}

CURL *registry_easy_new(struct registry_session *s, struct registry_request *rq, const char *url,
                        const char *accept, bool send_authorization)
{
    CURL *h = curl_easy_init();
    if (!h)
        abort(); /* only fails when out of memory */
    rq->session = s;
    rq->easy = h;
    rq->refused_peer[0] = '\0';
    rq->curl_error[0] = '\0';
    const char *protocols = s->may_use_plain_http ? "http,https" : "https";
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, protocols);
    /* Registries send blobs to storage elsewhere. curl does not pass a custom Authorization header to
     * another host on a redirect, so the token or password stays with the registry. */
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, protocols);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(h, CURLOPT_UNRESTRICTED_AUTH, 0L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "pea/" PEA_VERSION);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 30L);
    /* A stalled server fails the pull instead of hanging it. */
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(h, CURLOPT_SHARE, s->share);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, rq->curl_error);
    curl_easy_setopt(h, CURLOPT_PREREQFUNCTION, check_connection);
    curl_easy_setopt(h, CURLOPT_PREREQDATA, rq);
    if (s->ca_pem) {
        struct curl_blob blob = {.data = s->ca_pem, .len = s->ca_pem_len, .flags = CURL_BLOB_NOCOPY};
        curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &blob);
    }
    if (s->client_cert) {
        curl_easy_setopt(h, CURLOPT_SSLCERT, s->client_cert);
        curl_easy_setopt(h, CURLOPT_SSLKEY, s->client_key);
    }
    if (s->is_insecure) {
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    rq->headers = NULL;
    if (accept) {
        AUTO_FREE char *line = xasprintf("Accept: %s", accept);
        rq->headers = curl_slist_append(rq->headers, line);
    }
    if (send_authorization && s->authorization)
        rq->headers = curl_slist_append(rq->headers, s->authorization);
    if (rq->headers)
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, rq->headers);
    return h;
}

void registry_request_done(struct registry_request *rq)
{
    if (rq->easy)
        curl_easy_cleanup(rq->easy);
    /* The list may hold a token: wipe it before it goes back to the allocator. */
    for (struct curl_slist *l = rq->headers; l; l = l->next)
        explicit_bzero(l->data, strlen(l->data));
    curl_slist_free_all(rq->headers);
    rq->easy = NULL;
    rq->headers = NULL;
}

/* ---- small documents ---- */

struct small_body {
    struct registry_response *response;
    size_t max;
    bool is_too_large;
};

static size_t small_body_write(char *data, size_t size, size_t n, void *userp)
{
    struct small_body *b = userp;
    size_t len = size * n;
    if (b->response->len + len > b->max) {
        b->is_too_large = true;
        return 0;
    }
    b->response->body = xrealloc(b->response->body, b->response->len + len + 1);
    memcpy(b->response->body + b->response->len, data, len);
    b->response->len += len;
    b->response->body[b->response->len] = '\0';
    return len;
}

size_t registry_header_line(char *data, size_t size, size_t n, void *userp)
{
    struct registry_response *r = userp;
    size_t len = size * n;
    /* A new response (after a redirect) starts with its status line: forget the previous one's headers. */
    if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        free(r->content_type), r->content_type = NULL;
        free(r->challenge), r->challenge = NULL;
        return len;
    }
    char **slot = NULL;
    size_t name_len = 0;
    if (len > 13 && strncasecmp(data, "Content-Type:", 13) == 0)
        slot = &r->content_type, name_len = 13;
    else if (len > 17 && strncasecmp(data, "WWW-Authenticate:", 17) == 0 && !r->challenge)
        slot = &r->challenge, name_len = 17;
    if (slot) {
        const char *v = data + name_len;
        size_t vlen = len - name_len;
        while (vlen && (*v == ' ' || *v == '\t'))
            v++, vlen--;
        while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' '))
            vlen--;
        free(*slot);
        *slot = xmalloc(vlen + 1);
        memcpy(*slot, v, vlen);
        (*slot)[vlen] = '\0';
    }
    return len;
}

void registry_response_free(struct registry_response *r)
{
    free(r->body);
    free(r->content_type);
    free(r->challenge);
    memset(r, 0, sizeof *r);
}

/* One GET of a small document; CURLcode of the transfer, the response filled either way. */
static CURLcode get_small_once(struct registry_session *s, const char *url, const char *accept, size_t max,
                               bool send_authorization, const char *username, const char *password,
                               struct registry_response *out, struct registry_request *rq, bool *is_too_large)
{
    registry_response_free(out);
    struct small_body body = {.response = out, .max = max};
    CURL *h = registry_easy_new(s, rq, url, accept, send_authorization);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, small_body_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, registry_header_line);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, out);
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)max);
    if (username) {
        curl_easy_setopt(h, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
        curl_easy_setopt(h, CURLOPT_USERNAME, username);
        curl_easy_setopt(h, CURLOPT_PASSWORD, password);
    }
    CURLcode rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->status);
    *is_too_large = body.is_too_large || rc == CURLE_FILESIZE_EXCEEDED;
    return rc;
}

int registry_fail_transfer(struct pea_error *err, const struct registry_request *rq, CURLcode rc, long status,
                           const char *body, size_t body_len, const char *what)
{
    if (rc != CURLE_OK) {
        if (rq->refused_peer[0])
            return pea_fail(err, 0, "%s: plain HTTP to %s refused: not a loopback address (name the registry "
                            "as insecure to allow it)", what, rq->refused_peer);
        return pea_fail(err, 0, "%s: %s", what, rq->curl_error[0] ? rq->curl_error : curl_easy_strerror(rc));
    }
    /* The registry's own words ({"errors":[{"code":..,"message":..}]}), printable characters only. */
    char detail[200] = "";
    json_error_t jerr;
    AUTO_JSON json_t *root = body ? json_loadb(body, body_len, 0, &jerr) : NULL;
    json_t *first = json_array_get(json_object_get(root, "errors"), 0);
    const char *code = json_string_value(json_object_get(first, "code"));
    const char *message = json_string_value(json_object_get(first, "message"));
    if (code) {
        snprintf(detail, sizeof detail, " %s%s%s", code, message ? ": " : "", message ? message : "");
        for (char *c = detail; *c; c++)
            if (*c < 0x20 || *c > 0x7e)
                *c = '?';
    }
    return pea_fail(err, 0, "%s: the registry answered %ld%s", what, status, detail);
}

/* ---- authentication ---- */

static const char base64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static char *base64_encode(const unsigned char *in, size_t len)
{
    char *out = xmalloc((len + 2) / 3 * 4 + 1);
    size_t n = 0;
    for (size_t i = 0; i < len; i += 3) {
        unsigned int v = (unsigned int)in[i] << 16;
        if (i + 1 < len)
            v |= (unsigned int)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        out[n++] = base64_alphabet[(v >> 18) & 63];
        out[n++] = base64_alphabet[(v >> 12) & 63];
        out[n++] = i + 1 < len ? base64_alphabet[(v >> 6) & 63] : '=';
        out[n++] = i + 2 < len ? base64_alphabet[v & 63] : '=';
    }
    out[n] = '\0';
    return out;
}

static void set_authorization(struct registry_session *s, char *line)
{
    if (s->authorization) {
        explicit_bzero(s->authorization, strlen(s->authorization));
        free(s->authorization);
    }
    s->authorization = line;
}

static int load_credentials(struct registry_session *s, struct pea_error *err)
{
    if (s->credentials_loaded)
        return 0;
    char **defaults = s->auth_files ? NULL : registry_default_auth_files();
    int r = registry_credentials_lookup(s->auth_files ? s->auth_files : (const char *const *)defaults, s->registry,
                                        s->repository, &s->credentials, err);
    strv_free(defaults);
    s->credentials_loaded = true;
    return r < 0 ? -1 : 0;
}

static bool is_header_safe(const char *s)
{
    for (; *s; s++)
        if (*s < 0x21 || *s > 0x7e)
            return false;
    return true;
}

static int fetch_token(struct registry_session *s, const struct registry_challenge *c, struct pea_error *err)
{
    bool is_https = strncasecmp(c->realm, "https://", 8) == 0;
    if (!is_https && !(strncasecmp(c->realm, "http://", 7) == 0 && s->may_use_plain_http))
        return pea_fail(err, 0, "token realm %.200s: not an https URL", c->realm);
    CURL *esc = curl_easy_init();
    if (!esc)
        abort();
    AUTO_FREE char *scope = xasprintf("repository:%s:pull", s->repository);
    char *scope_q = curl_easy_escape(esc, scope, 0);
    char *service_q = c->service ? curl_easy_escape(esc, c->service, 0) : NULL;
    AUTO_FREE char *url = xasprintf("%s%c%s%s%sscope=%s", c->realm, strchr(c->realm, '?') ? '&' : '?',
                                    service_q ? "service=" : "", service_q ? service_q : "", service_q ? "&" : "",
                                    scope_q);
    curl_free(scope_q);
    curl_free(service_q);
    curl_easy_cleanup(esc);

    struct registry_response resp = {0};
    struct registry_request rq = {0};
    bool is_too_large;
    CURLcode rc = get_small_once(s, url, "application/json", TOKEN_MAX, false, s->credentials.username,
                                 s->credentials.password, &resp, &rq, &is_too_large);
    int r = 0;
    if (rc != CURLE_OK || resp.status != 200) {
        if (is_too_large)
            r = pea_fail(err, 0, "token from %.200s: reply larger than %u bytes", c->realm, TOKEN_MAX);
        else
            r = registry_fail_transfer(err, &rq, rc, resp.status, resp.body, resp.len, "token");
        if (resp.status == 401 || resp.status == 403)
            pea_wrap(err, "authenticate to %s%s", s->registry,
                     s->credentials.username ? " with the stored credentials" : " anonymously");
    } else {
        json_error_t jerr;
        AUTO_JSON json_t *root = json_loadb(resp.body, resp.len, 0, &jerr);
        json_t *token = json_object_get(root, "token");
        if (!json_is_string(token) || json_string_length(token) == 0)
            token = json_object_get(root, "access_token");
        if (!json_is_string(token) || json_string_length(token) == 0 || !is_header_safe(json_string_value(token)))
            r = pea_fail(err, 0, "token from %.200s: reply has no usable token", c->realm);
        else
            set_authorization(s, xasprintf("Authorization: Bearer %s", json_string_value(token)));
    }
    if (resp.body)
        explicit_bzero(resp.body, resp.len);
    registry_response_free(&resp);
    registry_request_done(&rq);
    return r;
}

int registry_authenticate(struct registry_session *s, const char *challenge, struct pea_error *err)
{
    struct registry_challenge c;
    if (!challenge)
        return pea_fail(err, 0, "%s answered 401 without a WWW-Authenticate challenge", s->registry);
    if (registry_challenge_parse(challenge, &c, err) < 0)
        return pea_wrap(err, "%s", s->registry);
    int r;
    if (load_credentials(s, err) < 0) {
        r = -1;
    } else if (c.scheme == REGISTRY_AUTH_BEARER) {
        r = fetch_token(s, &c, err);
    } else if (c.scheme == REGISTRY_AUTH_BASIC) {
        if (!s->credentials.username) {
            r = pea_fail(err, 0, "%s requires credentials and the credential files have none for it", s->registry);
        } else {
            AUTO_FREE char *pair = xasprintf("%s:%s", s->credentials.username, s->credentials.password);
            AUTO_FREE char *encoded = base64_encode((const unsigned char *)pair, strlen(pair));
            set_authorization(s, xasprintf("Authorization: Basic %s", encoded));
            explicit_bzero(pair, strlen(pair));
            explicit_bzero(encoded, strlen(encoded));
            r = 0;
        }
    } else {
        r = pea_fail(err, 0, "%s asks for an authentication scheme other than Bearer or Basic", s->registry);
    }
    registry_challenge_free(&c);
    return r;
}

int registry_get_small(struct registry_session *s, const char *suffix, const char *accept, size_t max,
                       const char *what, struct registry_response *out, struct pea_error *err)
{
    bool has_authenticated = false;
    for (;;) {
        AUTO_FREE char *url = registry_url(s, suffix);
        struct registry_request rq = {0};
        bool is_too_large;
        CURLcode rc = get_small_once(s, url, accept, max, true, NULL, NULL, out, &rq, &is_too_large);
        /* A registry that may speak plain HTTP and answers TLS with garbage speaks plain HTTP (docker's
         * fallback); decided once, on the first request. */
        if (rc == CURLE_SSL_CONNECT_ERROR && !s->scheme_decided && s->may_use_plain_http) {
            registry_request_done(&rq);
            s->use_plain_http = true;
            s->scheme_decided = true;
            continue;
        }
        if (rc == CURLE_OK)
            s->scheme_decided = true;
        if (rc == CURLE_OK && out->status == 401 && !has_authenticated) {
            registry_request_done(&rq);
            has_authenticated = true;
            if (registry_authenticate(s, out->challenge, err) < 0)
                return pea_wrap(err, "%s", what);
            continue;
        }
        int r = 0;
        if (is_too_large)
            r = pea_fail(err, 0, "%s: larger than %zu bytes", what, max);
        else if (rc == CURLE_SSL_CONNECT_ERROR && !s->may_use_plain_http)
            r = pea_fail(err, 0, "%s: TLS handshake failed (%s); plain HTTP is used only for loopback addresses and "
                         "registries named insecure", what, rq.curl_error[0] ? rq.curl_error : curl_easy_strerror(rc));
        else if (rc != CURLE_OK || out->status != 200)
            r = registry_fail_transfer(err, &rq, rc, out->status, out->body, out->len, what);
        registry_request_done(&rq);
        return r;
    }
}
