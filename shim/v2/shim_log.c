#include "shim_log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pea/util.h"

static bool debug_enabled;

void shim_log_open(bool debug)
{
    debug_enabled = debug;
    /* containerd holds the fifo open for reading and writing; without it (a restart) the lines go nowhere. */
    int fd = open("log", O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (fd >= 0 && fd != STDERR_FILENO) {
        dup2(fd, STDERR_FILENO);
        close(fd);
    }
}

/* logrus's text format, which containerd's own log uses: time="..." level=info msg="...". */
static void write_line(const char *level, const char *fmt, va_list ap)
{
    char msg[1024], line[1400], when[48];
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    format_rfc3339_nano(&now, when, sizeof when);
    vsnprintf(msg, sizeof msg, fmt, ap);
    for (char *p = msg; *p; p++) {
        if (*p == '"' || *p == '\n')
            *p = '\'';
    }
    int n = snprintf(line, sizeof line, "time=\"%s\" level=%s msg=\"%s\" runtime=io.containerd.pea.v2 pid=%d\n", when,
                     level, msg, (int)getpid());
    if (n > 0)
        (void)!write(STDERR_FILENO, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

void shim_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    write_line("warning", fmt, ap);
    va_end(ap);
}

void shim_log_debug(const char *fmt, ...)
{
    if (!debug_enabled)
        return;
    va_list ap;
    va_start(ap, fmt);
    write_line("debug", fmt, ap);
    va_end(ap);
}
