#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cri_log.h"
#include "cri_log_index.h"
#include "cri_log_reader.h"
#include "pea/util.h"

#define TS "2026-11-22T07:15:02.123456789Z"
static const struct timespec now = {.tv_sec = 1795331702, .tv_nsec = 123456789};

static int dir_fd = -1;
static char dir[] = "/tmp/pea-cri-log-XXXXXX";

static void make_dir(void)
{
    cr_assert_not_null(mkdtemp(dir));
    dir_fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    cr_assert_geq(dir_fd, 0);
    umask(022);
}

/* Each test's directory goes with it, passed or failed. */
static void remove_dir(void)
{
    struct pea_error err = {0};
    if (remove_tree(dir, &err) < 0)
        cr_log_error("%s", err.msg);
}

TestSuite(cri_log, .init = make_dir, .fini = remove_dir);

static char *file_text(const char *name)
{
    size_t len;
    char *text = read_file_at(dir_fd, name, 1 << 20, &len);
    cr_assert_not_null(text, "read %s: %s", name, strerror(errno));
    return text;
}

static bool file_exists(const char *name) { return faccessat(dir_fd, name, F_OK, 0) == 0; }

static struct cri_log *open_log(uint64_t max_bytes, unsigned max_files)
{
    struct pea_error err = {0};
    struct cri_log *log = cri_log_open(dir_fd, dir_fd, "c.log", max_bytes, max_files, &err);
    cr_assert_not_null(log, "%s", err.msg);
    return log;
}

static void write_chunk(struct cri_log *log, enum cri_stream stream, const char *text)
{
    struct pea_error err = {0};
    cr_assert_eq(cri_log_write(log, stream, text, strlen(text), &now, &err), 0, "%s", err.msg);
}

/* Writes each chunk to stdout of a fresh c.log and returns the file. */
static char *written(const char *const *chunks, size_t n)
{
    struct cri_log *log = open_log(0, 0);
    for (size_t i = 0; i < n; i++)
        write_chunk(log, CRI_STDOUT, chunks[i]);
    cri_log_close(log);
    return file_text("c.log");
}

/* len times c, then a newline. */
static char *long_line(char c, size_t len)
{
    char *line = xmalloc(len + 2);
    memset(line, c, len);
    strcpy(line + len, "\n");
    return line;
}

Test(cri_log, complete_lines_become_f_records)
{
    const char *chunks[] = {"hello\nworld\n"};
    cr_assert_str_eq(written(chunks, 1), TS " stdout F hello\n" TS " stdout F world\n");
}

Test(cri_log, unfinished_line_is_written_at_once_as_p)
{
    const char *chunks[] = {"abc", "def\nnext"};
    cr_assert_str_eq(written(chunks, 2), TS " stdout P abc\n" TS " stdout F def\n" TS " stdout P next\n");
}

Test(cri_log, newline_alone_ends_the_line_with_an_empty_f)
{
    const char *chunks[] = {"abc", "\n", ""};
    cr_assert_str_eq(written(chunks, 3), TS " stdout P abc\n" TS " stdout F \n");
}

Test(cri_log, stderr_is_tagged)
{
    struct cri_log *log = open_log(0, 0);
    write_chunk(log, CRI_STDERR, "oops\n");
    cri_log_close(log);
    cr_assert_str_eq(file_text("c.log"), TS " stderr F oops\n");
}

Test(cri_log, file_is_created_0640)
{
    cri_log_close(open_log(0, 0));
    struct stat st;
    cr_assert_eq(fstatat(dir_fd, "c.log", &st, 0), 0);
    cr_assert_eq(st.st_mode & 07777, 0640);
}

Test(cri_log, long_line_is_split_into_p_pieces_and_a_last_f)
{
    const char *line = long_line('a', 2 * CRI_LOG_MAX_PIECE + 10);
    const char *chunks[] = {line};
    char *text = written(chunks, 1);
    char *expect = xasprintf(TS " stdout P %.*s\n" TS " stdout P %.*s\n" TS " stdout F %.*s\n",
                             CRI_LOG_MAX_PIECE, line, CRI_LOG_MAX_PIECE, line, 10, line);
    cr_assert_str_eq(text, expect);
}

