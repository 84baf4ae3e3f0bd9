/* storage/timeline_rebuild.c -- refilling the home timeline of a user who comes back.
 *
 * While a user is inactive the fan-out writes nothing to their timeline (storage/seen.c).
 * The rebuild writes what the fan-out would have: the posts of everyone they follow, and
 * those users' reposts (rpat:{reposter} keeps each repost's own id, the score a repost entry
 * has in followers' timelines), newest first, up to the timeline's cap. Like the fan-out, it
 * leaves out the people the user blocked, was blocked by or muted (as followees and as the
 * authors of what they reposted) and deleted posts, and an entry never replaces one the
 * timeline has (ZADD NX, the repost script's rule): of a post that came several ways, the
 * oldest way wins. Celebrities' posts are merged at read time and not written here.
 *
 * Followees are read in groups of FOLLOWEES_PER_ROUND (one pipelined round trip per node
 * each), and after each group only the newest timeline_max candidates are kept, so memory is
 * bounded by the cap, not by how much the user follows. The writes are one script on the
 * user's slot that also trims and ends the rebuilding mark, so a rebuild cut short runs again
 * whole, and one that ran twice changes nothing.
 */
#include "storage/seen.h"
#include "storage/storage_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FOLLOWEES_PER_ROUND 64

typedef struct candidate_s {
    uint64_t score, post, reposter; /* reposter 0: the followee's own post */
} candidate_t;

typedef struct candidates_s {
    candidate_t *c;
    size_t n, cap;
} candidates_t;

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int by_post_then_score(const void *a, const void *b)
{
    const candidate_t *x = a, *y = b;
    if (x->post != y->post)
        return x->post < y->post ? -1 : 1;
    return x->score < y->score ? -1 : x->score > y->score;
}

static int newest_first(const void *a, const void *b)
{
    const candidate_t *x = a, *y = b;
    return x->score > y->score ? -1 : x->score < y->score;
}

/* Keeps one candidate per post (its oldest way in), the newest max of them. */
static void keep_newest(candidates_t *cs, size_t max)
{
    if (cs->n == 0)
        return;
    qsort(cs->c, cs->n, sizeof(*cs->c), by_post_then_score);
    size_t out = 1;
    for (size_t i = 1; i < cs->n; i++)
        if (cs->c[i].post != cs->c[out - 1].post)
            cs->c[out++] = cs->c[i];
    cs->n = out;
    qsort(cs->c, cs->n, sizeof(*cs->c), newest_first);
    if (cs->n > max)
        cs->n = max;
}

static int push(candidates_t *cs, uint64_t score, uint64_t post, uint64_t reposter)
{
    if (cs->n == cs->cap) {
        size_t cap = cs->cap ? cs->cap * 2 : 1024;
        candidate_t *c = realloc(cs->c, cap * sizeof(*c));
        if (!c)
            return -ENOMEM;
        cs->c = c;
        cs->cap = cap;
    }
    cs->c[cs->n++] = (candidate_t){score, post, reposter};
    return 0;
}

static bool in_sorted(const uint64_t *ids, size_t n, uint64_t id)
{
    return n && bsearch(&id, ids, n, sizeof(*ids), cmp_u64) != NULL;
}

/* The ids of a ZRANGE reply, sorted, appended to *ids. */
static int append_ids(const redisReply *r, uint64_t **ids, size_t *n)
{
    if (!r || r->type != REDIS_REPLY_ARRAY)
        return -EIO;
    if (r->elements == 0)
        return 0;
    uint64_t *grown = realloc(*ids, (*n + r->elements) * sizeof(**ids));
    if (!grown)
        return -ENOMEM;
    *ids = grown;
    for (size_t i = 0; i < r->elements; i++)
        grown[(*n)++] = storage_redis_uint_str(r->element[i]);
    return 0;
}

/* Whom user follows, and whom they must not see (blocked, blocked by, muted), sorted. */
static int relations(storage_t *s, uint64_t user, uint64_t **following, size_t *n_following,
                     uint64_t **hidden, size_t *n_hidden)
{
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    storage_redis_batch_add(&b, "ZRANGE " K_FOLLOWING " 0 -1", (ull)user);
    storage_redis_batch_add(&b, "ZRANGE " K_BLOCKS " 0 -1", (ull)user);
    storage_redis_batch_add(&b, "ZRANGE " K_BLOCKED_BY " 0 -1", (ull)user);
    storage_redis_batch_add(&b, "ZRANGE " K_MUTES " 0 -1", (ull)user);
    int rc = storage_redis_batch_run_checked(&b);
    if (rc == 0)
        rc = append_ids(b.r[0], following, n_following);
    for (size_t i = 1; rc == 0 && i < 4; i++)
        rc = append_ids(b.r[i], hidden, n_hidden);
    storage_redis_batch_free(&b);
    if (rc == 0 && *n_hidden > 1)
        qsort(*hidden, *n_hidden, sizeof(**hidden), cmp_u64);
    return rc;
}

/* Appends the pairs of a ZREVRANGE … WITHSCORES reply as candidates. */
static int append_pairs(candidates_t *cs, const redisReply *r, uint64_t reposter)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && r && r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements;
         i += 2) {
        uint64_t post = storage_redis_uint_str(r->element[i]);
        uint64_t score = storage_redis_uint_str(r->element[i + 1]);
        /* Readers tell a repost entry by a score unlike its post id (timeline_write.c). */
        if (reposter && score == post)
            score++;
        if (post && score)
            rc = push(cs, score, post, reposter);
    }
    return rc;
}

