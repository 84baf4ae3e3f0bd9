/* tests/fanout/test_inactive.c -- followers not seen for --inactive-days get no timeline
 * writes, and their first read rebuilds the timeline: over real HTTP, with servers whose clock
 * runs weeks ahead (--clock-offset-ms) on one Redis, checked in Redis as well as through
 * GET /v1/timeline. Each test has its own Redis (a Redis Cluster in test_inactive_cluster).
 *
 * The returning user B and the user A who never left follow the same authors; A mutes one of
 * them and B blocks it, so both see the same posts, and the test compares B's rebuilt pages
 * with A's item by item (ids and reposted_by). The rebuild's first read is made on a server
 * without the engine, so "rebuilding: true" is certain, not a race with a fast engine.
 */
#include "tests/fanout/fx.h"

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(inactive, .timeout = 240);

#define DAY_MS 86400000ull
#define PAGE 5

static ts_redis_t redis;

/* A server on redis whose clock runs days ahead, with the engine or without, and more flags
 * (NULL-terminated, may be NULL). */
static void start_at(ts_server_t *s, int days, bool engine, const char *extra)
{
    char offset[32];
    snprintf(offset, sizeof(offset), "%llu", (unsigned long long)days * DAY_MS);
    const char *args[] = {"--clock-offset-ms",
                          offset,
                          "--claim-idle-ms",
                          "1000",
                          "--engine",
                          engine ? "on" : "off",
                          extra ? "--inactive-days" : NULL,
                          extra,
                          NULL};
    ts_server_start(s, redis.url, args, true);
}

/* GET /v1/timeline?limit=PAGE from cursor (NULL: the first page); a new reference. */
static json_t *page(int port, const ts_user_t *u, const char *cursor)
{
    if (cursor)
        return ts_callf(port, "GET", u, NULL, 200, "/v1/timeline?limit=%d&cursor=%s", PAGE, cursor);
    return ts_callf(port, "GET", u, NULL, 200, "/v1/timeline?limit=%d", PAGE);
}

static bool rebuilding(const json_t *body)
{
    json_t *v = json_object_get(body, "rebuilding");
    cr_assert(json_is_boolean(v), "every timeline page says whether it is rebuilding");
    return json_is_true(v);
}

/* The whole timeline in pages of PAGE, as "id<-reposter" lines (a new array); every page must
 * say rebuilding: false. */
static json_t *all_pages(int port, const ts_user_t *u)
{
    json_t *lines = json_array();
    char cursor[32] = "";
    for (int pages = 0; pages < 100; pages++) {
        json_t *body = page(port, u, cursor[0] ? cursor : NULL);
        cr_assert_not(rebuilding(body), "page %d of %s still rebuilding", pages, u->handle);
        json_t *items = json_object_get(body, "items"), *item;
        size_t i;
        cr_assert_leq(json_array_size(items), PAGE);
        json_array_foreach(items, i, item)
        {
            char line[80];
            json_t *rb = json_object_get(item, "reposted_by");
            snprintf(line, sizeof(line), "%s<-%s", ts_str(item, "id"), rb ? ts_str(rb, "id") : "");
            json_array_append_new(lines, json_string(line));
        }
        const char *next = ts_str(body, "next_cursor");
        snprintf(cursor, sizeof(cursor), "%s", next);
        json_decref(body);
        if (!cursor[0])
            return lines;
    }
    cr_assert_fail("more than 100 pages");
    return lines;
}

static bool has_line(const json_t *lines, const char *prefix)
{
    size_t i;
    json_t *l;
    json_array_foreach(lines, i, l)
    {
        if (strncmp(json_string_value(l), prefix, strlen(prefix)) == 0)
            return true;
    }
    return false;
}

/* Does user's timeline in Redis hold entries newer than after (an id)? */
static long long entries_after(redisContext *c, uint64_t user, uint64_t after)
{
    return ts_redis_int(c, "ZCOUNT tl:{%llu} (%llu +inf", (unsigned long long)user,
                        (unsigned long long)after);
}

