/* tests/safety/test_feed_limits.c -- what one user can make another's feed cost: a reader
 * following many celebrities gets exact pages (the merge reads few posts of each), the
 * reposted-by index rb:{user} stays the size of the timeline it describes, and toggling a
 * follow notifies its target once per --refollow-window, not once per toggle.
 *
 * Each test runs its own server on its own Redis (ts_redis_start_like_fixture): its flags
 * (--timeline-max, --refollow-window) apply to jobs, and the fixture Redis' jobs may be
 * worked by any binary's server.
 */
#include "tests/safety/safety.h"
#include "tests/support/sse.h"

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

TestSuite(feed_limits, .timeout = 120);

typedef struct env_s {
    ts_redis_t redis;
    ts_server_t srv;
    struct redisContext *rc;
} env_t;

static void env_start(env_t *e, const char *const *extra)
{
    memset(e, 0, sizeof(*e));
    ts_redis_start_like_fixture(&e->redis);
    ts_server_start(&e->srv, e->redis.url, extra, true);
    e->rc = ts_redis_connect(e->redis.port);
}

static void env_stop(env_t *e)
{
    ts_redis_close(e->rc);
    ts_server_stop(&e->srv, 5000);
    ts_redis_cleanup(&e->redis);
}

static void settle(env_t *e)
{
    cr_assert(ts_wait_queue_empty(e->rc, 20000), "the fan-out queue did not empty");
}

static int cmp_desc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* ---- the celebrity merge --------------------------------------------------------------------- */

#define CELEBS 8
#define MAX_POSTS 128

/* Writes n posts of author with ids id0 + i * step straight into Redis, as a celebrity's: the
 * post hashes and posts:{author}, marked celeb:{author} and followed by reader. */
static void celebrity_posts(env_t *e, uint64_t reader, const ts_user_t *author, uint64_t id0,
                            uint64_t step, int n, uint64_t *all, size_t *n_all)
{
    freeReplyObject(ts_redis_cmd_ok(e->rc, "SET celeb:{%s} 1", author->id));
    freeReplyObject(
        ts_redis_cmd_ok(e->rc, "SADD celebs:{%llu} %s", (unsigned long long)reader, author->id));
    for (int i = 0; i < n; i++) {
        unsigned long long id = id0 + (uint64_t)i * step;
        freeReplyObject(ts_redis_cmd_ok(e->rc,
                                        "HSET post:{%llu} author %s text p%llu reply_to 0 "
                                        "reply_author 0 mentions %s",
                                        id, author->id, id, ""));
        freeReplyObject(ts_redis_cmd_ok(e->rc, "ZADD posts:{%s} %llu %llu", author->id, id, id));
        all[(*n_all)++] = id;
    }
}

/* One celebrity posted the newest 40 posts, seven others 5 each, older and interleaved, and a
 * followed normal author 3 (fanned out): every page size walks the same posts in order, so the
 * few posts read first of each celebrity are read again where they reach into the page. */
Test(feed_limits, celebrity_merge_pages_are_exact)
{
    env_t e;
    env_start(&e, (const char *const[]){"--rate-limits", "off", NULL});
    ts_user_t reader, normal, celeb[CELEBS];
    ts_register(e.srv.port, "mg_r", &reader);
    ts_register(e.srv.port, "mg_n", &normal);
    for (int i = 0; i < CELEBS; i++)
        ts_register(e.srv.port, "mg_c", &celeb[i]);
    uint64_t all[MAX_POSTS], base = ((uint64_t)time(NULL) * 1000 - 3600 * 1000) << 12;
    size_t n_all = 0;
    celebrity_posts(&e, reader.num, &celeb[0], base + 100000, 7, 40, all, &n_all);
    for (int c = 1; c < CELEBS; c++)
        celebrity_posts(&e, reader.num, &celeb[c], base + (uint64_t)c, CELEBS, 5, all, &n_all);
    ts_follow(e.srv.port, &reader, &normal);
    settle(&e);
    for (int i = 0; i < 3; i++)
        all[n_all++] = ts_post(e.srv.port, &normal, "normal", NULL);
    qsort(all, n_all, sizeof(all[0]), cmp_desc);
    cr_assert_eq(ts_wait_timeline(e.srv.port, &reader, n_all, NULL, 0, 10000), n_all);
    const int limits[] = {1, 2, 5, 7, 8, 20, 100};
    for (size_t l = 0; l < sizeof(limits) / sizeof(limits[0]); l++) {
        uint64_t got[MAX_POSTS];
        size_t n = ts_timeline(e.srv.port, &reader, limits[l], got, NULL, MAX_POSTS);
        cr_expect_eq(n, n_all, "limit %d: %zu posts, not %zu", limits[l], n, n_all);
        for (size_t i = 0; i < n && i < n_all; i++)
            cr_expect_eq(got[i], all[i], "limit %d: post %zu is %llu, not %llu", limits[l], i,
                         (unsigned long long)got[i], (unsigned long long)all[i]);
    }
    env_stop(&e);
}

