/* Where pea's messages go: stderr for people, and --log FILE as text or JSON lines for callers. */
#ifndef PEA_LOG_H
#define PEA_LOG_H

#include <stdbool.h>

enum pea_log_level { PEA_LOG_DEBUG, PEA_LOG_INFO, PEA_LOG_WARN, PEA_LOG_ERROR };
enum pea_log_format { PEA_LOG_TEXT, PEA_LOG_JSON };

/* path may be NULL (stderr only). Opens for append, O_CLOEXEC. Returns 0 or -1 with errno. */
int log_open(const char *path, enum pea_log_format format, bool debug);
void log_close(void);
/* Whether messages reach stderr as well (the default). A process whose stderr is another's log in another format
 * (containerd-shim-pea-v2's) turns it off: then they go to the log file only. */
void log_use_stderr(bool use);
/* Errors always reach stderr as "pea: <msg>"; every level also goes to the --log file when set. Debug lines only
 * with --debug. */
void log_msg(enum pea_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_debug(...) log_msg(PEA_LOG_DEBUG, __VA_ARGS__)
#define log_warn(...) log_msg(PEA_LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(PEA_LOG_ERROR, __VA_ARGS__)

#endif
