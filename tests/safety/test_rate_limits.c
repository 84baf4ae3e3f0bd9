/* tests/safety/test_rate_limits.c -- each route class spends its own bucket, answered 429
 * with Retry-After, RateLimit-Policy and RateLimit (the IETF httpapi draft) once spent; a
 * user's bucket holds across two processes on one Redis; registration is limited per client
 * address, read from X-Forwarded-For only when the peer is a trusted proxy; /metrics counts
 * the refusals by class. (The suites' servers run with --rate-limits off; these turn it on,
 * and leave registration unlimited where they do not test it: every test registers from
 * 127.0.0.1, whose bucket the fixture Redis keeps.) */
#include "tests/safety/safety.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <hiredis/hiredis.h>

TestSuite(rate_limits, .timeout = 120);

static void expect_limited(const char *answer, int status, const char *cls, const char *why)
{
    char v[128], want[64];
    cr_expect_eq(status, 429, "%s: answered %d: %.200s", why, status, answer);
    cr_expect(strstr(answer, "application/problem+json") != NULL, "%s", why);
    cr_expect(strstr(answer, "urn:tidings:problem:too-many-requests") != NULL, "%s", why);
    cr_expect(sf_header(answer, "Retry-After", v, sizeof(v)) && atoi(v) >= 1, "%s: Retry-After",
              why);
    snprintf(want, sizeof(want), "\"%s\";r=0;t=", cls);
    cr_expect(sf_header(answer, "RateLimit", v, sizeof(v)) && strncmp(v, want, strlen(want)) == 0,
              "%s: RateLimit is %s", why, sf_header(answer, "RateLimit", v, sizeof(v)));
    snprintf(want, sizeof(want), "\"%s\";q=", cls);
    cr_expect(sf_header(answer, "RateLimit-Policy", v, sizeof(v)) &&
                  strncmp(v, want, strlen(want)) == 0,
              "%s: RateLimit-Policy", why);
}

Test(rate_limits, publishing_spends_the_authors_bucket_and_says_what_is_left)
{
    ts_server_t s;
    sf_server_start(&s, (const char *const[]){"--rate-limits", "on", "--rate-publish", "3/m",
                                              "--rate-register", "off", NULL});
    ts_user_t ana, bob;
    ts_register(s.port, "rl", &ana);
    ts_register(s.port, "rl", &bob);
    char answer[8192], v[128];
    for (int i = 0; i < 3; i++) {
        int st = sf_request_from("127.0.0.1", s.port, "POST", "/v1/posts", ana.token, NULL,
                                 "{\"text\":\"within the limit\"}", answer, sizeof(answer));
        cr_expect_eq(st, 202, "post %d: %.200s", i, answer);
        cr_expect_str_eq(sf_header(answer, "RateLimit-Policy", v, sizeof(v)),
                         "\"publish\";q=3;w=60");
        char want[64];
        snprintf(want, sizeof(want), "\"publish\";r=%d;t=", 2 - i);
        cr_expect(sf_header(answer, "RateLimit", v, sizeof(v)) &&
                      strncmp(v, want, strlen(want)) == 0,
                  "post %d: RateLimit %s", i, v);
    }
    int st = sf_request_from("127.0.0.1", s.port, "POST", "/v1/posts", ana.token, NULL,
                             "{\"text\":\"one too many\"}", answer, sizeof(answer));
    expect_limited(answer, st, "publish", "a fourth post within the minute");
    /* Another user's bucket is their own; reads are another class. */
    st = sf_request_from("127.0.0.1", s.port, "POST", "/v1/posts", bob.token, NULL,
                         "{\"text\":\"mine\"}", answer, sizeof(answer));
    cr_expect_eq(st, 202, "another author: %.200s", answer);
    st = sf_request_from("127.0.0.1", s.port, "GET", "/v1/timeline", ana.token, NULL, NULL, answer,
                         sizeof(answer));
    cr_expect_eq(st, 200, "a read by the limited author: %.200s", answer);
    cr_expect(sf_header(answer, "RateLimit-Policy", v, sizeof(v)) &&
              strncmp(v, "\"read\";", 7) == 0);
    cr_expect_geq(ts_metric(s.port, "tidings_http_rate_limited_total{class=\"publish\"}"), 1);
    ts_server_stop(&s, 5000);
}

