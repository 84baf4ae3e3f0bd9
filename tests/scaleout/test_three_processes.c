/* tests/scaleout/test_three_processes.c -- three tidings processes on one Redis, as behind a
 * load balancer (DESIGN §8): any process takes any request, fan-out jobs are shared through
 * the consumer group, and live events reach the process holding the stream. The same
 * traffic runs again on a Redis Cluster of three masters.
 *
 * Each test has its own redis-server (or cluster): on the fixture, other binaries' engines
 * would take (and other tests' crashes would strand) our jobs.
 */
#include "tests/scaleout/so.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROCS 3

static ts_server_t srv[PROCS];
static ts_redis_t cluster;
static ts_redis_t redis; /* the private redis-server, when not on the cluster */

/* Stops the servers still running (a killed one has pid 0), expecting clean exits, then
 * the cluster or private redis-server. */
static void teardown(void)
{
    for (int p = 0; p < PROCS; p++)
        ts_server_stop_clean(&srv[p], 10000);
    ts_redis_cleanup(&cluster);
    ts_redis_cleanup(&redis);
}

TestSuite(three_processes, .fini = teardown, .timeout = SO_TIMEOUT);

/* Three servers on url (NULL: a private redis-server). */
static void start_three(const char *url, const char *const *extra)
{
    if (!url) {
        ts_redis_start_like_fixture(&redis);
        url = redis.url;
    }
    for (int p = 0; p < PROCS; p++)
        ts_server_start(&srv[p], url, extra, true);
}

/* ---- posts, follows and streams spread over all three ---------------------------------------- */

#define USERS 30
#define FOLLOWS 4 /* followees per user */
#define ROUNDS 3  /* posts per user */
#define EXPECTED (ROUNDS * (1 + FOLLOWS))

/* User u posts through process home(u), follows authors whose home is the next process, and
 * holds its stream on the third: every followed post crosses processes to reach it, and
 * each process is some user's home, stream and followees' home. */
static int home(int u)
{
    return u % PROCS;
}
static int stream_proc(int u)
{
    return (u + 2) % PROCS;
}
/* The k-th followee of u: ten users have home (u + 1) % 3, and 3k mod 10 differs for k < 4. */
static int followee(int u, int k)
{
    return (u + 1) % PROCS + PROCS * ((u + 3 * k) % 10);
}

static int cmp_desc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

