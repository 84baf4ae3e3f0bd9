/* tests/safety/test_connections.c -- abusive connections get bounded answers while others are
 * served: drip-fed and idle requests are cut at --request-deadline, one address holds at most
 * --max-connections-per-address, a token is checked before any body byte is read, and the
 * connection limit leaves the open-files table room for Redis. The abuser connects from
 * 127.0.0.2 (any 127/8 address is loopback), the well-behaved client from 127.0.0.1. */
#include "tests/safety/safety.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define ABUSER "127.0.0.2"
#define PROMPT_MS 1000 /* a well-behaved request is answered within this while abuse goes on */

TestSuite(connections, .timeout = 120);

/* GET /readyz from 127.0.0.1: answered 200, and how long it took. */
static uint64_t timed_readyz(int port)
{
    uint64_t start = ts_now_ms();
    ts_resp_t r;
    ts_http(port, "GET", "/readyz", NULL, NULL, NULL, &r);
    cr_expect_eq(r.status, 200, "readyz answered %d while the abuse went on", r.status);
    ts_resp_free(&r);
    return ts_now_ms() - start;
}

Test(connections, a_drip_fed_request_is_cut_at_the_deadline_while_others_are_answered)
{
    ts_server_t s;
    sf_server_start(&s, (const char *const[]){"--request-deadline", "2", NULL});
    int fd = sf_connect_from(ABUSER, s.port);
    cr_assert(fd >= 0);
    const char *head = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Drip: ";
    cr_assert_eq(send(fd, head, strlen(head), 0), (ssize_t)strlen(head));
    uint64_t start = ts_now_ms(), cut = 0;
    uint64_t slowest = 0;
    while (ts_now_ms() - start < 8000) {
        if (send(fd, "a", 1, MSG_NOSIGNAL) != 1 || sf_closed_by_peer(fd, 0)) {
            cut = ts_now_ms() - start;
            break;
        }
        uint64_t took = timed_readyz(s.port);
        slowest = took > slowest ? took : slowest;
        ts_sleep_ms(300);
    }
    close(fd);
    cr_expect(cut >= 1500 && cut <= 4000, "the drip-fed request was cut after %llu ms (0: never)",
              (unsigned long long)cut);
    cr_expect(slowest < PROMPT_MS, "a readyz from another address took %llu ms",
              (unsigned long long)slowest);
    cr_expect_geq(
        ts_metric(s.port, "tidings_http_connections_cut_total{reason=\"request_deadline\"}"), 1);
    ts_server_stop(&s, 5000);
}

