/* Compiled seccomp programs kept on disk, so that a profile is compiled once per machine rather than once per
 * process: libseccomp takes milliseconds for a profile like containerd's default, which every `pea create` of a
 * CRI container and every pod's pea-shim would otherwise pay again.
 *
 * One file per program, named by the key's digest: a header, the whole key (confirmed byte for byte on load) and
 * the program. The directory is pea's own (never under a caller's --root: seccomp_cache_use_default_dir) and must be
 * ours alone (created 0700); anything that does not match exactly is a miss, and the kernel checks every program it
 * is given in any case. Bounded: at most SECCOMP_STORE_MAX_ENTRIES files of at most SECCOMP_STORE_ENTRY_MAX bytes. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "pea/util.h"
#include "seccomp_internal.h"

static const char store_magic[8] = {'P', 'E', 'A', 'B', 'P', 'F', 0, 1};

struct store_header {
    char magic[8];
    uint32_t flags;
    uint32_t instructions;
    uint64_t key_len;
};

/* The sock_fprog length is 16 bits: past it a file is not one of ours. */
#define INSTRUCTIONS_MAX 0xffffu

uint64_t seccomp_key_digest(const unsigned char *key, size_t len)
{
    uint64_t h = 14695981039346656037ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= key[i];
        h *= 1099511628211ULL;
    }
    return h;
}

const unsigned char *seccomp_store_environment(size_t *len)
{
    static char env[sizeof(struct utsname) + 128];
    static size_t env_len;
    if (env_len == 0) {
        struct utsname u;
        if (uname(&u) < 0)
            memset(&u, 0, sizeof u);
        /* NUL-separated: no two environments read alike. */
        int n = snprintf(env, sizeof env, "pea-seccomp-store 1.%d%c%s%c%s%c%s%c%s%c%s%c",
                         SECCOMP_COMPILE_REVISION, 0, PEA_VERSION, 0,
                         seccomp_library_version(), 0, u.release, 0, u.version, 0, u.machine, 0);
        env_len = n < 0 ? 0 : (size_t)n < sizeof env ? (size_t)n : sizeof env - 1;
    }
    *len = env_len;
    return (const unsigned char *)env;
}

static void entry_name(const unsigned char *key, size_t key_len, char name[32])
{
    snprintf(name, 32, "%016llx.bpf", (unsigned long long)seccomp_key_digest(key, key_len));
}

/* Only a directory nobody else can write, so that no other user can hand us a program. */
static int open_private_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    if (fd >= 0 && (fstat(fd, &st) < 0 || st.st_uid != geteuid() || (st.st_mode & 022))) {
        close(fd);
        return -1;
    }
    return fd;
}

int seccomp_store_load(const char *dir, const unsigned char *key, size_t key_len, unsigned kernel_flags,
                       struct pea_seccomp_program *out)
{
    AUTO_FD int dir_fd = open_private_dir(dir);
    if (dir_fd < 0)
        return -1;
    char name[32];
    entry_name(key, key_len, name);
    AUTO_FD int fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid())
        return -1;
    size_t len = 0;
    AUTO_FREE char *bytes = read_fd_all(fd, SECCOMP_STORE_ENTRY_MAX, &len);
    struct store_header h;
    if (!bytes || len < sizeof h)
        return -1;
    memcpy(&h, bytes, sizeof h);
    size_t program_len = (size_t)h.instructions * sizeof(struct sock_filter);
    if (memcmp(h.magic, store_magic, sizeof h.magic) != 0 || h.flags != kernel_flags || h.key_len != key_len ||
        h.instructions == 0 ||
        h.instructions > INSTRUCTIONS_MAX || len != sizeof h + key_len + program_len ||
        memcmp(bytes + sizeof h, key, key_len) != 0)
        return -1;
    struct sock_filter *filter = xmalloc(program_len);
    memcpy(filter, bytes + sizeof h + key_len, program_len);
    *out = (struct pea_seccomp_program){
        .prog = {.len = (unsigned short)h.instructions, .filter = filter},
        .flags = h.flags,
    };
    return 0;
}

static bool has_suffix(const char *name, const char *suffix)
{
    size_t n = strlen(name), s = strlen(suffix);
    return n > s && strcmp(name + n - s, suffix) == 0;
}

/* An entry, or the temporary file of one being written (left behind if its writer died): both count. */
static bool is_store_file(const char *name)
{
    if (name[0] == '.')
        return strstr(name, ".bpf.") && has_suffix(name, ".tmp"); /* write_file_atomic_at's ".NAME.PID.tmp" */
    return has_suffix(name, ".bpf");
}

/* Past the limit, start again from empty rather than keep an order of use on disk. */
static void make_room(int dir_fd)
{
    DIR *d = fdopendir(dup(dir_fd));
    if (!d)
        return;
    size_t entries = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        entries += is_store_file(de->d_name);
    if (entries >= SECCOMP_STORE_MAX_ENTRIES) {
        rewinddir(d);
        while ((de = readdir(d)))
            if (is_store_file(de->d_name))
                unlinkat(dir_fd, de->d_name, 0);
    }
    closedir(d);
}

void seccomp_store_save(const char *dir, const unsigned char *key, size_t key_len,
                        const struct pea_seccomp_program *program)
{
    size_t program_len = (size_t)program->prog.len * sizeof(struct sock_filter);
    if (program->prog.len == 0 ||
        sizeof(struct store_header) + key_len + program_len > SECCOMP_STORE_ENTRY_MAX)
        return;
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        return;
    AUTO_FD int dir_fd = open_private_dir(dir);
    if (dir_fd < 0)
        return;
    make_room(dir_fd);
    struct store_header h = {.flags = program->flags, .instructions = program->prog.len, .key_len = key_len};
    memcpy(h.magic, store_magic, sizeof h.magic);
    size_t len = sizeof h + key_len + program_len;
    AUTO_FREE char *bytes = xmalloc(len);
    memcpy(bytes, &h, sizeof h);
    memcpy(bytes + sizeof h, key, key_len);
    memcpy(bytes + sizeof h + key_len, program->prog.filter, program_len);
    char name[32];
    entry_name(key, key_len, name);
    write_file_atomic_at(dir_fd, name, bytes, len, 0600);
}
