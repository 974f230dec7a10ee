/* The few OS calls pea-pause makes. On x86_64 and aarch64 a freestanding build (-ffreestanding sets __STDC_HOSTED__
 * to 0) gets its own _start and raw syscalls, so no libc is linked; elsewhere the same calls go through libc. */
#ifndef PEA_PAUSE_SYSCALLS_H
#define PEA_PAUSE_SYSCALLS_H

#if __STDC_HOSTED__

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void os_signal_set(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGCHLD);
}

static void os_block_signals(void)
{
    sigset_t set;
    os_signal_set(&set);
    sigprocmask(SIG_BLOCK, &set, NULL);
}

static int os_wait_signal(void)
{
    sigset_t set;
    os_signal_set(&set);
    return sigwaitinfo(&set, NULL);
}

static long os_reap(void) { return waitpid(-1, NULL, WNOHANG); }
static long os_write(int fd, const void *buf, unsigned long len) { return write(fd, buf, len); }

#else

/* Same numbers on x86_64 and aarch64. */
#define SIGINT 2
#define SIGTERM 15
#define SIGCHLD 17
#define WNOHANG 1

#if defined(__x86_64__)

#define NR_write 1
#define NR_rt_sigprocmask 14
#define NR_wait4 61
#define NR_rt_sigtimedwait 128
#define NR_exit_group 231

/* The kernel leaves argc at (%rsp), 16-byte aligned; the call's return address then gives pause_start the alignment
 * the ABI promises at function entry. %rbp = 0 ends any frame-pointer walk. */
__asm__(".text\n"
        ".globl _start\n"
        "_start:\n"
        "  xor %ebp, %ebp\n"
        "  mov %rsp, %rdi\n"
        "  and $-16, %rsp\n"
        "  call pause_start\n");

static inline long os_syscall(long n, long a, long b, long c, long d)
{
    register long r10 __asm__("r10") = d;
    long ret;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10)
                     : "rcx", "r11", "memory");
    return ret;
}

#elif defined(__aarch64__)

#define NR_write 64
#define NR_exit_group 94
#define NR_rt_sigprocmask 135
#define NR_rt_sigtimedwait 137
#define NR_wait4 260

/* sp is 16-byte aligned at entry and points at argc; zero fp and lr end any frame walk. */
__asm__(".text\n"
        ".globl _start\n"
        "_start:\n"
        "  mov x29, #0\n"
        "  mov x30, #0\n"
        "  mov x0, sp\n"
        "  bl pause_start\n");

static inline long os_syscall(long n, long a, long b, long c, long d)
{
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    register long x3 __asm__("x3") = d;
    __asm__ volatile("svc #0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3) : "memory");
    return x0;
}

#else
#error "no freestanding pea-pause for this architecture: build it hosted (sandbox/meson.build)"
#endif

/* The kernel's sigset is 64 bits on both; bit n-1 stands for signal n. */
static const unsigned long long os_signals = 1ULL << (SIGINT - 1) | 1ULL << (SIGTERM - 1) | 1ULL << (SIGCHLD - 1);

static void os_block_signals(void)
{
    os_syscall(NR_rt_sigprocmask, 0 /* SIG_BLOCK */, (long)&os_signals, 0, sizeof os_signals);
}

static int os_wait_signal(void)
{
    return (int)os_syscall(NR_rt_sigtimedwait, (long)&os_signals, 0, 0, sizeof os_signals);
}

static long os_reap(void) { return os_syscall(NR_wait4, -1, 0, WNOHANG, 0); }

static long os_write(int fd, const void *buf, unsigned long len)
{
    return os_syscall(NR_write, fd, (long)buf, (long)len, 0);
}

__attribute__((noreturn)) static void os_exit(int status)
{
    os_syscall(NR_exit_group, status, 0, 0, 0);
    __builtin_unreachable();
}

#endif
#endif
