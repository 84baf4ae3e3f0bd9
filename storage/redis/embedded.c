/* storage/redis/embedded.c -- a private redis-server for the zero-configuration default.
 *
 * Started when no --redis is given: AOF on (fsync every second), data in data_dir, no TCP
 * port, a unix socket that only we may use. The child asks the kernel for SIGTERM when
 * its parent dies, so even a kill -9 of tidings does not leave it behind; SIGTERM makes
 * redis-server flush its AOF before it exits.
 */
#define _XOPEN_SOURCE 700 /* realpath */
#include "storage/redis/embedded.h"

#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define START_TIMEOUT_MS 10000
#define STOP_TIMEOUT_MS 10000
#define MIB (1024 * 1024)

struct storage_embedded_s {
    pid_t pid;
    char url[sizeof(((struct sockaddr_un *)0)->sun_path) + 8];
};

static int mkdir_p(const char *path)
{
    char buf[4096];
    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
        return -ENAMETOOLONG;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(buf, 0700) != 0 && errno != EEXIST)
        return -errno;
    return 0;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static bool answers_ping(const char *sock)
{
    struct timeval tv = {.tv_sec = 0, .tv_usec = 200000};
    redisContext *c = redisConnectUnixWithTimeout(sock, tv);
    bool ok = false;
    if (c && !c->err) {
        redisReply *r = redisCommand(c, "PING");
        ok = r && r->type == REDIS_REPLY_STATUS;
        if (r)
            freeReplyObject(r);
    }
    if (c)
        redisFree(c);
    return ok;
}

/* Half of the machine's memory, in MiB: Redis' copy-on-write AOF rewrite needs headroom. */
static long half_of_memory_mb(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    return pages > 0 && size > 0 ? (long)((uint64_t)pages * (uint64_t)size / 2 / MIB) : 1024;
}

storage_embedded_t *storage_embedded_start(const char *data_dir, const char *server_path,
                                           long maxmemory_mb, const char **url_out)
{
    char dir[4096], sock[sizeof(((struct sockaddr_un *)0)->sun_path)], log[4200], maxmemory[32];
    snprintf(maxmemory, sizeof(maxmemory), "%ldmb",
             maxmemory_mb > 0 ? maxmemory_mb : half_of_memory_mb());
    int rc = mkdir_p(data_dir);
    if (rc) {
        errno = -rc;
        return NULL;
    }
    if (!realpath(data_dir, dir))
        return NULL;
    if (snprintf(sock, sizeof(sock), "%s/redis.sock", dir) >= (int)sizeof(sock)) {
        errno = ENAMETOOLONG;
        return NULL;
    }
    snprintf(log, sizeof(log), "%s/redis.log", dir);
    storage_embedded_t *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    snprintf(e->url, sizeof(e->url), "unix://%s", sock);

    pid_t parent = getpid();
    e->pid = fork();
    if (e->pid < 0) {
        free(e);
        return NULL;
    }
    if (e->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(1);
        setpgid(0, 0); /* a terminal's Ctrl-C goes to tidings, which stops us in order */
        int devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0) {
            dup2(devnull, STDIN_FILENO);
            dup2(devnull, STDOUT_FILENO);
        }
        execlp(server_path, server_path, "--port", "0", "--unixsocket", sock, "--unixsocketperm",
               "700", "--dir", dir, "--appendonly", "yes", "--appendfsync", "everysec", "--save",
               "", "--maxmemory", maxmemory, "--maxmemory-policy", "noeviction", "--daemonize",
               "no", "--logfile", log, (char *)NULL);
        _exit(127);
    }
    for (int waited = 0; waited < START_TIMEOUT_MS; waited += 20) {
        if (answers_ping(sock)) {
            *url_out = e->url;
            return e;
        }
        int status;
        if (waitpid(e->pid, &status, WNOHANG) == e->pid) {
            free(e);
            errno = ECHILD;
            return NULL;
        }
        sleep_ms(20);
    }
    storage_embedded_stop(e);
    errno = ETIMEDOUT;
    return NULL;
}

void storage_embedded_stop(storage_embedded_t *e)
{
    if (!e)
        return;
    kill(e->pid, SIGTERM);
    int status;
    for (int waited = 0; waited < STOP_TIMEOUT_MS; waited += 20) {
        if (waitpid(e->pid, &status, WNOHANG) == e->pid)
            goto out;
        sleep_ms(20);
    }
    kill(e->pid, SIGKILL);
    waitpid(e->pid, &status, 0);
out:
    free(e);
}