/* Redis' output so far (INFO stats total_net_output_bytes). */
static long long redis_output_bytes(env_t *e)
{
    redisReply *r = ts_redis_cmd_ok(e->rc, "INFO stats");
    const char *at = strstr(r->str, "total_net_output_bytes:");
    long long n = at ? atoll(at + strlen("total_net_output_bytes:")) : -1;
    freeReplyObject(r);
    cr_assert(n >= 0);
    return n;
}

#define MANY 200

/* A reader following 200 celebrities of 20 posts each, interleaved: a page of 20 reads a few
 * posts of each (their newest two), not 21 of each (84,000 entries a page, about 170 kB of
 * replies, before the merge was bounded). */
Test(feed_limits, a_page_reads_few_posts_of_each_celebrity)
{
    env_t e;
    env_start(&e, (const char *const[]){"--rate-limits", "off", NULL});
    ts_user_t reader, *celeb = calloc(MANY, sizeof(*celeb));
    cr_assert(celeb);
    ts_register(e.srv.port, "mn_r", &reader);
    uint64_t *all = malloc(MANY * 20 * sizeof(*all)),
             base = ((uint64_t)time(NULL) * 1000 - 3600 * 1000) << 12;
    size_t n_all = 0;
    for (int c = 0; c < MANY; c++) {
        ts_register(e.srv.port, "mn_c", &celeb[c]);
        celebrity_posts(&e, reader.num, &celeb[c], base + (uint64_t)c, MANY, 20, all, &n_all);
    }
    qsort(all, n_all, sizeof(all[0]), cmp_desc);
    json_decref(ts_callf(e.srv.port, "GET", &reader, NULL, 200, "/v1/timeline?limit=20"));
    long long before = redis_output_bytes(&e);
    for (int i = 0; i < 10; i++) {
        json_t *page = ts_callf(e.srv.port, "GET", &reader, NULL, 200, "/v1/timeline?limit=20");
        json_t *items = json_object_get(page, "items");
        cr_assert_eq(json_array_size(items), 20);
        for (size_t k = 0; k < 20; k++)
            cr_expect_eq(ts_json_id(json_array_get(items, k), "id"), all[k], "post %zu", k);
        json_decref(page);
    }
    long long per_page = (redis_output_bytes(&e) - before) / 10;
    cr_log_info("a page read %lld bytes from Redis", per_page);
    cr_expect(per_page < 48 * 1024, "a page read %lld bytes from Redis", per_page);
    free(all);
    free(celeb);
    env_stop(&e);
}

/* ---- rb:{user} trimmed with the timeline ----------------------------------------------------- */

/* Every field of rb:{user} names an entry of tl:{user}; returns rb's size. */
static long long check_rb(env_t *e, const ts_user_t *u, const char *when)
{
    redisReply *r = ts_redis_cmd_ok(e->rc, "HKEYS rb:{%s}", u->id);
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *s = ts_redis_cmd_ok(e->rc, "ZSCORE tl:{%s} %s", u->id, r->element[i]->str);
        cr_expect(s->type == REDIS_REPLY_STRING, "%s: rb names %s, not in the timeline", when,
                  r->element[i]->str);
        freeReplyObject(s);
    }
    long long n = (long long)r->elements;
    freeReplyObject(r);
    return n;
}

/* With --timeline-max 20: 40 reposts into the reader's timeline, then 40 fanned-out posts that
 * push them out, then a read: rb:{reader} never holds a field for an entry the timeline no
 * longer has, and ends no bigger than the timeline. A read trims nothing (the writes do, one
 * in eight): it shows the newest --timeline-max entries, here friend's posts alone. */
