/* tests/support/proc.c -- child processes that never outlive the test that started them.
 *
 * Three nets: the child asks the kernel for SIGKILL when its parent dies (a test killed by
 * its timeout), an atexit handler kills every child not yet reaped (a test that failed an
 * assertion), and ts_proc_wait/ts_proc_kill reap them on the normal path.
 */
#include "tests/support/support.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_CHILDREN 32

static pid_t children[MAX_CHILDREN];
static bool atexit_set;

static void forget(pid_t pid)
{
    for (int i = 0; i < MAX_CHILDREN; i++)
        if (children[i] == pid)
            children[i] = 0;
}

static void kill_children(void)
{
    for (int i = 0; i < MAX_CHILDREN; i++) {
        if (children[i] > 0) {
            kill(children[i], SIGKILL);
            waitpid(children[i], NULL, 0);
            children[i] = 0;
        }
    }
}

pid_t ts_proc_spawn(char *const argv[], const char *log_path)
{
    if (!atexit_set) {
        atexit(kill_children);
        atexit_set = true;
    }
    int slot = -1;
    for (int i = 0; i < MAX_CHILDREN && slot < 0; i++)
        if (children[i] == 0)
            slot = i;
    cr_assert(slot >= 0, "too many child processes");
    pid_t parent = getpid();
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork failed");
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        if (log_path) {
            int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
            if (fd >= 0) {
                dup2(fd, STDOUT_FILENO);
                dup2(fd, STDERR_FILENO);
                close(fd);
            }
        }
        execvp(argv[0], argv);
        _exit(127);
    }
    children[slot] = pid;
    return pid;
}

int ts_proc_wait(pid_t pid, int timeout_ms)
{
    uint64_t deadline = ts_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        int status;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            forget(pid);
            return status;
        }
        if (r < 0 && errno != EINTR) {
            forget(pid);
            return -1;
        }
        if (ts_now_ms() >= deadline)
            return -1;
        ts_sleep_ms(5);
    }
}

bool ts_proc_alive(pid_t pid)
{
    int status;
    return pid > 0 && waitpid(pid, &status, WNOHANG) == 0;
}

void ts_proc_kill(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    forget(pid);
}

/* Finds the inode of the socket listening on port in /proc/net/tcp, then looks for it among
 * pid's file descriptors. */
bool ts_proc_listens(pid_t pid, int port)
{
    FILE *f = fopen("/proc/net/tcp", "r");
    if (!f)
        return true; /* cannot tell: trust the answer */
    char line[512];
    unsigned long inode = 0;
    while (!inode && fgets(line, sizeof(line), f)) {
        unsigned addr, lport, state;
        unsigned long ino;
        if (sscanf(line, " %*d: %x:%x %*x:%*x %x %*x:%*x %*x:%*x %*x %*u %*u %lu", &addr, &lport,
                   &state, &ino) == 4 &&
            (int)lport == port && state == 0x0A)
            inode = ino;
    }
    fclose(f);
    if (!inode)
        return false;
    char dir[64], want[64];
    snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
    snprintf(want, sizeof(want), "socket:[%lu]", inode);
    DIR *d = opendir(dir);
    if (!d)
        return false;
    bool mine = false;
    struct dirent *e;
    while (!mine && (e = readdir(d)) != NULL) {
        char path[320], target[64];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        ssize_t n = readlink(path, target, sizeof(target) - 1);
        if (n > 0) {
            target[n] = '\0';
            mine = strcmp(target, want) == 0;
        }
    }
    closedir(d);
    return mine;
}
