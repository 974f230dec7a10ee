/* CRI log files: the writer that turns a container's output into records, size rotation and its index, and the
 * record parser. The readers are in cri_log_reader.c. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cri_log.h"
#include "cri_log_index.h"
#include "pea/util.h"

static const char *const stream_names[] = {[CRI_STDOUT] = "stdout", [CRI_STDERR] = "stderr"};

struct cri_log {
    int dir_fd;       /* our own duplicate: rotation renames in it long after open */
    int index_dir_fd; /* likewise, for the index */
    char *name;
    int fd;
    uint64_t size;
    uint64_t max_bytes;
    unsigned max_files;
    struct cri_log_position at; /* the output on disk so far: where the next file would begin */
    struct cri_log_index index;         /* the files there are: name.N ... name.1, name */
    char *buf; /* one chunk's records, kept between writes to spare an allocation per chunk */
    size_t cap;
};

/* Records go out through a buffer of at most this size, kept per container (one record, at most CRI_LOG_MAX_PIECE
 * of text, always fits). A chunk that needs more (many short lines: a 64 KiB chunk of empty lines needs over 2 MiB)
 * takes several writes, rather than a larger buffer made and freed for each chunk, which was an mmap, its page
 * faults and a munmap every time. */
#define CRI_LOG_BUFFER_MAX (128 * 1024)

char *cri_log_file_name(const char *name, unsigned index)
{
    return index == 0 ? xstrdup(name) : xasprintf("%s.%u", name, index);
}

static int open_log_for_reading(int dir_fd, const char *name)
{
    return openat(dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
}

/* Add what the records of dir_fd/file hold to *at. A malformed record counts for nothing, as for a reader. */
static int count_records(int dir_fd, const char *file, struct cri_log_position *at, struct pea_error *err)
{
    int fd = open_log_for_reading(dir_fd, file);
    AUTO_FILE FILE *f = fd < 0 ? NULL : fdopen(fd, "r");
    if (!f) {
        if (fd >= 0)
            close(fd);
        return pea_fail(err, errno, "read log %s", file);
    }
    AUTO_FREE char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        struct cri_log_line record;
        struct pea_error ignored = {0};
        /* A last record without its newline was torn by a crash: not output the writer counted. */
        if (line[n - 1] == '\n' && cri_log_parse_line(line, (size_t)n - 1, &record, &ignored) == 0)
            cri_log_position_add(at, record.stream, record.text_len, record.is_partial);
    }
    if (ferror(f))
        return pea_fail(err, errno, "read log %s", file);
    return 0;
}