static uint64_t repost(int port, const ts_user_t *u, uint64_t post)
{
    int st = ts_status(port, "POST", u, NULL, "/v1/posts/%llu/repost", (unsigned long long)post);
    cr_assert(st >= 200 && st < 300, "repost answered %d", st);
    return post;
}

static void wait_idle(redisContext *c)
{
    cr_assert(ts_wait_queue_empty(c, 30000), "the job queue never drained");
}

Test(inactive, returning_user_sees_the_page_of_one_who_never_left)
{
    redis.aof = false;
    ts_redis_start_like_fixture(&redis);
    redisContext *c = ts_redis_connect(redis.port);
    ts_server_t s;

    /* Day 0: everyone registers; A and B follow x, y and z; A mutes z, B blocks z. */
    start_at(&s, 0, true, NULL);
    ts_user_t a, b, x, y, z, w;
    ts_register_all(s.port, "back", &a, &b, &x, &y, &z, &w, NULL);
    const ts_user_t *authors[] = {&x, &y, &z};
    for (int i = 0; i < 3; i++) {
        ts_follow(s.port, &a, authors[i]);
        ts_follow(s.port, &b, authors[i]);
    }
    json_decref(ts_callf(s.port, "PUT", &a, NULL, 204, "/v1/users/%s/mute", z.id));
    json_decref(ts_callf(s.port, "PUT", &b, NULL, 204, "/v1/users/%s/block", z.id));
    uint64_t before_x = ts_post(s.port, &x, "before the absence", NULL);
    uint64_t by_w = ts_post(s.port, &w, "by someone nobody here follows", NULL);
    uint64_t by_z = ts_post(s.port, &z, "by the muted and blocked one", NULL);
    wait_idle(c);
    cr_assert(ts_timeline_holds(c, b.num, before_x), "B gets writes while active");
    ts_server_stop_clean(&s, 20000);

    /* Day 15: A is seen (nobody is away for 30 days yet: no rebuild). */
    start_at(&s, 15, true, NULL);
    json_t *me = ts_callf(s.port, "GET", &a, NULL, 200, "/v1/timeline");
    cr_assert_not(rebuilding(me), "A was seen on day 0: not back from an absence");
    json_decref(me);
    ts_server_stop_clean(&s, 20000);

    /* Day 31: A is seen again (16 days after), B is not (31 days after). The authors post and
     * repost; one post is deleted. */
    start_at(&s, 31, true, NULL);
    json_decref(ts_callf(s.port, "GET", &a, NULL, 200, "/v1/timeline"));
    uint64_t last_before = by_z; /* every id minted from now on is greater */
    long long b_card = ts_redis_int(c, "ZCARD tl:{%llu}", (unsigned long long)b.num);
    uint64_t gone = 0, latest = 0;
    for (int i = 0; i < 9; i++) {
        char text[48];
        snprintf(text, sizeof(text), "while B is away %d", i);
        latest = ts_post(s.port, i % 2 ? &y : &x, text, NULL);
        if (i == 4)
            gone = latest;
        if (i == 2)
            repost(s.port, &y, by_w); /* an entry through a repost, by y */
        if (i == 5)
            repost(s.port, &x, by_z); /* the hidden author's post: nobody here sees it */
    }
    ts_post(s.port, &z, "hidden from both", NULL);
    fx_delete(s.port, &x, gone);
    wait_idle(c);

    /* The fan-out wrote to A and nothing to B. */
    cr_assert(ts_timeline_holds(c, a.num, latest), "an active follower still gets writes");
    cr_assert_eq(entries_after(c, b.num, last_before), 0,
                 "the fan-out wrote to B's timeline while B was inactive");
    cr_assert_eq(ts_redis_int(c, "ZCARD tl:{%llu}", (unsigned long long)b.num), b_card);
    ts_server_stop_clean(&s, 20000);

    /* B comes back, to a server without the engine: the page shows what is there, and says the
     * timeline is rebuilding, for as long as the job has not run. */
    start_at(&s, 31, false, NULL);
    json_t *first = page(s.port, &b, NULL);
    cr_assert(rebuilding(first), "B's first read after 31 days must say rebuilding: true");
    cr_assert_geq(json_array_size(json_object_get(first, "items")), 1,
                  "what is ready comes at once (B's entries from before)");
    json_decref(first);
    json_t *again = page(s.port, &b, NULL);
    cr_assert(rebuilding(again), "reads while the job waits say rebuilding too");
    json_decref(again);
    cr_assert_eq(ts_redis_int(c, "EXISTS rebuild:{%llu}", (unsigned long long)b.num), 1);
    /* A, seen on day 31, is not rebuilding. */
    json_t *a_page = page(s.port, &a, NULL);
    cr_assert_not(rebuilding(a_page));
    json_decref(a_page);

    /* An engine comes: within a bound the job ends, and B's pages are A's, item by item. */
    ts_server_t engine;
    start_at(&engine, 31, true, NULL);
    uint64_t until = ts_now_ms() + 20000;
    bool done = false;
    while (!done && ts_now_ms() < until) {
        json_t *p = page(s.port, &b, NULL);
        done = !rebuilding(p);
        json_decref(p);
        if (!done)
            ts_sleep_ms(50);
    }
    cr_assert(done, "the rebuild did not end within 20 s");
    json_t *pa = all_pages(s.port, &a), *pb = all_pages(s.port, &b);
    char *ja = json_dumps(pa, JSON_COMPACT), *jb = json_dumps(pb, JSON_COMPACT);
    /* x's post from before, 8 of the 9 posts made while B was away, and w's post as y's repost. */
    cr_assert_eq(json_array_size(pa), 10, "A's timeline: %s", ja);
    cr_assert_str_eq(jb, ja, "B's pages differ from A's");
    char want[64];
    snprintf(want, sizeof(want), "%llu<-%s", (unsigned long long)by_w, y.id);
    cr_assert(has_line(pb, want), "the repost by y is in B's timeline as a repost: %s", jb);
    snprintf(want, sizeof(want), "%llu<-", (unsigned long long)gone);
    cr_assert_not(has_line(pb, want), "the deleted post is absent");
    snprintf(want, sizeof(want), "%llu<-", (unsigned long long)by_z);
    cr_assert_not(has_line(pb, want), "the blocked author's post is absent, reposted or not");
    free(ja);
    free(jb);
    json_decref(pa);
    json_decref(pb);
    ts_server_stop_clean(&engine, 20000);
    ts_server_stop_clean(&s, 20000);
    ts_redis_close(c);
    ts_redis_cleanup(&redis);
}

