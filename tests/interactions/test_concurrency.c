/* tests/interactions/test_concurrency.c -- many users acting at once, one thread each: counts
 * and groups stay exact.
 *
 * The threads send with ts_http_raw and only record the status; the asserts run on the test's
 * own thread (Criterion's asserts must not fail from another thread). */
#include "tests/interactions/ix.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

TestSuite(concurrency, .init = ix_setup, .fini = ix_teardown, .timeout = 300);

enum { USERS = 50 };

/* The starting gun: threads wait until go is set, so that the requests leave together. */
typedef struct gun_s {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool go;
} gun_t;

enum { MAX_REPS = 8 };

/* One thread's requests, sent one after the other once the gun goes. */
typedef struct shot_s {
    pthread_t thread;
    gun_t *gun;
    int port, reps;
    char req[MAX_REPS][256];
    int status[MAX_REPS]; /* or -errno when no answer came */
} shot_t;

static void *fire(void *arg)
{
    shot_t *s = arg;
    pthread_mutex_lock(&s->gun->mu);
    while (!s->gun->go)
        pthread_cond_wait(&s->gun->cond, &s->gun->mu);
    pthread_mutex_unlock(&s->gun->mu);
    for (int k = 0; k < s->reps; k++) {
        ts_resp_t r;
        int rc = ts_http_raw(s->port, s->req[k], strlen(s->req[k]), 30000, &r);
        s->status[k] = rc ? rc : r.status;
        ts_resp_free(&r);
    }
    return NULL;
}

/* n threads, thread i sending method paths[k * n + i] as users[i] for k in 0..reps-1. */
typedef struct volley_s {
    const char *method;
    char (*paths)[64];
    const ts_user_t *users;
    int n, reps, started;
    shot_t *shots;
} volley_t;

/* Fires v and waits for every answer; asserts nothing (it may run on a thread of its own). */
static void *volley_fire(void *arg)
{
    volley_t *v = arg;
    if (v->reps < 1 || v->reps > MAX_REPS)
        return NULL;
    v->shots = calloc((size_t)v->n, sizeof(*v->shots));
    if (!v->shots)
        return NULL;
    gun_t gun = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false};
    for (int i = 0; i < v->n; i++) {
        shot_t *sh = &v->shots[i];
        sh->gun = &gun;
        sh->port = PORT;
        sh->reps = v->reps;
        for (int k = 0; k < v->reps; k++) {
            sh->status[k] = -EAGAIN; /* stays so when the thread could not be started */
            snprintf(sh->req[k], sizeof(sh->req[k]),
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                     "Authorization: Bearer %s\r\nContent-Length: 0\r\n\r\n",
                     v->method, v->paths[k * v->n + i], v->users[i].token);
        }
    }
    for (v->started = 0; v->started < v->n; v->started++)
        if (pthread_create(&v->shots[v->started].thread, NULL, fire, &v->shots[v->started]) != 0)
            break;
    pthread_mutex_lock(&gun.mu);
    gun.go = true;
    pthread_cond_broadcast(&gun.cond);
    pthread_mutex_unlock(&gun.mu);
    for (int i = 0; i < v->started; i++)
        pthread_join(v->shots[i].thread, NULL);
    return NULL;
}

/* Asserts that every request of a fired volley answered want, and frees it. */
static void volley_check(volley_t *v, int want)
{
    cr_assert(v->shots, "out of memory, or too many repetitions");
    cr_expect_eq(v->started, v->n, "only %d of %d sending threads started", v->started, v->n);
    for (int i = 0; i < v->n; i++)
        for (int k = 0; k < v->reps; k++)
            cr_expect_eq(v->shots[i].status[k], want, "%s %s: %d", v->method,
                         v->paths[k * v->n + i], v->shots[i].status[k]);
    free(v->shots);
    v->shots = NULL;
}

static void volley(const char *method, char (*paths)[64], const ts_user_t *users, int n, int want)
{
    volley_t v = {.method = method, .paths = paths, .users = users, .n = n, .reps = 1};
    volley_fire(&v);
    volley_check(&v, want);
}

