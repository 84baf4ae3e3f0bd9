/* tests/sse/test_resubscribe.c -- a stream that stays connected while this process's pub/sub
 * subscriber loses its connection still gets every event, once and in order.
 *
 * Pub/sub drops what is published while a subscriber is away. The gap is made deterministic
 * by killing the subscriber's connections (CLIENT KILL TYPE pubsub, on every node) every few
 * milliseconds while posts are made and fanned out: the process spends nearly all of that
 * time reconnecting, so nearly every event is published to nobody. The engine's connections
 * are not pub/sub ones and carry on. Once the killing stops, the subscriber is back within
 * its reconnect backoff, and the stream must have caught up from its event log within 2 s.
 * A private Redis: the test counts and orders events, and kills every pub/sub client.
 *
 * The catch-up that follows also finds a log that lost events: gone (expired, or lost by
 * Redis) or gone back (its newest entries lost). Then the stream must say so: a reset on
 * it, or its end, and a reset first on the resume after its last id.
 */
#include "tests/sse/sx.h"

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(sse_resubscribe, .fini = sx_teardown, .timeout = SX_TIMEOUT);

static ts_server_t srv;

#define KILL_EVERY_MS 3
#define CATCH_UP_MS 2000 /* after the subscriber is back */
#define BACK_MS 10000    /* its reconnect backoff is at most 2 s; sanitizer builds are slow */

/* ---- the nodes of the test's Redis ---------------------------------------------------------- */

typedef struct nodes_s {
    int n;
    int port[TS_CLUSTER_MAX];
} nodes_t;

/* Every "host:port" of sx_redis_url: the redis-server, or each node of the cluster's seed list
 * (all of its masters). */
static void nodes_of_url(nodes_t *nodes)
{
    nodes->n = 0;
    const char *p = strstr(sx_redis_url, "://");
    for (p = p ? p + 3 : sx_redis_url; p && *p && nodes->n < TS_CLUSTER_MAX;) {
        const char *colon = strchr(p, ':');
        if (!colon)
            break;
        nodes->port[nodes->n++] = atoi(colon + 1);
        p = strchr(colon, ',');
        p = p ? p + 1 : NULL;
    }
    cr_assert_gt(nodes->n, 0, "no node in %s", sx_redis_url);
}

/* Kills every pub/sub connection on every node. */
static void kill_subscribers(redisContext *const *conns, int n)
{
    for (int i = 0; i < n; i++)
        freeReplyObject(redisCommand(conns[i], "CLIENT KILL TYPE pubsub"));
}

/* How many pub/sub connections the node has. */
static int subscribers(redisContext *c)
{
    redisReply *r = redisCommand(c, "CLIENT LIST TYPE pubsub");
    int n = 0;
    for (const char *p = r && r->type == REDIS_REPLY_STRING ? r->str : ""; (p = strstr(p, "id="));
         p++)
        n++;
    freeReplyObject(r);
    return n;
}

/* Waits until every node has this process's subscriber (one pub/sub connection) again. */
static void wait_subscribed(redisContext *const *conns, int n)
{
    for (uint64_t until = ts_now_ms() + BACK_MS;;) {
        int back = 0;
        for (int i = 0; i < n; i++)
            back += subscribers(conns[i]) > 0;
        if (back == n)
            return;
        cr_assert(ts_now_ms() < until, "the subscriber was not back on %d of %d nodes in %d ms",
                  n - back, n, BACK_MS);
        ts_sleep_ms(5);
    }
}

/* ---- the killer: a thread that keeps the subscriber away ------------------------------------ */

typedef struct killer_s {
    redisContext *conns[TS_CLUSTER_MAX]; /* its own connections, one per node */
    int n;
    atomic_bool stop;
    pthread_t thread;
} killer_t;

static void *kill_loop(void *arg)
{
    killer_t *k = arg;
    while (!atomic_load(&k->stop)) {
        kill_subscribers(k->conns, k->n);
        ts_sleep_ms(KILL_EVERY_MS);
    }
    return NULL;
}

static void killer_start(killer_t *k, const nodes_t *nodes)
{
    memset(k, 0, sizeof(*k));
    k->n = nodes->n;
    for (int i = 0; i < k->n; i++) {
        /* Plain connections: CLIENT KILL is per node, no redirection to follow. */
        k->conns[i] = redisConnect("127.0.0.1", nodes->port[i]);
        cr_assert(k->conns[i] && !k->conns[i]->err, "cannot connect to node %d", nodes->port[i]);
    }
    /* The gap starts now, not whenever the thread first runs. */
    kill_subscribers(k->conns, k->n);
    cr_assert(pthread_create(&k->thread, NULL, kill_loop, k) == 0);
}

