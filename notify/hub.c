/* notify/hub.c -- subscribers, their bounded queues, and the user -> streams map.
 *
 * The hub lock guards the map; each subscriber's lock guards its queue and flags. Lock
 * order: hub, then subscriber. A subscriber's cursor is the id of the last event queued
 * for it: live events at or below it are dropped, so the seam between catching up from
 * the log and live delivery has neither gap nor duplicate. While a subscriber catches up,
 * live events are not queued; they only ask for another catch-up pass, since everything
 * live is also in the log. A full queue cuts the stream off: memory stays bounded whatever
 * one reader does, and the client resumes with Last-Event-ID.
 */
#include "notify/notify.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BUCKET_BITS 14 /* 16,384 chains: a publish walks one, so short chains, fewer misses */
#define BUCKETS (1u << BUCKET_BITS)
#define FIBONACCI_HASH 0x9E3779B97F4A7C15ull /* 2^64 / golden ratio: spreads sequential ids */
#define QUEUE_INITIAL 8 /* idle streams stay small; busy ones grow to queue_max */
#define DEFAULT_QUEUE_MAX 512
#define DEFAULT_MAX_STREAMS 20000
#define DEFAULT_STREAMS_PER_USER 10

struct notify_sub_s {
    pthread_mutex_t mu;
    notify_hub_t *hub;
    uint64_t user;
    notify_sub_hooks_t hooks;
    notify_sub_t *next;     /* in the hub's bucket */
    notify_event_t **queue; /* a ring that grows from QUEUE_INITIAL up to queue_max */
    size_t head, len, cap;
    char cursor[NOTIFY_ID_MAX];
    bool parked, ending, catchup, catching_up;
    uint64_t token;   /* the credential the stream was opened with (its adapter's id); 0: none */
    bool revoked;     /* it ends because that credential was revoked */
    uint64_t *celebs; /* the celebrities the user follows (hub lock) */
    size_t n_celebs, cap_celebs;
};

struct notify_hub_s {
    pthread_mutex_t mu;
    notify_config_t cfg;
    notify_sub_t *buckets[BUCKETS];
    size_t open;
    bool closing;
    notify_stats_t stats;
    /* Within a batch, parked streams to resume at its end (see notify_hub_batch). */
    bool batching;
    notify_sub_t **wakes;
    size_t n_wakes, cap_wakes;
};

/* ---- events ------------------------------------------------------------------------------ */

/* Copies src into a buffer of size bytes, cut short if need be (snprintf's "%s", at a
 * fraction of its cost: this runs several times per event on the subscriber thread). */
