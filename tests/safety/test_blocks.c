/* tests/safety/test_blocks.c -- a block holds on every path, both ways, and costs the blocked-by
 * side nothing however many block them; the follow and mention caps.
 *
 * Between two users where either blocked the other, every read of the other's posts, profile
 * and lists, every like, repost and reply answers exactly as a real absence does (the same
 * problem body but its instance); mentions between them are dropped from the post; a repost
 * the blocked user made before is undone by the block. A follow racing a block leaves no edge
 * either way. 200,000 blockers of one user (written into Redis directly) leave that user's
 * timeline and notifications as fast as before and the server's memory where it was.
 */
#include "tests/safety/safety.h"

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

TestSuite(blocks_everywhere, .timeout = 240);

static const char *const no_limits[] = {"--rate-limits", "off", NULL};

/* method path as u answers exactly as absent_path does (status and body but instance). */
static void expect_same_as_absent(int port, const ts_user_t *u, const char *method,
                                  const char *body, const char *path, const char *absent_path)
{
    ts_resp_t got, want;
    ts_http(port, method, path, u->token, NULL, body, &got);
    ts_http(port, method, absent_path, u->token, NULL, body, &want);
    cr_expect_eq(got.status, want.status, "%s %s answered %d, a real absence %d: %s", method, path,
                 got.status, want.status, got.body);
    cr_expect(want.status == 404 || want.status == 422, "%s %s: %d", method, absent_path,
              want.status);
    char *a = ts_problem_sans_instance(&got), *b = ts_problem_sans_instance(&want);
    cr_expect_str_eq(a, b, "%s %s", method, path);
    free(a);
    free(b);
    ts_resp_free(&got);
    ts_resp_free(&want);
}

/* Every path between viewer and other answers as if other (and their post) did not exist. */
static void expect_invisible(int port, const ts_user_t *viewer, const ts_user_t *other,
                             const char *other_post)
{
    static const char nobody[] = "9999999999999", nopost[] = "9999999999998";
    char path[128], absent[128], body[128], absent_body[128];
    static const char *const user_paths[] = {"", "/posts", "/followers", "/following"};
    for (size_t i = 0; i < sizeof(user_paths) / sizeof(*user_paths); i++) {
        snprintf(path, sizeof(path), "/v1/users/%s%s", other->id, user_paths[i]);
        snprintf(absent, sizeof(absent), "/v1/users/%s%s", nobody, user_paths[i]);
        expect_same_as_absent(port, viewer, "GET", NULL, path, absent);
    }
    snprintf(path, sizeof(path), "/v1/posts/%s", other_post);
    snprintf(absent, sizeof(absent), "/v1/posts/%s", nopost);
    expect_same_as_absent(port, viewer, "GET", NULL, path, absent);
    snprintf(path, sizeof(path), "/v1/posts/%s/like", other_post);
    snprintf(absent, sizeof(absent), "/v1/posts/%s/like", nopost);
    expect_same_as_absent(port, viewer, "PUT", NULL, path, absent);
    snprintf(path, sizeof(path), "/v1/posts/%s/repost", other_post);
    snprintf(absent, sizeof(absent), "/v1/posts/%s/repost", nopost);
    expect_same_as_absent(port, viewer, "POST", NULL, path, absent);
    /* A reply: its parent "does not exist", as a missing parent answers. */
    snprintf(body, sizeof(body), "{\"text\":\"a reply\",\"reply_to\":\"%s\"}", other_post);
    snprintf(absent_body, sizeof(absent_body), "{\"text\":\"a reply\",\"reply_to\":\"%s\"}",
             nopost);
    ts_resp_t got, want;
    ts_http(port, "POST", "/v1/posts", viewer->token, NULL, body, &got);
    ts_http(port, "POST", "/v1/posts", viewer->token, NULL, absent_body, &want);
    cr_expect_eq(got.status, want.status, "reply: %d vs %d (%s)", got.status, want.status,
                 got.body);
    char *a = ts_problem_sans_instance(&got), *b = ts_problem_sans_instance(&want);
    cr_expect_str_eq(a, b);
    free(a);
    free(b);
    ts_resp_free(&got);
    ts_resp_free(&want);
}

static bool list_has(const json_t *list, const char *id)
{
    size_t i;
    const json_t *v;
    json_array_foreach(json_object_get(list, "items"), i, v)
    {
        if (strcmp(ts_str(v, "id"), id) == 0)
            return true;
    }
    return false;
}

static void wait_idle(void)
{
    struct redisContext *c = ts_redis_connect(ts_redis_port());
    cr_assert(ts_wait_queue_empty(c, 30000), "the job queue drains");
    ts_redis_close(c);
}

