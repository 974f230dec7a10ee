/* Signal names as callers write them: "9", "KILL", "SIGKILL", "SIGRTMIN+3". */
#ifndef PEA_SIGNALS_H
#define PEA_SIGNALS_H

/* Returns the signal number, or -1 when the text names no signal. */
int signal_parse(const char *text);
/* "SIGKILL" for 9; NULL when unknown. */
const char *signal_name(int sig);

#endif