Test(cri_log, line_of_exactly_the_piece_size_stays_one_record)
{
    const char *line = long_line('b', CRI_LOG_MAX_PIECE);
    const char *chunks[] = {line};
    char *expect = xasprintf(TS " stdout F %.*s\n", CRI_LOG_MAX_PIECE, line);
    cr_assert_str_eq(written(chunks, 1), expect);
}

/* Each record "TS stdout F lN\n" is 43 bytes: two fit in 100. */
#define RECORD(n) TS " stdout F l" #n "\n"

Test(cri_log, rotation_keeps_max_files_and_the_newest_in_name)
{
    struct cri_log *log = open_log(100, 2);
    const char *lines[] = {"l1\n", "l2\n", "l3\n", "l4\n", "l5\n", "l6\n", "l7\n"};
    for (size_t i = 0; i < ARRAY_SIZE(lines); i++)
        write_chunk(log, CRI_STDOUT, lines[i]);
    cri_log_close(log);
    cr_assert_str_eq(file_text("c.log"), RECORD(7));
    cr_assert_str_eq(file_text("c.log.1"), RECORD(5) RECORD(6));
    cr_assert_str_eq(file_text("c.log.2"), RECORD(3) RECORD(4));
    cr_assert_not(file_exists("c.log.3"));
}

Test(cri_log, rotation_falls_between_records_of_one_chunk)
{
    struct cri_log *log = open_log(100, 5);
    write_chunk(log, CRI_STDOUT, "l1\nl2\nl3\nl4\nl5\n");
    cri_log_close(log);
    cr_assert_str_eq(file_text("c.log"), RECORD(5));
    cr_assert_str_eq(file_text("c.log.1"), RECORD(3) RECORD(4));
    cr_assert_str_eq(file_text("c.log.2"), RECORD(1) RECORD(2));
}

Test(cri_log, chunk_of_many_short_lines_is_written_whole_and_in_order)
{
    /* 20000 lines of 5 bytes: records of about 45 bytes each, many times the buffer, so several writes. */
    enum { LINES = 20000 };
    char *chunk = xmalloc(LINES * 6 + 1);
    for (int i = 0; i < LINES; i++)
        snprintf(chunk + i * 6, 7, "%05d\n", i);
    const char *chunks[] = {chunk};
    char *text = written(chunks, 1);
    int n = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"), n++) {
        char want[64];
        snprintf(want, sizeof want, TS " stdout F %05d", n);
        cr_assert_str_eq(line, want);
    }
    cr_assert_eq(n, LINES);
    free(text);
    free(chunk);
}

Test(cri_log, reopened_file_counts_what_it_holds)
{
    struct cri_log *log = open_log(100, 1);
    write_chunk(log, CRI_STDOUT, "l1\nl2\n");
    cri_log_close(log);
    log = open_log(100, 1);
    write_chunk(log, CRI_STDOUT, "l3\n");
    cri_log_close(log);
    cr_assert_str_eq(file_text("c.log.1"), RECORD(1) RECORD(2));
    cr_assert_str_eq(file_text("c.log"), RECORD(3));
}

Test(cri_log, zero_max_files_starts_over)
{
    struct cri_log *log = open_log(100, 0);
    write_chunk(log, CRI_STDOUT, "l1\nl2\nl3\n");
    cri_log_close(log);
    cr_assert_str_eq(file_text("c.log"), RECORD(3));
    cr_assert_not(file_exists("c.log.1"));
}