Test(concurrency, fifty_likes_at_once_count_exactly_and_group_into_one_notification)
{
    ts_user_t author, likers[USERS];
    ts_register(PORT, "cl_a", &author);
    for (int i = 0; i < USERS; i++)
        ts_register(PORT, "cl_l", &likers[i]);
    char post[24], paths[USERS][64];
    ts_post(PORT, &author, "like me, all of you", post);
    for (int i = 0; i < USERS; i++)
        snprintf(paths[i], sizeof(paths[i]), "/v1/posts/%s/like", post);

    volley("PUT", paths, likers, USERS, 204);
    cr_expect_eq(ix_like_count(PORT, &author, post), USERS, "like_count counts every like");
    json_t *n = ix_wait_notification(PORT, &author, "like", post, USERS);
    cr_expect_eq(json_array_size(json_object_get(n, "actors")), 3, "three actors shown");
    const char *seen[3] = {0};
    for (size_t k = 0; k < 3; k++) {
        const char *id = ts_str(json_array_get(json_object_get(n, "actors"), k), "id");
        bool liker = false;
        for (int i = 0; i < USERS; i++)
            liker = liker || strcmp(likers[i].id, id) == 0;
        cr_expect(liker, "actor %s is one of the likers", id);
        for (size_t j = 0; j < k; j++)
            cr_expect_str_neq(seen[j], id, "actors are distinct");
        seen[k] = id;
    }
    json_decref(n);
    json_t *list = ix_notifications(PORT, &author, NULL, 100);
    cr_expect_eq(json_array_size(list), 1, "one like notification for the post");
    json_decref(list);
    cr_expect_eq(ix_unread(PORT, &author), 1);

    /* Again, all at once: nothing changes. Then all unlike at once: nothing is left. */
    volley("PUT", paths, likers, USERS, 204);
    cr_expect_eq(ix_like_count(PORT, &author, post), USERS);
    /* Half take theirs back at once: the count kept in the post stays the set's size. */
    volley("DELETE", paths, likers, USERS / 2, 204);
    cr_expect_eq(ix_like_count(PORT, &author, post), USERS - USERS / 2);
    struct redisContext *rc = ts_redis_connect(ix_redis.port);
    redisReply *f = ts_redis_cmd_ok(rc, "HGET post:{%s} likes", post);
    cr_expect(f->type == REDIS_REPLY_STRING && atoll(f->str) == USERS - USERS / 2,
              "the post's likes field is the set's size");
    freeReplyObject(f);
    ts_redis_close(rc);
    volley("DELETE", paths, likers, USERS, 204);
    cr_expect_eq(ix_like_count(PORT, &author, post), 0, "every unlike counted");
    ix_wait_no_notification(PORT, &author, "like", post);
    ix_wait_unread(PORT, &author, 0);
}

Test(concurrency, likes_of_many_posts_at_once_count_unread_exactly)
{
    enum { POSTS = 25 };
    ts_user_t author, likers[POSTS];
    ts_register(PORT, "cu_a", &author);
    char posts[POSTS][24], paths[POSTS][64];
    for (int i = 0; i < POSTS; i++) {
        ts_register(PORT, "cu_l", &likers[i]);
        ts_post(PORT, &author, "one of many", posts[i]);
        snprintf(paths[i], sizeof(paths[i]), "/v1/posts/%.23s/like", posts[i]);
    }
    volley("PUT", paths, likers, POSTS, 204);
    ix_wait_unread(PORT, &author, POSTS);
    json_t *list = ix_notifications(PORT, &author, NULL, 100);
    cr_expect_eq(json_array_size(list), POSTS, "one group per post");
    for (int i = 0; i < POSTS; i++) {
        const json_t *n = ix_find(list, "like", posts[i]);
        const char *ids[] = {likers[i].id};
        cr_expect(n && ix_actors_are(n, ids, 1), "post %d's group has its liker only", i);
    }
    /* Read up to the newest: nothing unread; likes of the same posts by the same users
     * again bump nothing. */
    json_t *body = json_pack("{s:s}", "up_to", ts_str(json_array_get(list, 0), "id"));
    char *s = json_dumps(body, JSON_COMPACT);
    json_decref(ts_callf(PORT, "POST", &author, s, 204, "/v1/notifications/read"));
    free(s);
    json_decref(body);
    json_decref(list);
    cr_expect_eq(ix_unread(PORT, &author), 0);
    volley("PUT", paths, likers, POSTS, 204);
    ts_user_t late;
    ts_register(PORT, "cu_z", &late);
    json_decref(ts_callf(PORT, "PUT", &late, NULL, 204, "/v1/posts/%s/like", posts[0]));
    json_decref(ix_wait_actor(PORT, &author, "like", posts[0], late.id));
    cr_expect_eq(ix_unread(PORT, &author), 1, "only the group a new actor joined is unread");
}