static void spread(const char *url)
{
    start_three(url, (const char *const[]){"--claim-idle-ms", "1000", "--heartbeat", "1", NULL});
    static ts_user_t users[USERS];
    for (int u = 0; u < USERS; u++)
        ts_register(srv[home(u)].port, "so3", &users[u]);
    for (int u = 0; u < USERS; u++)
        for (int k = 0; k < FOLLOWS; k++) {
            int a = followee(u, k);
            cr_assert(a != u && home(a) != stream_proc(u) && home(a) != home(u));
            ts_follow(srv[(u + k) % PROCS].port, &users[u], &users[a]); /* through any process */
        }

    static ts_feed_t feeds[USERS];
    for (int u = 0; u < USERS; u++)
        ts_feed_open(&feeds[u], srv[stream_proc(u)].port, &users[u]);

    static char posts[USERS][ROUNDS][24];
    for (int r = 0; r < ROUNDS; r++)
        for (int u = 0; u < USERS; u++) {
            char text[64];
            snprintf(text, sizeof(text), "round %d by user %d", r, u);
            ts_post(srv[home(u)].port, &users[u], text, posts[u][r]);
            ts_feed_poll(&feeds[(u * 7) % USERS], 0); /* keep kernel buffers from filling */
        }

    /* Streams: the user's own posts and its followees', each exactly once. */
    for (int u = 0; u < USERS; u++) {
        size_t got = ts_feed_until(&feeds[u], EXPECTED, SO_WAIT_MS);
        cr_assert_eq(got, (size_t)EXPECTED,
                     "user %d (stream on process %d) received %zu of %d feed events", u,
                     stream_proc(u), got, EXPECTED);
        cr_assert_eq(feeds[u].connections, 1, "user %d's stream was ended and reopened", u);
    }
    ts_sleep_ms(1500); /* anything extra would have arrived by now */
    for (int u = 0; u < USERS; u++) {
        ts_feed_poll(&feeds[u], 50);
        cr_assert_eq(feeds[u].n, (size_t)EXPECTED, "user %d received %zu feed events, not %d", u,
                     feeds[u].n, EXPECTED);
        for (int r = 0; r < ROUNDS; r++) {
            cr_assert_eq(ts_feed_count(&feeds[u], posts[u][r]), 1,
                         "user %d's own post %s (round %d) came %zu times", u, posts[u][r], r,
                         ts_feed_count(&feeds[u], posts[u][r]));
            for (int k = 0; k < FOLLOWS; k++) {
                int a = followee(u, k);
                cr_assert_eq(ts_feed_count(&feeds[u], posts[a][r]), 1,
                             "user %d: post %s by user %d (posted through process %d, stream "
                             "on %d) came %zu times",
                             u, posts[a][r], a, home(a), stream_proc(u),
                             ts_feed_count(&feeds[u], posts[a][r]));
            }
        }
    }

    /* Timelines, read through the process that is neither home nor stream: exactly the same
     * posts, each once, newest first. */
    for (int u = 0; u < USERS; u++) {
        uint64_t want[EXPECTED], got[EXPECTED + 8];
        size_t w = 0;
        for (int r = 0; r < ROUNDS; r++) {
            want[w++] = ts_id(posts[u][r]);
            for (int k = 0; k < FOLLOWS; k++)
                want[w++] = ts_id(posts[followee(u, k)][r]);
        }
        qsort(want, w, sizeof(want[0]), cmp_desc);
        int via = (u + 1) % PROCS;
        size_t n = ts_wait_timeline(srv[via].port, &users[u], EXPECTED, got, EXPECTED + 8, 10000);
        cr_assert_eq(n, (size_t)EXPECTED, "user %d's timeline (via process %d) holds %zu of %d", u,
                     via, n, EXPECTED);
        for (size_t i = 0; i < w; i++)
            cr_assert_eq(got[i], want[i],
                         "user %d's timeline item %zu is %llu, expected %llu (newest first)", u, i,
                         (unsigned long long)got[i], (unsigned long long)want[i]);
    }

    /* Every process answers /metrics, holds its own streams, and has its own id node. */
    double node[PROCS], sent = 0;
    for (int p = 0; p < PROCS; p++) {
        cr_assert_eq(ts_metric(srv[p].port, "tidings_redis_up"), 1, "process %d: redis down", p);
        cr_assert_eq(ts_metric(srv[p].port, "tidings_streams_open"), USERS / PROCS,
                     "process %d holds %g streams", p,
                     ts_metric(srv[p].port, "tidings_streams_open"));
        node[p] = ts_metric(srv[p].port, "tidings_id_node");
        for (int q = 0; q < p; q++)
            cr_assert_neq(node[p], node[q], "processes %d and %d share id node %g", q, p, node[p]);
        sent += ts_metric(srv[p].port, "tidings_stream_events_sent_total");
    }
    cr_assert_geq(sent, USERS * EXPECTED, "the processes sent %g events in all", sent);

    for (int u = 0; u < USERS; u++)
        ts_feed_free(&feeds[u]);
}

Test(three_processes, every_follower_gets_every_followed_post_once_on_its_stream_and_timeline)
{
    spread(NULL);
}

Test(three_processes, the_same_on_a_redis_cluster_of_three_masters)
{
    ts_redis_start_cluster(&cluster, 3, 0);
    spread(cluster.url);
}

/* ---- a process killed in the middle of a large fan-out --------------------------------------- */