Test(cri_log, failed_write_leaves_no_torn_record)
{
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit small = {.rlim_cur = 100, .rlim_max = RLIM_INFINITY};
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &small), 0);
    struct cri_log *log = open_log(0, 0);
    write_chunk(log, CRI_STDOUT, "l1\n");
    struct pea_error err = {0};
    cr_assert_eq(cri_log_write(log, CRI_STDOUT, "l2\nl3\n", 6, &now, &err), -1);
    cr_assert_str_eq(err.msg, "write log c.log: File too large");
    struct rlimit unlimited = {.rlim_cur = RLIM_INFINITY, .rlim_max = RLIM_INFINITY};
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &unlimited), 0);
    write_chunk(log, CRI_STDOUT, "l4\n");
    cri_log_close(log);
    cr_assert_str_eq(file_text("c.log"), RECORD(1) RECORD(4));
}

Test(cri_log, zero_max_bytes_never_rotates)
{
    struct cri_log *log = open_log(0, 3);
    for (int i = 0; i < 100; i++)
        write_chunk(log, CRI_STDOUT, "0123456789\n");
    cri_log_close(log);
    cr_assert_not(file_exists("c.log.1"));
}

/* ---- parsing ---- */

static void parse_fails(const char *line, const char *message)
{
    struct cri_log_line out;
    struct pea_error err = {0};
    cr_assert_eq(cri_log_parse_line(line, strlen(line), &out, &err), -1, "%s parsed", line);
    cr_assert_str_eq(err.msg, message, "for %s", line);
}

Test(cri_log, parse_gives_every_field)
{
    const char *line = TS " stderr P some text ";
    struct cri_log_line out;
    struct pea_error err = {0};
    cr_assert_eq(cri_log_parse_line(line, strlen(line), &out, &err), 0, "%s", err.msg);
    cr_assert_eq(out.timestamp_len, strlen(TS));
    cr_assert_eq(strncmp(out.timestamp, TS, out.timestamp_len), 0);
    cr_assert_eq(out.stream, CRI_STDERR);
    cr_assert(out.is_partial);
    cr_assert_eq(out.text_len, strlen("some text "));
    cr_assert_eq(strncmp(out.text, "some text ", out.text_len), 0);
}

Test(cri_log, parse_accepts_short_fractions_and_offsets)
{
    const char *lines[] = {"2026-11-22T07:15:02Z stdout F x", "2026-11-22T07:15:02.1Z stdout F x",
                           "2026-11-22T07:15:02.5+01:00 stdout F x", "2026-11-22T07:15:02-05:30 stdout F "};
    for (size_t i = 0; i < ARRAY_SIZE(lines); i++) {
        struct cri_log_line out;
        struct pea_error err = {0};
        cr_assert_eq(cri_log_parse_line(lines[i], strlen(lines[i]), &out, &err), 0, "%s: %s", lines[i], err.msg);
    }
}

Test(cri_log, parse_rejects_malformed_records)
{
    parse_fails("", "malformed log record: no space after the timestamp");
    parse_fails(TS, "malformed log record: no space after the timestamp");
    parse_fails("2026-13-22T07:15:02Z stdout F x", "malformed log record: timestamp is not RFC 3339");
    parse_fails("2026-11-22 07:15:02Z stdout F x", "malformed log record: timestamp is not RFC 3339");
    parse_fails("2026-11-22T07:15:02.Z stdout F x", "malformed log record: timestamp is not RFC 3339");
    parse_fails("2026-11-22T07:15:02.1234567890Z stdout F x", "malformed log record: timestamp is not RFC 3339");
    parse_fails("2026-11-22T07:15:02+0100 stdout F x", "malformed log record: timestamp is not RFC 3339");
    parse_fails(TS " stdout", "malformed log record: no space after the stream");
    parse_fails(TS " stdin F x", "malformed log record: stream is neither stdout nor stderr");
    parse_fails(TS " stdout F", "malformed log record: no space after the tag");
    parse_fails(TS " stdout X x", "malformed log record: tag is neither F nor P");
    parse_fails(TS " stdout FP x", "malformed log record: tag is neither F nor P");
    parse_fails(TS " stdout F a\nb", "malformed log record: text holds a newline");
}

/* ---- reading ---- */

struct collected {
    char *text;
    int fail_after; /* emits that succeed before one fails with EPIPE; -1 never */
};