/* Registers a follower pair and an author on a day-0 server, then returns with the server
 * stopped; a and b follow x. */
static void day_zero(redisContext *c, ts_user_t *a, ts_user_t *b, ts_user_t *x)
{
    ts_server_t s;
    start_at(&s, 0, true, NULL);
    ts_register_all(s.port, "zero", a, b, x, NULL);
    ts_follow(s.port, a, x);
    ts_follow(s.port, b, x);
    ts_post(s.port, x, "day zero", NULL);
    wait_idle(c);
    ts_server_stop_clean(&s, 20000);
}

Test(inactive, zero_days_turns_skipping_off)
{
    redis.aof = false;
    ts_redis_start_like_fixture(&redis);
    redisContext *c = ts_redis_connect(redis.port);
    ts_user_t a, b, x;
    day_zero(c, &a, &b, &x);

    /* Day 31 with --inactive-days 0: B, not seen for 31 days, is written to like anyone. */
    ts_server_t s;
    start_at(&s, 31, true, "0");
    uint64_t post = ts_post(s.port, &x, "on day 31", NULL);
    wait_idle(c);
    cr_assert(ts_timeline_holds(c, b.num, post), "with --inactive-days 0 nobody is skipped");
    cr_assert(ts_timeline_holds(c, a.num, post));
    json_t *p = page(s.port, &b, NULL);
    cr_assert_not(rebuilding(p), "nor is anyone's timeline rebuilt");
    cr_assert_eq(json_array_size(json_object_get(p, "items")), 2);
    json_decref(p);
    cr_assert_eq(ts_redis_int(c, "EXISTS rebuild:{%llu}", (unsigned long long)b.num), 0);
    ts_server_stop_clean(&s, 20000);
    ts_redis_close(c);
    ts_redis_cleanup(&redis);
}