/* Made-up followers, written straight into followers:{author} (the key schema of
 * storage_internal.h, as tests/fanout does), make the fan-out long enough to strike in the
 * middle: even with the smallest in-flight budget the engine writes some 50,000 timelines a
 * second here, so a few thousand real followers would be done before the test could look.
 * They are scored after every real follow (edge ids stay below 2^50 for decades), so the
 * real followers are written first and the job is re-run over them by whichever process
 * claims it. The job's holder is read from the consumer group (its consumer name carries
 * the pid), so the test kills exactly the process doing the work. */
#define FAKE 50000
#define FAKE_BASE 5000000000ULL
#define FAKE_SCORE (1ULL << 52)
#define REAL 9

/* clang-format off */
static const char *const crash_flags[] = {"--claim-idle-ms", "500", "--fanout-in-flight", "2000",
                                          "--celebrity-threshold", "1000000", NULL};
/* clang-format on */

static int private_redis_port(void)
{
    cr_assert(redis.port, "no private redis");
    return redis.port;
}

Test(three_processes, a_process_killed_mid_fanout_leaves_the_job_to_the_other_two)
{
    start_three(NULL, crash_flags);
    redisContext *rc = ts_redis_connect(private_redis_port());
    ts_user_t author;
    ts_register(srv[0].port, "socauth", &author);
    uint64_t author_id = ts_id(author.id);
    static ts_user_t real[REAL];
    static ts_feed_t feeds[REAL];
    for (int i = 0; i < REAL; i++) {
        ts_register(srv[i % PROCS].port, "socfol", &real[i]);
        ts_follow(srv[(i + 1) % PROCS].port, &real[i], &author);
        ts_feed_open(&feeds[i], srv[(i + 2) % PROCS].port, &real[i]);
    }
    /* A first post gives every stream a Last-Event-ID to resume from. */
    char warm_s[24];
    ts_post(srv[2].port, &author, "before the crash", warm_s);
    for (int i = 0; i < REAL; i++)
        cr_assert_eq(ts_feed_until(&feeds[i], 1, SO_WAIT_MS), 1,
                     "real follower %d did not receive the first post", i);
    cr_assert(ts_wait_queue_empty(rc, 30000), "the first jobs did not finish");
    ts_add_followers(rc, author_id, FAKE_BASE, FAKE, FAKE_SCORE);

    char post_s[24];
    ts_post(srv[1].port, &author, "a large fan-out through a crash", post_s);
    uint64_t post = ts_id(post_s);
    uint64_t t0 = ts_now_ms();

    /* The engine that took the job, once it has written the real followers and started on
     * the made-up ones. */
    pid_t holder = 0;
    bool started = false;
    for (int i = 0; i < 100000 && ts_now_ms() - t0 < 30000 && !(holder && started); i++) {
        if (!holder)
            holder = so_job_holder(rc, post);
        started = started || ts_timeline_holds(rc, FAKE_BASE, post);
    }
    cr_assert(holder, "no engine took the fan-out job within 30 s");
    cr_assert(started, "the fan-out did not reach the made-up followers within 30 s");
    int victim = -1;
    for (int p = 0; p < PROCS; p++)
        if (srv[p].pid == holder)
            victim = p;
    cr_assert(victim >= 0, "the job is held by pid %d, none of ours", (int)holder);
    ts_proc_kill(srv[victim].pid);
    srv[victim].pid = 0; /* killed: the suite's teardown stops only the other two */
    uint64_t killed_at = ts_now_ms();

    size_t at_kill, one;
    ts_count_timelines(rc, post, FAKE_BASE, FAKE, 1, &at_kill, NULL, &one);
    cr_log_info("killed process %d (pid %d) %llu ms after the post, with %zu of %d made-up "
                "followers written",
                victim, (int)holder, (unsigned long long)(killed_at - t0), at_kill, FAKE);
    cr_assert_lt(at_kill, (size_t)FAKE, "the fan-out ended before the kill: no test");

    /* Streams on the killed process resume on a survivor, as behind a load balancer. */
    int survivor[2] = {(victim + 1) % PROCS, (victim + 2) % PROCS};
    for (int i = 0; i < REAL; i++) {
        if ((i + 2) % PROCS != victim)
            continue;
        feeds[i].port = srv[survivor[i % 2]].port;
        ts_feed_poll(&feeds[i], 1000); /* takes what came before the kill, then sees the end */
        cr_assert_null(feeds[i].c, "a stream on the killed process is still open");
        ts_feed_until(&feeds[i], 0, 1000); /* reopens it after its last event */
    }

    /* The other two take the job over and finish it: every timeline holds the post once. */
    size_t holding = at_kill;
    uint64_t deadline = ts_now_ms() + 120000;
    while (ts_now_ms() < deadline) {
        ts_count_timelines(rc, post, FAKE_BASE, FAKE, 1, &holding, NULL, &one);
        if (holding == (size_t)FAKE)
            break;
        ts_sleep_ms(500);
    }
    long long length, pending, dead;
    ts_queue(rc, &length, &pending, &dead);
    cr_assert_eq(holding, (size_t)FAKE,
                 "%zu of %d made-up followers hold the post 120 s after the kill (queue length "
                 "%lld, pending %lld, dead letters %lld)",
                 holding, FAKE, length, pending, dead);
    cr_log_info("the survivors finished the fan-out %llu ms after the kill",
                (unsigned long long)(ts_now_ms() - killed_at));
    cr_assert_eq(one, (size_t)FAKE, "%zu of %d made-up timelines hold exactly one entry", one,
                 FAKE);
    cr_assert(ts_wait_queue_empty(rc, 30000), "the queue did not drain after the fan-out");
    ts_queue(rc, &length, &pending, &dead);
    cr_assert_eq(dead, 0, "a job was dead-lettered");
    double claimed = 0;
    for (int s = 0; s < 2; s++)
        claimed += ts_metric(srv[survivor[s]].port, "tidings_fanout_jobs_claimed_total");
    cr_assert_geq(claimed, 1, "neither survivor claimed the dead process's job");

    /* The real followers, through both survivors: both posts in the timeline, each once;
     * and on the stream (resumed on a survivor for those on the killed process). */
    for (int i = 0; i < REAL; i++) {
        for (int s = 0; s < 2; s++) {
            uint64_t ids[4];
            size_t n = ts_timeline(srv[survivor[s]].port, &real[i], 100, ids, NULL, 4);
            cr_assert(n == 2 && ids[0] == post && ids[1] == ts_id(warm_s),
                      "real follower %d's timeline via process %d holds %zu items (%llu, %llu), "
                      "not posts %s and %s",
                      i, survivor[s], n, n ? (unsigned long long)ids[0] : 0ULL,
                      n > 1 ? (unsigned long long)ids[1] : 0ULL, post_s, warm_s);
        }
        ts_feed_until(&feeds[i], 2, SO_WAIT_MS);
    }
    ts_sleep_ms(1500);
    for (int i = 0; i < REAL; i++) {
        ts_feed_poll(&feeds[i], 50);
        size_t times = ts_feed_count(&feeds[i], post_s);
        /* Exactly once, though the job ran twice: the claimer skips followers whose log
         * already has the event from the killed process's run (storage/events.c). */
        cr_assert_eq(times, 1,
                     "real follower %d (stream on process %d%s) received the post %zu times", i,
                     (i + 2) % PROCS, (i + 2) % PROCS == victim ? ", the killed one" : "", times);
        cr_assert_eq(ts_feed_count(&feeds[i], warm_s), 1);
        cr_assert_eq(feeds[i].n, 1 + times, "real follower %d received other posts", i);
        ts_feed_free(&feeds[i]);
    }
    uint64_t own[4];
    size_t n = ts_timeline(srv[survivor[0]].port, &author, 100, own, NULL, 4);
    cr_assert(n == 2 && own[0] == post, "the author's own timeline lacks the post");
    ts_redis_close(rc);
}