static int collect(enum cri_stream stream, const char *text, size_t len, const char *timestamp, void *ctx)
{
    struct collected *c = ctx;
    if (c->fail_after == 0) {
        errno = EPIPE;
        return -1;
    }
    c->fail_after--;
    cr_assert_eq(strlen(text), len);
    char *old = c->text;
    c->text = xasprintf("%s%s %s %s\n", old ? old : "", stream == CRI_STDOUT ? "out" : "err", timestamp, text);
    free(old);
    return 0;
}

static char *read_back(bool include_rotated, size_t tail)
{
    struct collected c = {.text = NULL, .fail_after = -1};
    struct pea_error err = {0};
    cr_assert_eq(cri_log_read(dir_fd, "c.log", include_rotated, tail, collect, &c, &err), 0, "%s", err.msg);
    return c.text ? c.text : xstrdup("");
}

Test(cri_log, reader_joins_pieces_per_stream_with_the_first_timestamp)
{
    struct cri_log *log = open_log(0, 0);
    struct pea_error err = {0};
    const struct timespec later = {.tv_sec = now.tv_sec + 1, .tv_nsec = 5};
    cr_assert_eq(cri_log_write(log, CRI_STDOUT, "hel", 3, &now, &err), 0);
    cr_assert_eq(cri_log_write(log, CRI_STDERR, "err1\n", 5, &later, &err), 0);
    cr_assert_eq(cri_log_write(log, CRI_STDOUT, "lo\nbye\n", 7, &later, &err), 0);
    cri_log_close(log);
    cr_assert_str_eq(read_back(false, 0), "err 2026-11-22T07:15:03.000000005Z err1\n"
                                          "out " TS " hello\n"
                                          "out 2026-11-22T07:15:03.000000005Z bye\n");
}

Test(cri_log, reader_rebuilds_a_long_line)
{
    size_t len = 3 * CRI_LOG_MAX_PIECE + 1;
    char *line = long_line('z', len);
    const char *chunks[] = {line};
    free(written(chunks, 1));
    line[len] = '\0';
    cr_assert_str_eq(read_back(false, 0), xasprintf("out " TS " %s\n", line));
}

Test(cri_log, reader_emits_unfinished_lines_in_the_order_they_began)
{
    struct cri_log *log = open_log(0, 0);
    write_chunk(log, CRI_STDERR, "first");
    write_chunk(log, CRI_STDOUT, "second");
    write_chunk(log, CRI_STDOUT, " still");
    cri_log_close(log);
    cr_assert_str_eq(read_back(false, 0), "err " TS " first\nout " TS " second still\n");
}

static void write_seven_lines_rotated(void)
{
    struct cri_log *log = open_log(100, 2);
    write_chunk(log, CRI_STDOUT, "l1\nl2\nl3\nl4\nl5\nl6\nl");
    write_chunk(log, CRI_STDOUT, "7\n");
    cri_log_close(log);
}

Test(cri_log, reader_goes_through_rotated_files_oldest_first)
{
    write_seven_lines_rotated();
    cr_assert_str_eq(read_back(true, 0), "out " TS " l3\nout " TS " l4\nout " TS " l5\nout " TS " l6\nout " TS
                                         " l7\n");
    cr_assert_str_eq(read_back(false, 0), "out " TS " l7\n");
}

Test(cri_log, reader_joins_a_line_across_a_rotation)
{
    struct cri_log *log = open_log(100, 1);
    write_chunk(log, CRI_STDOUT, "l1\nl");
    write_chunk(log, CRI_STDOUT, "2\n");
    cri_log_close(log);
    cr_assert_str_eq(file_text("c.log.1"), RECORD(1) TS " stdout P l\n");
    cr_assert_str_eq(read_back(true, 0), "out " TS " l1\nout " TS " l2\n");
}

