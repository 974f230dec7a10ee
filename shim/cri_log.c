/* CRI log files: the writer that turns a container's output into records, size rotation, the record parser and the
 * reader behind `logs`. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cri_log.h"
#include "pea/util.h"

static const char *const stream_names[] = {[CRI_STDOUT] = "stdout", [CRI_STDERR] = "stderr"};

struct cri_log {
    int dir_fd; /* our own duplicate: rotation renames in it long after open */
    char *name;
    int fd;
    uint64_t size;
    uint64_t max_bytes;
    unsigned max_files;
    char *buf; /* one chunk's records, kept between writes to spare an allocation per chunk */
    size_t cap;
};

/* Records go out through a buffer of at most this size, kept per container (one record, at most CRI_LOG_MAX_PIECE
 * of text, always fits). A chunk that needs more (many short lines: a 64 KiB chunk of empty lines needs over 2 MiB)
 * takes several writes, rather than a larger buffer made and freed for each chunk, which was an mmap, its page
 * faults and a munmap every time. */
#define CRI_LOG_BUFFER_MAX (128 * 1024)

/* "name" for index 0, "name.N" for the Nth rotated file. */
static char *rotated_name(const char *name, unsigned index)
{
    return index == 0 ? xstrdup(name) : xasprintf("%s.%u", name, index);
}

static int open_log_file(int dir_fd, const char *name)
{
    return openat(dir_fd, name, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0640);
}

struct cri_log *cri_log_open(int dir_fd, const char *name, uint64_t max_bytes, unsigned max_files,
                             struct pea_error *err)
{
    AUTO_FD int own_dir = fcntl(dir_fd, F_DUPFD_CLOEXEC, 0);
    if (own_dir < 0) {
        pea_fail(err, errno, "duplicate log directory fd for %s", name);
        return NULL;
    }
    AUTO_FD int fd = open_log_file(dir_fd, name);
    if (fd < 0) {
        pea_fail(err, errno, "open log %s", name);
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        pea_fail(err, errno, "stat log %s", name);
        return NULL;
    }
    struct cri_log *log = xcalloc(1, sizeof *log);
    log->dir_fd = take_fd(&own_dir);
    log->name = xstrdup(name);
    log->fd = take_fd(&fd);
    log->size = (uint64_t)st.st_size;
    log->max_bytes = max_bytes;
    log->max_files = max_files;
    return log;
}

void cri_log_close(struct cri_log *log)
{
    if (!log)
        return;
    close(log->fd);
    close(log->dir_fd);
    free(log->name);
    free(log->buf);
    free(log);
}

/* name.(N-1) -> name.N down to name -> name.1, then a fresh name. */
static int rotate(struct cri_log *log, struct pea_error *err)
{
    /* Oldest first, so each rename lands on a name just freed; the rename onto name.max_files drops the oldest. */
    for (unsigned i = log->max_files; i > 0; i--) {
        AUTO_FREE char *from = rotated_name(log->name, i - 1);
        AUTO_FREE char *to = rotated_name(log->name, i);
        if (renameat(log->dir_fd, from, log->dir_fd, to) < 0 && errno != ENOENT)
            return pea_fail(err, errno, "rotate log %s to %s", from, to);
    }
    if (log->max_files == 0 && unlinkat(log->dir_fd, log->name, 0) < 0 && errno != ENOENT)
        return pea_fail(err, errno, "remove full log %s", log->name);
    /* On failure the old fd stays: output goes on into the rotated file rather than being lost. */
    int fd = open_log_file(log->dir_fd, log->name);
    if (fd < 0)
        return pea_fail(err, errno, "reopen log %s after rotation", log->name);
    close(log->fd);
    log->fd = fd;
    log->size = 0;
    return 0;
}

static int flush(struct cri_log *log, size_t used, struct pea_error *err)
{
    if (used == 0)
        return 0;
    if (write_all(log->fd, log->buf, used) < 0) {
        int saved = errno;
        /* A torn record would run into the next one: cut the file back to its last whole record. */
        (void)!ftruncate(log->fd, (off_t)log->size);
        return pea_fail(err, saved, "write log %s", log->name);
    }
    log->size += used;
    return 0;
}

/* The text of one record. */
struct piece {
    const char *text;
    size_t len;
    bool is_partial;
};

