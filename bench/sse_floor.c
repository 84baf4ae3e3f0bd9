/* bench/sse_floor.c -- the machine's floor for one event to N streams over loopback TCP.
 *
 * No server and no Redis: a sender process that holds N accepted loopback connections writes
 * one prepared frame of --bytes bytes (a feed event's size) to each, from --writers threads
 * (as tidings' writer threads do), and a receiver process reads all N on one epoll thread
 * (as bench/sse_load.c does) and takes each frame's arrival time. Latency runs from just
 * before the first send to each frame's arrival; p50/p99/max per round and over all rounds,
 * with the CPU each side used. Whatever tidings adds (Redis, the engine, the hub) comes on
 * top of this, so a delivery target below it cannot be met on the machine it ran on.
 *
 * usage: tidings-sse-floor [--streams N] [--writers W] [--bytes B] [--rounds R] [--gap-ms G]
 */
#define _GNU_SOURCE
#include "bench/bench_lib.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    int streams, writers, bytes, rounds, gap_ms;
} floor_opts_t;

/* ---- the sender ------------------------------------------------------------------------- */

typedef struct {
    const int *fds;
    int first, end;
    const char *frame;
    size_t len;
} send_share_t;

/* Sends the frame whole on each socket of the share (a full socket is retried: the floor is
 * the time to hand every stream its bytes). */
static void *send_share(void *arg)
{
    send_share_t *s = arg;
    for (int i = s->first; i < s->end; i++) {
        size_t off = 0;
        while (off < s->len) {
            ssize_t n = send(s->fds[i], s->frame + off, s->len - off, MSG_NOSIGNAL);
            if (n > 0)
                off += (size_t)n;
            else if (n < 0 && errno != EINTR && errno != EAGAIN)
                bench_die("send: %s", strerror(errno));
        }
    }
    return NULL;
}

static void run_sender(const floor_opts_t *o, int listener, int ready_fd)
{
    int *fds = calloc((size_t)o->streams, sizeof(int));
    char *frame = malloc((size_t)o->bytes + 1);
    if (!fds || !frame)
        bench_die("out of memory");
    for (int i = 0; i < o->streams; i++)
        if ((fds[i] = accept4(listener, NULL, NULL, SOCK_CLOEXEC)) < 0)
            bench_die("accept: %s", strerror(errno));
    char go;
    if (read(ready_fd, &go, 1) != 1) /* the receiver has every socket in its epoll set */
        bench_die("the receiver did not get ready");
    struct rusage ru0;
    getrusage(RUSAGE_SELF, &ru0);
    pthread_t *t = calloc((size_t)o->writers, sizeof(pthread_t));
    send_share_t *shares = calloc((size_t)o->writers, sizeof(send_share_t));
    if (!t || !shares)
        bench_die("out of memory");
    for (int r = 0; r < o->rounds; r++) {
        /* "id: …\nevent: feed\ndata: {"t":<ns>,"pad":"xxx…"}\n\n", --bytes long. */
        uint64_t t0 = bench_real_ns();
        int head = snprintf(frame, (size_t)o->bytes + 1,
                            "id: %d-0\nevent: feed\ndata: {\"t\":%llu,\"pad\":\"", r,
                            (unsigned long long)t0);
        int tail = 4; /* "\"}\n\n" */
        if (head + tail > o->bytes)
            bench_die("--bytes must be at least %d", head + tail);
        memset(frame + head, 'x', (size_t)(o->bytes - head - tail));
        memcpy(frame + o->bytes - tail, "\"}\n\n", 4);
        for (int w = 0; w < o->writers; w++) {
            shares[w] = (send_share_t){fds, (int)((long)o->streams * w / o->writers),
                                       (int)((long)o->streams * (w + 1) / o->writers), frame,
                                       (size_t)o->bytes};
            pthread_create(&t[w], NULL, send_share, &shares[w]);
        }
        for (int w = 0; w < o->writers; w++)
            pthread_join(t[w], NULL);
        struct timespec gap = {o->gap_ms / 1000, (long)(o->gap_ms % 1000) * 1000000L};
        nanosleep(&gap, NULL);
    }
    printf("sender: %d writer thread(s), CPU %.3f s per round\n", o->writers,
           bench_cpu_since(&ru0) / o->rounds);
    for (int i = 0; i < o->streams; i++)
        close(fds[i]);
    free(shares);
    free(t);
    free(frame);
    free(fds);
}

