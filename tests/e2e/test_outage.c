/* tests/e2e/test_outage.c -- the server against a Redis that crashes and comes back. */
#include "tests/e2e/world.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static ts_redis_t own;
static ts_server_t srv;

static void start(void)
{
    memset(&own, 0, sizeof(own));
    memset(&srv, 0, sizeof(srv));
    ts_redis_start(&own, 0);
    char url[64];
    ts_redis_url(url, sizeof(url), own.port);
    ts_server_start(&srv, url, NULL, true);
}

static void stop(void)
{
    ts_server_stop(&srv, 5000);
    ts_redis_cleanup(&own);
}

TestSuite(outage, .init = start, .fini = stop, .timeout = 120);

static int status_of(const char *method, const char *path, const char *token, const char *body,
                     char *retry_after, size_t size)
{
    ts_resp_t r;
    ts_http(srv.port, method, path, token, NULL, body, &r);
    int status = r.status;
    if (retry_after && !ts_resp_header(&r, "Retry-After", retry_after, size))
        retry_after[0] = '\0';
    if (status == 503 && strcmp(path, "/readyz") != 0) { /* readiness answers its checks */
        char ct[64];
        cr_expect(ts_resp_header(&r, "Content-Type", ct, sizeof(ct)) &&
                      strcmp(ct, "application/problem+json") == 0,
                  "%s %s: a 503 that is not a problem: %s", method, path, r.body);
    }
    ts_resp_free(&r);
    return status;
}

/* Polls path until it answers want, up to timeout_ms; returns the time it took or -1. */
static long until_status(const char *path, const char *token, int want, int timeout_ms)
{
    uint64_t t0 = ts_now_ms();
    do {
        if (status_of("GET", path, token, NULL, NULL, 0) == want)
            return (long)(ts_now_ms() - t0);
        ts_sleep_ms(50);
    } while (ts_now_ms() - t0 < (uint64_t)timeout_ms);
    return -1;
}

Test(outage, answers_503_with_retry_after_then_recovers)
{
    ts_user_t u;
    ts_register(srv.port, "out", &u);
    char path[64];
    snprintf(path, sizeof(path), "/v1/users/%s", u.id);
    cr_assert_eq(status_of("GET", path, u.token, NULL, NULL, 0), 200);

    ts_redis_kill(&own);
    char retry[32];
    int st = status_of("GET", path, u.token, NULL, retry, sizeof(retry));
    cr_expect_eq(st, 503, "GET profile with redis down: %d", st);
    cr_expect(retry[0] && atoi(retry) >= 1, "no Retry-After on the 503 ('%s')", retry);
    st = status_of("POST", "/v1/users", NULL, "{\"handle\":\"during_outage\"}", retry,
                   sizeof(retry));
    cr_expect_eq(st, 503, "POST /v1/users with redis down: %d", st);
    cr_expect(retry[0], "no Retry-After on the 503");
    cr_expect_geq(until_status("/readyz", NULL, 503, 3000), 0, "/readyz did not turn 503");
    status_of("GET", "/readyz", NULL, NULL, retry, sizeof(retry));
    cr_expect(retry[0], "no Retry-After on /readyz 503");
    cr_expect_eq(status_of("GET", "/healthz", NULL, NULL, NULL, 0), 200,
                 "liveness must not depend on redis");
    cr_expect(ts_proc_alive(srv.pid), "the server died with redis");

    ts_redis_start(&own, own.port); /* an empty redis: the old user is gone */
    long took = until_status("/readyz", NULL, 200, 10000);
    cr_assert_geq(took, 0, "/readyz not 200 within 10 s of redis coming back");
    ts_user_t v;
    ts_register(srv.port, "back", &v);
    snprintf(path, sizeof(path), "/v1/users/%s", v.id);
    cr_expect_eq(status_of("GET", path, v.token, NULL, NULL, 0), 200);
    char post_id[24];
    ts_post(srv.port, &v, "after the outage", post_id);
}

Test(outage, shuts_down_cleanly_after_an_outage)
{
    ts_redis_kill(&own);
    cr_expect_geq(until_status("/readyz", NULL, 503, 3000), 0);
    ts_redis_start(&own, own.port);
    cr_assert_geq(until_status("/readyz", NULL, 200, 10000), 0);
    int status = ts_server_stop(&srv, 10000);
    cr_expect(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "exit after an outage: wait status 0x%x", status);
}

Test(outage, shuts_down_promptly_while_redis_is_down)
{
    ts_redis_kill(&own);
    cr_expect_geq(until_status("/readyz", NULL, 503, 3000), 0);
    uint64_t t0 = ts_now_ms();
    int status = ts_server_stop(&srv, 10000);
    cr_expect(status != -1, "the server did not stop within 10 s with redis down");
    cr_expect(status == -1 || (WIFEXITED(status) && WEXITSTATUS(status) == 0), "wait status 0x%x",
              status);
    cr_expect_lt(ts_now_ms() - t0, 5000, "shutdown took %llu ms",
                 (unsigned long long)(ts_now_ms() - t0));
}