static void copy_str(char *dst, size_t size, const char *src)
{
    size_t n = strnlen(src, size - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

notify_event_t *notify_event_new(const char *id, int kind, const char *ref)
{
    notify_event_t *e = malloc(sizeof(*e));
    if (!e)
        return NULL;
    atomic_init(&e->refs, 1);
    e->from_log = false;
    copy_str(e->id, sizeof(e->id), id);
    e->kind = kind;
    copy_str(e->ref, sizeof(e->ref), ref);
    return e;
}

notify_event_t *notify_event_ref(notify_event_t *e)
{
    atomic_fetch_add(&e->refs, 1);
    return e;
}

void notify_event_unref(notify_event_t *e)
{
    if (e && atomic_fetch_sub(&e->refs, 1) == 1)
        free(e);
}

/* "<ms>-<seq>" into its numbers; returns how many it read, as sscanf("%llu-%llu") would
 * (which cost the subscriber thread more than the rest of publishing an event). */
static int parse_id(const char *s, unsigned long long *ms, unsigned long long *seq)
{
    char *end;
    *ms = strtoull(s, &end, 10);
    if (end == s)
        return 0;
    if (*end != '-')
        return 1;
    const char *at = end + 1;
    *seq = strtoull(at, &end, 10);
    return end == at ? 1 : 2;
}

int notify_id_cmp(const char *a, const char *b)
{
    unsigned long long ams = 0, aseq = 0, bms = 0, bseq = 0;
    int na = parse_id(a, &ams, &aseq), nb = parse_id(b, &bms, &bseq);
    if (na <= 0 || nb <= 0)
        return (na > 0) - (nb > 0);
    if (ams != bms)
        return ams < bms ? -1 : 1;
    return aseq < bseq ? -1 : aseq > bseq;
}

/* ---- the hub ----------------------------------------------------------------------------- */

void notify_config_defaults(notify_config_t *cfg)
{
    *cfg = (notify_config_t){.queue_max = DEFAULT_QUEUE_MAX,
                             .max_streams = DEFAULT_MAX_STREAMS,
                             .max_streams_per_user = DEFAULT_STREAMS_PER_USER};
}

notify_hub_t *notify_hub_create(const notify_config_t *cfg)
{
    notify_hub_t *hub = calloc(1, sizeof(*hub));
    if (!hub)
        return NULL;
    pthread_mutex_init(&hub->mu, NULL);
    hub->cfg = *cfg;
    if (hub->cfg.queue_max < 2)
        hub->cfg.queue_max = 2;
    return hub;
}

void notify_hub_destroy(notify_hub_t *hub)
{
    if (!hub)
        return;
    pthread_mutex_destroy(&hub->mu);
    free(hub->wakes);
    free(hub);
}

const notify_stats_t *notify_hub_stats(const notify_hub_t *hub)
{
    return &hub->stats;
}

notify_stats_t *notify_hub_stats_mut(notify_hub_t *hub)
{
    return &hub->stats;
}

static notify_sub_t **bucket(notify_hub_t *hub, uint64_t user)
{
    return &hub->buckets[(user * FIBONACCI_HASH) >> (64 - BUCKET_BITS)];
}

/* Resumes a parked stream, at the end of the batch when one is open. Hub and subscriber
 * locked. */
static void kick(notify_sub_t *sub)
{
    if (!sub->parked)
        return;
    sub->parked = false;
    notify_hub_t *hub = sub->hub;
    if (hub->batching && hub->n_wakes == hub->cap_wakes) {
        size_t cap = hub->cap_wakes ? hub->cap_wakes * 2 : 1024;
        notify_sub_t **grown = realloc(hub->wakes, cap * sizeof(*grown));
        if (grown) {
            hub->wakes = grown;
            hub->cap_wakes = cap;
        }
    }
    if (hub->batching && hub->n_wakes < hub->cap_wakes)
        hub->wakes[hub->n_wakes++] = sub;
    else
        sub->hooks.wake(sub->hooks.arg);
}

void notify_hub_batch(notify_hub_t *hub, bool begin)
{
    pthread_mutex_lock(&hub->mu);
    hub->batching = begin;
    /* In one go: every resume makes libmicrohttpd 0.9.75 walk all of a worker's suspended
     * connections, and resumes spread over a whole message meant a walk for each few. */
    for (size_t i = 0; !begin && i < hub->n_wakes; i++)
        hub->wakes[i]->hooks.wake(hub->wakes[i]->hooks.arg);
    if (!begin)
        hub->n_wakes = 0;
    pthread_mutex_unlock(&hub->mu);
}

/* Queues e (adding a reference); a full queue ends the stream. Subscriber locked. */
static void push(notify_sub_t *sub, notify_event_t *e)
{
    if (sub->ending)
        return;
    if (sub->len == sub->cap) {
        size_t cap =
            sub->cap * 2 < sub->hub->cfg.queue_max ? sub->cap * 2 : sub->hub->cfg.queue_max;
        notify_event_t **grown = cap > sub->cap ? malloc(cap * sizeof(*grown)) : NULL;
        if (!grown) { /* full (or no memory): cut the stream off, it resumes from the log */
            sub->ending = true;
            atomic_fetch_add(&sub->hub->stats.dropped, 1);
            return;
        }
        for (size_t i = 0; i < sub->len; i++)
            grown[i] = sub->queue[(sub->head + i) % sub->cap];
        free(sub->queue);
        sub->queue = grown;
        sub->head = 0;
        sub->cap = cap;
    }
    sub->queue[(sub->head + sub->len++) % sub->cap] = notify_event_ref(e);
}

/* Whether user holds max_streams_per_user streams already. Hub lock held; a user's streams
 * share one bucket chain, so this walks only that. */
static bool user_streams_full(notify_hub_t *hub, uint64_t user)
{
    size_t n = 0, max = hub->cfg.max_streams_per_user;
    for (const notify_sub_t *s = *bucket(hub, user); max && s; s = s->next)
        n += s->user == user;
    return max && n >= max;
}

notify_sub_t *notify_sub_open(notify_hub_t *hub, uint64_t user, const char *cursor,
                              const notify_sub_hooks_t *hooks)
{
    notify_sub_t *sub = calloc(1, sizeof(*sub));
    if (sub) {
        sub->cap = QUEUE_INITIAL < hub->cfg.queue_max ? QUEUE_INITIAL : hub->cfg.queue_max;
        sub->queue = calloc(sub->cap, sizeof(*sub->queue));
    }
    if (!sub || !sub->queue) {
        if (sub)
            free(sub);
        errno = ENOMEM;
        return NULL;
    }
    pthread_mutex_init(&sub->mu, NULL);
    sub->hub = hub;
    sub->user = user;
    sub->hooks = *hooks;
    sub->catchup = true; /* read the log after the cursor first */
    snprintf(sub->cursor, sizeof(sub->cursor), "%s", cursor ? cursor : "");

    pthread_mutex_lock(&hub->mu);
    int err = hub->closing                        ? ECANCELED
              : hub->open >= hub->cfg.max_streams ? EBUSY
              : user_streams_full(hub, user)      ? EDQUOT
                                                  : 0;
    if (err) {
        pthread_mutex_unlock(&hub->mu);
        pthread_mutex_destroy(&sub->mu);
        free(sub->queue);
        free(sub);
        errno = err;
        return NULL;
    }
    notify_sub_t **b = bucket(hub, user);
    sub->next = *b;
    *b = sub;
    hub->open++;
    atomic_fetch_add(&hub->stats.open, 1);
    atomic_fetch_add(&hub->stats.opened, 1);
    pthread_mutex_unlock(&hub->mu);
    return sub;
}

void notify_sub_close(notify_sub_t *sub)
{
    notify_hub_t *hub = sub->hub;
    pthread_mutex_lock(&hub->mu);
    notify_sub_t **p = bucket(hub, sub->user);
    while (*p && *p != sub)
        p = &(*p)->next;
    if (*p)
        *p = sub->next;
    for (size_t i = 0; i < hub->n_wakes;) /* a resume owed to it must not outlive it */
        if (hub->wakes[i] == sub)
            hub->wakes[i] = hub->wakes[--hub->n_wakes];
        else
            i++;
    hub->open--;
    atomic_fetch_sub(&hub->stats.open, 1);
    pthread_mutex_unlock(&hub->mu);
    for (size_t i = 0; i < sub->len; i++)
        notify_event_unref(sub->queue[(sub->head + i) % sub->cap]);
    pthread_mutex_destroy(&sub->mu);
    free(sub->celebs);
    free(sub->queue);
    free(sub);
}

size_t notify_hub_queue_max(const notify_hub_t *hub)
{
    return hub->cfg.queue_max;
}

uint64_t notify_sub_user(const notify_sub_t *sub)
{
    return sub->user;
}

notify_next_t notify_sub_next(notify_sub_t *sub, notify_event_t **out, char *cursor)
{
    notify_next_t next;
    pthread_mutex_lock(&sub->mu);
    if (sub->ending) {
        next = NOTIFY_NEXT_END;
    } else if (sub->len > 0) { /* what is queued goes first: a catch-up needs the room */
        *out = sub->queue[sub->head];
        sub->head = (sub->head + 1) % sub->cap;
        sub->len--;
        next = NOTIFY_NEXT_EVENT;
    } else if (sub->catchup) {
        sub->catchup = false;
        sub->catching_up = true;
        memcpy(cursor, sub->cursor, NOTIFY_ID_MAX);
        next = NOTIFY_NEXT_CATCHUP;
    } else {
        sub->parked = true;
        sub->hooks.park(sub->hooks.arg); /* under the lock: a publisher waits for it */
        next = NOTIFY_NEXT_PARKED;
    }
    pthread_mutex_unlock(&sub->mu);
    return next;
}

notify_next_t notify_sub_take(notify_sub_t *sub, notify_event_t **out,
                              bool (*take)(void *arg, const notify_event_t *e), void *arg)
{
    notify_next_t next = NOTIFY_NEXT_END;
    pthread_mutex_lock(&sub->mu);
    if (!sub->ending && sub->len > 0 && take(arg, sub->queue[sub->head])) {
        *out = sub->queue[sub->head];
        sub->head = (sub->head + 1) % sub->cap;
        sub->len--;
        next = NOTIFY_NEXT_EVENT;
    } else if (!sub->ending && sub->len == 0 && !sub->catchup) {
        next = NOTIFY_NEXT_PARKED;
    }
    pthread_mutex_unlock(&sub->mu);
    return next;
}

bool notify_sub_park_idle(notify_sub_t *sub)
{
    pthread_mutex_lock(&sub->mu);
    bool idle = !sub->ending && sub->len == 0 && !sub->catchup;
    if (idle)
        sub->parked = true;
    pthread_mutex_unlock(&sub->mu);
    return idle;
}

void notify_sub_catchup_done(notify_sub_t *sub, notify_event_t *const *events, size_t n, bool more)
{
    pthread_mutex_lock(&sub->mu);
    for (size_t i = 0; i < n; i++) {
        if (notify_id_cmp(events[i]->id, sub->cursor) <= 0)
            continue;
        push(sub, events[i]);
        snprintf(sub->cursor, sizeof(sub->cursor), "%s", events[i]->id);
        atomic_fetch_add(&sub->hub->stats.replayed, 1);
    }
    if (more)
        sub->catchup = true;
    sub->catching_up = false;
    pthread_mutex_unlock(&sub->mu);
}

/* ---- from the loop ----------------------------------------------------------------------- */

void notify_hub_publish(notify_hub_t *hub, uint64_t user, notify_event_t *e)
{
    pthread_mutex_lock(&hub->mu);
    for (notify_sub_t *s = *bucket(hub, user); s; s = s->next) {
        if (s->user != user)
            continue;
        pthread_mutex_lock(&s->mu);
        if (s->catchup || s->catching_up) {
            s->catchup = true; /* the log has it: the catch-up pass will read it */
        } else if (notify_id_cmp(e->id, s->cursor) > 0) {
            push(s, e);
            copy_str(s->cursor, sizeof(s->cursor), e->id);
        }
        kick(s);
        pthread_mutex_unlock(&s->mu);
    }
    pthread_mutex_unlock(&hub->mu);
}

void notify_hub_subscribed(notify_hub_t *hub)
{
    pthread_mutex_lock(&hub->mu);
    for (size_t b = 0; b < BUCKETS; b++)
        for (notify_sub_t *s = hub->buckets[b]; s; s = s->next) {
            pthread_mutex_lock(&s->mu);
            s->catchup = true;
            kick(s);
            pthread_mutex_unlock(&s->mu);
        }
    pthread_mutex_unlock(&hub->mu);
}

void notify_hub_heartbeat(notify_hub_t *hub, unsigned slice, unsigned slices)
{
    notify_event_t *beat = notify_event_new("", NOTIFY_KIND_HEARTBEAT, "");
    if (!beat)
        return;
    size_t first = (size_t)slice % slices * BUCKETS / slices,
           end = ((size_t)slice % slices + 1) * BUCKETS / slices;
    pthread_mutex_lock(&hub->mu);
    for (size_t b = first; b < end; b++)
        for (notify_sub_t *s = hub->buckets[b]; s; s = s->next) {
            pthread_mutex_lock(&s->mu);
            if (s->len == 0 && !s->catching_up) {
                push(s, beat);
                kick(s);
            }
            pthread_mutex_unlock(&s->mu);
        }
    pthread_mutex_unlock(&hub->mu);
    notify_event_unref(beat);
}

void notify_hub_close_all(notify_hub_t *hub)
{
    pthread_mutex_lock(&hub->mu);
    hub->closing = true;
    for (size_t b = 0; b < BUCKETS; b++)
        for (notify_sub_t *s = hub->buckets[b]; s; s = s->next) {
            pthread_mutex_lock(&s->mu);
            s->ending = true;
            kick(s);
            pthread_mutex_unlock(&s->mu);
        }
    pthread_mutex_unlock(&hub->mu);
}

/* Writes up to max users of buckets first..end whose streams keep says yes of into users,
 * each once; returns how many there are. Hub locked. */
static size_t unique_users(notify_hub_t *hub, size_t first, size_t end,
                           bool (*keep)(const notify_sub_t *s, uint64_t arg), uint64_t arg,
                           uint64_t *users, size_t max)
{
    size_t n = 0;
    for (size_t b = first; b < end; b++)
        for (notify_sub_t *s = hub->buckets[b]; s; s = s->next) {
            if (!keep(s, arg))
                continue;
            bool seen = false; /* a user's streams share a bucket: look back within it */
            for (notify_sub_t *t = hub->buckets[b]; t != s && !seen; t = t->next)
                seen = t->user == s->user && keep(t, arg);
            if (!seen) {
                if (n < max)
                    users[n] = s->user;
                n++;
            }
        }
    return n;
}

static bool any_stream(const notify_sub_t *s, uint64_t arg)
{
    (void)s;
    (void)arg;
    return true;
}

size_t notify_hub_users(notify_hub_t *hub, unsigned slice, unsigned slices, uint64_t *users,
                        size_t max)
{
    size_t first = (size_t)slice % slices * BUCKETS / slices,
           end = ((size_t)slice % slices + 1) * BUCKETS / slices;
    pthread_mutex_lock(&hub->mu);
    size_t n = unique_users(hub, first, end, any_stream, 0, users, max);
    pthread_mutex_unlock(&hub->mu);
    return n;
}

/* ---- celebrities followed ------------------------------------------------------------------ */

static bool follows_celebrity(const notify_sub_t *s, uint64_t author)
{
    for (size_t i = 0; i < s->n_celebs; i++)
        if (s->celebs[i] == author)
            return true;
    return false;
}

/* Adds author to s's celebrities, or removes it. Hub locked. */
static bool set_follows(notify_sub_t *s, uint64_t author, bool follows)
{
    for (size_t i = 0; i < s->n_celebs; i++)
        if (s->celebs[i] == author) {
            if (!follows)
                s->celebs[i] = s->celebs[--s->n_celebs];
            return true;
        }
    if (!follows)
        return true;
    if (s->n_celebs == s->cap_celebs) {
        size_t cap = s->cap_celebs ? s->cap_celebs * 2 : 4;
        uint64_t *grown = realloc(s->celebs, cap * sizeof(*grown));
        if (!grown)
            return false;
        s->celebs = grown;
        s->cap_celebs = cap;
    }
    s->celebs[s->n_celebs++] = author;
    return true;
}

bool notify_sub_add_celebrities(notify_sub_t *sub, const uint64_t *authors, size_t n)
{
    bool ok = true;
    pthread_mutex_lock(&sub->hub->mu);
    for (size_t i = 0; i < n && ok; i++)
        ok = set_follows(sub, authors[i], true);
    pthread_mutex_unlock(&sub->hub->mu);
    return ok;
}

void notify_hub_celebrity_follow(notify_hub_t *hub, uint64_t user, uint64_t author, bool follows)
{
    pthread_mutex_lock(&hub->mu);
    for (notify_sub_t *s = *bucket(hub, user); s; s = s->next)
        if (s->user == user && !set_follows(s, author, follows)) {
            pthread_mutex_lock(&s->mu); /* out of memory: it would miss events; it resumes */
            s->ending = true;
            kick(s);
            pthread_mutex_unlock(&s->mu);
        }
    pthread_mutex_unlock(&hub->mu);
}

size_t notify_hub_celebrity_followers(notify_hub_t *hub, uint64_t author, uint64_t *users,
                                      size_t max)
{
    pthread_mutex_lock(&hub->mu);
    size_t n = unique_users(hub, 0, BUCKETS, follows_celebrity, author, users, max);
    pthread_mutex_unlock(&hub->mu);
    return n;
}

/* ---- revocation --------------------------------------------------------------------------- */

void notify_sub_set_token(notify_sub_t *sub, uint64_t token)
{
    pthread_mutex_lock(&sub->mu);
    sub->token = token;
    pthread_mutex_unlock(&sub->mu);
}

bool notify_sub_revoked(notify_sub_t *sub)
{
    pthread_mutex_lock(&sub->mu);
    bool revoked = sub->revoked;
    pthread_mutex_unlock(&sub->mu);
    return revoked;
}

size_t notify_hub_revoke(notify_hub_t *hub, uint64_t user, uint64_t token)
{
    size_t n = 0;
    pthread_mutex_lock(&hub->mu);
    for (notify_sub_t *s = *bucket(hub, user); s; s = s->next) {
        pthread_mutex_lock(&s->mu);
        if (s->user == user && (token == 0 || s->token == token) && !s->ending) {
            /* What is queued is dropped: nothing more reaches a revoked credential. */
            s->ending = s->revoked = true;
            kick(s);
            n++;
        }
        pthread_mutex_unlock(&s->mu);
    }
    pthread_mutex_unlock(&hub->mu);
    return n;
}