/* Stops killing; the connections stay for the caller's checks until killer_free. */
static void killer_stop(killer_t *k)
{
    atomic_store(&k->stop, true);
    pthread_join(k->thread, NULL);
}

static void killer_free(killer_t *k)
{
    for (int i = 0; i < k->n; i++)
        redisFree(k->conns[i]);
}

/* ---- the tests --------------------------------------------------------------------------- */

/* Reads the feed events of posts (in order), each within the time left until deadline. */
static void expect_posts_in_order(ts_sse_t *c, ts_feed_t *g, char (*posts)[24], int n,
                                  uint64_t deadline, const char *what)
{
    size_t first = g->n;
    for (int i = 0; i < n; i++) {
        int64_t left = (int64_t)deadline - (int64_t)ts_now_ms();
        ts_sse_item_t ev;
        ts_sse_kind_t k = ts_sse_next_event(c, &ev, left > 0 ? (int)left : 0);
        cr_assert_eq(k, TS_SSE_EVENT,
                     "%s: post %d of %d (%s) did not come within %d ms of the subscriber "
                     "being back (%s; %zu came)",
                     what, i + 1, n, posts[i], CATCH_UP_MS,
                     k == TS_SSE_END ? "the stream ended" : "nothing more came", g->n - first);
        cr_assert_str_eq(ev.type, "feed", "%s: a %s event (id %s) instead of post %s", what,
                         ev.type, ev.id, posts[i]);
        char got[24];
        ts_sse_data_id(&ev, got, sizeof(got));
        cr_assert_str_eq(got, posts[i],
                         "%s: post %d of %d is %s, expected %s (out of order, "
                         "repeated or missed)",
                         what, i + 1, n, got, posts[i]);
        ts_feed_add(g, ev.id, got, "");
        ts_sse_item_clear(&ev);
    }
}

/* Nothing but heartbeats for a while: no post came twice. */
static void expect_quiet(ts_sse_t *c, const char *what)
{
    ts_sse_item_t ev;
    ts_sse_kind_t k = ts_sse_next_event(c, &ev, 1000);
    cr_assert_eq(k, TS_SSE_TIMEOUT, "%s: an extra event (type %s, id %s, data %.120s)", what,
                 ev.type, ev.id, ev.data ? ev.data : "");
    ts_sse_item_clear(&ev);
}

enum { ROUNDS = 3, POSTS = 8 };

Test(sse_resubscribe, posts_made_while_the_subscriber_reconnects_reach_the_open_stream)
{
    ts_user_t reader, author;
    ts_sse_t *c = sx_reader_of(&srv, NULL, "resub", &reader, &author);
    nodes_t nodes;
    nodes_of_url(&nodes);
    redisContext *probe = ts_redis_connect(nodes.port[0]);
    ts_feed_t g = {0};
    char post[24];
    ts_post(srv.port, &author, "before the cuts", post);
    expect_posts_in_order(c, &g, &post, 1, ts_now_ms() + SX_WAIT_MS, "the post before the cuts");

    for (int round = 0; round < ROUNDS; round++) {
        double replayed = ts_metric(srv.port, "tidings_stream_events_replayed_total");
        killer_t k;
        killer_start(&k, &nodes);
        char posts[POSTS][24];
        for (int i = 0; i < POSTS; i++) {
            char text[48];
            snprintf(text, sizeof(text), "cut %d post %d", round + 1, i + 1);
            ts_post(srv.port, &author, text, posts[i]);
        }
        /* Every fan-out done (published, mostly to nobody) before the subscriber may return. */
        cr_assert(ts_wait_queue_empty(probe, SX_WAIT_MS), "the fan-outs did not finish");
        killer_stop(&k);
        wait_subscribed(k.conns, k.n);
        killer_free(&k);
        char what[48];
        snprintf(what, sizeof(what), "cut %d", round + 1);
        expect_posts_in_order(c, &g, posts, POSTS, ts_now_ms() + CATCH_UP_MS, what);
        /* The gap was real: some came from the log, not live. */
        cr_assert_gt(ts_metric(srv.port, "tidings_stream_events_replayed_total"), replayed,
                     "%s: every post came live; the subscriber was never away", what);
    }
    expect_quiet(c, "after the cuts");
    cr_assert_eq(c->unknown_fields, 0, "unknown SSE line: %s", c->unknown_line);

    /* And live again: the subscription is whole. */
    ts_post(srv.port, &author, "after the cuts", post);
    expect_posts_in_order(c, &g, &post, 1, ts_now_ms() + SX_WAIT_MS, "the post after the cuts");
    ts_redis_close(probe);
    ts_sse_close(c);
    ts_feed_free(&g);
}

