/* pea-pause: the pod's infra process. It holds the pod's namespaces open by existing, reaps every zombie when it is
 * PID 1 of a shared pid namespace, and exits 0 on SIGINT or SIGTERM. Tiny on purpose: on x86_64 and aarch64 it links
 * no libc at all (pause_syscalls.h). */
#include "pause_syscalls.h"

static int is_arg(const char *arg, const char *want)
{
    while (*arg && *arg == *want)
        arg++, want++;
    return *arg == *want;
}

static int pause_main(int argc, char **argv)
{
    if (argc > 1 && (is_arg(argv[1], "-v") || is_arg(argv[1], "--version"))) {
        static const char version[] = "pea-pause " PEA_VERSION "\n";
        return os_write(1, version, sizeof version - 1) != sizeof version - 1;
    }
    /* No handlers: the signals stay pending until taken below, so none is lost between a check and the wait, and
     * PID 1's rule of dropping signals with the default disposition never comes into play. */
    os_block_signals();
    for (;;) {
        /* Also reaps children that exited before the block: their SIGCHLD was discarded. SIGCHLDs coalesce, hence
         * the loop. */
        while (os_reap() > 0)
            ;
        int sig = os_wait_signal();
        if (sig == SIGINT || sig == SIGTERM)
            return 0;
    }
}

#if __STDC_HOSTED__
int main(int argc, char **argv) { return pause_main(argc, argv); }
#else
/* Entered from _start with the initial stack: argc, then argv[argc + 1], the last one NULL. */
__attribute__((used, noreturn)) void pause_start(long *sp);
void pause_start(long *sp) { os_exit(pause_main((int)sp[0], (char **)(sp + 1))); }
#endif