/* One request of each class twice, with that class at one a minute: the second is refused. */
Test(rate_limits, every_class_has_its_own_limit)
{
    ts_server_t s;
    sf_server_start(&s,
                    (const char *const[]){"--rate-limits", "on", "--rate-interact", "1/m",
                                          "--rate-follow", "1/m", "--rate-read", "1/m",
                                          "--rate-stream", "1/m", "--rate-register", "off", NULL});
    ts_user_t ana, bob;
    ts_register(s.port, "cls", &ana);
    ts_register(s.port, "cls", &bob);
    char post[24], path[256], answer[8192];
    ts_post(s.port, &bob, "to like", post);
    const struct {
        const char *cls, *method, *fmt;
    } cases[] = {
        {"interact", "PUT", "/v1/posts/%s/like"},
        {"follow", "PUT", "/v1/users/%s/follow"},
        {"read", "GET", "/v1/posts/%s"},
        {"stream", "GET", "/v1/stream?access_token=%s"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *arg = strcmp(cases[i].cls, "follow") == 0   ? bob.id
                          : strcmp(cases[i].cls, "stream") == 0 ? ana.token
                                                                : post;
        snprintf(path, sizeof(path), cases[i].fmt, arg);
        const char *token = strcmp(cases[i].cls, "stream") == 0 ? NULL : ana.token;
        int first = sf_request_from("127.0.0.1", s.port, cases[i].method, path, token, NULL, NULL,
                                    answer, sizeof(answer));
        cr_expect(first >= 200 && first < 300, "%s: the first answered %d: %.200s", cases[i].cls,
                  first, answer);
        int second = sf_request_from("127.0.0.1", s.port, cases[i].method, path, token, NULL, NULL,
                                     answer, sizeof(answer));
        expect_limited(answer, second, cases[i].cls, cases[i].cls);
    }
    ts_server_stop(&s, 5000);
}

Test(rate_limits, a_users_bucket_holds_across_two_processes)
{
    const char *const flags[] = {"--rate-limits", "on", "--rate-interact", "4/m", "--rate-register",
                                 "off",           NULL};
    ts_server_t a, b;
    sf_server_start(&a, flags);
    sf_server_start(&b, flags);
    ts_user_t ana, bob;
    ts_register(a.port, "two", &ana);
    ts_register(a.port, "two", &bob);
    char posts[6][24], path[256], answer[8192];
    for (int i = 0; i < 5; i++)
        ts_post(a.port, &bob, "likeable", posts[i]);
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof(path), "/v1/posts/%s/like", posts[i]);
        int st = sf_request_from("127.0.0.1", i % 2 ? b.port : a.port, "PUT", path, ana.token, NULL,
                                 NULL, answer, sizeof(answer));
        cr_expect_eq(st, 204, "like %d: %.200s", i, answer);
    }
    snprintf(path, sizeof(path), "/v1/posts/%s/like", posts[4]);
    int st = sf_request_from("127.0.0.1", b.port, "PUT", path, ana.token, NULL, NULL, answer,
                             sizeof(answer));
    expect_limited(answer, st, "interact", "the fifth like, on the second process");
    st = sf_request_from("127.0.0.1", a.port, "PUT", path, ana.token, NULL, NULL, answer,
                         sizeof(answer));
    expect_limited(answer, st, "interact", "the fifth like, on the first process");
    ts_server_stop(&a, 5000);
    ts_server_stop(&b, 5000);
}

