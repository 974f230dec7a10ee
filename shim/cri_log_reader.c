/* The readers of CRI log files: cri_log_read (the files as they are, by their names) and the follower (in order by
 * the index, through rotation, announcing what was gone). Both turn records into lines through one line_sink. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cri_log.h"
#include "cri_log_index.h"
#include "cri_log_reader.h"
#include "pea/util.h"

/* ---- records to lines ---- */

struct line {
    enum cri_stream stream;
    char *text;
    size_t len, cap;
    char timestamp[CRI_LOG_TIMESTAMP_MAX];
    uint64_t seq; /* order in which lines began, to emit unfinished ones in order */
    bool is_open;
    bool has_gap; /* a kept line: a gap came just before it */
    struct cri_log_gap gap;
};

struct line_sink {
    struct line pending[2]; /* per stream: P pieces of stdout and stderr interleave */
    uint64_t next_seq;
    size_t tail;            /* while > 0, finished lines are kept (the last tail of them) instead of emitted */
    struct line *kept;      /* a ring once it holds tail of them */
    size_t n_kept, kept_cap, kept_start;
    bool has_gap; /* while keeping: a gap that goes before the next line */
    struct cri_log_gap gap;
    cri_log_emit_fn emit;
    cri_log_gap_fn on_gap;
    void *ctx;
};

static void append(struct line *line, const char *text, size_t len)
{
    if (line->len + len + 1 > line->cap) {
        line->cap = (line->len + len + 1) * 2;
        line->text = xrealloc(line->text, line->cap);
    }
    memcpy(line->text + line->len, text, len);
    line->len += len;
    line->text[line->len] = '\0';
}

static int emit_line(struct line_sink *s, const struct line *line)
{
    return s->emit(line->stream, line->text, line->len, line->timestamp, s->ctx);
}

static void add_gap(struct cri_log_gap *to, const struct cri_log_gap *gap)
{
    to->bytes += gap->bytes;
    to->lines += gap->lines;
    to->is_unknown |= gap->is_unknown;
}

/* Output that is gone: announced now, or while keeping, before the next line kept. */
static int sink_gap(struct line_sink *s, const struct cri_log_gap *gap)
{
    if (s->tail == 0)
        return s->on_gap(gap, s->ctx);
    if (!s->has_gap)
        s->gap = (struct cri_log_gap){0};
    add_gap(&s->gap, gap);
    s->has_gap = true;
    return 0;
}

/* A finished line: emitted at once, or kept while only the last tail lines are wanted. */
static int deliver(struct line_sink *s, struct line *line)
{
    line->is_open = false;
    if (s->tail == 0)
        return emit_line(s, line);
    struct line *slot;
    if (s->n_kept < s->tail) {
        if (s->n_kept == s->kept_cap) {
            s->kept_cap = s->kept_cap ? s->kept_cap * 2 : 16;
            if (s->kept_cap > s->tail)
                s->kept_cap = s->tail;
            s->kept = xrealloc(s->kept, s->kept_cap * sizeof *s->kept);
        }
        slot = &s->kept[s->n_kept++];
        slot->text = NULL;
        slot->cap = 0;
    } else {
        slot = &s->kept[s->kept_start];
        s->kept_start = (s->kept_start + 1) % s->n_kept;
    }
    slot->stream = line->stream;
    slot->len = 0;
    memcpy(slot->timestamp, line->timestamp, sizeof slot->timestamp);
    append(slot, line->text, line->len);
    slot->has_gap = s->has_gap;
    slot->gap = s->gap;
    s->has_gap = false;
    return 0;
}

static int sink_take(struct line_sink *s, const struct cri_log_line *record)
{
    struct line *line = &s->pending[record->stream];
    if (!line->is_open) {
        line->is_open = true;
        line->stream = record->stream;
        line->len = 0;
        line->seq = s->next_seq++;
        memcpy(line->timestamp, record->timestamp, record->timestamp_len);
        line->timestamp[record->timestamp_len] = '\0';
    }
    append(line, record->text, record->text_len);
    return record->is_partial ? 0 : deliver(s, line);
}

