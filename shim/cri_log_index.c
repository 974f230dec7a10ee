/* The log files' index: its text form, and reading and replacing it. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cri_log_index.h"
#include "pea/util.h"

#define INDEX_MAGIC "pea-cri-log-index 1 "
/* Header and CRI_LOG_INDEX_MAX_FILES lines of 6 numbers of 20 digits, 2 flags and the spaces: well under this. */
#define INDEX_MAX_TEXT (64 * 1024)

char *cri_log_index_name(const char *name) { return xasprintf("%s.index", name); }

static int index_fail(struct pea_error *err, const char *what)
{
    return pea_fail(err, 0, "malformed log index: %s", what);
}

/* A decimal number of 1 to 20 digits (no sign, no leading zero but 0 itself) that fits 64 bits, then `after`. */
static bool take_number(const char **p, const char *end, char after, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;
    size_t digits = 0;
    while (s < end && *s >= '0' && *s <= '9') {
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10 || (digits == 1 && v == 0))
            return false;
        v = v * 10 + d;
        digits++;
        s++;
    }
    if (digits == 0 || s >= end || *s != after)
        return false;
    *out = v;
    *p = s + 1;
    return true;
}

static bool take_flag(const char **p, const char *end, char after, bool *out)
{
    uint64_t v;
    if (!take_number(p, end, after, &v) || v > 1)
        return false;
    *out = v == 1;
    return true;
}

static bool take_hex64(const char **p, const char *end, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;
    for (int i = 0; i < 16; i++, s++) {
        if (s >= end)
            return false;
        int d = *s >= '0' && *s <= '9' ? *s - '0' : *s >= 'a' && *s <= 'f' ? *s - 'a' + 10 : -1;
        if (d < 0)
            return false;
        v = v << 4 | (unsigned)d;
    }
    if (s >= end || *s != '\n')
        return false;
    *out = v;
    *p = s + 1;
    return true;
}

static bool take_file(const char **p, const char *end, struct cri_log_index_file *f)
{
    struct cri_log_position *at = &f->start;
    return take_number(p, end, ' ', &f->seq) && take_number(p, end, ' ', &f->inode) &&
           take_number(p, end, ' ', &at->bytes[CRI_STDOUT]) && take_number(p, end, ' ', &at->lines[CRI_STDOUT]) &&
           take_flag(p, end, ' ', &at->is_mid_line[CRI_STDOUT]) &&
           take_number(p, end, ' ', &at->bytes[CRI_STDERR]) && take_number(p, end, ' ', &at->lines[CRI_STDERR]) &&
           take_flag(p, end, '\n', &at->is_mid_line[CRI_STDERR]);
}

int cri_log_index_parse(const char *text, size_t len, struct cri_log_index *out, struct pea_error *err)
{
    const char *p = text, *end = text + len;
    size_t magic_len = strlen(INDEX_MAGIC);
    if (len < magic_len || memcmp(text, INDEX_MAGIC, magic_len) != 0)
        return index_fail(err, "no pea-cri-log-index 1 header");
    p += magic_len;
    if (!take_hex64(&p, end, &out->instance))
        return index_fail(err, "instance is not 16 hex digits and a newline");
    out->n_files = 0;
    while (p < end) {
        if (out->n_files == CRI_LOG_INDEX_MAX_FILES)
            return index_fail(err, "too many files");
        struct cri_log_index_file *f = &out->files[out->n_files];
        if (!take_file(&p, end, f))
            return index_fail(err, "a file's line is not 6 numbers and 2 flags");
        /* Positions only grow from one file to the next: a reader subtracts them. */
        if (out->n_files > 0) {
            const struct cri_log_index_file *before = f - 1;
            for (int s = CRI_STDOUT; s <= CRI_STDERR; s++)
                if (f->start.bytes[s] < before->start.bytes[s] || f->start.lines[s] < before->start.lines[s])
                    return index_fail(err, "a file begins before the one before it");
            if (f->seq <= before->seq)
                return index_fail(err, "files are not in order");
        }
        out->n_files++;
    }
    return 0;
}

char *cri_log_index_format(const struct cri_log_index *index)
{
    size_t cap = 64 + index->n_files * 192, len = 0;
    char *text = xmalloc(cap);
    len += (size_t)snprintf(text, cap, INDEX_MAGIC "%016" PRIx64 "\n", index->instance);
    for (size_t i = 0; i < index->n_files; i++) {
        const struct cri_log_index_file *f = &index->files[i];
        const struct cri_log_position *at = &f->start;
        len += (size_t)snprintf(text + len, cap - len, "%" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %d %" PRIu64
                                " %" PRIu64 " %d\n", f->seq, f->inode, at->bytes[CRI_STDOUT],
                                at->lines[CRI_STDOUT], at->is_mid_line[CRI_STDOUT], at->bytes[CRI_STDERR],
                                at->lines[CRI_STDERR], at->is_mid_line[CRI_STDERR]);
    }
    return text;
}

int cri_log_index_load(int dir_fd, const char *name, struct cri_log_index *out, struct pea_error *err)
{
    AUTO_FREE char *file = cri_log_index_name(name);
    size_t len;
    AUTO_FD int fd = openat(dir_fd, file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
    AUTO_FREE char *text = fd < 0 ? NULL : read_fd_all(fd, INDEX_MAX_TEXT, &len);
    if (!text)
        return pea_fail(err, errno, "read log index %s", file);
    if (cri_log_index_parse(text, len, out, err) < 0)
        return pea_wrap(err, "read log index %s", file);
    return 0;
}

int cri_log_index_save(int dir_fd, const char *name, const struct cri_log_index *index, struct pea_error *err)
{
    AUTO_FREE char *file = cri_log_index_name(name);
    AUTO_FREE char *text = cri_log_index_format(index);
    if (write_file_atomic_at(dir_fd, file, text, strlen(text), 0640) < 0)
        return pea_fail(err, errno, "write log index %s", file);
    return 0;
}

const struct cri_log_index_file *cri_log_index_find(const struct cri_log_index *index, uint64_t seq)
{
    for (size_t i = 0; i < index->n_files; i++)
        if (index->files[i].seq == seq)
            return &index->files[i];
    return NULL;
}
