/* tests/support/env.c -- the test environment: the fixture Redis, unique names, free ports.
 *
 * The fixture is named by files the ctest fixtures write, so a binary's second run against
 * the Redis Cluster differs from its first only in its environment: the port file then holds
 * the first master's port and a URL file the cluster's seed list.
 *
 * Names are unique across the parallel test processes sharing one Redis because their suffix
 * comes from getrandom(2), not from the clock or the pid alone.
 */
#include "tests/support/support.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

const char *ts_env(const char *name)
{
    const char *v = getenv(name);
    cr_assert(v && *v, "environment variable %s is not set (run the tests through ctest)", name);
    return v;
}

const char *ts_server_bin(void)
{
    const char *swap = getenv("TIDINGS_TEST_SERVER_BIN");
    return swap && *swap ? swap : ts_env("TIDINGS_BIN");
}

int ts_redis_port(void)
{
    const char *path = ts_env("TIDINGS_TEST_REDIS_PORT_FILE");
    FILE *f = fopen(path, "r");
    cr_assert(f, "cannot open %s: is the redis fixture running?", path);
    int port = 0;
    int n = fscanf(f, "%d", &port);
    fclose(f);
    cr_assert(n == 1 && port > 0 && port < 65536, "no port in %s", path);
    return port;
}

void ts_redis_url(char *buf, size_t size, int port)
{
    snprintf(buf, size, "redis://127.0.0.1:%d", port);
}

bool ts_redis_fixture_is_cluster(void)
{
    const char *v = getenv("TIDINGS_TEST_REDIS_URL_FILE");
    return v && *v;
}

void ts_redis_fixture_url(char *buf, size_t size)
{
    cr_assert(size > 8 && size <= 4096, "a URL buffer of %zu bytes", size);
    if (!ts_redis_fixture_is_cluster()) {
        ts_redis_url(buf, size, ts_redis_port());
        return;
    }
    const char *path = ts_env("TIDINGS_TEST_REDIS_URL_FILE");
    FILE *f = fopen(path, "r");
    cr_assert(f, "cannot open %s: is the redis_cluster fixture running?", path);
    bool read = fgets(buf, (int)size, f) != NULL;
    bool whole = read && (strchr(buf, '\n') || feof(f));
    fclose(f);
    cr_assert(read, "no URL in %s", path);
    cr_assert(whole, "the URL in %s does not fit in %zu bytes", path, size);
    buf[strcspn(buf, "\r\n")] = '\0';
    cr_assert(strncmp(buf, "redis://", 8) == 0 && buf[8], "no redis:// URL in %s: '%s'", path, buf);
}

void ts_unique(char *buf, size_t size, const char *prefix)
{
    static const char abc[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char rnd[10];
    cr_assert(getrandom(rnd, sizeof(rnd), 0) == (ssize_t)sizeof(rnd));
    char suffix[sizeof(rnd) + 1];
    for (size_t i = 0; i < sizeof(rnd); i++)
        suffix[i] = abc[rnd[i] % (sizeof(abc) - 1)];
    suffix[sizeof(rnd)] = '\0';
    int n = snprintf(buf, size, "%s_%s", prefix, suffix);
    cr_assert(n > 0 && (size_t)n < size, "unique name for '%s' does not fit", prefix);
}

int ts_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    cr_assert(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    cr_assert(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    close(fd);
    return ntohs(a.sin_port);
}

uint64_t ts_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void ts_sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}