/* Cut the next record off [*p, end): a line up to its newline (which is consumed), or else at most
 * CRI_LOG_MAX_PIECE bytes that the next record continues. */
static bool next_piece(const char **p, const char *end, struct piece *out)
{
    if (*p >= end)
        return false;
    size_t left = (size_t)(end - *p);
    const char *newline = memchr(*p, '\n', left < CRI_LOG_MAX_PIECE + 1 ? left : CRI_LOG_MAX_PIECE + 1);
    out->text = *p;
    if (newline) {
        out->len = (size_t)(newline - *p);
        out->is_partial = false;
        *p = newline + 1;
    } else {
        out->len = left < CRI_LOG_MAX_PIECE ? left : CRI_LOG_MAX_PIECE;
        out->is_partial = true;
        *p += out->len;
    }
    return true;
}

int cri_log_write(struct cri_log *log, enum cri_stream stream, const char *buf, size_t len,
                  const struct timespec *now, struct pea_error *err)
{
    char prefix[CRI_LOG_TIMESTAMP_MAX + 16];
    format_rfc3339_nano(now, prefix, CRI_LOG_TIMESTAMP_MAX);
    size_t prefix_len = strlen(prefix);
    prefix_len += (size_t)snprintf(prefix + prefix_len, sizeof prefix - prefix_len, " %s ", stream_names[stream]);
    /* prefix, tag, space, text, newline */
    size_t overhead = prefix_len + 3;

    size_t n_pieces = 0;
    struct piece piece;
    for (const char *p = buf; next_piece(&p, buf + len, &piece);)
        n_pieces++;
    size_t need = len + n_pieces * overhead;
    size_t want = need < CRI_LOG_BUFFER_MAX ? need : CRI_LOG_BUFFER_MAX;
    if (want > log->cap) {
        log->buf = xrealloc(log->buf, want);
        log->cap = want;
    }

    size_t used = 0;
    for (const char *p = buf; next_piece(&p, buf + len, &piece);) {
        size_t record_len = overhead + piece.len;
        bool is_full = log->max_bytes && log->size + used + record_len > log->max_bytes;
        if (is_full && log->size + used > 0) {
            if (flush(log, used, err) < 0 || rotate(log, err) < 0)
                return -1;
            used = 0;
        }
        if (used + record_len > log->cap) {
            if (flush(log, used, err) < 0)
                return -1;
            used = 0;
        }
        char *out = log->buf + used;
        memcpy(out, prefix, prefix_len);
        out += prefix_len;
        *out++ = piece.is_partial ? 'P' : 'F';
        *out++ = ' ';
        memcpy(out, piece.text, piece.len);
        out[piece.len] = '\n';
        used += record_len;
    }
    return flush(log, used, err);
}

/* ---- parsing ---- */

static int record_fail(struct pea_error *err, const char *what)
{
    return pea_fail(err, 0, "malformed log record: %s", what);
}

static int two_digits(const char *s) { return (s[0] - '0') * 10 + (s[1] - '0'); }

/* RFC 3339 as Go's RFC3339Nano and format_rfc3339_nano write it: 2026-11-22T07:15:02[.fraction](Z|+hh:mm). */
static bool is_rfc3339(const char *s, size_t len)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd";
    size_t n = sizeof shape - 1;
    if (len < n + 1)
        return false;
    for (size_t i = 0; i < n; i++)
        if (shape[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != shape[i])
            return false;
    int month = two_digits(s + 5), day = two_digits(s + 8);
    if (month < 1 || month > 12 || day < 1 || day > 31 || two_digits(s + 11) > 23 || two_digits(s + 14) > 59 ||
        two_digits(s + 17) > 60)
        return false;
    if (s[n] == '.') {
        size_t digits = 0;
        while (n + 1 + digits < len && s[n + 1 + digits] >= '0' && s[n + 1 + digits] <= '9')
            digits++;
        if (digits < 1 || digits > 9)
            return false;
        n += 1 + digits;
    }
    if (len - n == 1)
        return s[n] == 'Z';
    if (len - n != 6 || (s[n] != '+' && s[n] != '-') || s[n + 3] != ':')
        return false;
    for (size_t i = n + 1; i < len; i++)
        if (i != n + 3 && (s[i] < '0' || s[i] > '9'))
            return false;
    return two_digits(s + n + 1) <= 23 && two_digits(s + n + 4) <= 59;
}