/* Cuts the subscriber off while gap() runs and until the fan-outs are done; returns once it
 * is back on every node. */
static void while_away(const nodes_t *nodes, redisContext *probe, void (*gap)(void *arg), void *arg)
{
    killer_t k;
    killer_start(&k, nodes);
    gap(arg);
    cr_assert(ts_wait_queue_empty(probe, SX_WAIT_MS), "the fan-outs did not finish");
    killer_stop(&k);
    wait_subscribed(k.conns, k.n);
    killer_free(&k);
}

/* The stream must tell that events were missed after last: a reset after last on it, or
 * its end and, on the resume after last, a reset first. *ended tells which; reset_id gets
 * the reset's id. Returns the stream to go on with. */
static ts_sse_t *expect_reset(ts_sse_t *c, const ts_user_t *u, const char *last, bool *ended,
                              char reset_id[64], const char *what)
{
    ts_sse_item_t ev;
    ts_sse_kind_t k = ts_sse_next_event(c, &ev, CATCH_UP_MS);
    cr_assert_neq(k, TS_SSE_TIMEOUT,
                  "%s: neither a reset nor the end of the stream within %d ms of the "
                  "subscriber being back",
                  what, CATCH_UP_MS);
    *ended = k == TS_SSE_END;
    if (*ended) {
        ts_sse_close(c);
        c = ts_stream(srv.port, u, last);
        k = ts_sse_next_event(c, &ev, SX_WAIT_MS);
        cr_assert_eq(k, TS_SSE_EVENT, "%s: the resume after %s sent no event", what, last);
    }
    cr_assert_str_eq(ev.type, "reset", "%s: a '%s' event (id %s) where a reset was due", what,
                     ev.type, ev.id);
    cr_assert(*ended || ts_sse_id_cmp(ev.id, last) > 0,
              "%s: the reset's id %s is not after the last event sent, %s", what, ev.id, last);
    snprintf(reset_id, 64, "%s", ev.id);
    ts_sse_item_clear(&ev);
    return c;
}

/* What the gap of the two tests below does to the reader's log (and posts meanwhile). */
typedef struct lost_log_s {
    redisContext *redis;
    const ts_user_t *reader, *author;
    bool back; /* the log is made again, behind the stream: an entry with id 1-1 */
    char during[24];
} lost_log_t;

static void lose_log(void *arg)
{
    lost_log_t *l = arg;
    freeReplyObject(ts_redis_cmd_ok(l->redis, "DEL ev:{%llu}", (unsigned long long)l->reader->num));
    if (l->back) /* and nothing logged since, so the log ends before the stream's cursor */
        freeReplyObject(ts_redis_cmd_ok(l->redis, "XADD ev:{%llu} 1-1 e open",
                                        (unsigned long long)l->reader->num));
    else
        ts_post(srv.port, l->author, "while the log is lost", l->during);
}

