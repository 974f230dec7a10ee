/* Capabilities (libcap), rlimits, no_new_privs and the switch to the container's user. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "pea/caps.h"
#include "pea/util.h"

int caps_last_cap(void)
{
    static int last = -1;
    if (last >= 0)
        return last;
    AUTO_FREE char *text = read_file_at(AT_FDCWD, "/proc/sys/kernel/cap_last_cap", 64, NULL);
    long long v;
    if (text) {
        text[strcspn(text, "\n")] = '\0';
        if (parse_int64(text, &v) == 0 && v >= 0 && v < 64)
            return last = (int)v;
    }
    return last = CAP_LAST_CAP;
}

const char *caps_name(int cap)
{
    static char names[64][32];
    if (cap < 0 || cap > caps_last_cap() || cap >= 64)
        return NULL;
    if (!names[cap][0]) {
        char *lower = cap_to_name((cap_value_t)cap);
        if (!lower)
            return NULL;
        snprintf(names[cap], sizeof names[cap], "%s", lower);
        cap_free(lower);
        for (char *p = names[cap]; *p; p++)
            *p = (char)toupper((unsigned char)*p);
    }
    return names[cap];
}

static const char *rlimit_name(int resource)
{
    static const char *const names[] = {
        [RLIMIT_CPU] = "RLIMIT_CPU",       [RLIMIT_FSIZE] = "RLIMIT_FSIZE",     [RLIMIT_DATA] = "RLIMIT_DATA",
        [RLIMIT_STACK] = "RLIMIT_STACK",   [RLIMIT_CORE] = "RLIMIT_CORE",       [RLIMIT_RSS] = "RLIMIT_RSS",
        [RLIMIT_NPROC] = "RLIMIT_NPROC",   [RLIMIT_NOFILE] = "RLIMIT_NOFILE",   [RLIMIT_MEMLOCK] = "RLIMIT_MEMLOCK",
        [RLIMIT_AS] = "RLIMIT_AS",         [RLIMIT_LOCKS] = "RLIMIT_LOCKS",     [RLIMIT_SIGPENDING] = "RLIMIT_SIGPENDING",
        [RLIMIT_MSGQUEUE] = "RLIMIT_MSGQUEUE", [RLIMIT_NICE] = "RLIMIT_NICE",   [RLIMIT_RTPRIO] = "RLIMIT_RTPRIO",
        [RLIMIT_RTTIME] = "RLIMIT_RTTIME",
    };
    return resource >= 0 && (size_t)resource < ARRAY_SIZE(names) && names[resource] ? names[resource] : "RLIMIT_?";
}

int caps_apply_rlimits(const struct pea_process *process, struct pea_error *err)
{
    for (size_t i = 0; i < process->n_rlimits; i++) {
        const struct pea_rlimit *r = &process->rlimits[i];
        struct rlimit lim = {.rlim_cur = r->soft, .rlim_max = r->hard};
        if (setrlimit((__rlimit_resource_t)r->resource, &lim) < 0)
            return pea_fail(err, errno, "setrlimit %s", rlimit_name(r->resource));
    }
    return 0;
}

int caps_apply_no_new_privileges(const struct pea_process *process, struct pea_error *err)
{
    if (process->no_new_privileges && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return pea_fail(err, errno, "set no_new_privs");
    return 0;
}

static int set_capability_sets(const struct pea_capabilities *c, struct pea_error *err)
{
    cap_t caps = cap_init();
    if (!caps)
        return pea_fail(err, errno, "cap_init");
    int last = caps_last_cap();
    for (int cap = 0; cap <= last; cap++) {
        cap_value_t v = cap;
        if (c->effective & (1ULL << cap))
            cap_set_flag(caps, CAP_EFFECTIVE, 1, &v, CAP_SET);
        if (c->permitted & (1ULL << cap))
            cap_set_flag(caps, CAP_PERMITTED, 1, &v, CAP_SET);
        if (c->inheritable & (1ULL << cap))
            cap_set_flag(caps, CAP_INHERITABLE, 1, &v, CAP_SET);
    }
    int r = cap_set_proc(caps);
    int saved = errno;
    cap_free(caps);
    if (r < 0)
        return pea_fail(err, saved, "set capabilities");
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
        return pea_fail(err, errno, "clear ambient capabilities");
    /* The kernel only lets a capability be ambient when it is permitted and inheritable; configs commonly list
     * ambient caps without inheritable ones, and runc then leaves them out, so do we. */
    uint64_t ambient = c->ambient & c->permitted & c->inheritable;
    for (int cap = 0; cap <= last; cap++)
        if ((ambient & (1ULL << cap)) && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0)
            return pea_fail(err, errno, "raise ambient capability %s", caps_name(cap));
    return 0;
}

int caps_apply_user_and_capabilities(const struct pea_process *process, struct pea_error *err)
{
    const struct pea_user *u = &process->user;
    if (process->has_capabilities) {
        for (int cap = 0; cap <= caps_last_cap(); cap++)
            if (!(process->capabilities.bounding & (1ULL << cap)) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 &&
                errno != EINVAL)
                return pea_fail(err, errno, "drop %s from the bounding set", caps_name(cap));
    }
    /* Keep the permitted set across the uid change; the sets are then set to exactly what was asked. */
    if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
        return pea_fail(err, errno, "set keepcaps");
    if (setgroups(u->n_additional_gids, u->additional_gids) < 0 && !(errno == EPERM && u->n_additional_gids == 0))
        return pea_fail(err, errno, "setgroups");
    if (setresgid(u->gid, u->gid, u->gid) < 0)
        return pea_fail(err, errno, "setgid %u", (unsigned)u->gid);
    if (setresuid(u->uid, u->uid, u->uid) < 0)
        return pea_fail(err, errno, "setuid %u", (unsigned)u->uid);
    if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
        return pea_fail(err, errno, "clear keepcaps");
    if (process->has_capabilities)
        return set_capability_sets(&process->capabilities, err);
    return 0;
}
