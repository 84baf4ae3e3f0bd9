/* tests/chaos/chaos_verify.c -- what must hold after a fault (chaos.h, ch_verify).
 *
 * Posts are told apart by their answers: accepted (202, with an id), refused (any other
 * status) and unanswered (the process died under the request, or no answer in 15 s). An
 * unanswered post may or may not have been written; it may show up, but never twice. A
 * refused post must show up nowhere. Ids found that are no accepted post are looked up
 * (post:{id}'s text names the attempt) and judged once each, however many places hold them.
 */
#include "tests/chaos/chaos.h"

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SETTLE_MS 30000
#define QUEUE_MS 60000
#define MAX_STRANGERS 256

typedef struct stranger_s {
    uint64_t id;
    bool bad;
    size_t places;
    char what[160];
    char where[64]; /* the first place */
} stranger_t;

typedef struct view_s {
    ch_world_t *w;
    const ch_fault_t *f;
    struct redisContext *c;
    ch_post_t **accepted; /* sorted by id */
    size_t n_accepted;
    stranger_t strangers[MAX_STRANGERS];
    size_t n_strangers;
} view_t;

static int by_num(const void *a, const void *b)
{
    const ch_post_t *x = *(ch_post_t *const *)a, *y = *(ch_post_t *const *)b;
    return x->num < y->num ? -1 : x->num > y->num;
}

