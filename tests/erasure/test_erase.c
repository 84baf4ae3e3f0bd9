/* tests/erasure/test_erase.c -- DELETE /v1/me: the user is gone for the API from the 202 on,
 * and once the erasure job has run no key, member, field or value on any master holds their
 * id or their handle. A scanner reads every key of every master by its type; before the
 * erasure it must find the user (so a scanner that sees nothing cannot pass), after it must
 * find nothing. Also after a kill -9 of the process that ran the job. */
#include "tests/support/support.h"

#include <criterion/criterion.h>
#include <ctype.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>

static ts_server_t srv;
#define PORT (srv.port)

/* Above 2 followers an author's posts merge at read time (the hybrid fan-out); a left handle
 * rests 0.00003 days (3 s). */
#define QUARANTINE_S 3
static const char *const server_args[] = {"--celebrity-threshold",
                                          "2",
                                          "--claim-idle-ms",
                                          "1000",
                                          "--handle-quarantine-days",
                                          "0.00003",
                                          NULL};

/* The Redis the suite's servers use: the fixture, or a test's private one. */
static char redis_url[256];
static int redis_ports[16]; /* its masters */
static size_t redis_masters;

static void start(ts_server_t *s)
{
    ts_server_start(s, redis_url, server_args, true);
}

static size_t fixture_masters(int *ports, size_t max);

static void setup(void)
{
    ts_redis_fixture_url(redis_url, sizeof(redis_url));
    redis_masters = fixture_masters(redis_ports, 16);
    start(&srv);
}

static void teardown(void)
{
    ts_server_stop_clean(&srv, 20000);
}

/* Moves the suite's server to a Redis of its own. The fixture's queue is shared with every
 * suite's servers, some slow on purpose and all with other settings: another suite's engine
 * may run a job of this test (with the default --celebrity-threshold, a post that should
 * mark its author does not). */
static void use_own_redis(ts_redis_t *own)
{
    ts_server_stop_clean(&srv, 20000);
    ts_redis_start_like_fixture(own);
    snprintf(redis_url, sizeof(redis_url), "%s", own->url);
    redis_masters = own->cluster ? 3 : 1;
    for (size_t i = 0; i < redis_masters; i++)
        redis_ports[i] = own->cluster ? own->ports[i] : own->port;
    start(&srv);
}

TestSuite(erase, .init = setup, .fini = teardown, .timeout = 240);

/* ---- the scanner --------------------------------------------------------------------------- */

typedef struct trace_s {
    char lines[8][160];
    size_t n;
} trace_t;

/* Does s (len bytes, maybe not text) hold needle, ignoring case? */
static bool contains(const char *s, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= len; i++)
        if (strncasecmp(s + i, needle, n) == 0)
            return true;
    return false;
}

static bool holds(const char *s, size_t len, const char *id, const char *handle)
{
    return contains(s, len, id) || contains(s, len, handle);
}

static void note(trace_t *t, const char *key, const char *what)
{
    if (t->n < sizeof(t->lines) / sizeof(t->lines[0]))
        snprintf(t->lines[t->n], sizeof(t->lines[0]), "%.100s: %.50s", key, what);
    t->n++;
}

/* Every string in a reply tree (members, fields, values, stream entries). */
static void check_reply(const redisReply *r, const char *key, const char *id, const char *handle,
                        trace_t *t)
{
    if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) {
        if (holds(r->str, r->len, id, handle))
            note(t, key, r->str);
    } else if (r->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < r->elements; i++)
            check_reply(r->element[i], key, id, handle, t);
    }
}

/* The ports of the masters: the fixture's one redis-server, or each master of the cluster. */
static size_t fixture_masters(int *ports, size_t max)
{
    if (!ts_redis_fixture_is_cluster()) {
        ports[0] = ts_redis_port();
        return 1;
    }
    redisReply *r = ts_redis_fixture_command("CLUSTER SLOTS");
    size_t n = 0;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        int port = (int)r->element[i]->element[2]->element[1]->integer;
        bool seen = false;
        for (size_t k = 0; k < n; k++)
            seen = seen || ports[k] == port;
        if (!seen && n < max)
            ports[n++] = port;
    }
    freeReplyObject(r);
    cr_assert_geq(n, 3, "a cluster of 3 masters");
    return n;
}

