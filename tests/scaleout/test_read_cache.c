/* tests/scaleout/test_read_cache.c -- the in-process read cache (--read-cache) of tidings
 * processes on one redis-server: no process serves a value older than a write whose answer a
 * client has already received, whichever process made the write.
 *
 * A write's effect is read on every process straight after the write's answer, without a
 * sleep, the entry it changes cached there before: counts, a delete, a display name, blocks
 * and mutes. An unmute's entries come back by a job, and a FLUSHALL behind the servers is no
 * API answer: those are read once the job has run, or an API write after the flush has been
 * answered. A home timeline's first page, kept whole (its entries' ids too), is read straight
 * after the fan-out job that changed it has finished (the job queue drained), or after the
 * write's answer where no job writes the timeline (a celebrity's post, merged at read time).
 * /metrics shows that reads are served from the cache (tidings_read_cache_hits_total and
 * tidings_read_cache_timeline_hits_total grow, tidings_read_cache_up is 1), so the tests
 * cannot pass merely because nothing is cached; and with --read-cache 0 the same reads come
 * right with nothing cached.
 *
 * Each test has its own redis-server (one node: the cache is not used on a Redis Cluster),
 * so a FLUSHALL touches no other test, and its own processes, so their counters are its own.
 */
#include "tests/scaleout/so.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROCS 3
enum { A, B, C }; /* the processes, as srv[] indexes */

#define HITS "tidings_read_cache_hits_total"
#define MISSES "tidings_read_cache_misses_total"
#define UP "tidings_read_cache_up"
/* Reads of a cached post of which one at least must be a hit (expect_cached). */
#define CACHED_TRIES 50
/* A post id no post has: what a hidden post must answer exactly like. */
#define NO_POST "9999999999998"

static ts_server_t srv[PROCS];
static ts_redis_t redis;

static void teardown(void)
{
    for (int p = 0; p < PROCS; p++)
        ts_server_stop_clean(&srv[p], 10000);
    ts_redis_cleanup(&redis);
}

TestSuite(read_cache, .fini = teardown, .timeout = SO_TIMEOUT);

/* ---- metrics --------------------------------------------------------------------------------- */

/* The sum of name's samples in process p's /metrics, with or without labels (one per kind of
 * entry would do as well), into *sum; false when there is none. */