static uint64_t new_instance_number(void)
{
    uint64_t n;
    if (getrandom(&n, sizeof n, GRND_NONBLOCK) == (ssize_t)sizeof n)
        return n;
    /* Only needs to differ from the instance before. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) ^ ((uint64_t)getpid() << 32);
}

/* Whether the index found describes exactly the files there are (inodes[i] of the ith, oldest first). */
static bool index_matches(const struct cri_log_index *index, const uint64_t *inodes, size_t n)
{
    if (index->n_files != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (index->files[i].inode != inodes[i])
            return false;
    return true;
}

/* Learn where the output stands from the files there are: the index when it describes them (a shim that went on
 * after a restart), else a new instance numbered from the files' records. */
static int recover_position(struct cri_log *log, bool *has_current, struct pea_error *err)
{
    uint64_t inodes[CRI_LOG_INDEX_MAX_FILES];
    unsigned indexes[CRI_LOG_INDEX_MAX_FILES];
    size_t n = 0;
    *has_current = false;
    for (unsigned i = log->max_files + 1; i > 0; i--) {
        AUTO_FREE char *file = cri_log_file_name(log->name, i - 1);
        struct stat st;
        if (fstatat(log->dir_fd, file, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno == ENOENT)
                continue;
            return pea_fail(err, errno, "stat log %s", file);
        }
        inodes[n] = (uint64_t)st.st_ino;
        indexes[n++] = i - 1;
        *has_current = i == 1;
    }
    struct pea_error ignored = {0};
    if (*has_current && cri_log_index_load(log->index_dir_fd, log->name, &log->index, &ignored) == 0 &&
        index_matches(&log->index, inodes, n)) {
        log->at = log->index.files[n - 1].start;
        return count_records(log->dir_fd, log->name, &log->at, err);
    }
    log->index.instance = new_instance_number();
    log->index.n_files = n;
    memset(&log->at, 0, sizeof log->at);
    for (size_t i = 0; i < n; i++) {
        log->index.files[i] = (struct cri_log_index_file){.seq = i, .inode = inodes[i], .start = log->at};
        AUTO_FREE char *file = cri_log_file_name(log->name, indexes[i]);
        if (count_records(log->dir_fd, file, &log->at, err) < 0)
            return -1;
    }
    return 0;
}

static int open_log_file(int dir_fd, const char *name, int flags)
{
    return openat(dir_fd, name, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | flags, 0640);
}

/* name.(N-1) -> name.N down to name.1 -> name.2: the rotated files make room for name. */
static int shift_rotated(struct cri_log *log, struct pea_error *err)
{
    /* Oldest first, so each rename lands on a name just freed; the rename onto name.max_files drops the oldest. */
    for (unsigned i = log->max_files; i > 0; i--) {
        AUTO_FREE char *from = cri_log_file_name(log->name, i - 1);
        AUTO_FREE char *to = cri_log_file_name(log->name, i);
        if (renameat(log->dir_fd, from, log->dir_fd, to) < 0 && errno != ENOENT)
            return pea_fail(err, errno, "rotate log %s to %s", from, to);
    }
    return 0;
}

/* Begin the next file at the position reached. It is made under a temporary name and entered in the index before
 * it takes the log's name, so that any file a reader finds under a log name is in the index it reads after. When
 * rotating, the file that held the name moves to name.1 first (the older ones along, the oldest dropped). */
static int begin_file(struct cri_log *log, bool is_rotation, struct pea_error *err)
{
    AUTO_FREE char *temporary = xasprintf("%s" CRI_LOG_NEW_SUFFIX, log->name);
    /* A crash may have left one: a fresh inode, not one an old index could name. */
    unlinkat(log->dir_fd, temporary, 0);
    AUTO_FD int fd = open_log_file(log->dir_fd, temporary, O_CREAT | O_EXCL);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0)
        return pea_fail(err, errno, "create log %s", temporary);
    struct cri_log_index next = log->index;
    /* The newest max_files stay (as name.1 ... after a rotation); the others go. */
    size_t keep = next.n_files < log->max_files ? next.n_files : log->max_files;
    memmove(next.files, next.files + (next.n_files - keep), keep * sizeof next.files[0]);
    uint64_t seq = next.n_files ? next.files[next.n_files - 1].seq + 1 : 0;
    next.files[keep] = (struct cri_log_index_file){.seq = seq, .inode = (uint64_t)st.st_ino, .start = log->at};
    next.n_files = keep + 1;
    if (cri_log_index_save(log->index_dir_fd, log->name, &next, err) < 0 ||
        (is_rotation && shift_rotated(log, err) < 0)) {
        unlinkat(log->dir_fd, temporary, 0);
        return -1;
    }
    /* Over name when max_files is 0: the full file goes at once. */
    if (renameat(log->dir_fd, temporary, log->dir_fd, log->name) < 0) {
        int saved = errno;
        unlinkat(log->dir_fd, temporary, 0);
        return pea_fail(err, saved, "rename log %s to %s", temporary, log->name);
    }
    log->index = next;
    if (log->fd >= 0)
        close(log->fd);
    log->fd = take_fd(&fd);
    log->size = 0;
    return 0;
}

struct cri_log *cri_log_open(int dir_fd, int index_dir_fd, const char *name, uint64_t max_bytes,
                             unsigned max_files, struct pea_error *err)
{
    if (max_files >= CRI_LOG_INDEX_MAX_FILES) {
        pea_fail(err, EINVAL, "log %s: at most %u rotated files", name, CRI_LOG_INDEX_MAX_FILES - 1);
        return NULL;
    }
    struct cri_log *log = xcalloc(1, sizeof *log);
    log->name = xstrdup(name);
    log->fd = -1;
    log->max_bytes = max_bytes;
    log->max_files = max_files;
    log->dir_fd = fcntl(dir_fd, F_DUPFD_CLOEXEC, 0);
    log->index_dir_fd = fcntl(index_dir_fd, F_DUPFD_CLOEXEC, 0);
    if (log->dir_fd < 0 || log->index_dir_fd < 0) {
        pea_fail(err, errno, "duplicate log directory fd for %s", name);
        cri_log_close(log);
        return NULL;
    }
    bool has_current;
    if (recover_position(log, &has_current, err) < 0) {
        cri_log_close(log);
        return NULL;
    }
    if (!has_current) {
        if (begin_file(log, false, err) < 0) {
            cri_log_close(log);
            return NULL;
        }
        return log;
    }
    log->fd = open_log_file(log->dir_fd, name, 0);
    struct stat st;
    if (log->fd < 0 || fstat(log->fd, &st) < 0) {
        pea_fail(err, errno, "open log %s", name);
        cri_log_close(log);
        return NULL;
    }
    log->size = (uint64_t)st.st_size;
    if (cri_log_index_save(log->index_dir_fd, name, &log->index, err) < 0) {
        cri_log_close(log);
        return NULL;
    }
    return log;
}

void cri_log_close(struct cri_log *log)
{
    if (!log)
        return;
    if (log->fd >= 0)
        close(log->fd);
    if (log->dir_fd >= 0)
        close(log->dir_fd);
    if (log->index_dir_fd >= 0)
        close(log->index_dir_fd);
    free(log->name);
    free(log->buf);
    free(log);
}

/* The records in the buffer and, for the position, the output they carry: their length less each one's prefix,
 * tag and newline, plus a newline for each F. Counted in locals as the records are made, so that the writer's
 * cost stays that of the copy. */
struct buffered {
    enum cri_stream stream;
    size_t used;
    size_t overhead; /* of each record */
    size_t records, partials;
    bool is_mid_line; /* the last record is P */
};

static int flush(struct cri_log *log, struct buffered b, struct pea_error *err)
{
    if (b.used == 0)
        return 0;
    if (write_all(log->fd, log->buf, b.used) < 0) {
        int saved = errno;
        /* A torn record would run into the next one: cut the file back to its last whole record. What was not
         * written is not counted: the next file begins where this one ends. */
        (void)!ftruncate(log->fd, (off_t)log->size);
        return pea_fail(err, saved, "write log %s", log->name);
    }
    log->size += b.used;
    size_t lines = b.records - b.partials;
    log->at.bytes[b.stream] += b.used - b.records * b.overhead + lines;
    log->at.lines[b.stream] += lines;
    log->at.is_mid_line[b.stream] = b.is_mid_line;
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

    size_t used = 0, records = 0, partials = 0;
    bool is_mid_line = false;
#define BUFFERED ((struct buffered){stream, used, overhead, records, partials, is_mid_line})
    for (const char *p = buf; next_piece(&p, buf + len, &piece);) {
        size_t record_len = overhead + piece.len;
        /* A record larger than max_bytes still goes whole into one file: an empty one is not rotated. */
        bool is_rotating = log->max_bytes && log->size + used + record_len > log->max_bytes && log->size + used > 0;
        if (is_rotating || used + record_len > log->cap) {
            if (flush(log, BUFFERED, err) < 0 || (is_rotating && begin_file(log, true, err) < 0))
                return -1;
            used = records = partials = 0;
        }
        char *out = log->buf + used;
        memcpy(out, prefix, prefix_len);
        out += prefix_len;
        *out++ = piece.is_partial ? 'P' : 'F';
        *out++ = ' ';
        memcpy(out, piece.text, piece.len);
        out[piece.len] = '\n';
        used += record_len;
        records++;
        partials += piece.is_partial;
        is_mid_line = piece.is_partial;
    }
    return flush(log, BUFFERED, err);
#undef BUFFERED
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