/* Every key of every master holding id or handle (lowercase) in its name or contents. */
static void scan_all(const char *id, const char *handle, trace_t *t)
{
    memset(t, 0, sizeof(*t));
    const int *ports = redis_ports;
    size_t n = redis_masters;
    for (size_t m = 0; m < n; m++) {
        redisContext *c = redisConnect("127.0.0.1", ports[m]);
        cr_assert(c && !c->err, "connect to master %d", ports[m]);
        char cursor[32] = "0";
        do {
            redisReply *page = redisCommand(c, "SCAN %s COUNT 1000", cursor);
            cr_assert(page && page->type == REDIS_REPLY_ARRAY, "SCAN on %d", ports[m]);
            snprintf(cursor, sizeof(cursor), "%s", page->element[0]->str);
            const redisReply *keys = page->element[1];
            for (size_t i = 0; i < keys->elements; i++) {
                const char *key = keys->element[i]->str;
                char mark[64];
                snprintf(mark, sizeof(mark), "handleq:{%s}", handle);
                if (strcmp(key, mark) == 0) {
                    /* The quarantine mark names the handle (that is its job), never the id. */
                    redisReply *v = redisCommand(c, "GET %s", key);
                    if (v)
                        check_reply(v, key, id, "\x01", t);
                    freeReplyObject(v);
                    continue;
                }
                if (holds(key, keys->element[i]->len, id, handle)) {
                    note(t, key, "(key name)");
                    continue;
                }
                redisReply *type = redisCommand(c, "TYPE %s", key);
                const char *ty = type->str;
                redisReply *v = strcmp(ty, "string") == 0 ? redisCommand(c, "GET %s", key)
                                : strcmp(ty, "hash") == 0 ? redisCommand(c, "HGETALL %s", key)
                                : strcmp(ty, "set") == 0  ? redisCommand(c, "SMEMBERS %s", key)
                                : strcmp(ty, "zset") == 0 ? redisCommand(c, "ZRANGE %s 0 -1", key)
                                : strcmp(ty, "list") == 0 ? redisCommand(c, "LRANGE %s 0 -1", key)
                                : strcmp(ty, "stream") == 0
                                    ? redisCommand(c, "XRANGE %s - +", key)
                                    : NULL; /* "none": gone since the SCAN */
                if (v && strncmp(key, "post:", 5) == 0 && v->type == REDIS_REPLY_ARRAY) {
                    /* Another user's post may name the handle in its text: that text is
                     * theirs, and the handle now nobody's; the id must not be there. */
                    for (size_t f = 0; f + 1 < v->elements; f += 2)
                        if (strcmp(v->element[f]->str, "text") == 0)
                            check_reply(v->element[f + 1], key, id, "\x01", t);
                        else
                            check_reply(v->element[f + 1], key, id, handle, t);
                } else if (v) {
                    check_reply(v, key, id, handle, t);
                }
                freeReplyObject(v);
                freeReplyObject(type);
            }
            freeReplyObject(page);
        } while (strcmp(cursor, "0") != 0);
        redisFree(c);
    }
}

static void lower(char *dst, const char *src, size_t size)
{
    size_t i = 0;
    for (; src[i] && i + 1 < size; i++)
        dst[i] = (char)tolower((unsigned char)src[i]);
    dst[i] = '\0';
}

/* Waits up to timeout_ms for a scan that finds nothing of u; the last scan's finds. */
static void wait_no_trace(const ts_user_t *u, int timeout_ms, trace_t *t)
{
    char handle[40];
    lower(handle, u->handle, sizeof(handle));
    uint64_t until = ts_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        scan_all(u->id, handle, t);
        if (t->n == 0 || ts_now_ms() > until)
            return;
        ts_sleep_ms(300);
    }
}