/* The field that starts at *p and ends before the next space; *p moves past that space. */
static bool next_field(const char **p, const char *end, const char **field, size_t *len)
{
    const char *space = memchr(*p, ' ', (size_t)(end - *p));
    if (!space)
        return false;
    *field = *p;
    *len = (size_t)(space - *p);
    *p = space + 1;
    return true;
}

static bool field_is(const char *field, size_t len, const char *word)
{
    return len == strlen(word) && memcmp(field, word, len) == 0;
}

int cri_log_parse_line(const char *line, size_t len, struct cri_log_line *out, struct pea_error *err)
{
    const char *p = line, *end = line + len, *field;
    size_t field_len;
    if (!next_field(&p, end, &out->timestamp, &out->timestamp_len))
        return record_fail(err, "no space after the timestamp");
    if (!is_rfc3339(out->timestamp, out->timestamp_len))
        return record_fail(err, "timestamp is not RFC 3339");
    if (!next_field(&p, end, &field, &field_len))
        return record_fail(err, "no space after the stream");
    if (field_is(field, field_len, "stdout"))
        out->stream = CRI_STDOUT;
    else if (field_is(field, field_len, "stderr"))
        out->stream = CRI_STDERR;
    else
        return record_fail(err, "stream is neither stdout nor stderr");
    if (!next_field(&p, end, &field, &field_len))
        return record_fail(err, "no space after the tag");
    if (!field_is(field, field_len, "F") && !field_is(field, field_len, "P"))
        return record_fail(err, "tag is neither F nor P");
    out->is_partial = field[0] == 'P';
    out->text = p;
    out->text_len = (size_t)(end - p);
    if (memchr(out->text, '\n', out->text_len))
        return record_fail(err, "text holds a newline");
    return 0;
}

/* ---- reading ---- */

struct joined_line {
    enum cri_stream stream;
    char *text;
    size_t len, cap;
    char timestamp[CRI_LOG_TIMESTAMP_MAX];
    uint64_t seq; /* order in which lines began, to emit unfinished ones in order */
    bool is_open;
};

struct log_reader {
    struct joined_line pending[2]; /* per stream: P pieces of stdout and stderr interleave */
    uint64_t next_seq;
    size_t tail;
    struct joined_line *kept; /* with tail: the last lines, a ring once it holds tail of them */
    size_t n_kept, kept_cap, kept_start;
    cri_log_emit_fn emit;
    void *ctx;
};

static void append(struct joined_line *line, const char *text, size_t len)
{
    if (line->len + len + 1 > line->cap) {
        line->cap = (line->len + len + 1) * 2;
        line->text = xrealloc(line->text, line->cap);
    }
    memcpy(line->text + line->len, text, len);
    line->len += len;
    line->text[line->len] = '\0';
}

static int emit_line(struct log_reader *r, const struct joined_line *line)
{
    return r->emit(line->stream, line->text, line->len, line->timestamp, r->ctx);
}

/* A finished line: emitted at once, or kept while only the last tail lines are wanted. */
static int deliver(struct log_reader *r, struct joined_line *line)
{
    line->is_open = false;
    if (r->tail == 0)
        return emit_line(r, line);
    struct joined_line *slot;
    if (r->n_kept < r->tail) {
        if (r->n_kept == r->kept_cap) {
            r->kept_cap = r->kept_cap ? r->kept_cap * 2 : 16;
            if (r->kept_cap > r->tail)
                r->kept_cap = r->tail;
            r->kept = xrealloc(r->kept, r->kept_cap * sizeof *r->kept);
        }
        slot = &r->kept[r->n_kept++];
        slot->text = NULL;
        slot->cap = 0;
    } else {
        slot = &r->kept[r->kept_start];
        r->kept_start = (r->kept_start + 1) % r->n_kept;
    }
    slot->stream = line->stream;
    slot->len = 0;
    memcpy(slot->timestamp, line->timestamp, sizeof slot->timestamp);
    append(slot, line->text, line->len);
    return 0;
}