static int u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static const ch_post_t *accepted_post(const view_t *v, uint64_t id)
{
    size_t lo = 0, hi = v->n_accepted;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (v->accepted[mid]->num < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < v->n_accepted && v->accepted[lo]->num == id ? v->accepted[lo] : NULL;
}

static bool follows(int reader, int author)
{
    for (int k = 0; k < CH_FOLLOWS_PER_READER; k++)
        if ((reader + k * CH_AUTHORS / CH_FOLLOWS_PER_READER) % CH_AUTHORS == author)
            return true;
    return false;
}

static int64_t rel(const view_t *v, uint64_t t)
{
    return (int64_t)t - (int64_t)v->f->start;
}

/* An id in where that is no accepted post: judged once, by what post:{id} says. */
static void stranger(view_t *v, uint64_t id, const char *where)
{
    for (size_t i = 0; i < v->n_strangers; i++) {
        if (v->strangers[i].id == id) {
            v->strangers[i].places++;
            return;
        }
    }
    if (v->n_strangers == MAX_STRANGERS) {
        ch_bad(v->w, "more than %d unknown posts (%llu in %s)", MAX_STRANGERS,
               (unsigned long long)id, where);
        return;
    }
    stranger_t *s = &v->strangers[v->n_strangers++];
    s->id = id;
    s->places = 1;
    snprintf(s->where, sizeof(s->where), "%s", where);
    redisReply *r = ts_redis_cmd(v->c, "HGET post:{%llu} text", (unsigned long long)id);
    const char *text = r->type == REDIS_REPLY_STRING ? r->str : NULL;
    const ch_post_t *attempt = NULL;
    for (size_t i = 0; text && i < v->w->n_posts && !attempt; i++)
        if (strcmp(v->w->posts[i].text, text) == 0)
            attempt = &v->w->posts[i];
    if (!attempt) {
        s->bad = true;
        snprintf(s->what, sizeof(s->what), "a post nobody made (text '%.40s')",
                 text ? text : "(no post hash)");
    } else if (attempt->status == 0) {
        snprintf(s->what, sizeof(s->what), "unanswered post '%s' (sent at %+lld ms)", attempt->text,
                 (long long)rel(v, attempt->start));
    } else {
        s->bad = true;
        snprintf(s->what, sizeof(s->what), "post '%s' answered %d at %+lld ms", attempt->text,
                 attempt->status, (long long)rel(v, attempt->end));
    }
    freeReplyObject(r);
}

/* ---- the answers ------------------------------------------------------------------------------ */

static void check_answers(view_t *v)
{
    ch_world_t *w = v->w;
    const ch_fault_t *f = v->f;
    size_t refused = 0, unanswered = 0, first_bad = 0;
    int64_t fail_lo = 0, fail_hi = 0;
    for (size_t i = 0; i < w->n_posts; i++) {
        const ch_post_t *p = &w->posts[i];
        if (p->status == 202 && p->num)
            continue;
        if (p->status == 0) {
            unanswered++;
            continue;
        }
        if (refused++ == 0)
            fail_lo = rel(v, p->start);
        fail_hi = rel(v, p->end);
        if (p->status != 503 || !p->problem)
            ch_bad(w, "post '%s' answered %d%s at %+lld ms (a fault may only cost a 503)", p->text,
                   p->status, p->problem ? "" : " without problem+json", (long long)rel(v, p->end));
        else if (f->writes == CH_WRITES_OK && first_bad++ < 5)
            ch_bad(w, "post '%s' answered 503 at %+lld ms, though no write was failing", p->text,
                   (long long)rel(v, p->end));
        if (p->start > f->end + CH_RECOVER_MS)
            ch_bad(w, "post '%s' answered %d at %+lld ms, more than %d ms after the fault ended",
                   p->text, p->status, (long long)rel(v, p->end), CH_RECOVER_MS);
    }
    fprintf(stderr,
            "chaos %s: %zu posts: %zu accepted, %zu refused (from %+lld to %+lld ms), %zu "
            "unanswered; the fault lasted %+lld to %+lld ms\n",
            f->name, w->n_posts, v->n_accepted, refused, (long long)fail_lo, (long long)fail_hi,
            unanswered, 0LL, (long long)rel(v, f->end));
    fprintf(stderr, "chaos %s: likes and follows: %d done, %d refused (503), %d unanswered\n",
            f->name, w->social_ok, w->social_503, w->social_unanswered);
    if (w->social_other)
        ch_bad(w, "%d likes or follows answered neither 204 nor 503; the first: %s",
               w->social_other, w->social_other_what);
    cr_assert_gt(v->n_accepted, CH_AUTHORS, "hardly any post was accepted: no load to speak of");
}

/* ---- /readyz ------------------------------------------------------------------------------------ */

/* Was any post refused (answered, not 202) between from and to? */
static bool refused_within(const ch_world_t *w, uint64_t from, uint64_t to)
{
    for (size_t i = 0; i < w->n_posts; i++) {
        const ch_post_t *p = &w->posts[i];
        if (p->status && p->status != 202 && p->end >= from && p->start <= to)
            return true;
    }
    return false;
}

static void check_readyz(view_t *v)
{
    ch_world_t *w = v->w;
    const ch_fault_t *f = v->f;
    uint64_t from = f->fail_from ? f->fail_from : f->start;
    for (int s = 0; s < CH_SERVERS; s++) {
        size_t in = 0, in_200 = 0, in_503 = 0, in_none = 0, out_503 = 0;
        uint64_t back = 0;
        for (size_t i = 0; i < w->n_samples; i++) {
            const ch_sample_t *x = &w->samples[i];
            if (x->server != s)
                continue;
            if (x->t >= from && x->t <= f->end) {
                in++;
                in_200 += x->status == 200;
                in_503 += x->status == 503;
                in_none += x->status == 0;
                if (f->writes == CH_WRITES_FAIL && x->status == 200 && in_200 <= 3)
                    ch_bad(w,
                           "process %d: /readyz answered 200 at %+lld ms while writes were "
                           "failing",
                           s, (long long)rel(v, x->t));
            } else if (x->t > f->end) {
                if (x->status == 200 && !back)
                    back = x->t;
                if (x->t > f->end + CH_RECOVER_MS && x->status != 200)
                    ch_bad(w, "process %d: /readyz answered %d at %+lld ms, well after the fault",
                           s, x->status, (long long)rel(v, x->t));
            } else {
                out_503 += x->status != 200;
            }
            if (f->writes == CH_WRITES_OK && x->status != 200 && out_503 + in_503 <= 3)
                ch_bad(w, "process %d: /readyz answered %d at %+lld ms though no write failed", s,
                       x->status, (long long)rel(v, x->t));
        }
        fprintf(stderr,
                "chaos %s: process %d /readyz during the fault (%+lld..%+lld ms): %zu samples, "
                "%zu 200, %zu 503, %zu unanswered; 200 again at %+lld ms\n",
                f->name, s, (long long)rel(v, from), (long long)rel(v, f->end), in, in_200, in_503,
                in_none, back ? (long long)rel(v, back) : -1LL);
        if (f->writes == CH_WRITES_FAIL && in && !in_503)
            ch_bad(w, "process %d: /readyz never answered 503 while writes were failing", s);
        if (f->writes == CH_WRITES_PARTIAL && refused_within(w, from, f->end) && in && !in_503)
            ch_bad(w, "process %d: /readyz never answered 503 while some writes failed", s);
        if (!back || back > f->end + CH_RECOVER_MS)
            ch_bad(w, "process %d: /readyz not 200 again within %d ms of the fault's end", s,
                   CH_RECOVER_MS);
    }
}

/* ---- streams -------------------------------------------------------------------------------- */

/* Does every reader hold every accepted post of its authors (or a reset)? */
static size_t streams_missing(const view_t *v)
{
    size_t missing = 0;
    for (int i = 0; i < CH_READERS; i++) {
        const ch_reader_t *r = &v->w->readers[i];
        if (r->reset)
            continue;
        for (size_t k = 0; k < v->n_accepted; k++) {
            const ch_post_t *p = v->accepted[k];
            if (!follows(i, p->author))
                continue;
            bool held = false;
            for (size_t g = 0; g < r->n_got && !held; g++)
                held = r->got[g] == p->num;
            missing += !held;
        }
    }
    return missing;
}

static void check_streams(view_t *v)
{
    ch_world_t *w = v->w;
    int resets = 0, connections = 0, ends = 0, refused = 0, closed = 0;
    uint64_t worst = 0;
    size_t events = 0;
    uint64_t *ids = NULL;
    for (int i = 0; i < CH_READERS; i++) {
        ch_reader_t *r = &w->readers[i];
        resets += r->reset;
        connections += r->connections;
        ends += r->ends;
        refused += r->refused;
        events += r->n_got;
        worst = r->worst_gap_ms > worst ? r->worst_gap_ms : worst;
        if (!r->c) {
            closed++;
            ch_bad(w, "reader %d: its stream could not be resumed (%d connections, %d refused)", i,
                   r->connections, r->refused);
        }
        ids = realloc(ids, (r->n_got + 1) * sizeof(*ids));
        cr_assert(ids);
        memcpy(ids, r->got, r->n_got * sizeof(*ids));
        qsort(ids, r->n_got, sizeof(*ids), u64_cmp);
        for (size_t k = 0; k < r->n_got; k++) {
            size_t same = 1;
            while (k + same < r->n_got && ids[k + same] == ids[k])
                same++;
            const ch_post_t *p = accepted_post(v, ids[k]);
            char where[64];
            snprintf(where, sizeof(where), "reader %d's stream", i);
            if (same > 1)
                ch_bad(w, "%s: post %llu came %zu times", where, (unsigned long long)ids[k], same);
            if (!p)
                stranger(v, ids[k], where);
            else if (!follows(i, p->author))
                ch_bad(w, "%s: post '%s' of an author it does not follow", where, p->text);
            k += same - 1;
        }
        if (r->reset)
            continue;
        for (size_t k = 0; k < v->n_accepted; k++) {
            const ch_post_t *p = v->accepted[k];
            if (follows(i, p->author) && !bsearch(&p->num, ids, r->n_got, sizeof(*ids), u64_cmp))
                ch_bad(w,
                       "reader %d (process %d, %d connections, %d ended): accepted post '%s' "
                       "(%s, answered at %+lld ms) never came",
                       i, r->home, r->connections, r->ends, p->text, p->id,
                       (long long)rel(v, p->end));
        }
    }
    free(ids);
    fprintf(stderr,
            "chaos %s: streams: %zu feed events, %d connections (%d ended by the server, %d "
            "reopens refused), %d got reset, %d left closed; longest silence %llu ms\n",
            v->f->name, events, connections, ends, refused, resets, closed,
            (unsigned long long)worst);
}

/* ---- timelines and authors' posts -------------------------------------------------------------- */

/* tl:{user} against what it should hold: every accepted post of the authors reader follows
 * (a made-up follower, reader -1, follows them all). */
static void check_timeline(view_t *v, uint64_t user, int reader)
{
    redisReply *r = ts_redis_cmd(v->c, "ZRANGE tl:{%llu} 0 -1", (unsigned long long)user);
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY, "ZRANGE tl:{%llu} failed", (unsigned long long)user);
    uint64_t *held = malloc((r->elements + 1) * sizeof(*held));
    cr_assert(held);
    char where[64];
    snprintf(where, sizeof(where), "tl:{%llu}", (unsigned long long)user);
    for (size_t i = 0; i < r->elements; i++) {
        held[i] = strtoull(r->element[i]->str, NULL, 10);
        const ch_post_t *p = accepted_post(v, held[i]);
        if (!p)
            stranger(v, held[i], where);
        else if (reader >= 0 && !follows(reader, p->author))
            ch_bad(v->w, "%s: post '%s' of an author the user does not follow", where, p->text);
    }
    qsort(held, r->elements, sizeof(*held), u64_cmp);
    size_t missing = 0;
    const ch_post_t *first = NULL;
    for (size_t k = 0; k < v->n_accepted; k++) {
        const ch_post_t *p = v->accepted[k];
        if (reader >= 0 && !follows(reader, p->author))
            continue;
        if (!bsearch(&p->num, held, r->elements, sizeof(*held), u64_cmp)) {
            missing++;
            first = first ? first : p;
        }
    }
    if (missing)
        ch_bad(v->w, "%s lacks %zu accepted posts, the first '%s' (%s, answered at %+lld ms)",
               where, missing, first->text, first->id, (long long)rel(v, first->end));
    free(held);
    freeReplyObject(r);
}