/* ---- another process stopping meanwhile ------------------------------------------------------
 * DESIGN §8: every process takes any request and shares the fan-out work; one of them being
 * stopped cleanly (a deploy) must not hold up the others' jobs. On the test's redis-server, a
 * second tidings process is stopped with SIGTERM while likes stream in through the first; every
 * like must then be notified within PROMPT_MS, far below --claim-idle-ms (30 s), after which
 * a job left pending by the stopped process would be claimed by the survivor. */

TestSuite(concurrency_handover, .fini = ix_teardown, .timeout = 300);

enum { PROMPT_MS = 10000, ROUNDS = 4, LIKERS = 40, PER_ROUND = 5 };

/* XPENDING's summary of the job queue, every shard, for the failure message. */
static void pending_summary(char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int shard = 0; shard < TS_FANOUT_SHARDS && used < size; shard++) {
        redisReply *r = ts_redis_command(ix_redis.url, "XPENDING fanout:{%d} engine", shard);
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 4) {
            used += (size_t)snprintf(buf + used, size - used,
                                     "%sshard %d, %lld pending:", shard ? "; " : "", shard,
                                     r->element[0]->integer);
            const redisReply *per = r->element[3];
            for (size_t i = 0; per->type == REDIS_REPLY_ARRAY && i < per->elements && used < size;
                 i++)
                used += (size_t)snprintf(buf + used, size - used, " consumer %s holds %s",
                                         per->element[i]->element[0]->str,
                                         per->element[i]->element[1]->str);
        }
        freeReplyObject(r);
    }
}

/* Fires v on a thread of its own while a second tidings process on ix_redis starts and is
 * stopped with SIGTERM, which must end it cleanly; then checks that every request answered 204. */
static void volley_while_a_process_stops(volley_t *v)
{
    ts_server_t other;
    ts_server_start(&other, ix_redis.url, NULL, true);
    pthread_t bg;
    cr_assert_eq(pthread_create(&bg, NULL, volley_fire, v), 0);
    ts_sleep_ms(5);
    int status = ts_server_stop(&other, 10000);
    pthread_join(bg, NULL);
    cr_expect(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "the other process did not stop cleanly (wait status 0x%x)", status);
    volley_check(v, 204);
}