/* The stream's unfinished line lost its rest: it is never emitted. */
static void sink_drop(struct line_sink *s, enum cri_stream stream) { s->pending[stream].is_open = false; }

/* Lines still waiting for their F, in the order they began. */
static int sink_finish_pending(struct line_sink *s)
{
    struct line *out = &s->pending[CRI_STDOUT], *errl = &s->pending[CRI_STDERR];
    struct line *first = out, *second = errl;
    if (errl->is_open && (!out->is_open || errl->seq < out->seq)) {
        first = errl;
        second = out;
    }
    if ((first->is_open && deliver(s, first) < 0) || (second->is_open && deliver(s, second) < 0))
        return -1;
    return 0;
}

/* Emit the kept lines and stop keeping. A gap before the first of them lies before what was asked for. */
static int sink_release_kept(struct line_sink *s)
{
    int r = 0;
    for (size_t i = 0; i < s->n_kept && r == 0; i++) {
        struct line *line = &s->kept[(s->kept_start + i) % s->n_kept];
        if (i > 0 && line->has_gap)
            r = s->on_gap(&line->gap, s->ctx);
        if (r == 0)
            r = emit_line(s, line);
    }
    for (size_t i = 0; i < s->n_kept; i++)
        free(s->kept[i].text);
    free(s->kept);
    s->kept = NULL;
    s->n_kept = s->kept_cap = s->kept_start = 0;
    s->tail = 0;
    if (r == 0 && s->has_gap) {
        s->has_gap = false;
        r = s->on_gap(&s->gap, s->ctx);
    }
    return r;
}

static void sink_clear(struct line_sink *s)
{
    for (size_t i = 0; i < ARRAY_SIZE(s->pending); i++)
        free(s->pending[i].text);
    for (size_t i = 0; i < s->n_kept; i++)
        free(s->kept[i].text);
    free(s->kept);
}

static int deliver_fail(struct pea_error *err) { return pea_fail(err, errno, "deliver log line"); }

/* ---- the files as they are ---- */

static int read_file(struct line_sink *s, int fd, const char *name, struct pea_error *err)
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
        if (sink_take(s, &record) < 0)
            return deliver_fail(err);
    }
    if (ferror(f))
        return pea_fail(err, errno, "read log %s", name);
    return 0;
}

