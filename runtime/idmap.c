#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pea/idmap.h"
#include "pea/sys.h"
#include "pea/util.h"

/* Bigger than any real subuid file, small enough to read whole. */
#define SUBID_FILE_MAX (16u << 20)

/* Decimal digits only, [s, end), fitting in 32 bits. */
static bool parse_u32(const char *s, const char *end, uint32_t *out)
{
    if (s == end)
        return false;
    uint64_t v = 0;
    for (; s < end; s++) {
        if (*s < '0' || *s > '9')
            return false;
        v = v * 10 + (uint64_t)(*s - '0');
        if (v > UINT32_MAX)
            return false;
    }
    *out = (uint32_t)v;
    return true;
}

static bool owner_matches(const char *s, const char *end, const char *name, uid_t uid)
{
    size_t len = (size_t)(end - s);
    if (name && strlen(name) == len && memcmp(s, name, len) == 0)
        return true;
    uint32_t id;
    return parse_u32(s, end, &id) && id == uid;
}

size_t idmap_parse_subid(const char *text, const char *name, uid_t uid, struct pea_id_range **out)
{
    *out = NULL;
    size_t n = 0;
    for (const char *line = text; *line;) {
        const char *eol = strchrnul(line, '\n');
        const char *c1 = memchr(line, ':', (size_t)(eol - line));
        const char *c2 = c1 ? memchr(c1 + 1, ':', (size_t)(eol - c1 - 1)) : NULL;
        uint32_t start, count;
        /* "owner:start:count"; the last id of a range must stay below (uid_t)-1, which means "no id". */
        if (*line != '#' && c2 && !memchr(c2 + 1, ':', (size_t)(eol - c2 - 1)) && owner_matches(line, c1, name, uid) &&
            parse_u32(c1 + 1, c2, &start) && parse_u32(c2 + 1, eol, &count) && count > 0 &&
            (uint64_t)start + count <= UINT32_MAX) {
            *out = xrealloc(*out, (n + 1) * sizeof **out);
            (*out)[n++] = (struct pea_id_range){.start = start, .count = count};
        }
        line = *eol ? eol + 1 : eol;
    }
    return n;
}

size_t idmap_subid_ranges(const char *path, uid_t uid, struct pea_id_range **out)
{
    *out = NULL;
    AUTO_FREE char *text = read_file_at(AT_FDCWD, path, SUBID_FILE_MAX, NULL);
    if (!text)
        return 0;
    char buf[4096];
    struct passwd pw, *found = NULL;
    getpwuid_r(uid, &pw, buf, sizeof buf, &found);
    return idmap_parse_subid(text, found ? found->pw_name : NULL, uid, out);
}

static char *helper_in(const char *dir, size_t len, const char *name)
{
    /* A relative entry would make the helper depend on the directory pea happens to run in (a bundle, say). */
    if (len == 0 || dir[0] != '/')
        return NULL;
    AUTO_FREE char *path = xasprintf("%.*s/%s", (int)len, dir, name);
    struct stat st;
    if (stat(path, &st) < 0 || !S_ISREG(st.st_mode) || access(path, X_OK) < 0)
        return NULL;
    return take_ptr(&path);
}

char *idmap_find_helper(const char *name)
{
    const char *path = getenv("PATH");
    for (const char *dir = path ? path : ""; *dir;) {
        const char *end = strchrnul(dir, ':');
        char *found = helper_in(dir, (size_t)(end - dir), name);
        if (found)
            return found;
        dir = *end ? end + 1 : end;
    }
    return helper_in("/usr/bin", strlen("/usr/bin"), name);
}

/* "newuidmap: uid range [1-2) -> [5-6) not allowed": the first line, without its newline. */
static void first_line(char *text)
{
    text[strcspn(text, "\n")] = '\0';
}

/* Read everything the helper writes (so it never blocks on a full pipe) and keep the start. */
static void read_output(int fd, char *buf, size_t size)
{
    size_t len = 0;
    for (;;) {
        char scratch[512];
        char *into = len + 1 < size ? buf + len : scratch;
        size_t room = len + 1 < size ? size - len - 1 : sizeof scratch;
        ssize_t r = read(fd, into, room);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        if (into == buf + len)
            len += (size_t)r;
    }
    buf[len] = '\0';
}

int idmap_write_with_helper(const char *name, const char *file, pid_t pid, const struct pea_id_mapping *m, size_t n,
                            struct pea_error *err)
{
    AUTO_FREE char *helper = idmap_find_helper(name);
    if (!helper)
        return pea_fail(err, 0, "write %s of %d with %s: not found in PATH or /usr/bin", file, (int)pid, name);
    AUTO_STRV char **argv = xcalloc(3 * n + 3, sizeof *argv);
    argv[0] = xstrdup(name);
    argv[1] = xasprintf("%d", (int)pid);
    for (size_t i = 0; i < n; i++) {
        argv[2 + 3 * i] = xasprintf("%u", m[i].container_id);
        argv[3 + 3 * i] = xasprintf("%u", m[i].host_id);
        argv[4 + 3 * i] = xasprintf("%u", m[i].size);
    }
    AUTO_FD int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null_fd < 0)
        return pea_fail(err, errno, "write %s of %d with %s: open /dev/null", file, (int)pid, name);
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return pea_fail(err, errno, "write %s of %d with %s: pipe", file, (int)pid, name);
    AUTO_FD int read_end = pipefd[0];
    AUTO_FD int write_end = pipefd[1];
    pid_t child = fork();
    if (child < 0)
        return pea_fail(err, errno, "write %s of %d with %s: fork", file, (int)pid, name);
    if (child == 0) {
        /* Its stdout too: callers parse ours. */
        if (dup2(null_fd, STDIN_FILENO) < 0 || dup2(write_end, STDOUT_FILENO) < 0 ||
            dup2(write_end, STDERR_FILENO) < 0)
            _exit(127);
        sys_close_from(3);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        /* A setuid program gets nothing of our environment to trip over. */
        char *empty_env[] = {NULL};
        execve(helper, argv, empty_env);
        dprintf(STDERR_FILENO, "execute %s: %s\n", helper, strerror(errno));
        _exit(127);
    }
    close(take_fd(&write_end));
    char out[1024];
    read_output(read_end, out, sizeof out);
    int status;
    while (waitpid(child, &status, 0) < 0)
        if (errno != EINTR)
            return pea_fail(err, errno, "write %s of %d with %s: wait", file, (int)pid, name);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    first_line(out);
    if (*out)
        return pea_fail(err, 0, "write %s of %d with %s: %s", file, (int)pid, name, out);
    if (WIFEXITED(status))
        return pea_fail(err, 0, "write %s of %d with %s: exit status %d", file, (int)pid, name, WEXITSTATUS(status));
    return pea_fail(err, 0, "write %s of %d with %s: killed by signal %d", file, (int)pid, name, WTERMSIG(status));
}
