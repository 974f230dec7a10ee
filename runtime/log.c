#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "pea/log.h"
#include "pea/util.h"

static int log_fd = -1;
static dev_t log_dev;
static ino_t log_ino;
static pid_t log_owner; /* the process that opened the log: ours, not a container's setup child */
static enum pea_log_format log_format = PEA_LOG_TEXT;
static bool log_debug_enabled;
static bool is_stderr_used = true;

static const char *level_name(enum pea_log_level level)
{
    switch (level) {
    case PEA_LOG_DEBUG: return "debug";
    case PEA_LOG_INFO: return "info";
    case PEA_LOG_WARN: return "warning";
    case PEA_LOG_ERROR: return "error";
    }
    return "info";
}

int log_open(const char *path, enum pea_log_format format, bool debug)
{
    log_format = format;
    log_debug_enabled = debug;
    log_owner = getpid();
    if (!path || !*path)
        return 0;
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        int saved = errno;
        if (fd >= 0)
            close(fd);
        errno = saved;
        return -1;
    }
    log_close();
    log_fd = fd;
    log_dev = st.st_dev;
    log_ino = st.st_ino;
    return 0;
}

void log_use_stderr(bool use) { is_stderr_used = use; }

void log_close(void)
{
    if (log_fd >= 0)
        close(log_fd);
    log_fd = -1;
}

/* A container's setup child logs too, and closes every fd it does not hand to the container before it execs: the
 * number of the log may by then name another file (a hook's stdin pipe). Only the file opened is written. */
static bool is_log_still_open(void)
{
    struct stat st;
    return fstat(log_fd, &st) == 0 && st.st_dev == log_dev && st.st_ino == log_ino;
}

static void log_write_file(enum pea_log_level level, const char *msg)
{
    if (!is_log_still_open())
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char when[64];
    format_rfc3339_nano(&ts, when, sizeof when);
    if (log_format == PEA_LOG_JSON) {
        AUTO_JSON json_t *line = json_pack("{s:s, s:s, s:s}", "level", level_name(level), "msg", msg, "time", when);
        if (!line)
            return;
        AUTO_FREE char *text = json_dumps(line, JSON_COMPACT);
        if (!text)
            return;
        AUTO_FREE char *with_newline = xasprintf("%s\n", text);
        (void)write_all(log_fd, with_newline, strlen(with_newline));
    } else {
        AUTO_FREE char *text = xasprintf("time=\"%s\" level=%s msg=\"%s\"\n", when, level_name(level), msg);
        (void)write_all(log_fd, text, strlen(text));
    }
}

/* Messages quote ids, signal names and paths as given: a newline or an escape sequence in them must not split the
 * one line a caller parses, nor reach a terminal raw. Control bytes become \n, \t or \xHH. */
static void escape_controls(const char *in, char *out, size_t len)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p && o + 5 < len; p++) {
        if (*p >= 0x20 && *p != 0x7f)
            out[o++] = (char)*p;
        else if (*p == '\n' || *p == '\t')
            o += (size_t)snprintf(out + o, len - o, "\\%c", *p == '\n' ? 'n' : 't');
        else
            o += (size_t)snprintf(out + o, len - o, "\\x%02x", *p);
    }
    out[o] = '\0';
}

void log_msg(enum pea_log_level level, const char *fmt, ...)
{
    if (level == PEA_LOG_DEBUG && !log_debug_enabled)
        return;
    int saved = errno;
    char raw[2048], msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    escape_controls(raw, msg, sizeof msg);
    if (log_fd >= 0)
        log_write_file(level, msg);
    /* People and conmon read stderr; callers that set --log parse the file. Errors go to both. Debug lines go to
     * stderr only without a log file, and only from our own process: a container's setup child has the
     * container's stderr by then. */
    bool is_debug_for_stderr = level == PEA_LOG_DEBUG && log_fd < 0 && getpid() == log_owner;
    if (is_stderr_used && (level >= PEA_LOG_WARN || is_debug_for_stderr)) {
        AUTO_FREE char *line = xasprintf("pea: %s%s\n", level == PEA_LOG_WARN ? "warning: " : "", msg);
        (void)write_all(STDERR_FILENO, line, strlen(line));
    }
    errno = saved;
}