Test(blocks_everywhere, every_path_answers_as_absent_both_ways)
{
    ts_server_t s;
    sf_server_start(&s, no_limits);
    ts_user_t a, b, c;
    ts_register(s.port, "bk_a", &a);
    ts_register(s.port, "bk_b", &b);
    ts_register(s.port, "bk_c", &c);
    char pa[24], pb[24];
    ts_post(s.port, &a, "a's post", pa);
    ts_post(s.port, &b, "b's post", pb);
    /* Before the block, everything answers. */
    json_decref(ts_callf(s.port, "GET", &b, NULL, 200, "/v1/posts/%s", pa));
    json_decref(ts_callf(s.port, "GET", &b, NULL, 200, "/v1/users/%s", a.id));
    json_decref(ts_callf(s.port, "PUT", &a, NULL, 204, "/v1/users/%s/block", b.id));
    expect_invisible(s.port, &b, &a, pa); /* the blocked user */
    expect_invisible(s.port, &a, &b, pb); /* the blocker */
    /* A third user sees both; the blocked user is left out of the blocker's lists only for
     * them: c follows both and both lists show c. */
    json_decref(ts_callf(s.port, "GET", &c, NULL, 200, "/v1/posts/%s", pa));
    json_decref(ts_callf(s.port, "GET", &c, NULL, 200, "/v1/posts/%s", pb));
    ts_follow(s.port, &c, &a);
    ts_follow(s.port, &c, &b);
    json_t *j = ts_callf(s.port, "GET", &a, NULL, 200, "/v1/users/%s/following", c.id);
    cr_expect(list_has(j, a.id) && !list_has(j, b.id), "a does not see b in c's following");
    json_decref(j);
    j = ts_callf(s.port, "GET", &b, NULL, 200, "/v1/users/%s/following", c.id);
    cr_expect(list_has(j, b.id) && !list_has(j, a.id), "b does not see a in c's following");
    json_decref(j);
    j = ts_callf(s.port, "GET", &c, NULL, 200, "/v1/users/%s/following", c.id);
    cr_expect(list_has(j, a.id) && list_has(j, b.id), "c sees both");
    json_decref(j);
    /* The block list still names whom a blocked. */
    j = ts_callf(s.port, "GET", &a, NULL, 200, "/v1/blocks");
    cr_expect(list_has(j, b.id));
    json_decref(j);
    /* Lifting the block gives everything back. */
    json_decref(ts_callf(s.port, "DELETE", &a, NULL, 204, "/v1/users/%s/block", b.id));
    json_decref(ts_callf(s.port, "GET", &b, NULL, 200, "/v1/posts/%s", pa));
    json_decref(ts_callf(s.port, "GET", &a, NULL, 200, "/v1/users/%s", b.id));
    ts_server_stop(&s, 5000);
}

/* The mentions array of post id as seen by u. */
static size_t mention_count(int port, const ts_user_t *u, const char *id, const char *who)
{
    json_t *p = ts_callf(port, "GET", u, NULL, 200, "/v1/posts/%s", id);
    json_t *m = json_object_get(p, "mentions");
    size_t n = json_array_size(m), hits = 0;
    for (size_t i = 0; who && i < n; i++)
        hits += strcmp(json_string_value(json_array_get(m, i)), who) == 0;
    json_decref(p);
    return who ? hits : n;
}

static size_t mention_notices(int port, const ts_user_t *u)
{
    json_t *j = ts_callf(port, "GET", u, NULL, 200, "/v1/notifications?types=mention");
    size_t n = json_array_size(json_object_get(j, "items"));
    json_decref(j);
    return n;
}

