/* tests/chaos/chaos.h -- a steady load on two tidings processes, one fault injected, and
 * what must hold afterwards.
 *
 * A world is one Redis (a private redis-server with its AOF fsynced on every write, or a
 * private 3-master cluster with one replica each), two tidings processes on it, 20 authors
 * each followed by 2,000 followers (100 real users with an open stream, 1,900 made-up ids
 * written straight into followers:{author}), 500 open streams spread over both processes,
 * and three helper threads: one posting (each post answered before the next), one liking
 * posts and making readers follow one another, one sampling /readyz on both processes.
 * The test's own thread reads every stream (ch_run), reconnecting with Last-Event-ID when
 * the server ends one, and injects the fault between calls to ch_run.
 *
 * ch_verify then stops the load, waits for the queue and the streams to settle (bounded),
 * and checks: every post answered 202 is in every follower's timeline, in its author's
 * posts, and on every follower's stream exactly once (or the stream got `reset`); no post
 * answered with an error appears anywhere; no stream was silent for longer than
 * CH_STALL_MS while open; /readyz was 503 while writes failed and 200 again after. Every
 * broken rule is listed on stderr before the test fails. Every wait has a deadline.
 */
#ifndef TIDINGS_TEST_CHAOS_H
#define TIDINGS_TEST_CHAOS_H

#include "tests/support/sse.h"
#include "tests/support/support.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CH_SERVERS 2
#define CH_AUTHORS 20
#define CH_READERS 500
#define CH_FOLLOWS_PER_READER 4 /* authors r, r+5, r+10, r+15 (mod 20) */
#define CH_FOLLOWERS 2000       /* per author: 100 readers and the made-up ids */
#define CH_MADE_UP (CH_FOLLOWERS - CH_READERS * CH_FOLLOWS_PER_READER / CH_AUTHORS)
#define CH_MADE_UP_BASE 7300000ull
#define CH_MAX_POSTS 2000
#define CH_MAX_SAMPLES 4000
#define CH_POST_EVERY_MS 200 /* 5 posts a second: 10,000 timeline writes a second */
#define CH_HEARTBEAT_S 1
/* Longer than this without a byte (event or heartbeat) on an open stream is a silent stall;
 * a few heartbeats, with room for a sanitizer build on two busy cores. */
#define CH_STALL_MS 3500
/* After the fault ends, posts and /readyz must be back within this. */
#define CH_RECOVER_MS 5000
/* Suite timeout (every test of the binary shares it). */
#define CH_TIMEOUT 150

typedef enum {
    CH_WRITES_OK,      /* the fault breaks no write (a tidings process dies): all 202 */
    CH_WRITES_FAIL,    /* every write fails meanwhile: /readyz must never say 200 */
    CH_WRITES_PARTIAL, /* some slots fail (a cluster master dies): /readyz must say 503 at
                          some time while posts are refused */
} ch_writes_t;

/* What the test did, for the checks: the fault lasted from start to end (ms, ts_now_ms);
 * writes were failing from fail_from (0: start) to end. */
typedef struct ch_fault_s {
    const char *name;
    ch_writes_t writes;
    uint64_t start, fail_from, end;
} ch_fault_t;

typedef struct ch_post_s {
    int author, server;
    int status;   /* 0: no answer (a process killed under it) */
    bool problem; /* answered application/problem+json */
    char id[24];
    uint64_t num;
    char text[48];
    uint64_t start, end;
} ch_post_t;

typedef struct ch_sample_s {
    uint64_t t;
    int server, status; /* status 0: no answer within 2 s */
} ch_sample_t;

typedef struct ch_reader_s {
    ts_user_t u;
    int home;    /* the process it (re)connects to while that one is up */
    ts_sse_t *c; /* NULL between connections */
    char last_id[64];
    uint64_t *got; /* feed events' post ids, in arrival order */
    size_t n_got, cap_got;
    bool reset;
    int connections, refused, ends, stalls;
    uint64_t last_seen, blind_at_seen, next_retry, worst_gap_ms;
} ch_reader_t;

typedef struct ch_world_s {
    const char *tag;
    ts_redis_t redis;
    ts_server_t srv[CH_SERVERS];
    atomic_bool up[CH_SERVERS];
    atomic_int port[CH_SERVERS];
    ts_user_t authors[CH_AUTHORS];
    ch_reader_t readers[CH_READERS];

    pthread_mutex_t lock; /* guards what the helper threads write below */
    ch_post_t posts[CH_MAX_POSTS];
    size_t n_posts;
    ch_sample_t samples[CH_MAX_SAMPLES];
    size_t n_samples;
    int social_ok, social_503, social_other, social_unanswered;
    char social_other_what[128];

    atomic_bool stop;
    bool threads_running;
    pthread_t poster, social, sampler[CH_SERVERS];

    uint64_t last_pass, blind_total; /* time the test's thread could not read (ch_run) */
    uint64_t load_start;
    bool hung_reopen; /* a reconnect of this pass got no head in time */
    char (*bad)[256]; /* broken rules, as lines (the first and the last: ch_bad) */
    size_t n_bad, n_bad_total;
} ch_world_t;

/* Starts the world (a private redis-server with AOF when cluster is false, else a private
 * cluster of 3 masters with one replica each), registers the users, opens the streams and
 * starts the load. w is large: make it static. */
void ch_start(ch_world_t *w, const char *tag, bool cluster);
/* ch_start(w, tag, true) with appendonly yes, appendfsync always on every node of the cluster
 * (ts_redis_cluster_aof), for a fault that restarts a node from its AOF. */
void ch_start_cluster_aof(ch_world_t *w, const char *tag);
/* Reads every stream for ms, reconnecting the ended ones. */
void ch_run(ch_world_t *w, int ms);
/* Kills tidings process i (SIGKILL) / starts it again on a new port. */
void ch_server_kill(ch_world_t *w, int i);
void ch_server_restart(ch_world_t *w, int i);
/* Stops the load threads (ch_verify does it first). */
void ch_stop_load(ch_world_t *w);
/* Notes a broken rule (a printf-formatted line); ch_verify lists them and fails. */
void ch_bad(ch_world_t *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Lists the broken rules kept on stderr, as "chaos <name>: BROKEN: <rule>" lines. */
void ch_print_bad(const ch_world_t *w, const char *name);
/* The first post started at or after since and answered with an error (not 202; an
 * unanswered one does not count): true, with a copy in out. */
bool ch_first_refused_post(ch_world_t *w, uint64_t since, ch_post_t *out);
/* A routed connection to a Redis node that answers (ts_redis_close it). */
struct redisContext *ch_redis(ch_world_t *w);
/* Stops the load, settles and checks everything; fails the test listing every broken rule. */
void ch_verify(ch_world_t *w, const ch_fault_t *f);
/* Closes the streams, stops the processes and the Redis, frees what w holds. */
void ch_finish(ch_world_t *w);

#endif