Test(feed_limits, reposted_by_index_is_trimmed_with_the_timeline)
{
    env_t e;
    env_start(&e, (const char *const[]){"--timeline-max", "20", "--rate-limits", "off", NULL});
    ts_user_t reader, author, reposter, friend;
    ts_register(e.srv.port, "rb_r", &reader);
    ts_register(e.srv.port, "rb_a", &author);
    ts_register(e.srv.port, "rb_p", &reposter);
    ts_register(e.srv.port, "rb_f", &friend);
    ts_follow(e.srv.port, &reader, &reposter);
    ts_follow(e.srv.port, &reader, &friend);
    settle(&e);
    for (int i = 0; i < 40; i++) {
        char id[24];
        ts_post(e.srv.port, &author, "repost me", id);
        json_decref(ts_callf(e.srv.port, "POST", &reposter, NULL, 202, "/v1/posts/%s/repost", id));
    }
    settle(&e);
    long long rb = check_rb(&e, &reader, "after 40 reposts");
    long long tl = ts_redis_int(e.rc, "ZCARD tl:{%s}", reader.id);
    cr_expect(tl <= 20, "the repost script trims: %lld entries", tl);
    cr_expect(rb <= tl, "after 40 reposts: rb holds %lld fields, the timeline %lld entries", rb,
              tl);
    cr_expect(rb > 0, "the newest reposts are named");

    for (int i = 0; i < 40; i++) {
        ts_post(e.srv.port, &friend, "push them out", NULL);
        ts_sleep_ms(2); /* posts of several milliseconds: one in eight trims */
    }
    settle(&e);
    rb = check_rb(&e, &reader, "after 40 posts");
    tl = ts_redis_int(e.rc, "ZCARD tl:{%s}", reader.id);
    cr_expect(rb <= tl, "after 40 posts: rb holds %lld fields, the timeline %lld entries", rb, tl);

    uint64_t ids[100], authors[100];
    size_t n = ts_timeline(e.srv.port, &reader, 100, ids, authors, 100);
    cr_expect_eq(n, 20, "a read shows --timeline-max entries: %zu", n);
    for (size_t i = 0; i < n; i++)
        cr_expect_eq(authors[i], friend.num, "entry %zu (post %llu) is not one of friend's posts",
                     i, (unsigned long long)ids[i]);
    rb = check_rb(&e, &reader, "after a read");
    tl = ts_redis_int(e.rc, "ZCARD tl:{%s}", reader.id);
    cr_expect(rb <= tl, "after a read: rb holds %lld fields, the timeline %lld entries", rb, tl);
    env_stop(&e);
}

/* ---- re-follows within --refollow-window ------------------------------------------------------ */

/* Notification events on c within wait_ms, other events skipped; it stops at the max-th. */
static int notification_events_upto(ts_sse_t *c, int wait_ms, int max)
{
    int n = 0;
    uint64_t until = ts_now_ms() + (uint64_t)wait_ms;
    for (uint64_t now = ts_now_ms(); n < max && now < until; now = ts_now_ms()) {
        ts_sse_item_t it = {0};
        ts_sse_kind_t k = ts_sse_next_event(c, &it, (int)(until - now));
        if (k == TS_SSE_EVENT && strcmp(it.type, "notification") == 0)
            n++;
        ts_sse_item_clear(&it);
        if (k != TS_SSE_EVENT)
            break;
    }
    return n;
}

/* Notification events on c within wait_ms. */
static int notification_events(ts_sse_t *c, int wait_ms)
{
    return notification_events_upto(c, wait_ms, INT_MAX);
}

/* Whether a notification event comes on c within wait_ms. A follow's event is rendered when
 * it is sent, from the group as it is then: it has to be read before the unfollow that
 * follows it, or it goes out as notification_removed (the group is gone by then). */
static bool notification_arrives(ts_sse_t *c, int wait_ms)
{
    return notification_events_upto(c, wait_ms, 1) == 1;
}

/* The follow notifications of u: how many, and the follower ids of the first into ids. */
static size_t follow_notices(env_t *e, const ts_user_t *u, char *actors, size_t size)
{
    json_t *list = ts_callf(e->srv.port, "GET", u, NULL, 200, "/v1/notifications?limit=100");
    json_t *items = json_object_get(list, "items");
    size_t n = 0;
    actors[0] = '\0';
    for (size_t i = 0; i < json_array_size(items); i++) {
        json_t *it = json_array_get(items, i);
        if (strcmp(ts_str(it, "type"), "follow") != 0)
            continue;
        if (n++ == 0)
            for (size_t k = 0; k < json_array_size(json_object_get(it, "actors")); k++) {
                size_t used = strlen(actors);
                snprintf(actors + used, size - used, "%s%s", k ? "," : "",
                         ts_str(json_array_get(json_object_get(it, "actors"), k), "id"));
            }
    }
    json_decref(list);
    return n;
}

