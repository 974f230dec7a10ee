/* AppArmor and SELinux labels for the container's process. Both take effect at the next execve: the init writes
 * them into its own attr files just before it is done setting up. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "pea/log.h"
#include "pea/lsm.h"
#include "pea/sys.h"
#include "pea/util.h"

bool lsm_apparmor_is_enabled(void)
{
    AUTO_FREE char *enabled = read_file_at(AT_FDCWD, "/sys/module/apparmor/parameters/enabled", 16, NULL);
    return enabled && enabled[0] == 'Y' && access("/sys/kernel/security/apparmor", F_OK) == 0;
}

static bool is_selinux_enabled(void) { return access("/sys/fs/selinux/enforce", F_OK) == 0; }

int lsm_plan(const struct pea_spec *spec, struct pea_lsm_plan *plan, struct pea_error *err)
{
    const struct pea_process *proc = spec->process;
    plan->apparmor_profile = NULL;
    plan->selinux_label = NULL;
    if (proc->apparmor_profile && *proc->apparmor_profile) {
        if (lsm_apparmor_is_enabled())
            plan->apparmor_profile = proc->apparmor_profile;
        else
            log_warn("apparmorProfile \"%s\" ignored: AppArmor is not enabled on this host", proc->apparmor_profile);
    }
    bool has_selinux = is_selinux_enabled();
    if (proc->selinux_label && *proc->selinux_label) {
        if (has_selinux)
            plan->selinux_label = proc->selinux_label;
        else
            log_warn("selinuxLabel \"%s\" ignored: SELinux is not enabled on this host", proc->selinux_label);
    }
    if (spec->mount_label && *spec->mount_label) {
        if (has_selinux)
            return pea_fail(err, 0, "linux.mountLabel \"%s\": not supported by pea yet", spec->mount_label);
        log_warn("mountLabel \"%s\" ignored: SELinux is not enabled on this host", spec->mount_label);
    }
    return 0;
}

/* Open the first of NAMES that exists under PROC_FD for writing, checked to be on procfs. */
static int open_attr(int proc_fd, const char *const *names, size_t n, const char **opened)
{
    int fd = -1;
    for (size_t i = 0; i < n && fd < 0; i++) {
        *opened = names[i];
        fd = openat(proc_fd, names[i], O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0 && errno != ENOENT)
            return -1;
    }
    if (fd >= 0 && sys_check_procfs(fd) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int lsm_apply_exec_labels(int proc_fd, const struct pea_lsm_plan *plan, struct pea_error *err)
{
    const char *opened = NULL;
    if (plan->apparmor_profile) {
        /* The per-LSM directory first: with several LSMs stacked, attr/exec may belong to another one. */
        static const char *const names[] = {"thread-self/attr/apparmor/exec", "thread-self/attr/exec"};
        AUTO_FD int fd = open_attr(proc_fd, names, ARRAY_SIZE(names), &opened);
        if (fd < 0)
            return pea_fail(err, errno, "apparmorProfile \"%s\": open /proc/%s", plan->apparmor_profile, opened);
        AUTO_FREE char *command = xasprintf("exec %s", plan->apparmor_profile);
        /* AppArmor looks the profile up at this write: ENOENT means no such profile is loaded. */
        if (write_all(fd, command, strlen(command)) < 0)
            return pea_fail(err, errno, "apparmorProfile \"%s\": cannot change to it (is the profile loaded?)",
                            plan->apparmor_profile);
    }
    if (plan->selinux_label) {
        static const char *const names[] = {"thread-self/attr/exec"};
        AUTO_FD int fd = open_attr(proc_fd, names, ARRAY_SIZE(names), &opened);
        if (fd < 0)
            return pea_fail(err, errno, "selinuxLabel \"%s\": open /proc/%s", plan->selinux_label, opened);
        if (write_all(fd, plan->selinux_label, strlen(plan->selinux_label)) < 0)
            return pea_fail(err, errno, "selinuxLabel \"%s\": cannot set it as the exec label", plan->selinux_label);
    }
    return 0;
}