Test(cri_log, reader_tails_across_rotated_files)
{
    write_seven_lines_rotated();
    cr_assert_str_eq(read_back(true, 3), "out " TS " l5\nout " TS " l6\nout " TS " l7\n");
    cr_assert_str_eq(read_back(true, 1), "out " TS " l7\n");
    cr_assert_str_eq(read_back(true, 50), read_back(true, 0));
}

Test(cri_log, reader_names_file_and_line_of_a_malformed_record)
{
    const char text[] = TS " stdout F ok\n" TS " stdout Q bad\n";
    cr_assert_eq(write_file_atomic_at(dir_fd, "c.log.1", text, sizeof text - 1, 0640), 0);
    cr_assert_eq(write_file_atomic_at(dir_fd, "c.log", "", 0, 0640), 0);
    struct collected c = {.text = NULL, .fail_after = -1};
    struct pea_error err = {0};
    cr_assert_eq(cri_log_read(dir_fd, "c.log", true, 0, collect, &c, &err), -1);
    cr_assert_str_eq(err.msg, "read log c.log.1 line 2: malformed log record: tag is neither F nor P");
}

Test(cri_log, reader_stops_when_the_consumer_fails)
{
    write_seven_lines_rotated();
    struct collected c = {.text = NULL, .fail_after = 2};
    struct pea_error err = {0};
    cr_assert_eq(cri_log_read(dir_fd, "c.log", true, 0, collect, &c, &err), -1);
    cr_assert_str_eq(err.msg, "deliver log line: Broken pipe");
    cr_assert_str_eq(c.text, "out " TS " l3\nout " TS " l4\n");
}

Test(cri_log, reader_fails_on_a_missing_log)
{
    struct collected c = {.text = NULL, .fail_after = -1};
    struct pea_error err = {0};
    cr_assert_eq(cri_log_read(dir_fd, "none.log", true, 0, collect, &c, &err), -1);
    cr_assert_str_eq(err.msg, "open log none.log: No such file or directory");
}

/* ---- the index ---- */

static struct cri_log_index index_now(void)
{
    struct cri_log_index index;
    struct pea_error err = {0};
    cr_assert_eq(cri_log_index_load(dir_fd, "c.log", &index, &err), 0, "%s", err.msg);
    return index;
}

static uint64_t inode_of(const char *name)
{
    struct stat st;
    cr_assert_eq(fstatat(dir_fd, name, &st, 0), 0, "stat %s", name);
    return (uint64_t)st.st_ino;
}

static void assert_file_starts(const struct cri_log_index_file *f, uint64_t seq, const char *name, uint64_t out_bytes,
                               uint64_t out_lines, bool is_out_mid_line)
{
    cr_assert_eq(f->seq, seq);
    cr_assert_eq(f->inode, inode_of(name), "%s", name);
    cr_assert_eq(f->start.bytes[CRI_STDOUT], out_bytes, "%s: %llu bytes", name,
                 (unsigned long long)f->start.bytes[CRI_STDOUT]);
    cr_assert_eq(f->start.lines[CRI_STDOUT], out_lines, "%s", name);
    cr_assert_eq(f->start.is_mid_line[CRI_STDOUT], is_out_mid_line, "%s", name);
}

Test(cri_log, index_lists_the_files_there_are_and_where_each_begins)
{
    struct cri_log *log = open_log(100, 2);
    struct cri_log_index first = index_now();
    cr_assert_eq(first.n_files, 1);
    assert_file_starts(&first.files[0], 0, "c.log", 0, 0, false);
    write_chunk(log, CRI_STDERR, "e1\n");
    /* Records of 43 bytes, 42 for one of 1 byte, 44 for 3: two a file. The file after "x" begins mid-line. */
    write_chunk(log, CRI_STDOUT, "l1\nl2\nl3\nl4\nx");
    write_chunk(log, CRI_STDOUT, "yz\n");
    cri_log_close(log);
    cr_assert_str_eq(file_text("c.log"), TS " stdout F yz\n");
    struct cri_log_index index = index_now();
    cr_assert_eq(index.instance, first.instance);
    cr_assert_eq(index.n_files, 3);
    assert_file_starts(&index.files[0], 1, "c.log.2", 3, 1, false);
    assert_file_starts(&index.files[1], 2, "c.log.1", 9, 3, false);
    assert_file_starts(&index.files[2], 3, "c.log", 13, 4, true);
    cr_assert_eq(index.files[2].start.bytes[CRI_STDERR], 3);
    cr_assert_eq(index.files[2].start.lines[CRI_STDERR], 1);
    cr_assert_not(file_exists("c.log" CRI_LOG_NEW_SUFFIX));
}