/* Reads the newest posts and reposts of followees[0..n) into cs. */
static int read_round(storage_t *s, const uint64_t *followees, size_t n, int timeline_max,
                      candidates_t *cs)
{
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    for (size_t i = 0; i < n; i++) {
        storage_redis_batch_add(&b, "EXISTS " K_CELEB, (ull)followees[i]);
        storage_redis_batch_add(&b, "ZREVRANGE " K_POSTS " 0 %d WITHSCORES", (ull)followees[i],
                                timeline_max - 1);
        storage_redis_batch_add(&b, "ZREVRANGE " K_REPOSTED_AT " 0 %d WITHSCORES",
                                (ull)followees[i], timeline_max - 1);
    }
    int rc = storage_redis_batch_run_checked(&b);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (storage_redis_int(b.r[3 * i]) != 1) /* a celebrity's posts merge at read time */
            rc = append_pairs(cs, b.r[3 * i + 1], 0);
        if (rc == 0)
            rc = append_pairs(cs, b.r[3 * i + 2], followees[i]);
    }
    storage_redis_batch_free(&b);
    return rc;
}

/* Drops reposts of deleted posts and of posts by users hidden from the reader. */
static int check_reposted(storage_t *s, candidates_t *cs, const uint64_t *hidden, size_t n_hidden)
{
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    for (size_t i = 0; i < cs->n; i++)
        if (cs->c[i].reposter)
            storage_redis_batch_add(&b, "HMGET " K_POST " author deleted", (ull)cs->c[i].post);
    int rc = b.n ? storage_redis_batch_run_checked(&b) : 0;
    size_t out = 0;
    for (size_t i = 0, k = 0; rc == 0 && i < cs->n; i++) {
        if (cs->c[i].reposter) {
            const redisReply *r = b.r[k++];
            if (r->type != REDIS_REPLY_ARRAY || r->elements != 2)
                continue;
            uint64_t author = storage_redis_uint_str(r->element[0]);
            if (!author || storage_redis_uint_str(r->element[1]) == 1 ||
                in_sorted(hidden, n_hidden, author))
                continue;
        }
        cs->c[out++] = cs->c[i];
    }
    if (rc == 0)
        cs->n = out;
    storage_redis_batch_free(&b);
    return rc;
}

/* KEYS: tl rb rebuild; ARGV: timeline-max, then score post reposter (0: none) triples. */
static const char write_script[] =
    SCRIPT_TRIM_TIMELINE "for i = 2, #ARGV, 3 do\n"
                         "  if redis.call('ZADD', KEYS[1], 'NX', ARGV[i], ARGV[i + 1]) == 1 and "
                         "ARGV[i + 2] ~= '0' then\n"
                         "    redis.call('HSET', KEYS[2], ARGV[i + 1], ARGV[i + 2])\n"
                         "  end\n"
                         "end\n"
                         "trim_timeline(KEYS[1], KEYS[2], ARGV[1])\n"
                         "redis.call('DEL', KEYS[3])\n"
                         "return 0\n";

static int write_entries(storage_t *s, uint64_t user, const candidates_t *cs, int timeline_max)
{
    size_t argc = 7 + 3 * cs->n;
    const char **argv = malloc(argc * sizeof(*argv));
    char(*nums)[24] = malloc((3 * cs->n + 1) * sizeof(*nums));
    if (!argv || !nums) {
        free(argv);
        free(nums);
        return -ENOMEM;
    }
    char tl[40], rb[40], mark[40], max[16];
    snprintf(tl, sizeof(tl), K_TIMELINE, (ull)user);
    snprintf(rb, sizeof(rb), K_REPOSTED_BY, (ull)user);
    snprintf(mark, sizeof(mark), K_REBUILD, (ull)user);
    snprintf(max, sizeof(max), "%d", timeline_max);
    size_t a = 0, k = 0;
    argv[a++] = "EVAL";
    argv[a++] = write_script;
    argv[a++] = "3";
    argv[a++] = tl;
    argv[a++] = rb;
    argv[a++] = mark;
    argv[a++] = max;
    for (size_t i = 0; i < cs->n; i++) {
        const uint64_t v[3] = {cs->c[i].score, cs->c[i].post, cs->c[i].reposter};
        for (int j = 0; j < 3; j++) {
            snprintf(nums[k], sizeof(nums[k]), "%llu", (ull)v[j]);
            argv[a++] = nums[k++];
        }
    }
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    storage_redis_batch_addargv(&b, (int)a, argv, NULL);
    int rc = storage_redis_batch_run_checked(&b);
    storage_redis_batch_free(&b);
    free(argv);
    free(nums);
    return rc;
}

int storage_timeline_rebuild(storage_t *s, uint64_t user, int timeline_max)
{
    uint64_t *following = NULL, *hidden = NULL, *round = NULL;
    size_t n_following = 0, n_hidden = 0;
    candidates_t cs = {0};
    int rc = relations(s, user, &following, &n_following, &hidden, &n_hidden);
    if (rc == 0 && n_following && !(round = malloc(FOLLOWEES_PER_ROUND * sizeof(*round))))
        rc = -ENOMEM;
    for (size_t at = 0; rc == 0 && at < n_following;) {
        size_t n = 0;
        for (; at < n_following && n < FOLLOWEES_PER_ROUND; at++)
            if (!in_sorted(hidden, n_hidden, following[at]))
                round[n++] = following[at];
        rc = n ? read_round(s, round, n, timeline_max, &cs) : 0;
        keep_newest(&cs, (size_t)timeline_max);
    }
    if (rc == 0)
        rc = check_reposted(s, &cs, hidden, n_hidden);
    if (rc == 0)
        rc = write_entries(s, user, &cs, timeline_max);
    free(cs.c);
    free(round);
    free(following);
    free(hidden);
    return rc;
}
