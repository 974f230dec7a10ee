/* libFuzzer target for CRI log records and their index. The input is parsed as one record (fields must stay inside
 * it) and as an index (what parses must format back to the same text), then written as container output in chunks,
 * with rotation, and read back by both readers: the lines must be the input's lines. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cri_log.h"
#include "cri_log_index.h"
#include "cri_log_reader.h"
#include "pea/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Room for all of the largest input checked: at worst a record per byte (one-byte chunks), 42 bytes each, is
 * 172 KB; 13 files of 16 KiB hold 212 KB. Few files keep the renames of each rotation cheap. */
#define MAX_BYTES (16 * 1024)
#define MAX_FILES 12
#define CHECKED_SIZE 4096

static char dir[] = "/tmp/pea-fuzz-cri-log-XXXXXX";

/* libFuzzer ends with exit(): the directory goes with the process. */
static void remove_log_dir(void) { remove_tree(dir, &(struct pea_error){0}); }

static int log_dir(void)
{
    static int fd = -1;
    if (fd < 0) {
        if (!mkdtemp(dir))
            abort();
        fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
            abort();
        atexit(remove_log_dir);
    }
    /* The last run's files: rotated ones are numbered without gaps. */
    unlinkat(fd, "c.log", 0);
    unlinkat(fd, "c.log.index", 0);
    for (unsigned i = 1;; i++) {
        char name[32];
        snprintf(name, sizeof name, "c.log.%u", i);
        if (unlinkat(fd, name, 0) < 0)
            break;
    }
    return fd;
}

static void check_parse(const char *text, size_t size)
{
    struct cri_log_line line;
    struct pea_error err = {0};
    if (cri_log_parse_line(text, size, &line, &err) < 0) {
        if (err.msg[0] == '\0')
            abort();
        return;
    }
    if (line.timestamp != text || line.timestamp_len >= CRI_LOG_TIMESTAMP_MAX || line.text < text ||
        line.text + line.text_len != text + size)
        abort();
}

struct read_back {
    char *text;
    size_t len;
};

static int append_line(enum cri_stream stream, const char *text, size_t len, const char *timestamp, void *ctx)
{
    struct read_back *r = ctx;
    if (stream != CRI_STDOUT || strlen(timestamp) != 30)
        abort();
    r->text = xrealloc(r->text, r->len + len + 1);
    memcpy(r->text + r->len, text, len);
    r->text[r->len + len] = '\n';
    r->len += len + 1;
    return 0;
}

static void check_index(const char *text, size_t size)
{
    struct cri_log_index index;
    struct pea_error err = {0};
    if (cri_log_index_parse(text, size, &index, &err) < 0) {
        if (err.msg[0] == '\0')
            abort();
        return;
    }
    char *again = cri_log_index_format(&index);
    if (strlen(again) != size || memcmp(again, text, size) != 0)
        abort();
    free(again);
}

static int no_gap(const struct cri_log_gap *gap, void *ctx)
{
    (void)gap;
    (void)ctx;
    abort();
}

static int any_gap(const struct cri_log_gap *gap, void *ctx)
{
    (void)ctx;
    if (gap->bytes == 0 || gap->lines == 0)
        abort();
    return 0;
}

/* The follower, not following: the same lines as cri_log_read, and (when every file is kept) no gap. */
static void check_follower(int dir, const struct read_back *expect, bool is_checked)
{
    struct read_back r = {NULL, 0};
    struct pea_error err = {0};
    struct cri_log_follower *f = cri_log_follower_new(dir, dir, "c.log", NULL, 0, false, append_line,
                                                      is_checked ? no_gap : any_gap, &r);
    enum cri_log_follow_result result;
    if (cri_log_follower_read(f, &result, &err) < 0 || cri_log_follower_finish(f, &err) < 0)
        abort();
    cri_log_follower_free(f);
    if (is_checked && (r.len != expect->len || (r.len > 0 && memcmp(r.text, expect->text, r.len) != 0)))
        abort();
    free(r.text);
}

static void check_round_trip(const char *text, size_t size)
{
    int dir = log_dir();
    struct pea_error err = {0};
    struct cri_log *log = cri_log_open(dir, dir, "c.log", MAX_BYTES, MAX_FILES, &err);
    if (!log)
        abort();
    const struct timespec now = {.tv_sec = 1795331702, .tv_nsec = 1};
    /* Chunk sizes from the input itself, so that pieces land on every kind of boundary. */
    size_t step = size ? 1 + (unsigned char)text[0] % 97 : 1;
    for (size_t off = 0; off < size; off += step)
        if (cri_log_write(log, CRI_STDOUT, text + off, size - off < step ? size - off : step, &now, &err) < 0)
            abort();
    cri_log_close(log);

    struct read_back r = {NULL, 0};
    if (cri_log_read(dir, "c.log", true, 0, append_line, &r, &err) < 0)
        abort();
    /* Every line comes back with a newline, the unfinished last one too. */
    size_t expect_len = size + (size > 0 && text[size - 1] != '\n');
    if (size <= CHECKED_SIZE && (r.len != expect_len || (size > 0 && memcmp(r.text, text, size) != 0)))
        abort();
    check_follower(dir, &r, size <= CHECKED_SIZE);
    free(r.text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_parse((const char *)data, size);
    check_index((const char *)data, size);
    check_round_trip((const char *)data, size);
    return 0;
}