static void expect_no_trace(const ts_user_t *u, int timeout_ms)
{
    trace_t t;
    wait_no_trace(u, timeout_ms, &t);
    for (size_t i = 0; i < t.n && i < 8; i++)
        cr_log_error("left behind: %s", t.lines[i]);
    cr_expect_eq(t.n, 0, "%zu traces of user %s (%s) left", t.n, u->id, u->handle);
}

/* ---- helpers --------------------------------------------------------------------------------- */

/* Sends the request and expects status with a problem+json body repeating it. */
static void expect_problem(const char *token, const char *method, const char *path,
                           const char *body, int status)
{
    ts_resp_t r;
    ts_http(PORT, method, path, token, NULL, body, &r);
    cr_expect_eq(r.status, status, "%s %s: expected %d, got %d: %s", method, path, status, r.status,
                 r.body);
    char ct[96];
    const char *got = ts_resp_header(&r, "Content-Type", ct, sizeof(ct));
    cr_expect(got && strncmp(got, "application/problem+json", 24) == 0, "%s %s: Content-Type %s",
              method, path, got ? got : "(none)");
    json_t *j = ts_resp_json(&r);
    cr_expect_eq(ts_int(j, "status"), status, "%s %s: the problem's status", method, path);
    json_decref(j);
    ts_resp_free(&r);
}

static void erase(const ts_user_t *u)
{
    ts_resp_t r;
    ts_http(PORT, "DELETE", "/v1/me", u->token, NULL, NULL, &r);
    cr_assert_eq(r.status, 202, "DELETE /v1/me: %d %s", r.status, r.body);
    cr_expect_eq(r.body_len, 0, "202 without a body");
    ts_resp_free(&r);
}

static void post_json(const ts_user_t *u, const char *body, char id[24])
{
    json_t *p = ts_callf(PORT, "POST", u, body, 202, "/v1/posts");
    snprintf(id, 24, "%s", ts_str(p, "id"));
    json_decref(p);
}

static long long user_count(const ts_user_t *viewer, const ts_user_t *u, const char *field)
{
    json_t *j = ts_callf(PORT, "GET", viewer, NULL, 200, "/v1/users/%s", u->id);
    long long n = ts_int(j, field);
    json_decref(j);
    return n;
}

static long long post_count(const ts_user_t *viewer, const char *post, const char *field)
{
    json_t *j = ts_callf(PORT, "GET", viewer, NULL, 200, "/v1/posts/%s", post);
    long long n = ts_int(j, field);
    json_decref(j);
    return n;
}

/* ---- DELETE /v1/me ------------------------------------------------------------------------ */

Test(erase, the_user_is_gone_for_the_api_from_the_202_on)
{
    ts_user_t a, b;
    ts_register(PORT, "erg", &a);
    ts_register(PORT, "erh", &b);
    char post[24];
    ts_post(PORT, &a, "soon gone", post);
    /* Verified once: the token is in the verification cache now. */
    json_decref(ts_call(PORT, "GET", "/v1/me", a.token, NULL, 200));
    erase(&a);

    expect_problem(a.token, "GET", "/v1/me", NULL, 401);
    expect_problem(a.token, "DELETE", "/v1/me", NULL, 401);
    expect_problem(a.token, "POST", "/v1/posts", "{\"text\":\"after\"}", 401);
    char path[96];
    snprintf(path, sizeof(path), "/v1/users/%s", a.id);
    expect_problem(b.token, "GET", path, NULL, 404);
    snprintf(path, sizeof(path), "/v1/users/%s/follow", a.id);
    expect_problem(b.token, "PUT", path, NULL, 404);
    snprintf(path, sizeof(path), "/v1/users/%s/block", a.id);
    expect_problem(b.token, "PUT", path, NULL, 404);

    /* A mention of the handle names nobody. */
    char body[160], mention[24];
    snprintf(body, sizeof(body), "{\"text\":\"hi @%s\"}", a.handle);
    post_json(&b, body, mention);
    json_t *p = ts_callf(PORT, "GET", &b, NULL, 200, "/v1/posts/%s", mention);
    cr_expect_eq(json_array_size(json_object_get(p, "mentions")), 0, "mentions of a gone user");
    json_decref(p);

    /* Once the job has run, the posts are gone too, and a like of them is refused. */
    expect_no_trace(&a, 30000);
    snprintf(path, sizeof(path), "/v1/posts/%s", post);
    expect_problem(b.token, "GET", path, NULL, 404);
    snprintf(path, sizeof(path), "/v1/posts/%s/like", post);
    expect_problem(b.token, "PUT", path, NULL, 404);
}

