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
