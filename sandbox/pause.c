/* pea-pause: the pod's infra process. It holds the pod's namespaces open by existing, reaps every zombie when it is
 * PID 1 of a shared pid namespace, and exits 0 on SIGINT or SIGTERM. Static and tiny on purpose. */
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t is_stopping;

static void on_stop(int sig)
{
    (void)sig;
    is_stopping = 1;
}

/* Reaping happens in the main loop: SIGCHLD only interrupts sigsuspend. */
static void on_child(int sig) { (void)sig; }

int main(int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "-v") == 0 || strcmp(argv[1], "--version") == 0)) {
        static const char version[] = "pea-pause " PEA_VERSION "\n";
        return write(STDOUT_FILENO, version, sizeof version - 1) < 0;
    }
    sigset_t blocked, wait_mask;
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGINT);
    sigaddset(&blocked, SIGTERM);
    sigaddset(&blocked, SIGCHLD);
    /* Block first so that no signal slips in between the check and the wait. */
    sigprocmask(SIG_BLOCK, &blocked, &wait_mask);
    struct sigaction stop = {.sa_handler = on_stop}, child = {.sa_handler = on_child};
    sigaction(SIGINT, &stop, NULL);
    sigaction(SIGTERM, &stop, NULL);
    sigaction(SIGCHLD, &child, NULL);
    for (;;) {
        while (waitpid(-1, NULL, WNOHANG) > 0)
            ;
        if (is_stopping)
            return 0;
        sigsuspend(&wait_mask);
    }
}