Test(connections, an_idle_connection_is_cut_at_the_deadline_and_a_busy_one_is_not)
{
    ts_server_t s;
    sf_server_start(&s, (const char *const[]){"--request-deadline", "1", NULL});
    int idle = sf_connect_from(ABUSER, s.port);
    /* A keep-alive client asking every 300 ms stays connected across several deadlines. */
    int busy = sf_connect_from("127.0.0.1", s.port);
    const char *req = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    for (int i = 0; i < 8; i++) {
        cr_assert_eq(send(busy, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
        char buf[1024];
        ssize_t n = sf_read_response(busy, buf, sizeof(buf), 2000);
        cr_assert(n > 0 && strncmp(buf, "HTTP/1.1 200", 12) == 0,
                  "request %d on the kept-alive connection got no answer", i);
        ts_sleep_ms(300);
    }
    cr_expect(sf_closed_by_peer(idle, 2000), "the idle connection is still open after 4 s");
    cr_expect(!sf_closed_by_peer(busy, 0), "the busy connection was cut");
    close(idle);
    close(busy);
    ts_server_stop(&s, 5000);
}

Test(connections, one_address_holds_at_most_its_cap_and_others_are_answered)
{
    ts_server_t s;
    sf_server_start(&s, (const char *const[]){"--max-connections-per-address", "8", NULL});
    int fds[40];
    for (int i = 0; i < 40; i++)
        fds[i] = sf_connect_from(ABUSER, s.port);
    ts_sleep_ms(300);
    int open = 0;
    for (int i = 0; i < 40; i++)
        open += fds[i] >= 0 && !sf_closed_by_peer(fds[i], 50);
    cr_expect_eq(open, 8, "%d connections from one address stayed open; the cap is 8", open);
    cr_expect(timed_readyz(s.port) < PROMPT_MS);
    cr_expect_geq(
        ts_metric(s.port, "tidings_http_connections_refused_total{reason=\"per_address\"}"), 32);
    /* Closing them gives the address its places back. */
    for (int i = 0; i < 40; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    ts_sleep_ms(300);
    int again = sf_connect_from(ABUSER, s.port);
    const char *req = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    cr_assert_eq(send(again, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
    char buf[256];
    cr_expect(sf_read_response(again, buf, sizeof(buf), 2000) > 0);
    close(again);
    ts_server_stop(&s, 5000);
}

Test(connections, a_trusted_proxy_is_not_capped)
{
    ts_server_t s;
    sf_server_start(&s, (const char *const[]){"--max-connections-per-address", "2",
                                              "--trusted-proxies", "127.0.0.3, 10.0.0.0/8", NULL});
    int fds[6];
    for (int i = 0; i < 6; i++)
        fds[i] = sf_connect_from("127.0.0.3", s.port);
    ts_sleep_ms(300);
    for (int i = 0; i < 6; i++) {
        cr_expect(fds[i] >= 0 && !sf_closed_by_peer(fds[i], 20), "proxy connection %d was cut", i);
        close(fds[i]);
    }
    ts_server_stop(&s, 5000);
}

Test(connections, a_token_is_checked_before_any_body_byte)
{
    ts_server_t s;
    sf_server_start(&s, NULL);
    int fd = sf_connect_from(ABUSER, s.port);
    /* 60 KB announced and never sent: the answer must not wait for it. */
    const char *head = "POST /v1/posts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       "Content-Length: 60000\r\n\r\n";
    cr_assert_eq(send(fd, head, strlen(head), 0), (ssize_t)strlen(head));
    char buf[2048];
    ssize_t n = sf_read_response(fd, buf, sizeof(buf), 2000);
    cr_assert(n > 0, "no answer before the body");
    cr_expect(strncmp(buf, "HTTP/1.1 401", 12) == 0, "answered: %.40s", buf);
    cr_expect(strstr(buf, "application/problem+json") != NULL);
    cr_expect(strstr(buf, "WWW-Authenticate: Bearer") != NULL);
    close(fd);
    /* A bad token too, and with the body already on its way. */
    ts_resp_t r;
    ts_http(s.port, "POST", "/v1/posts", "tdg_1_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", NULL,
            "{\"text\":\"hello\"}", &r);
    cr_expect_eq(r.status, 401);
    ts_resp_free(&r);
    ts_server_stop(&s, 5000);
}

Test(connections, a_route_without_token_takes_only_a_small_body)
{
    ts_server_t s;
    sf_server_start(&s, NULL);
    char body[6000];
    int n = snprintf(body, sizeof(body), "{\"handle\":\"ana\",\"display_name\":\"");
    memset(body + n, 'a', 5000);
    snprintf(body + n + 5000, sizeof(body) - (size_t)n - 5000, "\"}");
    ts_resp_t r;
    ts_http(s.port, "POST", "/v1/users", NULL, NULL, body, &r);
    cr_expect_eq(r.status, 413);
    cr_expect(strstr(r.body, "4096 bytes") != NULL, "%s", r.body);
    ts_resp_free(&r);
    ts_server_stop(&s, 5000);
}

/* Sends one request on a kept-alive connection and reads its answer into buf. */
static ssize_t keepalive_request(int fd, const char *method, const char *path, const char *body,
                                 char *buf, size_t size)
{
    char req[512];
    int n = snprintf(req, sizeof(req),
                     "%s %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     method, path, body ? strlen(body) : 0, body ? body : "");
    if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n)
        return 0;
    return sf_read_response(fd, buf, size, 5000);
}

/* With room for few connections, the server stops accepting at its limit instead of running
 * out of fds, so its Redis connections can still open (CLIENT KILL makes every pool
 * reconnect) and a client already connected is served while the flood is held. */
Test(connections, the_limit_leaves_room_for_redis_when_the_fd_table_is_small)
{
    /* This test process only. The flood fits in its own table beside its other fds, but not
     * in the server's beside its Redis connections, epoll sets and event fds. */
    enum { FDS = 300, FLOOD = 268, LIMIT = FDS - (256 + FDS / 32) };
    struct rlimit rl = {.rlim_cur = FDS, .rlim_max = FDS};
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    ts_redis_t redis; /* private: the test cuts its clients */
    ts_redis_start_like_fixture(&redis);
    ts_server_t s;
    ts_server_start(&s, redis.url,
                    (const char *const[]){"--max-connections-per-address", "0",
                                          "--request-deadline", "30", NULL},
                    true);
    int mine = sf_connect_from("127.0.0.1", s.port);
    char buf[8192];
    cr_assert(keepalive_request(mine, "GET", "/readyz", NULL, buf, sizeof(buf)) > 0);
    /* LIMIT connections are taken; the rest of the flood waits in the listen backlog. */
    int fds[FLOOD];
    for (int i = 0; i < FLOOD; i++)
        fds[i] = sf_connect_from(ABUSER, s.port);
    ts_sleep_ms(500);
    redisReply *kill = ts_redis_command(redis.url, "CLIENT KILL TYPE normal SKIPME yes");
    freeReplyObject(kill);
    char handle[32], body[96];
    ts_unique(handle, sizeof(handle), "fd");
    snprintf(body, sizeof(body), "{\"handle\":\"%s\"}", handle);
    cr_assert(keepalive_request(mine, "POST", "/v1/users", body, buf, sizeof(buf)) > 0);
    cr_expect(strncmp(buf, "HTTP/1.1 201", 12) == 0, "registering after the pools were cut: %.300s",
              buf);
    cr_assert(keepalive_request(mine, "GET", "/metrics", NULL, buf, sizeof(buf)) > 0);
    const char *open = strstr(buf, "\ntidings_http_connections_open ");
    cr_assert(open, "%.300s", buf);
    long long held = strtoll(open + strlen("\ntidings_http_connections_open "), NULL, 10);
    cr_expect(held >= LIMIT / 2 && held <= LIMIT, "%lld connections held at a limit of %d", held,
              LIMIT);
    for (int i = 0; i < FLOOD; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    close(mine);
    cr_expect_eq(ts_server_stop(&s, 10000) >> 8, 0, "the server did not stop cleanly");
    ts_redis_cleanup(&redis);
}