/* Registers a fresh handle from source with extra headers; returns the status. */
static int register_from(int port, const char *source, const char *extra, char *answer, size_t size)
{
    char handle[32], body[96];
    ts_unique(handle, sizeof(handle), "reg");
    snprintf(body, sizeof(body), "{\"handle\":\"%s\"}", handle);
    return sf_request_from(source, port, "POST", "/v1/users", NULL, extra, body, answer, size);
}

Test(rate_limits, registration_is_limited_per_address_and_forwarded_for_only_from_proxies)
{
    ts_server_t s;
    sf_server_start(&s, (const char *const[]){"--rate-limits", "on", "--rate-register", "2/h",
                                              "--trusted-proxies", "127.0.0.4", NULL});
    /* Address buckets outlive a run (an hour here): start every address used here full. */
    const char *addresses[] = {"127.0.0.2",    "127.0.0.3", "198.51.100.7",
                               "198.51.100.8", "127.0.0.5", "192.0.2.77"};
    for (size_t i = 0; i < sizeof(addresses) / sizeof(addresses[0]); i++)
        freeReplyObject(ts_redis_fixture_command("DEL rl:{a:%s}:register", addresses[i]));
    char answer[8192];
    for (int i = 0; i < 2; i++)
        cr_expect_eq(register_from(s.port, "127.0.0.2", NULL, answer, sizeof(answer)), 201,
                     "%.200s", answer);
    int st = register_from(s.port, "127.0.0.2", NULL, answer, sizeof(answer));
    expect_limited(answer, st, "register", "a third account from one address");
    cr_expect_eq(register_from(s.port, "127.0.0.3", NULL, answer, sizeof(answer)), 201,
                 "another address: %.200s", answer);
    /* Behind the trusted proxy, each forwarded client has its own bucket. */
    const char *client_a = "X-Forwarded-For: 198.51.100.7\r\n";
    const char *client_b = "X-Forwarded-For: 203.0.113.9, 198.51.100.8\r\n";
    for (int i = 0; i < 2; i++)
        cr_expect_eq(register_from(s.port, "127.0.0.4", client_a, answer, sizeof(answer)), 201,
                     "%.200s", answer);
    st = register_from(s.port, "127.0.0.4", client_a, answer, sizeof(answer));
    expect_limited(answer, st, "register", "a third account of one forwarded client");
    cr_expect_eq(register_from(s.port, "127.0.0.4", client_b, answer, sizeof(answer)), 201,
                 "another forwarded client: %.200s", answer);
    /* From a peer that is no trusted proxy the header is the client's to forge: ignored. */
    for (int i = 0; i < 2; i++)
        cr_expect_eq(register_from(s.port, "127.0.0.5", NULL, answer, sizeof(answer)), 201);
    st = register_from(s.port, "127.0.0.5", "X-Forwarded-For: 192.0.2.77\r\n", answer,
                       sizeof(answer));
    expect_limited(answer, st, "register", "a forged X-Forwarded-For from an untrusted peer");
    cr_expect_geq(ts_metric(s.port, "tidings_http_rate_limited_total{class=\"register\"}"), 3);
    ts_server_stop(&s, 5000);
}

Test(rate_limits, bad_policies_are_refused_at_startup)
{
    const char *bad[] = {"3", "3/d", "0/m", "3/m:", "3/m:31", "x/m", "3/m:2x", "-1/s"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *argv[] = {(char *)ts_server_bin(), "--rate-publish", (char *)bad[i], NULL};
        pid_t pid = ts_proc_spawn(argv, "/dev/null");
        int status = ts_proc_wait(pid, 5000);
        cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 2, "--rate-publish %s: status %d",
                  bad[i], status);
    }
}

/* Round trips the server's request path made (tidings_redis_pipelines_total) during n
 * requests by u: method path, with a JSON body when body is not NULL. */