Test(erase, refusals_are_problems)
{
    expect_problem(NULL, "DELETE", "/v1/me", NULL, 401);
    expect_problem("tdg_1_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "DELETE", "/v1/me", NULL,
                   401);
    expect_problem("not-a-token", "DELETE", "/v1/me", NULL, 401);
    ts_user_t a;
    ts_register(PORT, "erp", &a);
    char wrong[128];
    snprintf(wrong, sizeof(wrong), "%s", a.token);
    wrong[strlen(wrong) - 1] = wrong[strlen(wrong) - 1] == 'A' ? 'B' : 'A';
    expect_problem(wrong, "DELETE", "/v1/me", NULL, 401);
    expect_problem(a.token, "PUT", "/v1/me", NULL, 405);
    /* None of them erased anything. */
    json_t *me = ts_call(PORT, "GET", "/v1/me", a.token, NULL, 200);
    cr_expect_str_eq(ts_str(me, "id"), a.id);
    json_decref(me);
}

/* a posts, replies, mentions, likes, reposts, follows and is followed, blocks and is muted,
 * deletes a post, is notified and notifies others; with celebrity, a has a third follower and
 * posts again, which marks them a celebrity (followers merge them at read time). Then a leaves,
 * and nothing of a may be left anywhere, while what the others did stays. */