static void toggle(env_t *e, const ts_user_t *a, const ts_user_t *b, bool follow)
{
    if (follow)
        ts_follow(e->srv.port, a, b);
    else
        ts_unfollow(e->srv.port, a, b);
    settle(e); /* each job runs while the edge is as it left it */
}

Test(feed_limits, refollows_within_the_window_notify_once)
{
    env_t e;
    env_start(&e, (const char *const[]){"--rate-limits", "off", NULL});
    ts_user_t victim, pest;
    ts_register(e.srv.port, "rf_v", &victim);
    ts_register(e.srv.port, "rf_p", &pest);
    ts_sse_t *c = ts_stream(e.srv.port, &victim, NULL);
    toggle(&e, &pest, &victim, true);
    cr_assert(notification_arrives(c, 5000), "the first follow is told on the stream");
    for (int i = 1; i < 40; i++)
        toggle(&e, &pest, &victim, i % 2 == 0);
    char actors[256];
    cr_expect_eq(follow_notices(&e, &victim, actors, sizeof(actors)), 0,
                 "the last unfollow takes the notice out");
    toggle(&e, &pest, &victim, true);
    int events = 1 + notification_events(c, 1000);
    cr_expect_eq(events, 1, "41 toggles sent %d notification events", events);
    cr_expect_eq(follow_notices(&e, &victim, actors, sizeof(actors)), 1);
    cr_expect_str_eq(actors, pest.id, "the follower is listed again: %s", actors);
    json_t *unread =
        ts_callf(e.srv.port, "GET", &victim, NULL, 200, "/v1/notifications/unread_count");
    cr_expect_eq(ts_int(unread, "count"), 1, "one unread notification");
    json_decref(unread);
    ts_sse_close(c);
    env_stop(&e);
}

Test(feed_limits, a_follow_after_the_window_notifies_again)
{
    env_t e;
    env_start(&e, (const char *const[]){"--rate-limits", "off", "--refollow-window", "2", NULL});
    ts_user_t victim, pest;
    ts_register(e.srv.port, "rw_v", &victim);
    ts_register(e.srv.port, "rw_p", &pest);
    ts_sse_t *c = ts_stream(e.srv.port, &victim, NULL);
    uint64_t t0 = ts_now_ms();
    toggle(&e, &pest, &victim, true);
    int events = notification_arrives(c, 1000);
    toggle(&e, &pest, &victim, false);
    toggle(&e, &pest, &victim, true);
    events += notification_events(c, 500);
    cr_assert(ts_now_ms() - t0 < 2000, "the machine is too slow for a 2 s window");
    cr_expect_eq(events, 1, "within the window: %d notification events", events);
    ts_sleep_ms((int)(2300 - (ts_now_ms() - t0)));
    toggle(&e, &pest, &victim, false);
    toggle(&e, &pest, &victim, true);
    events = notification_events(c, 1000);
    cr_expect_eq(events, 1, "after the window: %d notification events", events);
    char actors[256];
    cr_expect_eq(follow_notices(&e, &victim, actors, sizeof(actors)), 1);
    cr_expect_str_eq(actors, pest.id);
    ts_sse_close(c);
    env_stop(&e);
}

/* The flag is listed in --help, and a bad window is refused at startup, as every flag is. */
Test(feed_limits, refollow_window_is_a_checked_flag)
{
    char url[256], log[64];
    ts_redis_fixture_url(url, sizeof(url));
    snprintf(log, sizeof(log), "/tmp/tidings-rfw-%d.log", (int)getpid());
    char *help[] = {(char *)ts_server_bin(), "--help", NULL};
    int st = ts_proc_wait(ts_proc_spawn(help, log), 5000);
    cr_expect(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "--help: status %d", st);
    char text[16384] = "";
    FILE *f = fopen(log, "r");
    cr_assert(f);
    text[fread(text, 1, sizeof(text) - 1, f)] = '\0';
    fclose(f);
    cr_expect(strstr(text, "--refollow-window S") != NULL, "--help does not list it");
    const char *bad[] = {"-1", "x", "31708800"};
    for (size_t i = 0; i < 3; i++) {
        char *argv[] = {(char *)ts_server_bin(), "--redis",      url,
                        "--refollow-window",     (char *)bad[i], NULL};
        pid_t pid = ts_proc_spawn(argv, log);
        st = ts_proc_wait(pid, 5000);
        if (st == -1)
            ts_proc_kill(pid);
        cr_expect(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) != 0,
                  "--refollow-window %s was accepted", bad[i]);
    }
    unlink(log);
}