static double pipelines_during(int port, const ts_user_t *u, int n, const char *method,
                               const char *path, const char *body)
{
    char answer[8192];
    double before = ts_metric(port, "tidings_redis_pipelines_total");
    for (int i = 0; i < n; i++) {
        int st = sf_request_from("127.0.0.1", port, method, path, u->token, NULL, body, answer,
                                 sizeof(answer));
        cr_expect(st >= 200 && st < 300, "%s %s answered %d: %.200s", method, path, st, answer);
    }
    return ts_metric(port, "tidings_redis_pipelines_total") - before;
}

/* The check rides on a bodiless request's own first batch: as many round trips as with no
 * limits at all. A request with a body is checked with the headers, before the body: one
 * round trip more. (The id-node lease renewal may add a round trip or two meanwhile.) The
 * read cache is off here: a read it serves has no batch to ride on (see the next test). */
Test(rate_limits, a_request_without_a_body_pays_no_round_trip_for_its_check)
{
    ts_server_t on, off;
    sf_server_start(&on, (const char *const[]){"--rate-limits", "on", "--rate-register", "off",
                                               "--read-cache", "0", NULL});
    sf_server_start(&off, (const char *const[]){"--read-cache", "0", NULL});
    ts_user_t ana;
    ts_register(on.port, "rt", &ana);
    char post[24], path[64];
    ts_post(on.port, &ana, "read me", post);
    snprintf(path, sizeof(path), "/v1/posts/%s", post);
    enum { READS = 30, POSTS = 10 };
    double reads_on = pipelines_during(on.port, &ana, READS, "GET", path, NULL);
    double reads_off = pipelines_during(off.port, &ana, READS, "GET", path, NULL);
    cr_expect_geq(reads_off, READS, "every read goes to Redis at least once");
    cr_expect_leq(reads_on - reads_off, 2, "reads with limits: %.0f round trips, without: %.0f",
                  reads_on, reads_off);
    const char *body = "{\"text\":\"counted\"}";
    double posts_on = pipelines_during(on.port, &ana, POSTS, "POST", "/v1/posts", body);
    double posts_off = pipelines_during(off.port, &ana, POSTS, "POST", "/v1/posts", body);
    /* Either server's lease renewal may add a round trip or two to its count. */
    cr_expect(posts_on - posts_off >= POSTS - 2 && posts_on - posts_off <= POSTS + 2,
              "posts with limits: %.0f round trips, without: %.0f", posts_on, posts_off);
    ts_server_stop(&on, 5000);
    ts_server_stop(&off, 5000);
}

/* A read the cache serves goes to Redis for its check alone: one round trip each, where
 * without limits it makes none. */
Test(rate_limits, a_read_from_the_cache_pays_one_round_trip_for_its_check)
{
    ts_server_t on, off;
    sf_server_start(&on,
                    (const char *const[]){"--rate-limits", "on", "--rate-register", "off", NULL});
    sf_server_start(&off, NULL);
    ts_user_t ana;
    ts_register(on.port, "rc", &ana);
    char post[24], path[64];
    ts_post(on.port, &ana, "read me", post);
    snprintf(path, sizeof(path), "/v1/posts/%s", post);
    enum { READS = 30 };
    for (int i = 0; i < 1000 && (ts_metric(on.port, "tidings_read_cache_up") != 1 ||
                                 ts_metric(off.port, "tidings_read_cache_up") != 1);
         i++)
        ts_sleep_ms(10); /* the cache is up once its invalidations flow */
    pipelines_during(on.port, &ana, 1, "GET", path, NULL); /* fills each cache */
    pipelines_during(off.port, &ana, 1, "GET", path, NULL);
    double reads_on = pipelines_during(on.port, &ana, READS, "GET", path, NULL);
    double reads_off = pipelines_during(off.port, &ana, READS, "GET", path, NULL);
    cr_expect_leq(reads_off, 2, "cached reads without limits: %.0f round trips", reads_off);
    cr_expect(reads_on >= READS && reads_on <= READS + 2,
              "cached reads with limits: %.0f round trips for %d reads", reads_on, (int)READS);
    ts_server_stop(&on, 5000);
    ts_server_stop(&off, 5000);
}