static void populate_and_erase(bool celebrity)
{
    ts_redis_t own = {0};
    if (celebrity)
        use_own_redis(&own);
    ts_user_t a, b, c, d, e;
    ts_register(PORT, "era", &a);
    ts_register_all(PORT, celebrity ? "erc" : "ern", &b, &c, &d, &e, NULL);
    ts_follow(PORT, &b, &a);
    ts_follow(PORT, &c, &a);
    ts_follow(PORT, &a, &b);
    ts_follow(PORT, &a, &c);
    char pb[24], pc[24], pa1[24], pa2[24], pa3[24], reply[24], body[256], tmp[24];
    ts_post(PORT, &b, "b's post", pb);
    ts_post(PORT, &c, "c's post", pc);
    snprintf(body, sizeof(body), "{\"text\":\"hello @%s\"}", c.handle);
    post_json(&a, body, pa1);
    ts_post(PORT, &a, "a's second", pa2);
    ts_post(PORT, &a, "a's regret", pa3);
    ts_delete_post(PORT, &a, pa3);
    snprintf(body, sizeof(body), "{\"text\":\"a answers\",\"reply_to\":\"%s\"}", pb);
    post_json(&a, body, tmp);
    snprintf(body, sizeof(body), "{\"text\":\"hey @%s\"}", a.handle);
    post_json(&b, body, tmp);
    snprintf(body, sizeof(body), "{\"text\":\"b answers\",\"reply_to\":\"%s\"}", pa2);
    post_json(&b, body, reply);
    ts_like(PORT, &c, pa1);
    ts_like(PORT, &a, pb);
    json_decref(ts_callf(PORT, "POST", &a, NULL, 202, "/v1/posts/%s/repost", pc));
    json_decref(ts_callf(PORT, "POST", &c, NULL, 202, "/v1/posts/%s/repost", pa2));
    json_decref(ts_callf(PORT, "PUT", &a, NULL, 204, "/v1/users/%s/block", d.id));
    json_decref(ts_callf(PORT, "PUT", &e, NULL, 204, "/v1/users/%s/mute", a.id));
    if (celebrity) {
        ts_follow(PORT, &e, &a);
        ts_post(PORT, &a, "now famous", tmp);
    }
    /* Keys no index lists: an Idempotency-Key claim, and a rate bucket as the server writes
     * it when limits are on (these servers run without them). */
    ts_resp_t idem;
    ts_http(PORT, "POST", "/v1/posts", a.token, "Idempotency-Key: erase-me-too\r\n",
            "{\"text\":\"once\"}", &idem);
    cr_assert_eq(idem.status, 202, "%s", idem.body);
    ts_resp_free(&idem);
    struct redisContext *rc = ts_redis_connect(redis_ports[0]);
    freeReplyObject(ts_redis_cmd_ok(rc, "SET rl:{%s}:publish 1 PX 600000", a.id));
    cr_assert(ts_wait_queue_empty(rc, 60000), "the population's jobs ran");

    /* The scanner sees a now, in many places. */
    trace_t t;
    char handle[40];
    lower(handle, a.handle, sizeof(handle));
    scan_all(a.id, handle, &t);
    cr_assert_gt(t.n, 8, "the scanner finds the populated user (%zu places)", t.n);
    cr_assert_eq(user_count(&b, &b, "following_count"), 1);
    cr_assert_eq(post_count(&b, pb, "like_count"), 1);
    cr_assert_eq(post_count(&b, pc, "repost_count"), 1);
    json_t *bn = ts_list(PORT, &b, "/v1/notifications", NULL, 50);
    size_t b_notices = json_array_size(bn);
    json_decref(bn);
    cr_assert_geq(b_notices, 3, "b was followed, liked and answered by a");
    if (celebrity) {
        /* The marking walk may still be announcing when the queue looks empty (a
         * ThreadSanitizer server, its queue then shared with the other suites', missed 30 s
         * once). */
        long long merged = 0;
        for (uint64_t until = ts_now_ms() + 90000; !merged && ts_now_ms() < until;) {
            redisReply *celebs = ts_redis_cmd_ok(rc, "SISMEMBER celebs:{%s} %s", b.id, a.id);
            merged = celebs->integer;
            freeReplyObject(celebs);
            if (!merged)
                ts_sleep_ms(20);
        }
        cr_assert_eq(merged, 1, "b merges a at read time");
    }

    erase(&a);
    expect_no_trace(&a, 60000);

    /* The others' counts and lists follow. */
    cr_expect_eq(user_count(&b, &b, "following_count"), 0);
    cr_expect_eq(user_count(&b, &b, "followers_count"), 0);
    cr_expect_eq(user_count(&c, &c, "followers_count"), 0);
    cr_expect_eq(post_count(&b, pb, "like_count"), 0);
    cr_expect_eq(post_count(&b, pc, "repost_count"), 0);
    bn = ts_list(PORT, &b, "/v1/notifications", NULL, 50);
    cr_expect_eq(json_array_size(bn), 0, "every notice a caused b is withdrawn");
    json_decref(bn);
    json_t *cn = ts_list(PORT, &c, "/v1/notifications", NULL, 50);
    cr_expect_eq(json_array_size(cn), 0, "c's follow, mention and repost notices from a too");
    json_decref(cn);
    uint64_t ids[32], authors[32];
    size_t n = ts_timeline(PORT, &b, 32, ids, authors, 32);
    for (size_t i = 0; i < n; i++)
        cr_expect_neq(authors[i], a.num, "b's timeline holds nothing of a");
    /* What the others made stays: b's reply to a's post, c's post. */
    cr_expect_eq(post_count(&b, reply, "like_count"), 0);
    json_t *p = ts_callf(PORT, "GET", &c, NULL, 200, "/v1/posts/%s", pc);
    cr_expect_str_eq(ts_str(p, "text"), "c's post");
    json_decref(p);
    ts_redis_close(rc);
    if (celebrity) {
        ts_server_stop_clean(&srv, 20000);
        ts_redis_cleanup(&own);
    }
}

Test(erase, nothing_of_the_user_is_left_anywhere)
{
    populate_and_erase(false);
}

Test(erase, nothing_of_a_celebrity_is_left_anywhere)
{
    populate_and_erase(true);
}

/* The process running the erasure dies (kill -9) once it has begun retracting a hundred posts:
 * another process claims the job and the delete jobs it had queued, and it finishes from where
 * it was. */
