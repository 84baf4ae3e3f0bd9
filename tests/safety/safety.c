/* tests/safety/safety.c -- sockets from a chosen source address and a /metrics reader. */
#include "tests/safety/safety.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

void sf_server_start(ts_server_t *s, const char *const *extra)
{
    char url[256];
    ts_redis_fixture_url(url, sizeof(url));
    ts_server_start(s, url, extra, true);
}

int sf_connect_from(const char *source, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in from = {.sin_family = AF_INET};
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, source, &from.sin_addr);
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    if (bind(fd, (struct sockaddr *)&from, sizeof(from)) != 0 ||
        connect(fd, (struct sockaddr *)&to, sizeof(to)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

bool sf_closed_by_peer(int fd, int wait_ms)
{
    uint64_t until = ts_now_ms() + (uint64_t)wait_ms;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        uint64_t now = ts_now_ms();
        int left = now < until ? (int)(until - now) : 0;
        if (poll(&p, 1, left) > 0) {
            char buf[4096];
            ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
                return true;
            continue; /* data (an answer): keep watching */
        }
        if (ts_now_ms() >= until)
            return false;
    }
}

ssize_t sf_read_response(int fd, char *buf, size_t size, int timeout_ms)
{
    size_t got = 0;
    uint64_t until = ts_now_ms() + (uint64_t)timeout_ms;
    buf[0] = '\0';
    while (got + 1 < size && ts_now_ms() < until) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)(until - ts_now_ms())) <= 0)
            break;
        ssize_t n = recv(fd, buf + got, size - 1 - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
        buf[got] = '\0';
        const char *end = strstr(buf, "\r\n\r\n");
        const char *cl = strstr(buf, "Content-Length: ");
        if (end && (!cl || got >= (size_t)(end + 4 - buf) + strtoul(cl + 16, NULL, 10)))
            break;
    }
    return (ssize_t)got;
}

int sf_request_from(const char *source, int port, const char *method, const char *path,
                    const char *token, const char *extra, const char *body, char *buf, size_t size)
{
    int fd = sf_connect_from(source, port);
    cr_assert(fd >= 0, "connect from %s", source);
    char req[4096];
    int n = snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n", method,
                     path);
    if (token)
        n += snprintf(req + n, sizeof(req) - (size_t)n, "Authorization: Bearer %s\r\n", token);
    if (extra)
        n += snprintf(req + n, sizeof(req) - (size_t)n, "%s", extra);
    if (body)
        n += snprintf(req + n, sizeof(req) - (size_t)n,
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n", strlen(body));
    n += snprintf(req + n, sizeof(req) - (size_t)n, "\r\n%s", body ? body : "");
    cr_assert(n > 0 && (size_t)n < sizeof(req));
    cr_assert_eq(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
    ssize_t got = sf_read_response(fd, buf, size, 5000);
    close(fd);
    int status = 0;
    if (got > 12 && strncmp(buf, "HTTP/1.1 ", 9) == 0)
        status = atoi(buf + 9);
    return status;
}

const char *sf_header(const char *answer, const char *name, char *out, size_t size)
{
    char key[128];
    snprintf(key, sizeof(key), "\r\n%s: ", name);
    const char *at = strstr(answer, key);
    const char *end = at ? strstr(at + 2, "\r\n") : NULL;
    if (!at || !end)
        return NULL;
    at += strlen(key);
    size_t n = (size_t)(end - at) < size - 1 ? (size_t)(end - at) : size - 1;
    memcpy(out, at, n);
    out[n] = '\0';
    return out;
}