/* A refused like writes nothing, though its check rode on (or ran just before) its batch. */
Test(rate_limits, a_refused_request_writes_nothing)
{
    ts_server_t s;
    sf_server_start(&s,
                    (const char *const[]){"--rate-limits", "on", "--rate-interact", "1/m",
                                          "--rate-follow", "1/m", "--rate-register", "off", NULL});
    ts_user_t ana, bob, cy;
    ts_register_all(s.port, "rw", &ana, &bob, &cy, NULL);
    char first[24], second[24], path[96], answer[8192];
    ts_post(s.port, &bob, "one", first);
    ts_post(s.port, &bob, "two", second);
    snprintf(path, sizeof(path), "/v1/posts/%s/like", first);
    cr_expect_eq(sf_request_from("127.0.0.1", s.port, "PUT", path, ana.token, NULL, NULL, answer,
                                 sizeof(answer)),
                 204, "%.200s", answer);
    snprintf(path, sizeof(path), "/v1/posts/%s/like", second);
    int st = sf_request_from("127.0.0.1", s.port, "PUT", path, ana.token, NULL, NULL, answer,
                             sizeof(answer));
    expect_limited(answer, st, "interact", "a second like within the minute");
    snprintf(path, sizeof(path), "/v1/users/%s/follow", bob.id);
    cr_expect_eq(sf_request_from("127.0.0.1", s.port, "PUT", path, ana.token, NULL, NULL, answer,
                                 sizeof(answer)),
                 204, "%.200s", answer);
    snprintf(path, sizeof(path), "/v1/users/%s/follow", cy.id);
    st = sf_request_from("127.0.0.1", s.port, "PUT", path, ana.token, NULL, NULL, answer,
                         sizeof(answer));
    expect_limited(answer, st, "follow", "a second follow within the minute");
    redisReply *likes = ts_redis_fixture_command("SCARD likes:{%s}", second);
    cr_expect_eq(likes->integer, 0, "the refused like was not written");
    freeReplyObject(likes);
    redisReply *follows = ts_redis_fixture_command("ZSCORE followers:{%s} %s", cy.id, ana.id);
    cr_expect_eq(follows->type, REDIS_REPLY_NIL, "the refused follow was not written");
    freeReplyObject(follows);
    ts_server_stop(&s, 5000);
}

/* Refused without a body (401, 429), the connection stays open for the next request. */
Test(rate_limits, a_refused_bodiless_request_keeps_its_connection)
{
    ts_server_t s;
    sf_server_start(&s, (const char *const[]){"--rate-limits", "on", "--rate-read", "1/m",
                                              "--rate-register", "off", NULL});
    ts_user_t ana;
    ts_register(s.port, "ka", &ana);
    int fd = sf_connect_from("127.0.0.1", s.port);
    cr_assert_geq(fd, 0);
    char req[512], answer[8192];
    const char *const expected[] = {"200", "429", "401", "429"};
    for (int i = 0; i < 4; i++) {
        snprintf(req, sizeof(req),
                 "GET /v1/timeline HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\n\r\n",
                 i == 2 ? "tdg_1_nottoken" : ana.token);
        cr_assert_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
        cr_assert_gt(sf_read_response(fd, answer, sizeof(answer), 5000), 0,
                     "request %d on the same connection got no answer", i);
        char status[4] = {0};
        memcpy(status, answer + 9, 3);
        cr_expect_str_eq(status, expected[i], "request %d: %.200s", i, answer);
    }
    cr_expect_not(sf_closed_by_peer(fd, 100), "the connection is still open");
    close(fd);
    ts_server_stop(&s, 5000);
}