Test(erase, the_erasure_survives_a_kill_9_of_its_process)
{
    /* A Redis of its own: two hundred jobs must run here within the bound. */
    ts_redis_t own = {0};
    use_own_redis(&own);
    ts_user_t a, b;
    ts_register(PORT, "erk", &a);
    ts_register(PORT, "erl", &b);
    ts_follow(PORT, &b, &a);
    for (int i = 0; i < 100; i++) {
        char text[32];
        snprintf(text, sizeof(text), "post %d", i);
        ts_post(PORT, &a, text, NULL);
    }
    erase(&a);
    /* Killed once stage 1 is under way: some posts retracted, their delete jobs queued
     * behind the erasure job, which the dead process held. */
    struct redisContext *rc = ts_redis_connect(redis_ports[0]);
    uint64_t until = ts_now_ms() + 10000;
    while (ts_redis_int(rc, "ZCARD dposts:{%s}", a.id) == 0 && ts_now_ms() < until)
        ;
    ts_redis_close(rc);
    ts_server_kill(&srv);
    start(&srv);
    expect_no_trace(&a, 90000);
    cr_expect_eq(user_count(&b, &b, "following_count"), 0);
    ts_server_stop_clean(&srv, 20000);
    ts_redis_cleanup(&own);
}

/* ---- the handle's quarantine ---------------------------------------------------------------- */

static int register_status(const char *handle)
{
    char body[96];
    snprintf(body, sizeof(body), "{\"handle\":\"%s\"}", handle);
    ts_resp_t r;
    ts_http(PORT, "POST", "/v1/users", NULL, NULL, body, &r);
    int status = r.status;
    if (status == 409) {
        char ct[96];
        const char *got = ts_resp_header(&r, "Content-Type", ct, sizeof(ct));
        cr_expect(got && strncmp(got, "application/problem+json", 24) == 0, "409 as a problem");
    }
    ts_resp_free(&r);
    return status;
}

Test(erase, the_handle_is_free_again_only_after_the_quarantine)
{
    ts_user_t a;
    ts_register(PORT, "erq", &a);
    char upper[40];
    snprintf(upper, sizeof(upper), "%s", a.handle);
    for (char *p = upper; *p; p++)
        *p = (char)toupper((unsigned char)*p);
    erase(&a);
    uint64_t erased = ts_now_ms();
    /* Quarantined, in any case; the mark holds the lowercased handle and no id. */
    cr_expect_eq(register_status(a.handle), 409);
    cr_expect_eq(register_status(upper), 409);
    char lowered[40];
    lower(lowered, a.handle, sizeof(lowered));
    struct redisContext *rc = ts_redis_connect(ts_redis_port());
    redisReply *v = ts_redis_cmd_ok(rc, "GET handleq:{%s}", lowered);
    cr_expect(v->type == REDIS_REPLY_STRING && strstr(v->str, a.id) == NULL,
              "the mark names no id");
    freeReplyObject(v);
    long long ttl = ts_redis_int(rc, "TTL handleq:{%s}", lowered);
    cr_expect(ttl > 0 && ttl <= QUARANTINE_S, "the mark expires within the quarantine: %lld", ttl);
    ts_redis_close(rc);
    /* Free once the quarantine is over (a second's grace for Redis' expiry), not before. */
    int status;
    while ((status = register_status(a.handle)) == 409 && ts_now_ms() < erased + 10000)
        ts_sleep_ms(200);
    cr_expect_eq(status, 201, "registrable after the quarantine");
    cr_expect_geq(ts_now_ms() - erased, (QUARANTINE_S - 1) * 1000, "not before it");
}

Test(erase, a_bad_quarantine_flag_is_refused)
{
    static const char *const bad[] = {"-1", "x", "4000", "1d", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char cmd[256];
        snprintf(cmd, sizeof(cmd), "%s --handle-quarantine-days '%s' >/dev/null 2>&1",
                 ts_env("TIDINGS_BIN"), bad[i]);
        int st = system(cmd);
        cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 2, "--handle-quarantine-days '%s' exits 2",
                  bad[i]);
    }
}
