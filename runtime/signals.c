#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pea/signals.h"
#include "pea/util.h"

static const struct {
    const char *name;
    int number;
} signal_table[] = {
    {"HUP", SIGHUP},     {"INT", SIGINT},       {"QUIT", SIGQUIT},   {"ILL", SIGILL},   {"TRAP", SIGTRAP},
    {"ABRT", SIGABRT},   {"IOT", SIGIOT},       {"BUS", SIGBUS},     {"FPE", SIGFPE},   {"KILL", SIGKILL},
    {"USR1", SIGUSR1},   {"SEGV", SIGSEGV},     {"USR2", SIGUSR2},   {"PIPE", SIGPIPE}, {"ALRM", SIGALRM},
    {"TERM", SIGTERM},   {"STKFLT", SIGSTKFLT}, {"CHLD", SIGCHLD},   {"CONT", SIGCONT}, {"STOP", SIGSTOP},
    {"TSTP", SIGTSTP},   {"TTIN", SIGTTIN},     {"TTOU", SIGTTOU},   {"URG", SIGURG},   {"XCPU", SIGXCPU},
    {"XFSZ", SIGXFSZ},   {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF},   {"WINCH", SIGWINCH}, {"IO", SIGIO},
    {"POLL", SIGPOLL},   {"PWR", SIGPWR},       {"SYS", SIGSYS},
};

static int parse_rt_signal(const char *s)
{
    /* RTMIN, RTMIN+N, RTMAX, RTMAX-N */
    int base, sign;
    if (strncasecmp(s, "RTMIN", 5) == 0) {
        base = SIGRTMIN;
        sign = 1;
    } else if (strncasecmp(s, "RTMAX", 5) == 0) {
        base = SIGRTMAX;
        sign = -1;
    } else {
        return -1;
    }
    s += 5;
    if (*s == '\0')
        return base;
    if ((sign > 0 && *s != '+') || (sign < 0 && *s != '-'))
        return -1;
    long long off;
    if (parse_int64(s + 1, &off) < 0 || off < 0 || off > SIGRTMAX - SIGRTMIN)
        return -1;
    return base + sign * (int)off;
}

int signal_parse(const char *text)
{
    if (!text || !*text)
        return -1;
    long long n;
    /* Digits only: strtoll would also take " 9" or "+9". */
    if (text[0] >= '0' && text[0] <= '9' && parse_int64(text, &n) == 0)
        return (n > 0 && n <= SIGRTMAX) ? (int)n : -1;
    const char *s = text;
    if (strncasecmp(s, "SIG", 3) == 0)
        s += 3;
    for (size_t i = 0; i < ARRAY_SIZE(signal_table); i++)
        if (strcasecmp(s, signal_table[i].name) == 0)
            return signal_table[i].number;
    return parse_rt_signal(s);
}

const char *signal_name(int sig)
{
    static char rt[16];
    for (size_t i = 0; i < ARRAY_SIZE(signal_table); i++)
        if (signal_table[i].number == sig && strcmp(signal_table[i].name, "IOT") != 0 &&
            strcmp(signal_table[i].name, "POLL") != 0) {
            static char buf[16];
            snprintf(buf, sizeof buf, "SIG%s", signal_table[i].name);
            return buf;
        }
    if (sig >= SIGRTMIN && sig <= SIGRTMAX) {
        snprintf(rt, sizeof rt, "SIGRTMIN+%d", sig - SIGRTMIN);
        return rt;
    }
    return NULL;
}