Test(inactive, seen_is_written_at_most_once_an_hour)
{
    redis.aof = false;
    ts_redis_start_like_fixture(&redis);
    redisContext *c = ts_redis_connect(redis.port);
    ts_server_t s;
    start_at(&s, 0, true, NULL);
    ts_user_t u;
    ts_register(s.port, "seen", &u);
    redisReply *r = ts_redis_cmd_ok(c, "GET seen:{%llu}", (unsigned long long)u.num);
    cr_assert_eq(r->type, REDIS_REPLY_STRING, "a new user is seen at registration");
    unsigned long long registered = strtoull(r->str, NULL, 10);
    freeReplyObject(r);
    for (int i = 0; i < 5; i++)
        json_decref(ts_callf(s.port, "GET", &u, NULL, 200, "/v1/timeline"));
    r = ts_redis_cmd_ok(c, "GET seen:{%llu}", (unsigned long long)u.num);
    cr_assert_eq(strtoull(r->str, NULL, 10), registered, "requests within the hour write nothing");
    freeReplyObject(r);
    ts_server_stop_clean(&s, 20000);

    /* Two hours on, the next request writes the time once. */
    char offset[32];
    snprintf(offset, sizeof(offset), "%llu", 2 * 3600000ull);
    const char *args[] = {"--clock-offset-ms", offset, NULL};
    ts_server_start(&s, redis.url, args, true);
    json_decref(ts_callf(s.port, "GET", &u, NULL, 200, "/v1/timeline"));
    r = ts_redis_cmd_ok(c, "GET seen:{%llu}", (unsigned long long)u.num);
    unsigned long long later = strtoull(r->str, NULL, 10);
    freeReplyObject(r);
    cr_assert_geq(later, registered + 2 * 3600000ull, "seen two hours later");
    cr_assert_lt(later, registered + 3 * 3600000ull);
    json_t *p = page(s.port, &u, NULL);
    cr_assert_not(rebuilding(p), "two hours away is no absence");
    json_decref(p);
    ts_server_stop_clean(&s, 20000);
    ts_redis_close(c);
    ts_redis_cleanup(&redis);
}

Test(inactive, rebuild_job_survives_its_worker_dying)
{
    redis.aof = false;
    ts_redis_start_like_fixture(&redis);
    redisContext *c = ts_redis_connect(redis.port);
    ts_user_t a, b, x;
    day_zero(c, &a, &b, &x);

    /* Day 31: x posts while B is away; A is seen first. */
    ts_server_t s;
    start_at(&s, 31, true, NULL);
    json_decref(ts_callf(s.port, "GET", &a, NULL, 200, "/v1/timeline"));
    wait_idle(c); /* A and x came back too (31 days): their rebuilds ran */
    uint64_t post = ts_post(s.port, &x, "while B is away", NULL);
    wait_idle(c);
    cr_assert_not(ts_timeline_holds(c, b.num, post));
    ts_server_stop_clean(&s, 20000);

    /* B comes back on a server without the engine; a worker takes the job and dies with it
     * unacknowledged, as a kill -9 leaves it (read into a consumer that never comes back). */
    start_at(&s, 31, false, NULL);
    json_t *p = page(s.port, &b, NULL);
    cr_assert(rebuilding(p));
    json_decref(p);
    long long taken = 0;
    for (int shard = 0; shard < TS_FANOUT_SHARDS; shard++) {
        redisReply *r = ts_redis_cmd_ok(c,
                                        "XREADGROUP GROUP engine dead-worker COUNT 10 STREAMS "
                                        "fanout:{%d} >",
                                        shard);
        if (r->type == REDIS_REPLY_ARRAY)
            taken += (long long)r->element[0]->element[1]->elements;
        freeReplyObject(r);
    }
    cr_assert_eq(taken, 1, "the rebuild job is the one job queued");
    ts_sleep_ms(300);
    p = page(s.port, &b, NULL);
    cr_assert(rebuilding(p), "a job its worker holds is not done");
    json_decref(p);

    /* Another engine claims it after --claim-idle-ms and finishes it. */
    ts_server_t engine;
    start_at(&engine, 31, true, NULL);
    uint64_t until = ts_now_ms() + 20000;
    bool done = false;
    while (!done && ts_now_ms() < until) {
        p = page(s.port, &b, NULL);
        done = !rebuilding(p);
        json_decref(p);
        if (!done)
            ts_sleep_ms(50);
    }
    cr_assert(done, "the claimed rebuild did not end within 20 s");
    cr_assert(ts_timeline_holds(c, b.num, post), "the rebuild wrote what B missed");
    cr_assert(ts_wait_queue_empty(c, 10000), "the claimed job was acknowledged");
    long long length, pending, dead;
    ts_queue(c, &length, &pending, &dead);
    cr_assert_eq(dead, 0, "nothing was dead-lettered");
    json_t *pa = all_pages(s.port, &a), *pb = all_pages(s.port, &b);
    cr_assert(json_equal(pa, pb), "B's pages are A's");
    json_decref(pa);
    json_decref(pb);
    ts_server_stop_clean(&engine, 20000);
    ts_server_stop_clean(&s, 20000);
    ts_redis_close(c);
    ts_redis_cleanup(&redis);
}