/* ---- the receiver ----------------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *sorted, size_t n, double p)
{
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return sorted[i < n ? i : n - 1];
}

/* Reads every stream's frame of each round; the frame's "t" is when its round began. */
static void run_receiver(const floor_opts_t *o, int port, int ready_fd)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int *fds = calloc((size_t)o->streams, sizeof(int));
    size_t *got = calloc((size_t)o->streams, sizeof(size_t));       /* bytes received */
    uint64_t *began = calloc((size_t)o->streams, sizeof(uint64_t)); /* the last frame's "t" */
    double *lat = calloc((size_t)o->streams * (size_t)o->rounds, sizeof(double));
    char *buf = malloc((size_t)o->bytes * 4);
    if (ep < 0 || !fds || !got || !began || !lat || !buf)
        bench_die("out of memory");
    for (int i = 0; i < o->streams; i++) {
        fds[i] = bench_tcp_socket(false);
        if (fds[i] < 0 || bench_connect_loopback(fds[i], port) != 0)
            bench_die("connect %d: %s", i, strerror(errno));
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
    }
    struct rusage ru0;
    getrusage(RUSAGE_SELF, &ru0);
    if (write(ready_fd, "r", 1) != 1)
        bench_die("could not tell the sender");
    size_t total = (size_t)o->streams * (size_t)o->rounds, n = 0;
    struct epoll_event evs[256];
    uint64_t deadline = bench_mono_ns() + (uint64_t)(o->rounds * (o->gap_ms + 30000)) * 1000000u;
    while (n < total && bench_mono_ns() < deadline) {
        int k = epoll_wait(ep, evs, 256, 1000);
        for (int e = 0; e < k; e++) {
            int i = (int)evs[e].data.u32;
            ssize_t r = recv(fds[i], buf, (size_t)o->bytes * 4, MSG_DONTWAIT);
            if (r <= 0)
                continue;
            uint64_t now = bench_real_ns();
            const char *t = memmem(buf, (size_t)r, "{\"t\":", 5);
            if (t && t + 5 + 20 < buf + r) /* the digits are in this read */
                began[i] = strtoull(t + 5, NULL, 10);
            /* Frames are alike in length and a round apart: each --bytes boundary the
             * received bytes pass is one arrival, of the frame that began at began[i]. */
            size_t before = got[i];
            got[i] += (size_t)r;
            for (size_t end = (before / (size_t)o->bytes + 1) * (size_t)o->bytes; end <= got[i];
                 end += (size_t)o->bytes)
                if (began[i] && n < total)
                    lat[n++] = (double)(now - began[i]) / 1e6;
        }
    }
    double cpu = bench_cpu_since(&ru0);
    if (n < total)
        printf("receiver: only %zu of %zu frames arrived\n", n, total);
    if (n == 0)
        bench_die("no frame arrived");
    qsort(lat, n, sizeof(double), cmp_double);
    printf("receiver: one epoll thread, CPU %.3f s per round\n", cpu / o->rounds);
    printf("RESULT streams=%d writers=%d bytes=%d rounds=%d frames=%zu p50_ms=%.2f p90_ms=%.2f "
           "p99_ms=%.2f max_ms=%.2f\n",
           o->streams, o->writers, o->bytes, o->rounds, n, pct(lat, n, 0.50), pct(lat, n, 0.90),
           pct(lat, n, 0.99), lat[n - 1]);
    free(buf);
    free(lat);
    free(began);
    free(got);
    free(fds);
}

int main(int argc, char **argv)
{
    bench_prog = "sse-floor";
    floor_opts_t o = {.streams = 10000, .writers = 2, .bytes = 640, .rounds = 5, .gap_ms = 1000};
    const bench_opt_t opts[] = {
        {"streams", BENCH_OPT_INT, &o.streams}, {"writers", BENCH_OPT_INT, &o.writers},
        {"bytes", BENCH_OPT_INT, &o.bytes},     {"rounds", BENCH_OPT_INT, &o.rounds},
        {"gap-ms", BENCH_OPT_INT, &o.gap_ms},   {NULL, 0, NULL}};
    int rc = bench_parse_args(argc, argv, opts);
    if (rc) {
        fprintf(rc > 0 ? stdout : stderr,
                "usage: tidings-sse-floor [--streams N (10000)] [--writers W (2)] [--bytes B "
                "(640)] [--rounds R (5)] [--gap-ms G (1000)]\n");
        return rc > 0 ? 0 : 2;
    }
    if (o.streams < 1 || o.streams > 18000 || o.writers < 1 || o.writers > 64 || o.rounds < 1 ||
        o.rounds > 100 || o.bytes < 64 || o.bytes > 65536 || o.gap_ms < 0 || o.gap_ms > 10000)
        bench_die("streams 1..18000, writers 1..64, rounds 1..100, bytes 64..65536, gap-ms "
                  "0..10000");
    struct rlimit lim;
    if (getrlimit(RLIMIT_NOFILE, &lim) == 0) { /* each side holds --streams sockets */
        lim.rlim_cur = lim.rlim_max;
        setrlimit(RLIMIT_NOFILE, &lim);
    }
    int listener = bench_tcp_socket(false);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    if (listener < 0 || bind(listener, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        listen(listener, 4096) != 0 || getsockname(listener, (struct sockaddr *)&sa, &sl) != 0)
        bench_die("listen: %s", strerror(errno));
    int ready[2];
    if (pipe(ready) != 0)
        bench_die("pipe: %s", strerror(errno));
    fflush(stdout);
    pid_t child = fork();
    if (child < 0)
        bench_die("fork: %s", strerror(errno));
    if (child == 0) {
        close(listener);
        close(ready[0]);
        run_receiver(&o, ntohs(sa.sin_port), ready[1]);
        fflush(stdout);
        _exit(0);
    }
    close(ready[1]);
    run_sender(&o, listener, ready[0]);
    int status = 0;
    waitpid(child, &status, 0);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