static void check_stores(view_t *v)
{
    ch_world_t *w = v->w;
    for (int i = 0; i < CH_READERS; i++)
        check_timeline(v, w->readers[i].u.num, i);
    for (uint64_t m = 0; m < CH_MADE_UP; m++)
        check_timeline(v, CH_MADE_UP_BASE + m, -1);
    int port = w->srv[0].port;
    for (int a = 0; a < CH_AUTHORS; a++) {
        char path[64];
        snprintf(path, sizeof(path), "/v1/users/%s/posts", w->authors[a].id);
        json_t *all = ts_list(port, &w->authors[a], path, NULL, 100);
        size_t n = json_array_size(all), own = 0;
        uint64_t *ids = calloc(n + 1, sizeof(*ids));
        cr_assert(ids);
        for (size_t i = 0; i < n; i++) {
            ids[i] = ts_json_id(json_array_get(all, i), "id");
            const ch_post_t *p = accepted_post(v, ids[i]);
            if (!p)
                stranger(v, ids[i], path);
        }
        qsort(ids, n, sizeof(*ids), u64_cmp);
        for (size_t i = 0; i + 1 < n; i++)
            if (ids[i] == ids[i + 1])
                ch_bad(w, "%s lists post %llu twice", path, (unsigned long long)ids[i]);
        for (size_t k = 0; k < v->n_accepted; k++) {
            const ch_post_t *p = v->accepted[k];
            if (p->author != a)
                continue;
            own++;
            if (!bsearch(&p->num, ids, n, sizeof(*ids), u64_cmp))
                ch_bad(w, "%s lacks accepted post '%s' (%s)", path, p->text, p->id);
        }
        free(ids);
        json_decref(all);
    }
}