Test(concurrency_handover, a_process_stopping_meanwhile_delays_no_notification)
{
    ix_start(NULL);
    ts_user_t author, likers[LIKERS];
    ts_register(PORT, "ho_a", &author);
    for (int i = 0; i < LIKERS; i++)
        ts_register(PORT, "ho_l", &likers[i]);
    /* Each round, every liker likes PER_ROUND posts one after the other, so that likes keep
     * coming in while the other process stops. */
    static char posts[ROUNDS * PER_ROUND][24];
    static char paths[ROUNDS][PER_ROUND * LIKERS][64];
    for (int r = 0; r < ROUNDS; r++)
        for (int k = 0; k < PER_ROUND; k++) {
            ts_post(PORT, &author, "liked while a process stops", posts[r * PER_ROUND + k]);
            for (int i = 0; i < LIKERS; i++)
                snprintf(paths[r][k * LIKERS + i], sizeof(paths[r][0]), "/v1/posts/%.23s/like",
                         posts[r * PER_ROUND + k]);
        }
    for (int r = 0; r < ROUNDS; r++) {
        volley_t v = {
            .method = "PUT", .paths = paths[r], .users = likers, .n = LIKERS, .reps = PER_ROUND};
        volley_while_a_process_stops(&v);
    }
    for (int p = 0; p < ROUNDS * PER_ROUND; p++) {
        json_t *n = ix_poll_notification(PORT, &author, "like", posts[p], LIKERS, PROMPT_MS);
        if (!n) {
            char pending[512];
            pending_summary(pending, sizeof(pending));
            json_t *list = ix_notifications(PORT, &author, NULL, 100);
            const json_t *got = ix_find(list, "like", posts[p]);
            cr_assert_fail("post %d: %d likes were not all notified within %d ms (actor_count "
                           "%lld; like_count %lld); the job queue: %s",
                           p, LIKERS, PROMPT_MS, got ? ts_int(got, "actor_count") : 0,
                           ix_like_count(PORT, &author, posts[p]), pending);
        }
        json_decref(n);
    }
}

/* tidings_fanout_jobs_claimed_total from ix_srv's /metrics (-1 when absent). */
static long long jobs_claimed(void)
{
    ts_resp_t r;
    ts_http(PORT, "GET", "/metrics", NULL, NULL, NULL, &r);
    long long v = -1;
    const char *line = r.body ? strstr(r.body, "\ntidings_fanout_jobs_claimed_total ") : NULL;
    if (line)
        v = strtoll(line + strlen("\ntidings_fanout_jobs_claimed_total "), NULL, 10);
    ts_resp_free(&r);
    return v;
}

/* Jobs are delivered at least once and may run late (claimed from a process that stopped, or
 * retried): a like whose job runs after the unlike's must not leave its actor in the group.
 * The survivor claims after a second here (--claim-idle-ms 1000), so a like job held by the
 * stopping process runs after the unlike that followed it. */
Test(concurrency_handover, a_like_taken_back_while_its_job_was_held_up_leaves_no_actor_behind)
{
    const char *claim_fast[] = {"--claim-idle-ms", "1000", NULL};
    ix_start(claim_fast);
    ts_user_t author, likers[LIKERS];
    ts_register(PORT, "hu_a", &author);
    for (int i = 0; i < LIKERS; i++)
        ts_register(PORT, "hu_l", &likers[i]);
    enum { MAX_ROUNDS = 8 };
    static char posts[MAX_ROUNDS * PER_ROUND][24];
    static char paths[PER_ROUND * LIKERS][64];
    int rounds = 0;
    long long claimed = 0;
    for (; rounds < MAX_ROUNDS && claimed <= 0; rounds++) {
        for (int k = 0; k < PER_ROUND; k++) {
            char *post = posts[rounds * PER_ROUND + k];
            ts_post(PORT, &author, "liked and unliked while a process stops", post);
            for (int i = 0; i < LIKERS; i++)
                snprintf(paths[k * LIKERS + i], sizeof(paths[0]), "/v1/posts/%.23s/like", post);
        }
        volley_t v = {
            .method = "PUT", .paths = paths, .users = likers, .n = LIKERS, .reps = PER_ROUND};
        volley_while_a_process_stops(&v);
        v.method = "DELETE";
        volley_fire(&v);
        volley_check(&v, 204);
        ix_wait_idle(); /* held-up jobs claimed and done */
        claimed = jobs_claimed();
    }
    ix_inbox_t in = ix_inbox(PORT, &author, "types=like");
    for (int p = 0; p < rounds * PER_ROUND; p++)
        cr_expect_eq(ix_like_count(PORT, &author, posts[p]), 0);
    cr_expect_eq(json_array_size(in.list), 0,
                 "every like was taken back, yet %zu like notifications remain after %d rounds "
                 "(%lld jobs claimed from stopped processes): %s",
                 json_array_size(in.list), rounds, claimed, in.text);
    ix_inbox_free(&in);
}
