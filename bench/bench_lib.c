/* bench/bench_lib.c -- what the two C load generators share: inputs, clocks, loopback HTTP.
 *
 * The HTTP here is the little the generators need against tidings: requests they format
 * whole into a buffer, and answer heads they find with a NUL-terminated search (every caller
 * keeps a NUL after the bytes it read). Bodies are framed by Content-Length or by the
 * caller's own chunked decoder; nothing here reads or writes a socket's payload.
 */
#include "bench/bench_lib.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- errors and inputs ------------------------------------------------------------------ */

const char *bench_prog = "bench";

void bench_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", bench_prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

char **bench_read_lines(const char *path, size_t *n)
{
    FILE *f = fopen(path, "r");
    if (!f)
        bench_die("cannot open %s", path);
    char **v = NULL;
    size_t cap = 0;
    *n = 0;
    char line[1024];
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (!line[0])
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 1024;
            v = realloc(v, cap * sizeof(*v));
            if (!v)
                bench_die("out of memory reading %s", path);
        }
        if (!(v[(*n)++] = strdup(line)))
            bench_die("out of memory reading %s", path);
    }
    fclose(f);
    if (*n == 0)
        bench_die("%s has no lines", path);
    return v;
}

void bench_free_lines(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

int bench_parse_args(int argc, char **argv, const bench_opt_t *opts)
{
    size_t n = 0;
    while (opts[n].name)
        n++;
    /* getopt_long's table: option i answers 256 + i, out of the way of 'h' and '?'. */
    struct option *lo = calloc(n + 2, sizeof(*lo));
    if (!lo)
        bench_die("out of memory");
    for (size_t i = 0; i < n; i++) {
        bool flag = opts[i].kind == BENCH_OPT_TRUE || opts[i].kind == BENCH_OPT_FALSE;
        lo[i] = (struct option){opts[i].name, flag ? no_argument : required_argument, NULL,
                                256 + (int)i};
    }
    lo[n] = (struct option){"help", no_argument, NULL, 'h'};
    int rc = 0, ch;
    while (rc == 0 && (ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        if (ch == 'h') {
            rc = 1;
            break;
        }
        if (ch < 256 || (size_t)(ch - 256) >= n) {
            rc = -EINVAL;
            break;
        }
        const bench_opt_t *o = &opts[ch - 256];
        switch (o->kind) {
        case BENCH_OPT_INT:
            *(int *)o->dst = atoi(optarg);
            break;
        case BENCH_OPT_DOUBLE:
            *(double *)o->dst = strtod(optarg, NULL);
            break;
        case BENCH_OPT_U64:
            *(uint64_t *)o->dst = strtoull(optarg, NULL, 10);
            break;
        case BENCH_OPT_STR:
            *(const char **)o->dst = optarg;
            break;
        case BENCH_OPT_TRUE:
            *(bool *)o->dst = true;
            break;
        case BENCH_OPT_FALSE:
            *(bool *)o->dst = false;
            break;
        }
    }
    free(lo);
    return rc;
}

/* ---- time ----------------------------------------------------------------------------------- */

static uint64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

uint64_t bench_mono_ns(void)
{
    return clock_ns(CLOCK_MONOTONIC);
}

uint64_t bench_real_ns(void)
{
    return clock_ns(CLOCK_REALTIME);
}

double bench_cpu_since(const struct rusage *ru0)
{
    struct rusage ru1;
    getrusage(RUSAGE_SELF, &ru1);
    return (double)(ru1.ru_utime.tv_sec - ru0->ru_utime.tv_sec) +
           (double)(ru1.ru_utime.tv_usec - ru0->ru_utime.tv_usec) / 1e6 +
           (double)(ru1.ru_stime.tv_sec - ru0->ru_stime.tv_sec) +
           (double)(ru1.ru_stime.tv_usec - ru0->ru_stime.tv_usec) / 1e6;
}

/* ---- sockets and HTTP ------------------------------------------------------------------- */

int bench_tcp_socket(bool nonblock)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0)
        return -errno;
    int one = 1; /* requests go out whole: no Nagle delay on the latency being measured */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

int bench_connect_loopback(int fd, int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0 && errno != EINPROGRESS)
        return -errno;
    return 0;
}

int bench_http_request(char *buf, size_t cap, const char *method, const char *path, int port,
                       const char *token, const char *headers, const char *body)
{
    int len;
    if (body)
        len = snprintf(buf, cap,
                       "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                       "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
                       "%sContent-Length: %zu\r\n\r\n%s",
                       method, path, port, token, headers, strlen(body), body);
    else
        len = snprintf(buf, cap,
                       "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                       "Authorization: Bearer %s\r\n%s\r\n",
                       method, path, port, token, headers);
    return len < 0 || (size_t)len >= cap ? -EMSGSIZE : len;
}

int bench_post_body(char *buf, size_t cap, const char *text_json, unsigned long long n)
{
    int len = snprintf(buf, cap, "{\"text\":\"%s #%llu\"}", text_json, n);
    return len < 0 || (size_t)len >= cap ? -EMSGSIZE : len;
}

int bench_http_head(const char *buf, int *status, size_t *hlen)
{
    const char *end = strstr(buf, "\r\n\r\n");
    if (!end)
        return 0;
    *hlen = (size_t)(end - buf) + 4;
    if (sscanf(buf, "HTTP/1.%*d %d", status) != 1 || *status < 100 || *status > 599)
        *status = 0;
    return 1;
}

const char *bench_http_header(const char *head, size_t hlen, const char *name)
{
    size_t nlen = strlen(name);
    for (const char *p = head; p + nlen + 1 < head + hlen; p++) {
        if ((p == head || p[-1] == '\n') && p[nlen] == ':') {
            size_t i = 0;
            while (i < nlen && (p[i] | 0x20) == (name[i] | 0x20))
                i++;
            if (i == nlen) {
                p += nlen + 1;
                while (*p == ' ' || *p == '\t')
                    p++;
                return p;
            }
        }
    }
    return NULL;
}