Test(blocks_everywhere, mentions_between_blocked_users_are_dropped_and_capped)
{
    ts_server_t s;
    sf_server_start(&s, (const char *const[]){"--rate-limits", "off", "--max-mentions", "3", NULL});
    ts_user_t a, b, c, many[5];
    ts_register(s.port, "mn_a", &a);
    ts_register(s.port, "mn_b", &b);
    ts_register(s.port, "mn_c", &c);
    for (int i = 0; i < 5; i++)
        ts_register(s.port, "mn_m", &many[i]);
    json_decref(ts_callf(s.port, "PUT", &b, NULL, 204, "/v1/users/%s/block", a.id));
    char text[512], pa[24], pb[24], pm[24];
    /* a mentions the user who blocked them, and c: the post is fine, b's mention is gone. */
    snprintf(text, sizeof(text), "hello @%s and @%s", b.handle, c.handle);
    ts_post(s.port, &a, text, pa);
    /* b mentions whom they blocked. */
    snprintf(text, sizeof(text), "hi @%s", a.handle);
    ts_post(s.port, &b, text, pb);
    cr_expect_eq(mention_count(s.port, &c, pa, b.id), 0, "b is not among the mentions");
    cr_expect_eq(mention_count(s.port, &c, pa, c.id), 1, "c is");
    cr_expect_eq(mention_count(s.port, &c, pb, NULL), 0);
    /* Five mentions, cap three: the first three are notified, the text keeps all. */
    snprintf(text, sizeof(text), "@%s @%s @%s @%s @%s", many[0].handle, many[1].handle,
             many[2].handle, many[3].handle, many[4].handle);
    ts_post(s.port, &c, text, pm);
    cr_expect_eq(mention_count(s.port, &c, pm, NULL), 3);
    json_t *p = ts_callf(s.port, "GET", &c, NULL, 200, "/v1/posts/%s", pm);
    cr_expect_str_eq(ts_str(p, "text"), text);
    json_decref(p);
    wait_idle();
    cr_expect_eq(mention_notices(s.port, &c), 1, "c's mention is delivered");
    cr_expect_eq(mention_notices(s.port, &b), 0, "the blocker is not notified");
    cr_expect_eq(mention_notices(s.port, &a), 0, "the blocked user is not notified");
    for (int i = 0; i < 5; i++)
        cr_expect_eq(mention_notices(s.port, &many[i]), i < 3 ? 1 : 0, "mention %d", i);
    ts_server_stop(&s, 5000);
}

Test(blocks_everywhere, a_repost_by_the_blocked_user_is_refused_and_undone)
{
    ts_server_t s;
    sf_server_start(&s, no_limits);
    ts_user_t a, b, d;
    ts_register(s.port, "rp_a", &a);
    ts_register(s.port, "rp_b", &b);
    ts_register(s.port, "rp_d", &d);
    ts_follow(s.port, &d, &b); /* d follows the reposter only */
    ts_follow(s.port, &a, &b); /* and so does the blocker-to-be */
    char pa[24], pa2[24];
    ts_post(s.port, &a, "a's first", pa);
    ts_post(s.port, &a, "a's second", pa2);
    json_decref(ts_callf(s.port, "POST", &b, NULL, 202, "/v1/posts/%s/repost", pa));
    uint64_t ids[16];
    size_t n = ts_wait_timeline(s.port, &d, 1, ids, 16, 15000);
    cr_assert(n >= 1 && ids[0] == ts_id(pa), "the repost reached d before the block");
    json_decref(ts_callf(s.port, "PUT", &a, NULL, 204, "/v1/users/%s/block", b.id));
    cr_expect_eq(ts_status(s.port, "POST", &b, NULL, "/v1/posts/%s/repost", pa2), 404);
    wait_idle();
    n = ts_timeline(s.port, &d, 20, ids, NULL, 16);
    for (size_t i = 0; i < n && i < 16; i++)
        cr_expect(ids[i] != ts_id(pa) && ids[i] != ts_id(pa2), "a's post is gone from d's home");
    json_t *p = ts_callf(s.port, "GET", &d, NULL, 200, "/v1/posts/%s", pa);
    cr_expect_eq(ts_int(p, "repost_count"), 0, "the repost was undone");
    json_decref(p);
    struct redisContext *c = ts_redis_connect(ts_redis_port());
    cr_expect(!ts_timeline_holds(c, b.num, ts_id(pa)), "nor in the reposter's own home");
    cr_expect(!ts_timeline_holds(c, b.num, ts_id(pa2)));
    ts_redis_close(c);
    ts_server_stop(&s, 5000);
}

Test(blocks_everywhere, following_is_capped)
{
    ts_server_t s;
    sf_server_start(&s,
                    (const char *const[]){"--rate-limits", "off", "--max-following", "3", NULL});
    ts_user_t f, t[5];
    ts_register(s.port, "cap_f", &f);
    for (int i = 0; i < 5; i++)
        ts_register(s.port, "cap_t", &t[i]);
    for (int i = 0; i < 3; i++)
        ts_follow(s.port, &f, &t[i]);
    ts_resp_t r;
    char path[96];
    snprintf(path, sizeof(path), "/v1/users/%s/follow", t[3].id);
    ts_http(s.port, "PUT", path, f.token, NULL, NULL, &r);
    cr_expect_eq(r.status, 409, "%s", r.body);
    char type[64];
    cr_expect_str_eq(ts_resp_header(&r, "Content-Type", type, sizeof(type)),
                     "application/problem+json");
    ts_resp_free(&r);
    ts_follow(s.port, &f, &t[0]); /* following again at the cap is no new follow */
    json_t *j = ts_callf(s.port, "GET", &f, NULL, 200, "/v1/users/%s", f.id);
    cr_expect_eq(ts_int(j, "following_count"), 3);
    json_decref(j);
    ts_unfollow(s.port, &f, &t[1]);
    ts_follow(s.port, &f, &t[3]);
    cr_expect_eq(ts_status(s.port, "PUT", &f, NULL, "/v1/users/%s/follow", t[4].id), 409);
    ts_server_stop(&s, 5000);
}