Test(cri_log, reopened_log_goes_on_in_its_instance)
{
    struct cri_log *log = open_log(100, 2);
    write_chunk(log, CRI_STDOUT, "l1\nl2\nl3\n");
    cri_log_close(log);
    uint64_t instance = index_now().instance;
    log = open_log(100, 2);
    write_chunk(log, CRI_STDOUT, "l4\nl5\n");
    cri_log_close(log);
    struct cri_log_index index = index_now();
    cr_assert_eq(index.instance, instance);
    cr_assert_eq(index.n_files, 3);
    assert_file_starts(&index.files[2], 2, "c.log", 12, 4, false);
}

Test(cri_log, log_without_its_index_becomes_a_new_instance_counted_from_its_records)
{
    const char rotated[] = RECORD(1) RECORD(2) TS " stdout P l\n";
    cr_assert_eq(write_file_atomic_at(dir_fd, "c.log.1", rotated, sizeof rotated - 1, 0640), 0);
    const char current[] = TS " stdout F 3\n";
    cr_assert_eq(write_file_atomic_at(dir_fd, "c.log", current, sizeof current - 1, 0640), 0);
    cri_log_close(open_log(100, 2));
    struct cri_log_index index = index_now();
    cr_assert_eq(index.n_files, 2);
    assert_file_starts(&index.files[0], 0, "c.log.1", 0, 0, false);
    assert_file_starts(&index.files[1], 1, "c.log", 7, 2, true);
}

static void index_fails(const char *text, const char *message)
{
    struct cri_log_index index;
    struct pea_error err = {0};
    cr_assert_eq(cri_log_index_parse(text, strlen(text), &index, &err), -1, "%s parsed", text);
    cr_assert_str_eq(err.msg, message, "for %s", text);
}

#define INDEX_HEAD "pea-cri-log-index 1 00000000000000ff\n"

Test(cri_log, index_parse_gives_every_field)
{
    const char text[] = INDEX_HEAD "4 17 10 2 1 5 1 0\n6 18 20 3 0 5 1 1\n";
    struct cri_log_index index;
    struct pea_error err = {0};
    cr_assert_eq(cri_log_index_parse(text, sizeof text - 1, &index, &err), 0, "%s", err.msg);
    cr_assert_eq(index.instance, 255);
    cr_assert_eq(index.n_files, 2);
    cr_assert_eq(index.files[1].seq, 6);
    cr_assert_eq(index.files[1].inode, 18);
    cr_assert_eq(index.files[1].start.bytes[CRI_STDOUT], 20);
    cr_assert(index.files[1].start.is_mid_line[CRI_STDERR]);
    char *again = cri_log_index_format(&index);
    cr_assert_str_eq(again, text);
    free(again);
}

Test(cri_log, index_parse_rejects_malformed_indexes)
{
    index_fails("", "malformed log index: no pea-cri-log-index 1 header");
    index_fails("pea-cri-log-index 1 ff\n", "malformed log index: instance is not 16 hex digits and a newline");
    index_fails(INDEX_HEAD "1 2 3 4 5 6 7 0\n", "malformed log index: a file's line is not 6 numbers and 2 flags");
    index_fails(INDEX_HEAD "1 2 3 4 0 6 7 0", "malformed log index: a file's line is not 6 numbers and 2 flags");
    index_fails(INDEX_HEAD "01 2 3 4 0 6 7 0\n", "malformed log index: a file's line is not 6 numbers and 2 flags");
    index_fails(INDEX_HEAD "18446744073709551616 2 3 4 0 6 7 0\n",
                "malformed log index: a file's line is not 6 numbers and 2 flags");
    index_fails(INDEX_HEAD "1 2 30 4 0 6 7 0\n2 3 29 4 0 6 7 0\n",
                "malformed log index: a file begins before the one before it");
    index_fails(INDEX_HEAD "2 2 3 4 0 6 7 0\n2 3 3 4 0 6 7 0\n", "malformed log index: files are not in order");
}