/* The stream before, the reset, then live posts again, with ids after the reset's. */
static void lost_log_test(bool back, const char *prefix)
{
    ts_user_t reader, author;
    ts_sse_t *c = sx_reader_of(&srv, NULL, prefix, &reader, &author);
    nodes_t nodes;
    nodes_of_url(&nodes);
    redisContext *probe = ts_redis_connect(nodes.port[0]);
    ts_feed_t g = {0};
    char post[24];
    ts_post(srv.port, &author, "before the log is lost", post);
    expect_posts_in_order(c, &g, &post, 1, ts_now_ms() + SX_WAIT_MS, "the post before");

    lost_log_t l = {.redis = probe, .reader = &reader, .author = &author, .back = back};
    while_away(&nodes, probe, lose_log, &l);
    bool ended;
    char reset[64];
    c = expect_reset(c, &reader, g.last_id, &ended, reset, back ? "a log gone back" : "a gone log");
    /* Gone back with nothing since, the log is lifted above what the stream sent, so the
     * reset comes on the stream (before, the stream ended and its resume got it). */
    cr_assert(!ended, "%s: the stream ended instead of telling the reset", prefix);

    ts_post(srv.port, &author, "after the reset", post);
    ts_sse_item_t ev;
    ts_sse_expect(c, "feed", &ev, SX_WAIT_MS, "the post after the reset");
    char got[24];
    ts_sse_data_id(&ev, got, sizeof(got));
    if (!back && strcmp(got, l.during) == 0) {
        /* A catch-up in the gap (the subscriber is back between kills) can meet the lost log
         * before the post made while it was lost is fanned out: it tells the reset then and
         * makes the log anew, so that post is logged after the reset, and comes like any
         * event after it. Once, and before the post after the reset. */
        cr_assert_gt(ts_sse_id_cmp(ev.id, reset), 0,
                     "the post made while the log was lost came with id %s, not after the "
                     "reset's %s",
                     ev.id, reset);
        ts_sse_item_clear(&ev);
        ts_sse_expect(c, "feed", &ev, SX_WAIT_MS, "the post after the reset");
        ts_sse_data_id(&ev, got, sizeof(got));
    }
    cr_assert_str_eq(got, post, "after the reset came post %s, not the one made after it (%s)", got,
                     post);
    cr_assert_gt(ts_sse_id_cmp(ev.id, reset), 0, "the post after the reset has id %s, not after %s",
                 ev.id, reset);
    ts_sse_item_clear(&ev);
    expect_quiet(c, "after the reset");
    ts_redis_close(probe);
    ts_sse_close(c);
    ts_feed_free(&g);
}

/* The log expired or Redis lost it while the subscriber was away: what was published then
 * went to nobody, and the catch-up cannot replay it. */
Test(sse_resubscribe, a_log_gone_while_the_subscriber_was_away_means_a_reset)
{
    lost_log_test(false, "gone");
}

/* The log lost its newest entries (a restart, a failover to a replica behind) and nothing
 * was logged since: it ends before what the stream sent, and is lifted above it, so the
 * stream gets its reset after what it sent. */
Test(sse_resubscribe, a_log_gone_back_while_the_subscriber_was_away_means_a_reset)
{
    lost_log_test(true, "back");
}

/* The same loss seen by a client that reconnects (the chaos suite's failover, where 36
 * reconnected streams got a reset with an id below their own): the reset's id is after the
 * client's Last-Event-ID, and live events come after it. */
Test(sse_resubscribe, a_reconnect_to_a_log_gone_back_gets_a_reset_after_its_id)
{
    ts_user_t reader, author;
    ts_sse_t *c = sx_reader_of(&srv, NULL, "backre", &reader, &author);
    nodes_t nodes;
    nodes_of_url(&nodes);
    redisContext *redis = ts_redis_connect(nodes.port[0]);
    ts_feed_t g = {0};
    char post[24];
    ts_post(srv.port, &author, "before the log goes back", post);
    expect_posts_in_order(c, &g, &post, 1, ts_now_ms() + SX_WAIT_MS, "the post before");
    ts_sse_close(c);
    unsigned long long user = (unsigned long long)reader.num;
    freeReplyObject(ts_redis_cmd_ok(redis, "DEL ev:{%llu}", user));
    freeReplyObject(ts_redis_cmd_ok(redis, "XADD ev:{%llu} 1-1 e open", user));

    c = ts_stream(srv.port, &reader, g.last_id);
    ts_sse_item_t ev;
    ts_sse_expect(c, "reset", &ev, SX_WAIT_MS, "the reconnect to a log gone back");
    cr_assert_gt(ts_sse_id_cmp(ev.id, g.last_id), 0,
                 "the reset's id %s is not after the client's Last-Event-ID %s", ev.id, g.last_id);
    char reset[64];
    snprintf(reset, sizeof(reset), "%s", ev.id);
    ts_sse_item_clear(&ev);
    ts_post(srv.port, &author, "after the reset", post);
    ts_sse_expect(c, "feed", &ev, SX_WAIT_MS, "the post after the reset");
    cr_assert_gt(ts_sse_id_cmp(ev.id, reset), 0, "the post after the reset has id %s, not after %s",
                 ev.id, reset);
    ts_sse_item_clear(&ev);
    ts_redis_close(redis);
    ts_sse_close(c);
    ts_feed_free(&g);
}