static bool metric_found(int p, const char *name, double *sum_out)
{
    ts_resp_t r;
    ts_http(srv[p].port, "GET", "/metrics", NULL, NULL, NULL, &r);
    cr_assert_eq(r.status, 200, "process %d: GET /metrics answered %d", p, r.status);
    size_t len = strlen(name);
    double sum = 0;
    bool found = false;
    const char *line = r.body;
    for (int i = 0; line && *line && i < 100000; i++) {
        if (strncmp(line, name, len) == 0 && (line[len] == ' ' || line[len] == '{')) {
            const char *v = line[len] == ' ' ? line + len : strchr(line + len, '}');
            if (v) {
                sum += strtod(v + 1, NULL);
                found = true;
            }
        }
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    ts_resp_free(&r);
    *sum_out = sum;
    return found;
}

/* The same, failing the test when there is no such sample. */
static double metric(int p, const char *name)
{
    double sum = 0;
    cr_assert(metric_found(p, name, &sum), "process %d: GET /metrics has no sample %s", p, name);
    return sum;
}

/* Waits until process p says its cache is in use. A process that never does fails the test:
 * every other test here would pass against a server that caches nothing. */
static void wait_cache_up(int p)
{
    uint64_t deadline = ts_now_ms() + SO_WAIT_MS;
    double up = 0;
    for (int i = 0; i < 100000; i++) {
        up = metric(p, UP);
        if (up == 1 || ts_now_ms() >= deadline)
            break;
        ts_sleep_ms(20);
    }
    cr_assert_eq(up, 1, "process %d: " UP " is %g, not 1, %d s after it was ready", p, up,
                 SO_WAIT_MS / 1000);
}

/* ---- processes ------------------------------------------------------------------------------- */

/* A redis-server of the test's own (not a cluster: the cache is for one Redis node only). */
static void start_redis(void)
{
    ts_redis_start(&redis, 0);
}

/* Process p with the extra flags (NULL: the default cache); cached: it must use its cache. */
static void start_proc(int p, const char *const *extra, bool cached)
{
    ts_server_start(&srv[p], redis.url, extra, true);
    if (cached)
        wait_cache_up(p);
}

/* n processes with the default cache, every one of them using it. */
static void start(int n)
{
    start_redis();
    for (int p = 0; p < n; p++)
        start_proc(p, NULL, true);
}

/* ---- reads ----------------------------------------------------------------------------------- */

/* GET /v1/posts/{post} as u on process p, expected 200 (returns new); after names what came
 * just before, for the failure's message. */
static json_t *get_post(int p, const ts_user_t *u, const char *post, const char *after)
{
    char path[64];
    snprintf(path, sizeof(path), "/v1/posts/%s", post);
    ts_resp_t r;
    ts_http(srv[p].port, "GET", path, u->token, NULL, NULL, &r);
    cr_assert_eq(r.status, 200, "process %d, after %s: GET %s as user %s answered %d: %s", p, after,
                 path, u->id, r.status, r.body);
    json_t *j = ts_resp_json(&r);
    ts_resp_free(&r);
    cr_assert_str_eq(ts_str(j, "id"), post, "process %d answered another post", p);
    return j;
}

/* The post as u reads it on p shows these counts, and (unless NULL) this author's name. */
static void expect_post(int p, const ts_user_t *u, const char *post, long long likes,
                        long long reposts, const char *name, const char *after)
{
    json_t *j = get_post(p, u, post, after);
    long long l = ts_int(j, "like_count"), r = ts_int(j, "repost_count");
    char got[128];
    snprintf(got, sizeof(got), "%s", ts_str(json_object_get(j, "author"), "display_name"));
    json_decref(j);
    cr_assert(l == likes && r == reposts,
              "process %d, straight after %s: post %s shows like_count %lld and repost_count "
              "%lld, not %lld and %lld",
              p, after, post, l, r, likes, reposts);
    if (name)
        cr_assert_str_eq(got, name,
                         "process %d, straight after %s: post %s's author is named \"%s\", not "
                         "\"%s\"",
                         p, after, post, got, name);
}

/* GET /v1/posts/{post} as u on p answers exactly as a post that never existed does: 404, an
 * application/problem+json body, the same problem but its instance. */
static void expect_absent(int p, const ts_user_t *u, const char *post, const char *after)
{
    char path[64], type[128] = "";
    snprintf(path, sizeof(path), "/v1/posts/%s", post);
    ts_resp_t got, want;
    ts_http(srv[p].port, "GET", path, u->token, NULL, NULL, &got);
    cr_assert_eq(got.status, 404, "process %d, straight after %s: GET %s answered %d, not 404: %s",
                 p, after, path, got.status, got.body);
    ts_resp_header(&got, "Content-Type", type, sizeof(type));
    cr_assert(strncmp(type, "application/problem+json", 24) == 0,
              "process %d, after %s: the 404 for %s is %s, not application/problem+json", p, after,
              path, type);
    ts_http(srv[p].port, "GET", "/v1/posts/" NO_POST, u->token, NULL, NULL, &want);
    cr_assert_eq(want.status, 404, "process %d: a post that never was answered %d", p, want.status);
    char *a = ts_problem_sans_instance(&got), *b = ts_problem_sans_instance(&want);
    cr_assert_str_eq(a, b, "process %d, after %s: GET %s answers unlike a post that never was", p,
                     after, path);
    free(a);
    free(b);
    ts_resp_free(&got);
    ts_resp_free(&want);
}

/* Reads post as u on p until a read is served from p's cache (its hits grow; a first read
 * before this filled the cache). A few may go to Redis even so: a fill is dropped when its
 * shard saw an invalidation meanwhile, and a read misses while invalidations wait to be
 * handed over, which a busy (sanitized) process may take a moment to do. */
static void expect_cached(int p, const ts_user_t *u, const char *post)
{
    double before = metric(p, HITS), missed = metric(p, MISSES), after = before;
    for (int i = 0; i < CACHED_TRIES && after == before; i++) {
        if (i)
            ts_sleep_ms(20);
        json_decref(get_post(p, u, post, "a first read"));
        after = metric(p, HITS);
    }
    cr_assert_gt(after, before,
                 "process %d: %d more reads of post %s were no cache hit (" HITS
                 " stayed %g; " MISSES " %g, then %g; " UP " %g)",
                 p, CACHED_TRIES, post, before, missed, metric(p, MISSES), metric(p, UP));
}

/* The item of post in the first page (100) of u's home timeline on p (returns new), or NULL. */
static json_t *timeline_item(int p, const ts_user_t *u, const char *post)
{
    json_t *page = ts_callf(srv[p].port, "GET", u, NULL, 200, "/v1/timeline?limit=100");
    json_t *found = NULL, *v;
    size_t i;
    json_array_foreach(json_object_get(page, "items"), i, v)
    {
        if (!found && strcmp(ts_str(v, "id"), post) == 0)
            found = json_incref(v);
    }
    json_decref(page);
    return found;
}

static bool timeline_has(int p, const ts_user_t *u, const char *post)
{
    json_t *item = timeline_item(p, u, post);
    json_decref(item);
    return item != NULL;
}

/* Waits for post to reach u's timeline (the fan-out is asynchronous), as read on p. */
static void wait_timeline_has(int p, const ts_user_t *u, const char *post)
{
    uint64_t deadline = ts_now_ms() + SO_WAIT_MS;
    bool has = false;
    for (int i = 0; i < 100000 && !has; i++) {
        has = timeline_has(p, u, post);
        if (!has && ts_now_ms() >= deadline)
            break;
        if (!has)
            ts_sleep_ms(20);
    }
    cr_assert(has, "post %s did not reach user %s's timeline (read on process %d) in %d s", post,
              u->id, p, SO_WAIT_MS / 1000);
}

/* Waits until the fan-out engines have nothing queued or pending (jobs a write queued). */
static void wait_idle(void)
{
    redisContext *rc = ts_redis_connect(redis.port);
    cr_assert(ts_wait_queue_empty(rc, SO_WAIT_MS), "the job queue did not drain in %d s",
              SO_WAIT_MS / 1000);
    ts_redis_close(rc);
}

/* ---- 1. counts ------------------------------------------------------------------------------- */

#define COUNT_ROUNDS 20
#define REPOST_ROUNDS 5

/* Every process reads the counts straight after a write through process w: the other two
 * first, w's own last. */
static void expect_everywhere(int w, const ts_user_t *u, const char *post, long long likes,
                              long long reposts, const char *after)
{
    for (int k = 1; k <= PROCS; k++)
        expect_post((w + k) % PROCS, u, post, likes, reposts, NULL, after);
}

Test(read_cache, counts_show_every_like_and_repost_at_once_on_every_process)
{
    start(PROCS);
    ts_user_t x, v, l1, l2;
    ts_register(srv[A].port, "rcx", &x);
    ts_register(srv[B].port, "rcv", &v);
    ts_register(srv[C].port, "rcl", &l1);
    ts_register(srv[A].port, "rcl", &l2);
    char p[24];
    ts_post(srv[A].port, &x, "counted", p);

    /* B and C learn the post; their second read is served from their cache. */
    expect_post(B, &v, p, 0, 0, NULL, "the post");
    expect_cached(B, &v, p);
    expect_post(C, &v, p, 0, 0, NULL, "the post");
    expect_cached(C, &v, p);

    char what[160];
    for (int round = 0; round < COUNT_ROUNDS; round++) {
        int w = round % PROCS;
        json_decref(ts_callf(srv[w].port, "PUT", &l1, NULL, 204, "/v1/posts/%s/like", p));
        snprintf(what, sizeof(what), "a like through process %d (round %d)", w, round);
        expect_everywhere(w, &v, p, 1, 0, what);
        int w2 = (w + 1) % PROCS;
        json_decref(ts_callf(srv[w2].port, "PUT", &l2, NULL, 204, "/v1/posts/%s/like", p));
        snprintf(what, sizeof(what), "a second like through process %d (round %d)", w2, round);
        expect_everywhere(w2, &v, p, 2, 0, what);
        int w3 = (w + 2) % PROCS;
        json_decref(ts_callf(srv[w3].port, "DELETE", &l1, NULL, 204, "/v1/posts/%s/like", p));
        snprintf(what, sizeof(what), "an unlike through process %d (round %d)", w3, round);
        expect_everywhere(w3, &v, p, 1, 0, what);
        json_decref(ts_callf(srv[w].port, "DELETE", &l2, NULL, 204, "/v1/posts/%s/like", p));
        snprintf(what, sizeof(what), "the second unlike through process %d (round %d)", w, round);
        expect_everywhere(w, &v, p, 0, 0, what);
    }
    for (int round = 0; round < REPOST_ROUNDS; round++) {
        int w = round % PROCS, w2 = (w + 1) % PROCS;
        json_decref(ts_callf(srv[w].port, "POST", &l1, NULL, 202, "/v1/posts/%s/repost", p));
        snprintf(what, sizeof(what), "a repost through process %d (round %d)", w, round);
        expect_everywhere(w, &v, p, 0, 1, what);
        json_decref(ts_callf(srv[w2].port, "DELETE", &l1, NULL, 204, "/v1/posts/%s/repost", p));
        snprintf(what, sizeof(what), "an unrepost through process %d (round %d)", w2, round);
        expect_everywhere(w2, &v, p, 0, 0, what);
    }
    /* All those invalidations left every cache in use. */
    for (int q = 0; q < PROCS; q++) {
        cr_assert_eq(metric(q, UP), 1, "process %d's cache went out of use", q);
        expect_cached(q, &v, p);
    }
}

/* ---- 2. delete ------------------------------------------------------------------------------- */

#define DELETES 6

Test(read_cache, a_deleted_post_is_gone_at_once_on_every_process)
{
    start(PROCS);
    ts_user_t x, f, v;
    ts_register(srv[A].port, "rcx", &x);
    ts_register(srv[B].port, "rcf", &f);
    ts_register(srv[C].port, "rcv", &v);
    ts_follow(srv[C].port, &f, &x);
    char posts[DELETES][24];
    for (int i = 0; i < DELETES; i++) {
        char text[32];
        snprintf(text, sizeof(text), "to be deleted %d", i);
        ts_post(srv[i % PROCS].port, &x, text, posts[i]);
    }
    /* Every process has every post cached, as the follower's timeline and as a post. */
    for (int q = 0; q < PROCS; q++)
        for (int i = 0; i < DELETES; i++) {
            wait_timeline_has(q, &f, posts[i]);
            json_decref(get_post(q, &v, posts[i], "the post"));
            expect_cached(q, &v, posts[i]);
        }

    char what[160];
    for (int i = 0; i < DELETES; i++) {
        int w = i % PROCS;
        ts_delete_post(srv[w].port, &x, posts[i]);
        snprintf(what, sizeof(what), "its delete through process %d", w);
        for (int k = 1; k <= PROCS; k++) {
            int q = (w + k) % PROCS;
            expect_absent(q, &v, posts[i], what);
            cr_assert(!timeline_has(q, &f, posts[i]),
                      "process %d, straight after %s: the follower's timeline still lists post "
                      "%s",
                      q, what, posts[i]);
            /* The posts not yet deleted are still there: the timeline is read, not empty. */
            if (i + 1 < DELETES)
                cr_assert(timeline_has(q, &f, posts[i + 1]),
                          "process %d: the follower's timeline lost post %s too", q, posts[i + 1]);
            json_t *list =
                ts_callf(srv[q].port, "GET", &v, NULL, 200, "/v1/users/%s/posts?limit=100", x.id);
            json_t *item;
            size_t n;
            json_array_foreach(json_object_get(list, "items"), n, item)
            {
                cr_assert_str_neq(ts_str(item, "id"), posts[i],
                                  "process %d, straight after %s: the author's posts list post %s",
                                  q, what, posts[i]);
            }
            json_decref(list);
        }
        /* A process's own view of the post does not let it delete the post twice. */
        int q = (w + 1) % PROCS;
        cr_assert_eq(ts_status(srv[q].port, "DELETE", &x, NULL, "/v1/posts/%s", posts[i]), 404,
                     "process %d let the author delete post %s again, after %s", q, posts[i], what);
    }
}

/* ---- 3. profile ------------------------------------------------------------------------------ */

#define RENAMES 6

Test(read_cache, a_new_display_name_shows_at_once_in_posts_and_timelines)
{
    start(PROCS);
    ts_user_t x, f, v;
    ts_register(srv[A].port, "rcx", &x);
    ts_register(srv[B].port, "rcf", &f);
    ts_register(srv[C].port, "rcv", &v);
    ts_follow(srv[A].port, &f, &x);
    char p[24];
    ts_post(srv[A].port, &x, "by someone renamed", p);
    for (int q = 0; q < PROCS; q++) {
        wait_timeline_has(q, &f, p);
        json_decref(get_post(q, &v, p, "the post"));
        expect_cached(q, &v, p);
    }

    char name[64], body[128], what[160];
    for (int round = 0; round < RENAMES; round++) {
        int w = round % PROCS;
        snprintf(name, sizeof(name), "Renamed %d", round);
        snprintf(body, sizeof(body), "{\"display_name\":\"%s\"}", name);
        json_t *me = ts_callf(srv[w].port, "PATCH", &x, body, 200, "/v1/me");
        cr_assert_str_eq(ts_str(me, "display_name"), name, "the edit answered another name");
        json_decref(me);
        snprintf(what, sizeof(what), "a rename through process %d (round %d)", w, round);
        for (int k = 1; k <= PROCS; k++) {
            int q = (w + k) % PROCS;
            expect_post(q, &v, p, 0, 0, name, what);
            json_t *item = timeline_item(q, &f, p);
            cr_assert(item, "process %d: the follower's timeline lost post %s", q, p);
            char got[64];
            snprintf(got, sizeof(got), "%s",
                     ts_str(json_object_get(item, "author"), "display_name"));
            json_decref(item);
            cr_assert_str_eq(got, name,
                             "process %d, straight after %s: the follower's timeline names the "
                             "author \"%s\", not \"%s\"",
                             q, what, got, name);
            json_t *list =
                ts_callf(srv[q].port, "GET", &v, NULL, 200, "/v1/users/%s/posts?limit=100", x.id);
            json_t *first = json_array_get(json_object_get(list, "items"), 0);
            snprintf(got, sizeof(got), "%s",
                     ts_str(json_object_get(first, "author"), "display_name"));
            json_decref(list);
            cr_assert_str_eq(got, name,
                             "process %d, straight after %s: the author's posts name the author "
                             "\"%s\", not \"%s\"",
                             q, what, got, name);
        }
    }
}

/* ---- 4. blocks and mutes --------------------------------------------------------------------- */

#define BLOCK_ROUNDS 6

/* a blocks (on: true) or unblocks b through process w. */
static void block(int w, const ts_user_t *a, const ts_user_t *b, bool on)
{
    json_decref(
        ts_callf(srv[w].port, on ? "PUT" : "DELETE", a, NULL, 204, "/v1/users/%s/block", b->id));
}

/* GET /v1/posts/{id} answers a post whose author blocked the reader, or whom the reader
 * blocked, as a missing one (api/handlers_posts.c): so must every process straight after
 * the block, and show it again straight after the unblock. */
Test(read_cache, a_block_hides_posts_at_once_both_ways_on_every_process)
{
    start(PROCS);
    ts_user_t x, v;
    ts_register(srv[A].port, "rcx", &x);
    ts_register(srv[B].port, "rcv", &v);
    ts_follow(srv[C].port, &v, &x);
    char px[24], pv[24];
    ts_post(srv[C].port, &x, "by x", px);
    ts_post(srv[A].port, &v, "by v", pv);
    for (int q = 0; q < PROCS; q++) {
        wait_timeline_has(q, &v, px);
        json_decref(get_post(q, &v, px, "the post"));
        expect_cached(q, &v, px);
        json_decref(get_post(q, &x, pv, "the post"));
        expect_cached(q, &x, pv);
    }

    char what[160];
    for (int round = 0; round < BLOCK_ROUNDS; round++) {
        int w = round % PROCS, w2 = (w + 1) % PROCS;
        /* Even rounds: v blocks x (blocks:{v}, blockedby:{x}); odd: x blocks v. */
        const ts_user_t *blocker = round % 2 ? &x : &v, *blocked = round % 2 ? &v : &x;
        block(w, blocker, blocked, true);
        snprintf(what, sizeof(what), "user %s's block of %s through process %d (round %d)",
                 blocker->id, blocked->id, w, round);
        for (int k = 1; k <= PROCS; k++) {
            int q = (w + k) % PROCS;
            expect_absent(q, &v, px, what);
            expect_absent(q, &x, pv, what);
            /* The follow the block ended was there until now: its entry is hidden at once. */
            if (round == 0)
                cr_assert(!timeline_has(q, &v, px),
                          "process %d, straight after %s: the blocker's timeline lists the "
                          "blocked user's post %s",
                          q, what, px);
        }
        block(w2, blocker, blocked, false);
        snprintf(what, sizeof(what), "user %s's unblock of %s through process %d (round %d)",
                 blocker->id, blocked->id, w2, round);
        for (int k = 1; k <= PROCS; k++) {
            int q = (w2 + k) % PROCS;
            expect_post(q, &v, px, 0, 0, NULL, what);
            expect_post(q, &x, pv, 0, 0, NULL, what);
        }
    }
}

#define MUTE_ROUNDS 3

/* A mute hides the muted user's posts from the muter's home timeline only: GET /v1/posts/{id}
 * hides blocks, not mutes (api/handlers_posts.c), and keeps answering the post. */
Test(read_cache, a_mute_hides_timeline_entries_at_once_on_every_process)
{
    start(PROCS);
    ts_user_t x, v;
    ts_register(srv[A].port, "rcx", &x);
    ts_register(srv[B].port, "rcv", &v);
    ts_follow(srv[C].port, &v, &x);
    char px[24];
    ts_post(srv[C].port, &x, "by someone muted", px);
    for (int q = 0; q < PROCS; q++) {
        wait_timeline_has(q, &v, px);
        json_decref(get_post(q, &v, px, "the post"));
        expect_cached(q, &v, px);
    }

    char what[160];
    for (int round = 0; round < MUTE_ROUNDS; round++) {
        int w = round % PROCS, w2 = (w + 1) % PROCS;
        json_decref(ts_callf(srv[w].port, "PUT", &v, NULL, 204, "/v1/users/%s/mute", x.id));
        snprintf(what, sizeof(what), "the mute through process %d (round %d)", w, round);
        for (int k = 1; k <= PROCS; k++) {
            int q = (w + k) % PROCS;
            cr_assert(!timeline_has(q, &v, px),
                      "process %d, straight after %s: the muter's timeline lists post %s", q, what,
                      px);
            expect_post(q, &v, px, 0, 0, NULL, what);
        }
        /* The unmute's entries come back by a backfill job: once it has run (and the mute's
         * scrub before it), every process lists the post again. Not at once, but a process
         * still holding the mute would hide it for good. */
        wait_idle();
        json_decref(ts_callf(srv[w2].port, "DELETE", &v, NULL, 204, "/v1/users/%s/mute", x.id));
        wait_idle();
        snprintf(what, sizeof(what), "the unmute through process %d (round %d)", w2, round);
        for (int k = 1; k <= PROCS; k++) {
            int q = (w2 + k) % PROCS;
            cr_assert(timeline_has(q, &v, px),
                      "process %d, after %s and its backfill: the timeline does not list post %s",
                      q, what, px);
        }
    }
}

/* ---- 5. FLUSHALL ----------------------------------------------------------------------------- */

/* Registers a user on p, again while the process may still answer 503 (its id node's lease,
 * lost with the data, is taken again by its next renewal). */
static void register_after_flush(int p, const char *prefix, ts_user_t *u)
{
    uint64_t deadline = ts_now_ms() + SO_WAIT_MS;
    for (int i = 0; i < 1000; i++) {
        memset(u, 0, sizeof(*u));
        ts_unique(u->handle, sizeof(u->handle), prefix);
        char body[128];
        snprintf(body, sizeof(body), "{\"handle\":\"%s\"}", u->handle);
        ts_resp_t r;
        ts_http(srv[p].port, "POST", "/v1/users", NULL, NULL, body, &r);
        json_t *j = r.status == 201 ? ts_resp_json(&r) : NULL;
        int status = r.status;
        ts_resp_free(&r);
        if (j) {
            snprintf(u->id, sizeof(u->id), "%s", ts_str(json_object_get(j, "user"), "id"));
            snprintf(u->token, sizeof(u->token), "%s", ts_str(j, "token"));
            u->num = ts_id(u->id);
            json_decref(j);
            cr_assert(u->num && u->token[0], "the registration answer has no user id or token");
            return;
        }
        cr_assert(status == 503, "registering after the flush answered %d", status);
        if (ts_now_ms() >= deadline)
            break;
        ts_sleep_ms(50);
    }
    cr_assert_fail("process %d did not register a user within %d s of the flush", p,
                   SO_WAIT_MS / 1000);
}

Test(read_cache, a_flushall_leaves_nothing_old_to_serve)
{
    start(2);
    ts_user_t x, v;
    ts_register(srv[A].port, "rcx", &x);
    ts_register(srv[A].port, "rcv", &v);
    char p[24];
    ts_post(srv[A].port, &x, "flushed away", p);
    json_decref(get_post(B, &v, p, "the post"));
    expect_cached(B, &v, p);
    json_decref(ts_callf(srv[B].port, "GET", &v, NULL, 200, "/v1/users/%s", x.id));

    redisContext *rc = ts_redis_connect(redis.port);
    freeReplyObject(ts_redis_cmd_ok(rc, "FLUSHALL"));
    ts_redis_close(rc);

    /* A write through the API after the flush, answered: by then Redis has sent every process
     * the flush's invalidation (it goes out while FLUSHALL runs, but may reach the socket just
     * after FLUSHALL's own reply, so a read racing that reply is not what this holds). */
    ts_user_t n;
    register_after_flush(A, "rcn", &n);
    /* v's token is gone too, so 401 is as right as 404 (a token verified a moment ago may be
     * trusted a few seconds more, api/auth.c); the old post is not. */
    char path[64];
    snprintf(path, sizeof(path), "/v1/posts/%s", p);
    ts_resp_t r;
    ts_http(srv[B].port, "GET", path, v.token, NULL, NULL, &r);
    int status = r.status;
    cr_assert(status == 404 || status == 401, "process 1, after FLUSHALL: GET %s answered %d: %s",
              path, status, r.body);
    ts_resp_free(&r);
    /* A reader who exists now sees no post and no author, on either process. */
    for (int q = B; q >= A; q--) {
        expect_absent(q, &n, p, "FLUSHALL and a registration");
        cr_assert_eq(ts_status(srv[q].port, "GET", &n, NULL, "/v1/users/%s", x.id), 404,
                     "process %d still knows the flushed author %s", q, x.id);
    }
}

/* ---- 6. the cache is used -------------------------------------------------------------------- */

#define REREADS 50

Test(read_cache, repeated_reads_are_served_from_the_cache)
{
    start(2);
    ts_user_t x, v;
    ts_register(srv[A].port, "rcx", &x);
    ts_register(srv[A].port, "rcv", &v);
    ts_follow(srv[A].port, &v, &x);
    char p[24];
    ts_post(srv[A].port, &x, "read again and again", p);
    wait_timeline_has(A, &v, p);
    wait_idle(); /* nothing but these reads on B from here on */

    json_decref(get_post(B, &v, p, "the post"));
    double hits = metric(B, HITS), misses = metric(B, MISSES);
    for (int i = 0; i < REREADS; i++) {
        json_t *j = get_post(B, &v, p, "an earlier read");
        cr_assert_str_eq(ts_str(j, "text"), "read again and again");
        json_decref(j);
    }
    double hits2 = metric(B, HITS), misses2 = metric(B, MISSES);
    cr_assert_geq(hits2 - hits, REREADS, "%d reads of a cached post made %g cache hits", REREADS,
                  hits2 - hits);
    cr_assert_eq(misses2, misses, "%d reads of a cached post made %g cache misses", REREADS,
                 misses2 - misses);

    /* The home timeline's posts come from the cache too (its entries are read from Redis). */
    cr_assert(timeline_has(B, &v, p));
    hits = metric(B, HITS);
    for (int i = 0; i < REREADS; i++)
        cr_assert(timeline_has(B, &v, p), "read %d of the timeline lacks post %s", i, p);
    hits2 = metric(B, HITS);
    cr_assert_geq(hits2 - hits, REREADS,
                  "%d reads of a timeline page of one cached post made %g cache hits: GET "
                  "/v1/timeline is not served from the cache",
                  REREADS, hits2 - hits);
}

/* Quiet for a while, the cache keeps what it holds: its liveness pings (every 250 ms, when
 * no invalidation comes) neither drop it nor take the tracking connection down. */
Test(read_cache, a_quiet_spell_keeps_the_cache)
{
    start(1);
    ts_user_t x;
    ts_register(srv[A].port, "rcq", &x);
    char p[24];
    ts_post(srv[A].port, &x, "still here after a pause", p);
    wait_idle();
    json_decref(get_post(A, &x, p, "the post"));
    double hits = metric(A, HITS), misses = metric(A, MISSES);
    for (int i = 0; i < 4; i++) {
        ts_sleep_ms(600); /* a few pings' worth, and past the cache's second of silence */
        json_decref(get_post(A, &x, p, "after a quiet spell"));
    }
    cr_expect_eq(metric(A, HITS) - hits, 4, "4 reads after quiet spells made %g cache hits",
                 metric(A, HITS) - hits);
    cr_expect_eq(metric(A, MISSES), misses, "reads after quiet spells made %g misses",
                 metric(A, MISSES) - misses);
    cr_expect_eq(metric(A, "tidings_read_cache_up"), 1);
}

/* ---- 7. timeline first pages ----------------------------------------------------------------- */

/* A home timeline's first page (no cursor) is cached whole: its ids, reposters and next cursor
 * (any limit). Whatever changes what it lists drops it on every process: a fan-out writing a
 * post in or taking one out (tl:{user}), a repost entry (rb:{user}), a follow or unfollow of a
 * celebrity (celebs:{user}), a post of a celebrity followed (posts:{celeb}). A page is read
 * straight after the fan-out job that changed it finished (wait_idle), or after the answer
 * of the write itself where no job is involved (a celebrity's post or delete), on a process
 * whose page was served from its cache just before. */

#define TL_HITS "tidings_read_cache_timeline_hits_total"
#define TL_MISSES "tidings_read_cache_timeline_misses_total"
/* The limit of the pages cached here: few entries, so that stale ids show. A deleted post
 * whose id a stale page still lists is left out when the page is hydrated, which would leave
 * it one short; a post written in would be past its end, or missing. */
#define PAGE 3
/* The limit of a second reader's pages, long enough to hold a whole timeline. Each reader
 * reads with one limit only: a process may keep one first page per user, of the limit last
 * read, and a reader alternating limits would never be served a kept page. */
#define LONG_PAGE 20
/* More entries than any timeline here holds. */
#define PAGE_MAX 32
/* A page's next cursor that is not compared (a repost entry's score is the repost's id). */
#define ANY_NEXT UINT64_MAX

typedef struct page_s {
    size_t n;
    uint64_t ids[PAGE_MAX], rbs[PAGE_MAX]; /* rbs: who reposted ids[i], 0 for none */
    uint64_t next;                         /* the next page's cursor, 0 for none */
} page_t;

static int cmp_desc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* The page of limit that a timeline of posts (ids in any order, no repost entries) has below
 * cursor (0: the first page), into want: newest first, as entries are scored by their id. */
static void expected(page_t *want, const uint64_t *posts, size_t n, int limit, uint64_t cursor)
{
    uint64_t sorted[PAGE_MAX];
    size_t k = 0;
    cr_assert_leq(n, PAGE_MAX, "a test timeline of %zu posts is over %d", n, PAGE_MAX);
    for (size_t i = 0; i < n; i++)
        if (!cursor || posts[i] < cursor)
            sorted[k++] = posts[i];
    qsort(sorted, k, sizeof(uint64_t), cmp_desc);
    memset(want, 0, sizeof(*want));
    want->n = k < (size_t)limit ? k : (size_t)limit;
    memcpy(want->ids, sorted, want->n * sizeof(uint64_t));
    want->next = k > want->n ? want->ids[want->n - 1] : 0;
}

/* "[id, id reposted by user, …] next cursor n" into buf. */
static const char *page_str(char *buf, size_t size, const page_t *pg)
{
    size_t used = (size_t)snprintf(buf, size, "[");
    for (size_t i = 0; i < pg->n && used < size; i++) {
        used += (size_t)snprintf(buf + used, size - used, "%s%llu", i ? ", " : "",
                                 (unsigned long long)pg->ids[i]);
        if (pg->rbs[i] && used < size)
            used += (size_t)snprintf(buf + used, size - used, " reposted by %llu",
                                     (unsigned long long)pg->rbs[i]);
    }
    if (used < size)
        snprintf(buf + used, size - used, "] next cursor %llu", (unsigned long long)pg->next);
    return buf;
}

/* GET /v1/timeline?limit=limit (&cursor=cursor unless 0) as u on p, into got. */
static void read_page(int p, const ts_user_t *u, int limit, uint64_t cursor, page_t *got)
{
    char query[64];
    if (cursor)
        snprintf(query, sizeof(query), "limit=%d&cursor=%llu", limit, (unsigned long long)cursor);
    else
        snprintf(query, sizeof(query), "limit=%d", limit);
    json_t *page = ts_callf(srv[p].port, "GET", u, NULL, 200, "/v1/timeline?%s", query);
    json_t *items = json_object_get(page, "items"), *v;
    cr_assert(json_is_array(items) && json_array_size(items) <= (size_t)limit &&
                  json_array_size(items) <= PAGE_MAX,
              "process %d: GET /v1/timeline?%s as user %s answered %zu items", p, query, u->id,
              json_array_size(items));
    memset(got, 0, sizeof(*got));
    size_t i;
    json_array_foreach(items, i, v)
    {
        got->ids[i] = ts_json_id(v, "id");
        got->rbs[i] = ts_json_id(json_object_get(v, "reposted_by"), "id");
    }
    got->n = json_array_size(items);
    got->next = ts_json_id(page, "next_cursor");
    json_decref(page);
}

static bool same_page(const page_t *got, const page_t *want)
{
    if (got->n != want->n || (want->next != ANY_NEXT && got->next != want->next))
        return false;
    for (size_t i = 0; i < want->n; i++)
        if (got->ids[i] != want->ids[i] || got->rbs[i] != want->rbs[i])
            return false;
    return true;
}

/* u's page of limit below cursor (0: the first page), read on p, is want; after names what
 * came just before, for the failure's message. */
static void expect_page(int p, const ts_user_t *u, int limit, uint64_t cursor, const page_t *want,
                        const char *after)
{
    page_t got;
    read_page(p, u, limit, cursor, &got);
    char g[640], w[640], at[48] = "its first page";
    if (cursor)
        snprintf(at, sizeof(at), "its page after cursor %llu", (unsigned long long)cursor);
    if (want->next == ANY_NEXT)
        got.next = ANY_NEXT;
    cr_assert(same_page(&got, want),
              "process %d, straight after %s: user %s's timeline, %s of limit %d, lists %s, not "
              "%s",
              p, after, u->id, at, limit, page_str(g, sizeof(g), &got),
              page_str(w, sizeof(w), want));
}

/* Reads u's first page of limit on p until a read is served from p's cache (its timeline hits
 * grow; a read before this filled the cache), every read listing want. A few may go to Redis
 * even so, as in expect_cached. */
static void expect_page_cached(int p, const ts_user_t *u, int limit, const page_t *want)
{
    double before = metric(p, TL_HITS), missed = metric(p, TL_MISSES), after = before;
    for (int i = 0; i < CACHED_TRIES && after == before; i++) {
        if (i)
            ts_sleep_ms(20);
        expect_page(p, u, limit, 0, want, "an earlier read of the page");
        after = metric(p, TL_HITS);
    }
    cr_assert_gt(after, before,
                 "process %d: %d more reads of user %s's first timeline page (limit %d) were no "
                 "cache hit (" TL_HITS " stayed %g; " TL_MISSES " %g, then %g; " UP " %g)",
                 p, CACHED_TRIES, u->id, limit, before, missed, metric(p, TL_MISSES),
                 metric(p, UP));
}

/* The first pages of f (limit PAGE) and fl (LONG_PAGE), two readers following the same
 * users, read on every process from proc on, are want and want_long straight after what after
 * names; then every process serves them from its cache, so that the next write finds them
 * cached everywhere. */
static void expect_pages_everywhere(int proc, const ts_user_t *f, const ts_user_t *fl,
                                    const page_t *want, const page_t *want_long, const char *after)
{
    for (int k = 0; k < PROCS; k++) {
        int q = (proc + k) % PROCS;
        if (!srv[q].pid)
            continue;
        expect_page(q, f, PAGE, 0, want, after);
        expect_page(q, fl, LONG_PAGE, 0, want_long, after);
    }
    for (int q = 0; q < PROCS; q++) {
        if (!srv[q].pid)
            continue;
        expect_page_cached(q, f, PAGE, want);
        expect_page_cached(q, fl, LONG_PAGE, want_long);
    }
}

/* The same for a timeline of posts (n of them, no repost entries). */
static void expect_first_pages(int proc, const ts_user_t *f, const ts_user_t *fl,
                               const uint64_t *posts, size_t n, const char *after)
{
    page_t want, want_long;
    expected(&want, posts, n, PAGE, 0);
    expected(&want_long, posts, n, LONG_PAGE, 0);
    expect_pages_everywhere(proc, f, fl, &want, &want_long, after);
}

/* The author x (registered on A) and the two readers of these tests, f (on B) and fl (on C),
 * following x through processes f_via and fl_via. */
static void author_and_readers(ts_user_t *x, ts_user_t *f, ts_user_t *fl, int f_via, int fl_via)
{
    ts_register(srv[A].port, "rcx", x);
    ts_register(srv[B].port, "rcf", f);
    ts_register(srv[C].port, "rcf", fl);
    ts_follow(srv[f_via].port, f, x);
    ts_follow(srv[fl_via].port, fl, x);
}

#define TL_ROUNDS 6

Test(read_cache, a_cached_first_page_shows_a_new_post_once_its_fanout_is_done)
{
    start(PROCS);
    ts_user_t x, f, fl;
    author_and_readers(&x, &f, &fl, A, C);
    uint64_t posts[TL_ROUNDS + 1];
    posts[0] = ts_post(srv[A].port, &x, "before the cache", NULL);
    wait_idle();
    expect_first_pages(B, &f, &fl, posts, 1, "the first post's fan-out");

    char what[160];
    for (int round = 0; round < TL_ROUNDS; round++) {
        /* Round 0 reads on B what was posted through A; then every pair of processes. */
        int q = (B + round) % PROCS, w = (q + PROCS - 1) % PROCS;
        char text[32];
        snprintf(text, sizeof(text), "fanned out %d", round);
        posts[round + 1] = ts_post(srv[w].port, &x, text, NULL);
        wait_idle();
        snprintf(what, sizeof(what), "the fan-out of post %llu, made through process %d (round %d)",
                 (unsigned long long)posts[round + 1], w, round);
        expect_first_pages(q, &f, &fl, posts, (size_t)round + 2, what);
    }
}

#define TL_DELETES 5

Test(read_cache, a_deleted_post_leaves_a_cached_first_page_once_its_job_is_done)
{
    start(PROCS);
    ts_user_t x, f, fl;
    author_and_readers(&x, &f, &fl, C, A);
    uint64_t posts[TL_DELETES + PAGE];
    size_t n = 0;
    for (int i = 0; i < TL_DELETES + PAGE; i++) {
        char text[32];
        snprintf(text, sizeof(text), "to be deleted %d", i);
        posts[n++] = ts_post(srv[i % PROCS].port, &x, text, NULL);
    }
    wait_idle();
    expect_first_pages(B, &f, &fl, posts, n, "the posts' fan-out");

    char what[160], id[24];
    for (int round = 0; round < TL_DELETES; round++) {
        int q = (B + round) % PROCS, w = (q + PROCS - 1) % PROCS;
        /* One of the first page's posts: the newest, the second, the third, … */
        page_t want;
        expected(&want, posts, n, PAGE, 0);
        uint64_t gone = want.ids[(size_t)round % want.n];
        snprintf(id, sizeof(id), "%llu", (unsigned long long)gone);
        ts_delete_post(srv[w].port, &x, id);
        for (size_t i = 0; i < n; i++)
            if (posts[i] == gone)
                posts[i] = posts[--n];
        wait_idle();
        snprintf(what, sizeof(what),
                 "the delete job of post %s, deleted through process %d (round %d)", id, w, round);
        expect_first_pages(q, &f, &fl, posts, n, what);
    }
}

/* The threshold these processes run with: an author with 2 followers is a celebrity. */
#define CELEB_THRESHOLD "1"
#define CELEB_ROUNDS 4

/* A celebrity's post goes only into posts:{author}, written with the post before its 202
 * (storage/posts.c), and is merged into the followers' timelines at read time
 * (storage/timeline_view.c): no fan-out job writes it into a timeline, so it is read straight
 * after the 202, and so is the celebrity's delete (it takes the post out of posts:{author}
 * before its 204). An author becomes a celebrity with the fan-out of its first post past the
 * threshold (fanout/job.c: celeb:{author}, and celebs:{follower} for every follower); a follow
 * or unfollow of a celebrity then changes celebs:{follower} in its job. */
Test(read_cache, a_celebritys_post_shows_at_once_on_a_cached_first_page)
{
    start_redis();
    for (int p = 0; p < PROCS; p++)
        start_proc(p, (const char *const[]){"--celebrity-threshold", CELEB_THRESHOLD, NULL}, true);
    ts_user_t x, y, f, fl;
    ts_register(srv[A].port, "rcx", &x); /* the celebrity */
    ts_register(srv[A].port, "rcy", &y); /* an author under the threshold */
    ts_register(srv[B].port, "rcf", &f); /* the readers, each following both */
    ts_register(srv[C].port, "rcf", &fl);
    ts_follow(srv[A].port, &f, &x);
    ts_follow(srv[C].port, &fl, &x);
    ts_follow(srv[B].port, &f, &y);
    ts_follow(srv[B].port, &fl, &y);
    wait_idle(); /* the follows' jobs, which would write x's first post in (a backfill) */
    uint64_t posts[CELEB_ROUNDS + 2];
    size_t n = 0;
    posts[n++] = ts_post(srv[A].port, &y, "fanned out", NULL);
    posts[n++] = ts_post(srv[C].port, &x, "makes a celebrity", NULL);
    wait_idle();
    redisContext *rc = ts_redis_connect(redis.port);
    cr_assert(ts_redis_int(rc, "EXISTS celeb:{%s}", x.id) == 1 &&
                  ts_redis_int(rc, "SISMEMBER celebs:{%s} %s", f.id, x.id) == 1 &&
                  ts_redis_int(rc, "SISMEMBER celebs:{%s} %s", fl.id, x.id) == 1,
              "user %s, with 2 followers over --celebrity-threshold " CELEB_THRESHOLD
              ", was not made a celebrity followed by users %s and %s",
              x.id, f.id, fl.id);
    expect_first_pages(B, &f, &fl, posts, n, "the first posts' fan-out");

    char what[160];
    for (int round = 0; round < CELEB_ROUNDS; round++) {
        int q = (B + round) % PROCS, w = (q + PROCS - 1) % PROCS;
        char text[32];
        snprintf(text, sizeof(text), "merged at read time %d", round);
        posts[n++] = ts_post(srv[w].port, &x, text, NULL);
        snprintf(what, sizeof(what), "the celebrity's post %llu through process %d (round %d)",
                 (unsigned long long)posts[n - 1], w, round);
        expect_first_pages(q, &f, &fl, posts, n, what);
    }
    for (size_t i = 2; i < n; i++)
        cr_assert(!ts_timeline_holds(rc, f.num, posts[i]),
                  "the celebrity's post %llu was written into the reader's timeline: the page "
                  "is not merged at read time",
                  (unsigned long long)posts[i]);
    ts_redis_close(rc);

    /* Its newest post deleted: out of posts:{author} before the 204. */
    char id[24];
    snprintf(id, sizeof(id), "%llu", (unsigned long long)posts[--n]);
    ts_delete_post(srv[A].port, &x, id);
    snprintf(what, sizeof(what), "the celebrity's delete of post %s through process 0", id);
    expect_first_pages(B, &f, &fl, posts, n, what);

    /* Unfollowed, the celebrity's posts leave the page with the unfollow's job; followed again,
     * they come back with the follow's. */
    wait_idle();
    ts_unfollow(srv[A].port, &f, &x);
    ts_unfollow(srv[C].port, &fl, &x);
    wait_idle();
    expect_first_pages(B, &f, &fl, posts, 1, "the unfollows of the celebrity, and their jobs");
    ts_follow(srv[C].port, &f, &x);
    ts_follow(srv[A].port, &fl, &x);
    wait_idle();
    expect_first_pages(B, &f, &fl, posts, n, "the follows of the celebrity, and their jobs");
}

#define TL_REPOSTS 3

Test(read_cache, a_repost_comes_and_goes_at_once_on_a_cached_first_page)
{
    start(PROCS);
    ts_user_t x, z, f, fl;
    ts_register(srv[A].port, "rcx", &x); /* followed by the readers, reposts z's post */
    ts_register(srv[B].port, "rcz", &z); /* not followed */
    ts_register(srv[C].port, "rcf", &f);
    ts_register(srv[A].port, "rcf", &fl);
    ts_follow(srv[A].port, &f, &x);
    ts_follow(srv[B].port, &fl, &x);
    uint64_t px = ts_post(srv[A].port, &x, "followed", NULL);
    char pz[24];
    ts_post(srv[B].port, &z, "reposted", pz);
    wait_idle();
    expect_first_pages(B, &f, &fl, &px, 1, "the posts' fan-out");

    /* The repost entry comes first (scored by the repost), naming x; both pages hold all. */
    page_t with = {.n = 2, .ids = {ts_id(pz), px}, .rbs = {x.num, 0}, .next = 0};
    char what[160];
    for (int round = 0; round < TL_REPOSTS; round++) {
        int q = (B + round) % PROCS, w = (q + PROCS - 1) % PROCS, w2 = (w + 1) % PROCS;
        json_decref(ts_callf(srv[w].port, "POST", &x, NULL, 202, "/v1/posts/%s/repost", pz));
        wait_idle();
        snprintf(what, sizeof(what), "the job of a repost through process %d (round %d)", w, round);
        expect_pages_everywhere(q, &f, &fl, &with, &with, what);
        json_decref(ts_callf(srv[w2].port, "DELETE", &x, NULL, 204, "/v1/posts/%s/repost", pz));
        wait_idle();
        snprintf(what, sizeof(what), "the job of an unrepost through process %d (round %d)", w2,
                 round);
        expect_first_pages((w2 + 1) % PROCS, &f, &fl, &px, 1, what);
    }
}

/* The first page alone is cached: pages read with a cursor come from Redis every time (not
 * counted as hits nor as misses of first pages), and right after a change. */
#define CURSOR_POSTS 8
#define CURSOR_WALKS 10

Test(read_cache, pages_after_a_cursor_are_no_cache_hits_and_come_right)
{
    start(2);
    ts_user_t x, f;
    ts_register(srv[A].port, "rcx", &x);
    ts_register(srv[B].port, "rcf", &f);
    ts_follow(srv[A].port, &f, &x);
    uint64_t posts[CURSOR_POSTS];
    size_t n = 0;
    for (int i = 0; i < CURSOR_POSTS; i++)
        posts[n++] = ts_post(srv[i % 2].port, &x, "paged", NULL);
    wait_idle();
    page_t first;
    expected(&first, posts, n, PAGE, 0);
    expect_page(B, &f, PAGE, 0, &first, "the posts' fan-out");
    expect_page_cached(B, &f, PAGE, &first);

    double hits = metric(B, TL_HITS), misses = metric(B, TL_MISSES);
    page_t want;
    for (int walk = 0; walk < CURSOR_WALKS; walk++)
        for (uint64_t cursor = first.next; cursor;) {
            expected(&want, posts, n, PAGE, cursor);
            expect_page(B, &f, PAGE, cursor, &want, "the first page's read");
            cursor = want.next;
        }
    double hits2 = metric(B, TL_HITS), misses2 = metric(B, TL_MISSES);
    cr_assert(hits2 == hits && misses2 == misses,
              "%d walks of the pages after the first page's cursor made %g first-page cache hits "
              "and %g misses, not none",
              CURSOR_WALKS, hits2 - hits, misses2 - misses);

    /* A post of the second page deleted through A: B's second page shows it gone once the
     * delete's job is done, and the first page, the same as before, is read anew and cached. */
    expected(&want, posts, n, PAGE, first.next);
    char id[24], what[160];
    snprintf(id, sizeof(id), "%llu", (unsigned long long)want.ids[1]);
    ts_delete_post(srv[A].port, &x, id);
    for (size_t i = 0; i < n; i++)
        if (posts[i] == want.ids[1])
            posts[i] = posts[--n];
    wait_idle();
    snprintf(what, sizeof(what), "the delete job of post %s, deleted through process 0", id);
    expected(&want, posts, n, PAGE, first.next);
    expect_page(B, &f, PAGE, first.next, &want, what);
    expect_page(B, &f, PAGE, 0, &first, what);
    expect_page_cached(B, &f, PAGE, &first);
}

/* ---- 8. --read-cache 0 ----------------------------------------------------------------------- */

Test(read_cache, without_a_cache_the_same_reads_come_right)
{
    start_redis();
    start_proc(A, NULL, true);
    start_proc(B, (const char *const[]){"--read-cache", "0", NULL}, false);
    cr_assert_eq(metric(B, UP), 0, "process 1 runs with --read-cache 0 but says it uses a cache");
    ts_user_t x, v, l, f;
    ts_register(srv[A].port, "rcx", &x);
    ts_register(srv[B].port, "rcv", &v);
    ts_register(srv[A].port, "rcl", &l);
    ts_register(srv[B].port, "rcf", &f);
    ts_follow(srv[A].port, &f, &x);
    char p[24], q[24];
    ts_post(srv[A].port, &x, "read without a cache", p);
    ts_post(srv[B].port, &x, "deleted without a cache", q);
    for (int s = A; s <= B; s++) {
        wait_timeline_has(s, &f, q);
        expect_post(s, &v, p, 0, 0, NULL, "the post");
        expect_post(s, &v, p, 0, 0, NULL, "the post");
    }

    char what[160];
    for (int round = 0; round < 10; round++) {
        int w = round % 2, o = 1 - w;
        json_decref(ts_callf(srv[w].port, "PUT", &l, NULL, 204, "/v1/posts/%s/like", p));
        snprintf(what, sizeof(what), "a like through process %d (round %d)", w, round);
        expect_post(o, &v, p, 1, 0, NULL, what);
        expect_post(w, &v, p, 1, 0, NULL, what);
        json_decref(ts_callf(srv[o].port, "DELETE", &l, NULL, 204, "/v1/posts/%s/like", p));
        snprintf(what, sizeof(what), "an unlike through process %d (round %d)", o, round);
        expect_post(w, &v, p, 0, 0, NULL, what);
        expect_post(o, &v, p, 0, 0, NULL, what);
    }
    json_decref(
        ts_callf(srv[A].port, "PATCH", &x, "{\"display_name\":\"Uncached\"}", 200, "/v1/me"));
    expect_post(B, &v, p, 0, 0, "Uncached", "a rename through process 0");
    expect_post(A, &v, p, 0, 0, "Uncached", "a rename through process 0");
    ts_delete_post(srv[A].port, &x, q);
    expect_absent(B, &v, q, "its delete through process 0");
    expect_absent(A, &v, q, "its delete through process 0");
    cr_assert(!timeline_has(B, &f, q) && !timeline_has(A, &f, q),
              "a timeline lists post %s after its delete", q);
    json_decref(ts_callf(srv[B].port, "PUT", &v, NULL, 204, "/v1/users/%s/block", x.id));
    expect_absent(A, &v, p, "a block through process 1");
    expect_absent(B, &v, p, "a block through process 1");

    /* First pages read again and again on B show a post through A once its fan-out is done,
     * and B counts none of them as a cached first page, hit or miss (nor, with the counters
     * not there at all, is that a failure). */
    wait_idle(); /* the delete's job */
    uint64_t home[2] = {ts_id(p), 0};
    page_t want;
    expected(&want, home, 1, PAGE, 0);
    for (int i = 0; i < 3; i++)
        expect_page(B, &f, PAGE, 0, &want, "the delete's job");
    home[1] = ts_post(srv[A].port, &x, "paged without a cache", NULL);
    wait_idle();
    expected(&want, home, 2, PAGE, 0);
    expect_page(B, &f, PAGE, 0, &want, "the fan-out of a post through process 0");
    expect_page(A, &f, PAGE, 0, &want, "the fan-out of a post through process 0");
    double tl_hits = 0, tl_misses = 0;
    cr_assert(!metric_found(B, TL_HITS, &tl_hits) || tl_hits == 0,
              "process 1 runs with --read-cache 0 but counts %g cached first pages served",
              tl_hits);
    cr_assert(!metric_found(B, TL_MISSES, &tl_misses) || tl_misses == 0,
              "process 1 runs with --read-cache 0 but counts %g first pages missed in its cache",
              tl_misses);

    cr_assert_eq(metric(B, HITS), 0, "process 1 runs with --read-cache 0 but counts %g cache hits",
                 metric(B, HITS));
    cr_assert_eq(metric(B, UP), 0);
    cr_assert_eq(metric(A, UP), 1, "process 0's cache went out of use");
}