static int take_record(struct log_reader *r, const struct cri_log_line *record)
{
    struct joined_line *line = &r->pending[record->stream];
    if (!line->is_open) {
        line->is_open = true;
        line->stream = record->stream;
        line->len = 0;
        line->seq = r->next_seq++;
        memcpy(line->timestamp, record->timestamp, record->timestamp_len);
        line->timestamp[record->timestamp_len] = '\0';
    }
    append(line, record->text, record->text_len);
    return record->is_partial ? 0 : deliver(r, line);
}

static int read_file(struct log_reader *r, int fd, const char *name, struct pea_error *err)
{
    AUTO_FILE FILE *f = fdopen(fd, "r");
    if (!f) {
        close(fd);
        return pea_fail(err, errno, "read log %s", name);
    }
    AUTO_FREE char *buf = NULL;
    size_t cap = 0;
    ssize_t n;
    for (size_t lineno = 1; (n = getline(&buf, &cap, f)) >= 0; lineno++) {
        size_t len = (size_t)n;
        if (len > 0 && buf[len - 1] == '\n')
            len--;
        struct cri_log_line record;
        if (cri_log_parse_line(buf, len, &record, err) < 0)
            return pea_wrap(err, "read log %s line %zu", name, lineno);
        if (take_record(r, &record) < 0)
            return pea_fail(err, errno, "deliver log line");
    }
    if (ferror(f))
        return pea_fail(err, errno, "read log %s", name);
    return 0;
}

/* Lines still waiting for their F, in the order they began, then the kept tail. */
static int finish(struct log_reader *r)
{
    struct joined_line *out = &r->pending[CRI_STDOUT], *errl = &r->pending[CRI_STDERR];
    struct joined_line *first = out, *second = errl;
    if (errl->is_open && (!out->is_open || errl->seq < out->seq)) {
        first = errl;
        second = out;
    }
    if ((first->is_open && deliver(r, first) < 0) || (second->is_open && deliver(r, second) < 0))
        return -1;
    for (size_t i = 0; i < r->n_kept; i++)
        if (emit_line(r, &r->kept[(r->kept_start + i) % r->n_kept]) < 0)
            return -1;
    return 0;
}

static void reader_clear(struct log_reader *r)
{
    for (size_t i = 0; i < ARRAY_SIZE(r->pending); i++)
        free(r->pending[i].text);
    for (size_t i = 0; i < r->n_kept; i++)
        free(r->kept[i].text);
    free(r->kept);
}

/* Open every file before reading any, so that a rotation meanwhile shifts as few names under us as possible. */
static int open_log_files(int dir_fd, const char *name, bool include_rotated, int **fds_out, size_t *n_out,
                          struct pea_error *err)
{
    int *fds = NULL;
    size_t n = 0;
    /* name, then name.1, name.2, ... as long as they exist */
    for (unsigned i = 0; i == 0 || include_rotated; i++) {
        AUTO_FREE char *file = rotated_name(name, i);
        int fd = openat(dir_fd, file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0) {
            if (i > 0 && errno == ENOENT)
                break;
            pea_fail(err, errno, "open log %s", file);
            while (n > 0)
                close(fds[--n]);
            free(fds);
            return -1;
        }
        fds = xrealloc(fds, (n + 1) * sizeof *fds);
        fds[n++] = fd;
    }
    *fds_out = fds;
    *n_out = n;
    return 0;
}

int cri_log_read(int dir_fd, const char *name, bool include_rotated, size_t tail, cri_log_emit_fn emit,
                 void *ctx, struct pea_error *err)
{
    AUTO_FREE int *fds = NULL;
    size_t n_fds;
    if (open_log_files(dir_fd, name, include_rotated, &fds, &n_fds, err) < 0)
        return -1;
    struct log_reader r = {.tail = tail, .emit = emit, .ctx = ctx};
    int rc = 0;
    /* fds[0] is name, fds[i] is name.i: oldest last, so read backwards. Each read_file owns its fd. */
    for (size_t i = n_fds; i > 0; i--) {
        if (rc < 0) {
            close(fds[i - 1]);
            continue;
        }
        AUTO_FREE char *file = rotated_name(name, (unsigned)(i - 1));
        rc = read_file(&r, fds[i - 1], file, err);
    }
    if (rc == 0 && finish(&r) < 0)
        rc = pea_fail(err, errno, "deliver log line");
    reader_clear(&r);
    return rc;
}