/* ---- a follow racing a block ---------------------------------------------------------------- */

typedef struct race_s {
    int port;
    const ts_user_t *as, *target;
    const char *what; /* "follow" or "block" */
    int status;
} race_t;

static void *race_one(void *arg)
{
    race_t *r = arg;
    r->status = ts_status(r->port, "PUT", r->as, NULL, "/v1/users/%s/%s", r->target->id, r->what);
    return NULL;
}

#define RACE_PAIRS 40

Test(blocks_everywhere, a_follow_racing_a_block_never_survives_it)
{
    ts_server_t s;
    sf_server_start(&s, no_limits);
    static ts_user_t x[RACE_PAIRS], y[RACE_PAIRS];
    for (int i = 0; i < RACE_PAIRS; i++) {
        ts_register(s.port, "race_x", &x[i]);
        ts_register(s.port, "race_y", &y[i]);
    }
    /* x[i] follows y[i] while one of them blocks the other (y blocks x for even i, x blocks y
     * for odd i), 8 pairs at once. */
    for (int base = 0; base < RACE_PAIRS; base += 8) {
        race_t runs[16];
        pthread_t th[16];
        for (int k = 0; k < 8; k++) {
            int i = base + k;
            runs[2 * k] = (race_t){s.port, &x[i], &y[i], "follow", 0};
            runs[2 * k + 1] = i % 2 == 0 ? (race_t){s.port, &y[i], &x[i], "block", 0}
                                         : (race_t){s.port, &x[i], &y[i], "block", 0};
        }
        for (int k = 0; k < 16; k++)
            pthread_create(&th[k], NULL, race_one, &runs[k]);
        for (int k = 0; k < 16; k++)
            pthread_join(th[k], NULL);
        for (int k = 0; k < 8; k++) {
            cr_expect(runs[2 * k].status == 204 || runs[2 * k].status == 403, "follow: %d",
                      runs[2 * k].status);
            cr_expect_eq(runs[2 * k + 1].status, 204);
        }
    }
    struct redisContext *c = ts_redis_connect(ts_redis_port());
    for (int i = 0; i < RACE_PAIRS; i++) {
        const char *fmt[] = {"ZSCORE following:{%llu} %llu", "ZSCORE followers:{%llu} %llu"};
        unsigned long long xi = x[i].num, yi = y[i].num;
        unsigned long long pairs[4][2] = {{xi, yi}, {yi, xi}, {yi, xi}, {xi, yi}};
        for (int k = 0; k < 4; k++) {
            redisReply *r = ts_redis_cmd_ok(c, fmt[k / 2], pairs[k][0], pairs[k][1]);
            cr_expect_eq(r->type, REDIS_REPLY_NIL, "pair %d: %s %llu %llu holds an edge", i,
                         fmt[k / 2], pairs[k][0], pairs[k][1]);
            freeReplyObject(r);
        }
    }
    ts_redis_close(c);
    /* And a follow after the block is refused on both sides. */
    cr_expect_eq(ts_status(s.port, "PUT", &x[0], NULL, "/v1/users/%s/follow", y[0].id), 403);
    cr_expect_eq(ts_status(s.port, "PUT", &y[1], NULL, "/v1/users/%s/follow", x[1].id), 403);
    ts_server_stop(&s, 5000);
}

/* ---- 200,000 blockers ------------------------------------------------------------------------ */

#define BLOCKERS 200000
#define SAMPLES 20

static long rss_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kb = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return kb;
}