/* Waits up to 20 s for u's timeline to stop rebuilding (read on port). */
static bool wait_rebuilt(int port, const ts_user_t *u)
{
    uint64_t until = ts_now_ms() + 20000;
    while (ts_now_ms() < until) {
        json_t *p = page(port, u, NULL);
        bool done = !rebuilding(p);
        json_decref(p);
        if (done)
            return true;
        ts_sleep_ms(50);
    }
    return false;
}

Test(inactive, a_user_who_follows_nobody_is_rebuilt_to_their_own_posts)
{
    redis.aof = false;
    ts_redis_start_like_fixture(&redis);
    redisContext *c = ts_redis_connect(redis.port);
    ts_server_t s;
    start_at(&s, 0, true, NULL);
    ts_user_t u;
    ts_register(s.port, "alone", &u);
    uint64_t own = ts_post(s.port, &u, "my own", NULL);
    wait_idle(c);
    ts_server_stop_clean(&s, 20000);

    start_at(&s, 40, false, NULL);
    json_t *p = page(s.port, &u, NULL);
    cr_assert(rebuilding(p));
    json_decref(p);
    ts_server_t engine;
    start_at(&engine, 40, true, NULL);
    cr_assert(wait_rebuilt(s.port, &u), "a rebuild with nothing to write still ends");
    uint64_t ids[4];
    cr_assert_eq(ts_timeline(s.port, &u, PAGE, ids, NULL, 4), 1);
    cr_assert_eq(ids[0], own, "the user's own post stays");
    cr_assert_eq(ts_redis_int(c, "EXISTS rebuild:{%llu}", (unsigned long long)u.num), 0);
    ts_server_stop_clean(&engine, 20000);
    ts_server_stop_clean(&s, 20000);
    ts_redis_close(c);
    ts_redis_cleanup(&redis);
}

Test(inactive, a_rebuild_job_without_a_user_is_dead_lettered)
{
    redis.aof = false;
    ts_redis_start_like_fixture(&redis);
    redisContext *c = ts_redis_connect(redis.port);
    ts_server_t s;
    start_at(&s, 0, true, NULL);
    freeReplyObject(ts_redis_cmd_ok(c, "XADD fanout:{0} * kind rebuild at 1"));
    wait_idle(c);
    redisReply *r = ts_redis_cmd_ok(c, "XRANGE fanout:dead - +");
    cr_assert_eq(r->elements, 1, "the malformed job went to the dead letters");
    bool why = false;
    const redisReply *fields = r->element[0]->element[1];
    for (size_t k = 0; k < fields->elements; k++)
        why |= strstr(fields->element[k]->str, "no user") != NULL;
    cr_assert(why, "the dead letter says why");
    freeReplyObject(r);
    ts_server_stop_clean(&s, 20000);
    ts_redis_close(c);
    ts_redis_cleanup(&redis);
}