/* ---- all of it ------------------------------------------------------------------------------ */

void ch_verify(ch_world_t *w, const ch_fault_t *f)
{
    ch_stop_load(w);
    static view_t view;
    view_t *v = &view;
    memset(v, 0, sizeof(*v));
    v->w = w;
    v->f = f;
    v->accepted = calloc(w->n_posts + 1, sizeof(*v->accepted));
    cr_assert(v->accepted);
    for (size_t i = 0; i < w->n_posts; i++)
        if (w->posts[i].status == 202 && w->posts[i].num)
            v->accepted[v->n_accepted++] = &w->posts[i];
    qsort(v->accepted, v->n_accepted, sizeof(*v->accepted), by_num);
    check_answers(v);
    check_readyz(v);

    v->c = ch_redis(w);
    uint64_t t0 = ts_now_ms();
    if (!ts_wait_queue_empty(v->c, QUEUE_MS))
        ch_bad(w, "the job queue did not drain within %d ms", QUEUE_MS);
    long long length, pending, dead;
    ts_queue(v->c, &length, &pending, &dead);
    if (dead)
        ch_bad(w, "%lld jobs were dead-lettered", dead);
    uint64_t t1 = ts_now_ms();
    size_t missing = 0;
    for (uint64_t deadline = ts_now_ms() + SETTLE_MS; ts_now_ms() < deadline;) {
        ch_run(w, 500);
        if ((missing = streams_missing(v)) == 0)
            break;
    }
    ch_run(w, 1500); /* anything still coming would be a duplicate */
    fprintf(stderr, "chaos %s: the queue drained in %llu ms, the streams settled in %llu ms\n",
            f->name, (unsigned long long)(t1 - t0), (unsigned long long)(ts_now_ms() - t1));
    check_streams(v);
    check_stores(v);
    for (size_t i = 0; i < v->n_strangers; i++) {
        const stranger_t *s = &v->strangers[i];
        if (s->bad)
            ch_bad(w, "%s appears in %zu places (the first: %s)", s->what, s->places, s->where);
        else
            fprintf(stderr, "chaos %s: %s appears in %zu places (allowed)\n", f->name, s->what,
                    s->places);
    }
    ts_redis_close(v->c);
    free(v->accepted);
    ch_print_bad(w, f->name);
    cr_assert_eq(w->n_bad_total, 0, "chaos %s: %zu broken rules (listed above; the first: %s)",
                 f->name, w->n_bad_total, w->n_bad ? w->bad[0] : "");
}