/* ---- the follower ---- */

static int collect_gap(const struct cri_log_gap *gap, void *ctx)
{
    struct collected *c = ctx;
    char *old = c->text;
    c->text = xasprintf("%sgap %llu lines %llu bytes%s\n", old ? old : "", (unsigned long long)gap->lines,
                        (unsigned long long)gap->bytes, gap->is_unknown ? " unknown" : "");
    free(old);
    return 0;
}

struct following {
    struct cri_log_follower *follower;
    struct collected c;
};

static struct following *follow_log(size_t tail, bool is_following)
{
    struct following *f = xcalloc(1, sizeof *f);
    f->c.fail_after = -1;
    f->follower = cri_log_follower_new(dir_fd, dir_fd, "c.log", "c.previous.log", tail, is_following, collect,
                                       collect_gap, &f->c);
    return f;
}

/* What the follower emitted since the last call, without timestamps. */
static char *follow_read(struct following *f, enum cri_log_follow_result expect)
{
    enum cri_log_follow_result result;
    struct pea_error err = {0};
    cr_assert_eq(cri_log_follower_read(f->follower, &result, &err), 0, "%s", err.msg);
    cr_assert_eq(result, expect);
    char *text = f->c.text ? f->c.text : xstrdup("");
    f->c.text = NULL;
    /* "out TS text" to "out text" */
    for (char *ts; (ts = strstr(text, " " TS));)
        memmove(ts, ts + strlen(" " TS), strlen(ts + strlen(" " TS)) + 1);
    return text;
}

Test(cri_log, follower_reads_on_through_rotation_in_order)
{
    struct cri_log *log = open_log(100, 1);
    struct following *f = follow_log(0, true);
    cr_assert_str_eq(follow_read(f, CRI_LOG_CAUGHT_UP), "");
    write_chunk(log, CRI_STDOUT, "l1\nl");
    cr_assert_str_eq(follow_read(f, CRI_LOG_CAUGHT_UP), "out l1\n");
    /* Two rotations: the file it reads is dropped, the one after it is still there. */
    write_chunk(log, CRI_STDOUT, "2\nl3\nl4\nl5\n");
    cr_assert_not(file_exists("c.log.2"));
    cr_assert_str_eq(follow_read(f, CRI_LOG_CAUGHT_UP), "out l2\nout l3\nout l4\nout l5\n");
    cri_log_follower_free(f->follower);
    cri_log_close(log);
}

Test(cri_log, follower_announces_once_what_was_rotated_away_and_never_tears_a_line)
{
    struct cri_log *log = open_log(100, 1);
    struct following *f = follow_log(0, true);
    write_chunk(log, CRI_STDOUT, "l1\npa");
    cr_assert_str_eq(follow_read(f, CRI_LOG_CAUGHT_UP), "out l1\n");
    /* The rest of "pa..." and l3-l7 and a piece of l8 go with files the follower never opens; err e2 too. */
    write_chunk(log, CRI_STDOUT, "rt\nl3\nl4\nl5\nl6\nl7\nl");
    write_chunk(log, CRI_STDERR, "e2\n");
    write_chunk(log, CRI_STDOUT, "8\nl9\n");
    write_chunk(log, CRI_STDERR, "e3\n");
    cr_assert_str_eq(file_text("c.log.1"), TS " stdout F 8\n" RECORD(9));
    /* l8 and pa-rt are lost in part, l3-l7 and e2 whole: 8 lines. rt\n l3..l7\n l e2\n: 3+15+1+3 bytes. */
    cr_assert_str_eq(follow_read(f, CRI_LOG_CAUGHT_UP), "gap 8 lines 22 bytes\nout l9\nerr e3\n");
    cri_log_follower_free(f->follower);
    cri_log_close(log);
}