/* Open every file before reading any, so that a rotation meanwhile shifts as few names under us as possible. */
static int open_log_files(int dir_fd, const char *name, bool include_rotated, int **fds_out, size_t *n_out,
                          struct pea_error *err)
{
    int *fds = NULL;
    size_t n = 0;
    /* name, then name.1, name.2, ... as long as they exist */
    for (unsigned i = 0; i == 0 || include_rotated; i++) {
        AUTO_FREE char *file = cri_log_file_name(name, i);
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

static int no_gap(const struct cri_log_gap *gap, void *ctx)
{
    (void)gap;
    (void)ctx;
    return 0;
}

int cri_log_read(int dir_fd, const char *name, bool include_rotated, size_t tail, cri_log_emit_fn emit,
                 void *ctx, struct pea_error *err)
{
    AUTO_FREE int *fds = NULL;
    size_t n_fds;
    if (open_log_files(dir_fd, name, include_rotated, &fds, &n_fds, err) < 0)
        return -1;
    struct line_sink s = {.tail = tail, .emit = emit, .on_gap = no_gap, .ctx = ctx};
    int rc = 0;
    /* fds[0] is name, fds[i] is name.i: oldest last, so read backwards. Each read_file owns its fd. */
    for (size_t i = n_fds; i > 0; i--) {
        if (rc < 0) {
            close(fds[i - 1]);
            continue;
        }
        AUTO_FREE char *file = cri_log_file_name(name, (unsigned)(i - 1));
        rc = read_file(&s, fds[i - 1], file, err);
    }
    if (rc == 0 && (sink_finish_pending(&s) < 0 || sink_release_kept(&s) < 0))
        rc = deliver_fail(err);
    sink_clear(&s);
    return rc;
}

/* ---- the follower ---- */

/* How many times a read looks again for the next file while rotations shift the names under it. */
#define FIND_ATTEMPTS 1000
#define READ_CHUNK (64 * 1024)

struct cri_log_follower {
    int dir_fd, index_dir_fd;
    char *names[2]; /* the log's name; where a finished instance's files go (or NULL) */
    bool is_following;
    bool has_instance;
    uint64_t instance;
    int fd; /* the file being read, -1 before the first */
    uint64_t seq, inode;
    char *buf; /* what was read past the last whole record */
    size_t n_buf, buf_cap;
    struct cri_log_position at; /* the output read so far */
    bool is_doomed[2];          /* the stream's open line lost a part to a gap: its rest is read, not emitted */
    struct line_sink sink;
};

struct cri_log_follower *cri_log_follower_new(int dir_fd, int index_dir_fd, const char *name, const char *moved_name,
                                              size_t tail, bool is_following, cri_log_emit_fn emit,
                                              cri_log_gap_fn on_gap, void *ctx)
{
    struct cri_log_follower *f = xcalloc(1, sizeof *f);
    f->dir_fd = dir_fd;
    f->index_dir_fd = index_dir_fd;
    f->names[0] = xstrdup(name);
    f->names[1] = moved_name ? xstrdup(moved_name) : NULL;
    f->is_following = is_following;
    f->fd = -1;
    f->sink = (struct line_sink){.tail = tail, .emit = emit, .on_gap = on_gap, .ctx = ctx};
    return f;
}

void cri_log_follower_free(struct cri_log_follower *f)
{
    if (!f)
        return;
    if (f->fd >= 0)
        close(f->fd);
    free(f->names[0]);
    free(f->names[1]);
    free(f->buf);
    sink_clear(&f->sink);
    free(f);
}

static int take_record(struct cri_log_follower *f, const struct cri_log_line *record)
{
    enum cri_stream stream = record->stream;
    cri_log_position_add(&f->at, stream, record->text_len, record->is_partial);
    if (f->is_doomed[stream]) {
        f->is_doomed[stream] = record->is_partial;
        return 0;
    }
    return sink_take(&f->sink, record);
}

/* Take the whole records at the start of buf; keep the rest (a record still being written). */
static int take_records(struct cri_log_follower *f, struct pea_error *err)
{
    size_t start = 0;
    for (char *nl; (nl = memchr(f->buf + start, '\n', f->n_buf - start));) {
        size_t len = (size_t)(nl - (f->buf + start));
        struct cri_log_line record;
        if (cri_log_parse_line(f->buf + start, len, &record, err) < 0)
            return pea_wrap(err, "read log %s (file %llu of its instance)", f->names[0],
                            (unsigned long long)f->seq);
        if (take_record(f, &record) < 0)
            return deliver_fail(err);
        start += len + 1;
    }
    memmove(f->buf, f->buf + start, f->n_buf - start);
    f->n_buf -= start;
    return 0;
}

/* Read the file being read to its end, or only to its size now (a file being written: a read keeps up with what
 * it found, not with a writer that may never stop). */
static int drain(struct cri_log_follower *f, bool is_up_to_now, struct pea_error *err)
{
    uint64_t left = UINT64_MAX;
    if (is_up_to_now) {
        struct stat st;
        off_t at = lseek(f->fd, 0, SEEK_CUR);
        if (at < 0 || fstat(f->fd, &st) < 0)
            return pea_fail(err, errno, "read log %s", f->names[0]);
        left = st.st_size > at ? (uint64_t)(st.st_size - at) : 0;
    }
    while (left > 0) {
        size_t want = left < READ_CHUNK ? (size_t)left : READ_CHUNK;
        if (f->n_buf + want > f->buf_cap) {
            f->buf_cap = f->n_buf + want;
            f->buf = xrealloc(f->buf, f->buf_cap);
        }
        ssize_t n = read(f->fd, f->buf + f->n_buf, want);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return pea_fail(err, errno, "read log %s", f->names[0]);
        if (n == 0)
            break;
        f->n_buf += (size_t)n;
        left -= (uint64_t)n;
        if (take_records(f, err) < 0)
            return -1;
    }
    return 0;
}

/* Whether the file being read is the one the log's name holds (the one being written). */
static bool is_current(const struct cri_log_follower *f)
{
    struct stat st;
    return fstatat(f->dir_fd, f->names[0], &st, AT_SYMLINK_NOFOLLOW) == 0 && (uint64_t)st.st_ino == f->inode;
}

/* Open the file the index lists as `file`, under whichever of base's names it has now (or the name it is made
 * under). -1 when it is not found: rotation may be moving it. */
static int open_listed(const struct cri_log_follower *f, const char *base, const struct cri_log_index *index,
                       const struct cri_log_index_file *file)
{
    for (unsigned i = 0; i <= index->n_files + 1; i++) {
        AUTO_FREE char *name = i <= index->n_files ? cri_log_file_name(base, i)
                                                   : xasprintf("%s" CRI_LOG_NEW_SUFFIX, base);
        struct stat st;
        if (fstatat(f->dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || (uint64_t)st.st_ino != file->inode)
            continue;
        int fd = openat(f->dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        /* Checked through the fd: the name may have moved on between the two calls. */
        if (fd >= 0 && fstat(fd, &st) == 0 && (uint64_t)st.st_ino == file->inode)
            return fd;
        if (fd >= 0)
            close(fd);
    }
    return -1;
}

/* open_listed, then a look at the index as it is now: a file dropped by rotation gives its inode number back, and
 * a newer file may have it by the time the name is found. Once the file is open its number is its own, so the
 * index read after the open tells whether it is the one listed. */
static int open_verified(const struct cri_log_follower *f, const char *base, const struct cri_log_index *index,
                         const struct cri_log_index_file *file)
{
    int fd = open_listed(f, base, index, file);
    if (fd < 0)
        return -1;
    struct cri_log_index now;
    struct pea_error ignored = {0};
    const struct cri_log_index_file *listed = NULL;
    if (cri_log_index_load(f->index_dir_fd, base, &now, &ignored) == 0 && now.instance == index->instance)
        listed = cri_log_index_find(&now, file->seq);
    if (listed && listed->inode == file->inode)
        return fd;
    close(fd);
    return -1;
}

static void begin_reading(struct cri_log_follower *f, int fd, const struct cri_log_index_file *file)
{
    if (f->fd >= 0)
        close(f->fd);
    f->fd = fd;
    f->seq = file->seq;
    f->inode = file->inode;
    /* What a finished file held past its last newline is a record torn by a crash: not a line. */
    f->n_buf = 0;
}

/* The first file: the oldest of the instance that has the log's name. 1 when open, 0 when there is none yet. */
static int open_first(struct cri_log_follower *f, struct pea_error *err)
{
    for (unsigned attempt = 0; attempt < FIND_ATTEMPTS; attempt++) {
        struct cri_log_index index;
        struct pea_error why = {0};
        if (cri_log_index_load(f->index_dir_fd, f->names[0], &index, &why) < 0) {
            if (why.errnum != ENOENT) {
                *err = why;
                return -1;
            }
            /* The index is written before the first file takes the name: a file without one is older than it. */
            if (faccessat(f->dir_fd, f->names[0], F_OK, AT_SYMLINK_NOFOLLOW) == 0)
                return pea_fail(err, 0, "log %s has no index (it was written by an older pea-shim)", f->names[0]);
            return 0;
        }
        if (index.n_files == 0)
            return 0;
        int fd = open_verified(f, f->names[0], &index, &index.files[0]);
        if (fd < 0)
            continue;
        f->has_instance = true;
        f->instance = index.instance;
        /* Where the kept files begin is where reading begins: what went before is not asked for. */
        f->at = index.files[0].start;
        begin_reading(f, fd, &index.files[0]);
        return 1;
    }
    return 0;
}

/* The index that lists the followed instance now: the log's own, or after a restart the one it moved to. 1 when
 * found (*which says whose), 0 when the instance is in neither. */
static int load_own_index(struct cri_log_follower *f, struct cri_log_index *index, int *which, struct pea_error *err)
{
    for (int k = 0; k < 2 && f->names[k]; k++) {
        struct pea_error why = {0};
        if (cri_log_index_load(f->index_dir_fd, f->names[k], index, &why) < 0) {
            if (why.errnum == ENOENT)
                continue;
            *err = why;
            return -1;
        }
        if (index->instance == f->instance) {
            *which = k;
            return 1;
        }
    }
    return 0;
}

/* Going from the file just finished to `next`: what the files between held, if any are gone, is one gap. */
static int account_gap(struct cri_log_follower *f, const struct cri_log_position *next, struct pea_error *err)
{
    struct cri_log_gap gap = {0};
    for (int s = CRI_STDOUT; s <= CRI_STDERR; s++) {
        if (next->bytes[s] <= f->at.bytes[s])
            continue;
        gap.bytes += next->bytes[s] - f->at.bytes[s];
        /* The lines that ended in the gap, the one it leaves open (its rest is dropped), less the open line that
         * an earlier gap counted already. A line this stream had open and not doomed ended in the gap or is the
         * one left open: counted either way, and dropped. */
        uint64_t lines = next->lines[s] > f->at.lines[s] ? next->lines[s] - f->at.lines[s] : 0;
        lines += next->is_mid_line[s];
        if (f->is_doomed[s] && lines > 0)
            lines--;
        gap.lines += lines;
        sink_drop(&f->sink, (enum cri_stream)s);
        f->is_doomed[s] = next->is_mid_line[s];
    }
    f->at = *next;
    return gap.bytes > 0 && sink_gap(&f->sink, &gap) < 0 ? deliver_fail(err) : 0;
}

static int read_on(struct cri_log_follower *f, enum cri_log_follow_result *result, struct pea_error *err)
{
    for (unsigned attempt = 0; attempt < FIND_ATTEMPTS;) {
        if (f->fd < 0) {
            int r = open_first(f, err);
            if (r <= 0)
                return r;
        }
        if (is_current(f))
            return drain(f, true, err);
        /* The name has moved on (a rotation, or a new instance): the index, written before that, says what follows. */
        struct cri_log_index index;
        int which = 0;
        int found = load_own_index(f, &index, &which, err);
        if (found < 0)
            return -1;
        if (found == 0) {
            /* Replaced by files the follower cannot place: read what it holds and say that the rest is unknown. */
            if (drain(f, false, err) < 0)
                return -1;
            *result = CRI_LOG_ENDED;
            struct cri_log_gap gap = {.is_unknown = true};
            return sink_gap(&f->sink, &gap) < 0 ? deliver_fail(err) : 0;
        }
        const struct cri_log_index_file *next = NULL;
        for (size_t i = 0; i < index.n_files && !next; i++)
            if (index.files[i].seq > f->seq)
                next = &index.files[i];
        if (!next) {
            /* The newest file of its instance, no longer under the log's name: the instance has ended, or the
             * shim is between moving its files and moving their index. */
            if (drain(f, false, err) < 0)
                return -1;
            if (which == 1)
                *result = CRI_LOG_ENDED;
            return 0;
        }
        int fd = open_verified(f, f->names[which], &index, next);
        if (fd < 0) {
            attempt++;
            continue;
        }
        /* The writer had left this file for good before it wrote that index: read it to its end. */
        if (drain(f, false, err) < 0 || account_gap(f, &next->start, err) < 0) {
            close(fd);
            return -1;
        }
        begin_reading(f, fd, next);
    }
    return 0;
}

int cri_log_follower_read(struct cri_log_follower *f, enum cri_log_follow_result *result, struct pea_error *err)
{
    *result = CRI_LOG_CAUGHT_UP;
    if (read_on(f, result, err) < 0)
        return -1;
    /* Following, the first read's lines are the ones that existed: the last tail of them are shown, then all. */
    if (f->is_following && f->sink.tail > 0 && sink_release_kept(&f->sink) < 0)
        return deliver_fail(err);
    return 0;
}

int cri_log_follower_finish(struct cri_log_follower *f, struct pea_error *err)
{
    if (sink_finish_pending(&f->sink) < 0 || sink_release_kept(&f->sink) < 0)
        return deliver_fail(err);
    return 0;
}