static int by_value(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The median time (µs) of SAMPLES GET path as u, each answered 200 with items. */
static uint64_t median_us(int port, const ts_user_t *u, const char *path, size_t want_items)
{
    uint64_t t[SAMPLES];
    for (int i = 0; i < SAMPLES; i++) {
        ts_resp_t r;
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        ts_http(port, "GET", path, u->token, NULL, NULL, &r);
        clock_gettime(CLOCK_MONOTONIC, &b);
        cr_assert_eq(r.status, 200, "%s: %s", path, r.body);
        json_t *j = ts_resp_json(&r);
        cr_expect_eq(json_array_size(json_object_get(j, "items")), want_items, "%s", path);
        json_decref(j);
        ts_resp_free(&r);
        t[i] =
            (uint64_t)(b.tv_sec - a.tv_sec) * 1000000u + (uint64_t)(b.tv_nsec - a.tv_nsec) / 1000;
    }
    qsort(t, SAMPLES, sizeof(*t), by_value);
    return t[SAMPLES / 2];
}

Test(blocks_everywhere, two_hundred_thousand_blockers_cost_the_victim_nothing)
{
    ts_server_t s;
    sf_server_start(&s, no_limits);
    ts_user_t v, friend, fan;
    ts_register(s.port, "vic", &v);
    ts_register(s.port, "vic_f", &friend);
    ts_register(s.port, "vic_fan", &fan);
    ts_follow(s.port, &v, &friend);
    char pv[24];
    for (int i = 0; i < 5; i++)
        ts_post(s.port, &friend, "a friend's post", NULL);
    ts_post(s.port, &v, "the victim's post", pv);
    ts_like(s.port, &fan, pv);
    ts_follow(s.port, &fan, &v);
    uint64_t ids[8];
    cr_assert_geq(ts_wait_timeline(s.port, &v, 6, ids, 8, 15000), 6);
    wait_idle();
    /* Warm up, then the figure before the blockers. */
    median_us(s.port, &v, "/v1/timeline", 6);
    uint64_t tl0 = median_us(s.port, &v, "/v1/timeline", 6);
    uint64_t nt0 = median_us(s.port, &v, "/v1/notifications", 2);
    long rss0 = rss_kb(s.pid);

    /* 200,000 made-up blockers, added to blockedby:{victim} directly, 1,000 a command. */
    struct redisContext *c = ts_redis_connect(ts_redis_port());
    char key[48];
    snprintf(key, sizeof(key), "blockedby:{%llu}", (unsigned long long)v.num);
    struct redisContext *node = ts_redis_node_for(c, key);
    static char args[1002][24];
    const char *argv[2002];
    size_t lens[2002];
    uint64_t base = 9000000000000000ULL;
    for (int cmd = 0; cmd < BLOCKERS / 1000; cmd++) {
        argv[0] = "ZADD";
        argv[1] = key;
        for (int i = 0; i < 1000; i++) {
            snprintf(args[i], sizeof(args[i]), "%llu",
                     (unsigned long long)(base + (uint64_t)cmd * 1000 + (uint64_t)i));
            argv[2 + 2 * i] = args[i];
            argv[3 + 2 * i] = args[i];
        }
        for (int i = 0; i < 2002; i++)
            lens[i] = strlen(argv[i]);
        redisAppendCommandArgv(node, 2002, argv, lens);
    }
    for (int cmd = 0; cmd < BLOCKERS / 1000; cmd++) {
        redisReply *r = ts_redis_get_reply(node);
        cr_assert_eq(r->type, REDIS_REPLY_INTEGER);
        freeReplyObject(r);
    }
    cr_assert_eq(ts_redis_int(c, "ZCARD %s", key), BLOCKERS);

    uint64_t tl1 = median_us(s.port, &v, "/v1/timeline", 6);
    uint64_t nt1 = median_us(s.port, &v, "/v1/notifications", 2);
    long rss1 = rss_kb(s.pid);
    cr_log_info("200000 blockers: timeline median %llu us (before %llu), notifications %llu us "
                "(before %llu), RSS %ld kB -> %ld kB",
                (unsigned long long)tl1, (unsigned long long)tl0, (unsigned long long)nt1,
                (unsigned long long)nt0, rss0, rss1);
    fprintf(stderr,
            "BLOCKERS_FIGURES timeline_us=%llu/%llu notifications_us=%llu/%llu rss_kb=%ld/%ld\n",
            (unsigned long long)tl0, (unsigned long long)tl1, (unsigned long long)nt0,
            (unsigned long long)nt1, rss0, rss1);
    cr_expect_lt(tl1, 50000, "timeline median %llu us", (unsigned long long)tl1);
    cr_expect_lt(nt1, 50000, "notifications median %llu us", (unsigned long long)nt1);
    cr_expect_lt(rss1 - rss0, 16 * 1024, "RSS grew from %ld to %ld kB", rss0, rss1);
    redisReply *r = ts_redis_cmd_ok(c, "UNLINK %s", key);
    freeReplyObject(r);
    ts_redis_close(c);
    ts_server_stop(&s, 5000);
}