Test(cri_log, follower_reads_a_removed_file_it_holds_to_its_end)
{
    struct cri_log *log = open_log(100, 0);
    struct following *f = follow_log(0, true);
    write_chunk(log, CRI_STDOUT, "l1\n");
    cr_assert_str_eq(follow_read(f, CRI_LOG_CAUGHT_UP), "out l1\n");
    write_chunk(log, CRI_STDOUT, "l2\nl3\n");
    cr_assert_str_eq(follow_read(f, CRI_LOG_CAUGHT_UP), "out l2\nout l3\n");
    cri_log_follower_free(f->follower);
    cri_log_close(log);
}

Test(cri_log, follower_shows_the_last_lines_first_then_follows)
{
    write_seven_lines_rotated();
    struct cri_log *log = open_log(100, 2);
    struct following *f = follow_log(2, true);
    cr_assert_str_eq(follow_read(f, CRI_LOG_CAUGHT_UP), "out l6\nout l7\n");
    write_chunk(log, CRI_STDOUT, "l8\n");
    cr_assert_str_eq(follow_read(f, CRI_LOG_CAUGHT_UP), "out l8\n");
    cri_log_follower_free(f->follower);
    cri_log_close(log);
}

Test(cri_log, follower_without_following_gives_the_files_as_they_are)
{
    struct cri_log *log = open_log(100, 2);
    write_chunk(log, CRI_STDERR, "first");
    write_chunk(log, CRI_STDOUT, "l1\nl2\nl3\nsecond");
    cri_log_close(log);
    struct following *f = follow_log(0, false);
    cr_assert_str_eq(follow_read(f, CRI_LOG_CAUGHT_UP), "out l1\nout l2\nout l3\n");
    struct pea_error err = {0};
    cr_assert_eq(cri_log_follower_finish(f->follower, &err), 0);
    cr_assert_str_eq(follow_read(f, CRI_LOG_CAUGHT_UP), "err first\nout second\n");
    cri_log_follower_free(f->follower);
}

Test(cri_log, follower_ends_with_its_instance)
{
    struct cri_log *log = open_log(100, 1);
    struct following *f = follow_log(0, true);
    write_chunk(log, CRI_STDOUT, "l1\n");
    cr_assert_str_eq(follow_read(f, CRI_LOG_CAUGHT_UP), "out l1\n");
    write_chunk(log, CRI_STDOUT, "l2\n");
    cri_log_close(log);
    /* A new instance: the files and then their index move to the previous names, a new c.log begins. */
    cr_assert_eq(renameat(dir_fd, "c.log", dir_fd, "c.previous.log"), 0);
    cr_assert_str_eq(follow_read(f, CRI_LOG_CAUGHT_UP), "out l2\n");
    cr_assert_eq(renameat(dir_fd, "c.log.index", dir_fd, "c.previous.log.index"), 0);
    log = open_log(100, 1);
    write_chunk(log, CRI_STDOUT, "new\n");
    cr_assert_str_eq(follow_read(f, CRI_LOG_ENDED), "");
    cri_log_follower_free(f->follower);
    cri_log_close(log);
}

Test(cri_log, follower_refuses_files_without_an_index)
{
    const char text[] = RECORD(1);
    cr_assert_eq(write_file_atomic_at(dir_fd, "c.log", text, sizeof text - 1, 0640), 0);
    struct following *f = follow_log(0, true);
    enum cri_log_follow_result result;
    struct pea_error err = {0};
    cr_assert_eq(cri_log_follower_read(f->follower, &result, &err), -1);
    cr_assert_str_eq(err.msg, "log c.log has no index (it was written by an older pea-shim)");
    cri_log_follower_free(f->follower);
}
