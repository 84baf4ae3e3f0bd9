/* storage/read_cache.c -- posts, briefs and relation sets kept in the process.
 *
 * Why: on one Redis a page of 20 posts cost Redis about 110 µs inside one script, mostly
 * the per-call price of 40 reads in Lua, and that was the ceiling of timeline reads. Posts
 * change rarely (a count, a delete), briefs and relation sets more rarely still.
 *
 * Coherence: Redis tells. A connection of our own (storage/redis/tracking.c) holds CLIENT
 * TRACKING in broadcast mode over the key prefixes below, so every write to such a key, by
 * any process, comes to us as an invalidation; a flush of Redis or a lost connection drops
 * everything, and nothing is kept while that connection is down.
 *
 * Filling: a read brings back what Redis held when it ran; a write after it is invalidated
 * here, but the invalidation may come before the read's reply (two connections). So each
 * shard counts its invalidations (gen), a read takes the counts before it is sent (a
 * ticket), and its results are kept only in shards whose count did not move. An
 * invalidation for a write the read already saw only costs a fill.
 *
 * Timeline first pages (their ids, reposters and next cursor) are kept too, but their keys
 * are written by every fan-out, far too often to broadcast: the read that fills one is
 * tracked instead (CLIENT TRACKING ... OPTIN on the connection, CLIENT CACHING yes before the
 * script, redirected to the same tracking connection), so Redis tells of a write only to the
 * keys a kept page was read from: tl, celebs, rb and rebuild of its user, the script's
 * declared keys (Redis 7.0 remembers a script's declared keys, not the ones it builds). The
 * celebrities' post lists it merges are read by name inside the script, so those come by
 * broadcast (posts:{author}, one message per post, not per follower), and a page remembers
 * the generation of each of its celebrities' lists (posts_gen) and is stale once one moved.
 *
 * Entries are shared by every thread: 64 shards, each a mutex, a chained hash and its
 * entries in insertion order; past its share of the size the oldest entry goes.
 */
#include "storage/read_cache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

typedef enum { KIND_POST, KIND_USER, KIND_REL, KIND_PAGE, KIND_AUTHOR_POSTS } kind_t;

typedef struct entry_s {
    struct entry_s *next;          /* the bucket's chain */
    struct entry_s *older, *newer; /* the shard's insertion order */
    uint64_t id;
    uint8_t kind, rel; /* rel: read_cache_rel_t, for KIND_REL */
    union {
        storage_post_t post; /* text owned */
        struct {
            char handle[STORAGE_HANDLE_MAX + 1];
            char display_name[STORAGE_NAME_MAX + 1];
        } user;
        struct {
            uint64_t *ids; /* sorted, owned; NULL for a set too large to keep */
            size_t n;
        } set;
        struct {
            /* owned, one block: n ids, n reposters, n_celebs celebrities, their posts_gen */
            uint64_t *ids;
            size_t n, n_celebs, limit;
            uint64_t next;
            unsigned hide;
        } page;
    } v;
} entry_t;

typedef struct shard_s {
    pthread_rwlock_t mu; /* readers share it: a reader preempted holding it blocks no reader */
    entry_t **buckets;
    size_t n, bytes; /* entries, and the memory they hold */
    entry_t *oldest, *newest;
    atomic_ullong gen;
} shard_t;

struct read_cache_s {
    shard_t shards[READ_CACHE_SHARDS];
    size_t per_shard, n_buckets;                /* n_buckets: a power of two */
    size_t bytes_per_shard;                     /* READ_CACHE_BYTES_PER_POST a post, in all */
    atomic_ullong posts_gen[READ_CACHE_SHARDS]; /* invalidations of posts:{author}, by author */
    atomic_bool live;
    atomic_ullong hits, misses, page_hits, page_misses;
};

/* splitmix64's finalizer: ids are time-ordered, so their low bits alone would crowd. */
static uint64_t mix(uint64_t id, unsigned kind, unsigned rel)
{
    uint64_t x = id ^ ((uint64_t)(kind * 4 + rel + 1) << 56);
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static shard_t *shard_of(read_cache_t *c, uint64_t h)
{
    return &c->shards[h >> 58]; /* 64 shards: the top six bits */
}

read_cache_t *read_cache_new(size_t entries)
{
    if (!entries)
        return NULL;
    read_cache_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    /* posts, briefs, sets and pages: four kinds share the shards, and the memory */
    c->per_shard = (4 * entries + READ_CACHE_SHARDS - 1) / READ_CACHE_SHARDS;
    c->bytes_per_shard = entries * READ_CACHE_BYTES_PER_POST / READ_CACHE_SHARDS;
    c->n_buckets = 16;
    while (c->n_buckets < c->per_shard)
        c->n_buckets *= 2;
    for (int i = 0; i < READ_CACHE_SHARDS; i++) {
        pthread_rwlock_init(&c->shards[i].mu, NULL);
        atomic_init(&c->shards[i].gen, 0);
        atomic_init(&c->posts_gen[i], 0);
    }
    for (int i = 0; i < READ_CACHE_SHARDS; i++) {
        shard_t *s = &c->shards[i];
        s->buckets = calloc(c->n_buckets, sizeof(*s->buckets));
        if (!s->buckets) {
            read_cache_free(c);
            return NULL;
        }
    }
    atomic_init(&c->live, false);
    return c;
}

/* What an entry holds in memory, counted against its shard's share. */
static size_t entry_bytes(const entry_t *e)
{
    size_t n = sizeof(*e);
    if (e->kind == KIND_POST)
        n += strlen(e->v.post.text) + 1;
    else if (e->kind == KIND_REL)
        n += e->v.set.n * sizeof(uint64_t);
    else if (e->kind == KIND_PAGE)
        n += (2 * e->v.page.n + 2 * e->v.page.n_celebs) * sizeof(uint64_t);
    return n;
}

static void entry_free(entry_t *e)
{
    if (e->kind == KIND_POST)
        free(e->v.post.text);
    else if (e->kind == KIND_REL)
        free(e->v.set.ids);
    else if (e->kind == KIND_PAGE)
        free(e->v.page.ids);
    free(e);
}

/* Takes e out of its bucket and the order; the caller frees it. Shard locked. */
static void unlink_entry(read_cache_t *c, shard_t *s, entry_t *e, uint64_t h)
{
    entry_t **p = &s->buckets[h & (c->n_buckets - 1)];
    while (*p && *p != e)
        p = &(*p)->next;
    if (*p)
        *p = e->next;
    if (e->older)
        e->older->newer = e->newer;
    else
        s->oldest = e->newer;
    if (e->newer)
        e->newer->older = e->older;
    else
        s->newest = e->older;
    s->n--;
    s->bytes -= entry_bytes(e);
}

static entry_t *find(read_cache_t *c, shard_t *s, uint64_t h, uint64_t id, kind_t kind,
                     unsigned rel)
{
    for (entry_t *e = s->buckets[h & (c->n_buckets - 1)]; e; e = e->next)
        if (e->id == id && e->kind == kind && e->rel == rel)
            return e;
    return NULL;
}

static void drop_all(shard_t *s)
{
    for (entry_t *e = s->oldest; e;) {
        entry_t *next = e->newer;
        entry_free(e);
        e = next;
    }
    s->oldest = s->newest = NULL;
    s->n = 0;
    s->bytes = 0;
}

void read_cache_free(read_cache_t *c)
{
    if (!c)
        return;
    for (int i = 0; i < READ_CACHE_SHARDS; i++) {
        shard_t *s = &c->shards[i];
        if (s->buckets)
            drop_all(s);
        free(s->buckets);
        pthread_rwlock_destroy(&s->mu);
    }
    free(c);
}

void read_cache_reset(read_cache_t *c, bool live)
{
    /* Down first, so no fill lands between a shard's emptying and the flag. */
    if (!live)
        atomic_store(&c->live, false);
    for (int i = 0; i < READ_CACHE_SHARDS; i++) {
        shard_t *s = &c->shards[i];
        pthread_rwlock_wrlock(&s->mu);
        drop_all(s);
        memset(s->buckets, 0, c->n_buckets * sizeof(*s->buckets));
        atomic_fetch_add(&s->gen, 1);
        atomic_fetch_add(&c->posts_gen[i], 1);
        pthread_rwlock_unlock(&s->mu);
    }
    if (live)
        atomic_store(&c->live, true);
}

bool read_cache_live(read_cache_t *c)
{
    return atomic_load(&c->live);
}

/* "post:{<id>}" and the like: the kind and id a key names, false for any other key. */
static bool parse_key(const char *key, size_t len, kind_t *kind, unsigned *rel, uint64_t *id)
{
    static const struct {
        const char *prefix;
        kind_t kind;
        unsigned rel;
    } names[] = {{"post:{", KIND_POST, 0},
                 {"user:{", KIND_USER, 0},
                 {"blocks:{", KIND_REL, READ_CACHE_BLOCKS},
                 {"blockedby:{", KIND_REL, READ_CACHE_BLOCKED_BY},
                 {"mutes:{", KIND_REL, READ_CACHE_MUTES},
                 /* a timeline page's declared keys (K_TIMELINE, K_CELEB_FOLLOWS,
                  * K_REPOSTED_BY, K_REBUILD) and the post lists it merges (K_POSTS) */
                 {"tl:{", KIND_PAGE, 0},
                 {"celebs:{", KIND_PAGE, 0},
                 {"rb:{", KIND_PAGE, 0},
                 {"rebuild:{", KIND_PAGE, 0},
                 {"posts:{", KIND_AUTHOR_POSTS, 0}};
    for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++) {
        size_t p = strlen(names[i].prefix);
        if (len < p + 2 || memcmp(key, names[i].prefix, p) != 0 || key[len - 1] != '}')
            continue;
        uint64_t v = 0;
        for (size_t k = p; k < len - 1; k++) {
            if (key[k] < '0' || key[k] > '9' || v > UINT64_MAX / 10)
                return false;
            v = v * 10 + (uint64_t)(key[k] - '0');
        }
        *kind = names[i].kind;
        *rel = names[i].rel;
        *id = v;
        return true;
    }
    return false;
}

/* Where author's posts:{author} counts its invalidations. */
static unsigned posts_bucket(uint64_t author)
{
    return (unsigned)(mix(author, KIND_AUTHOR_POSTS, 0) >> 58);
}

void read_cache_invalidate(read_cache_t *c, const char *key, size_t len)
{
    kind_t kind;
    unsigned rel;
    uint64_t id;
    if (!parse_key(key, len, &kind, &rel, &id))
        return;
    if (kind == KIND_AUTHOR_POSTS) { /* pages that merged them check at their next read */
        atomic_fetch_add(&c->posts_gen[posts_bucket(id)], 1);
        return;
    }
    uint64_t h = mix(id, kind, rel);
    shard_t *s = shard_of(c, h);
    pthread_rwlock_wrlock(&s->mu);
    atomic_fetch_add(&s->gen, 1);
    entry_t *e = find(c, s, h, id, kind, rel);
    if (e) {
        unlink_entry(c, s, e, h);
        entry_free(e);
    }
    pthread_rwlock_unlock(&s->mu);
}

void read_cache_ticket(read_cache_t *c, read_cache_ticket_t *t)
{
    for (int i = 0; i < READ_CACHE_SHARDS; i++) {
        t->gen[i] = atomic_load(&c->shards[i].gen);
        t->posts_gen[i] = atomic_load(&c->posts_gen[i]);
    }
}

/* ---- reads -------------------------------------------------------------------------------- */

bool read_cache_get_post(read_cache_t *c, uint64_t id, storage_post_t *out)
{
    uint64_t h = mix(id, KIND_POST, 0);
    shard_t *s = shard_of(c, h);
    bool hit = false;
    pthread_rwlock_rdlock(&s->mu);
    const entry_t *e = find(c, s, h, id, KIND_POST, 0);
    if (e) {
        *out = e->v.post;
        out->text = strdup(e->v.post.text);
        hit = out->text != NULL;
        if (!hit)
            memset(out, 0, sizeof(*out));
    }
    pthread_rwlock_unlock(&s->mu);
    return hit;
}

bool read_cache_get_user(read_cache_t *c, uint64_t id, storage_user_t *out)
{
    uint64_t h = mix(id, KIND_USER, 0);
    shard_t *s = shard_of(c, h);
    pthread_rwlock_rdlock(&s->mu);
    const entry_t *e = find(c, s, h, id, KIND_USER, 0);
    if (e) {
        memset(out, 0, sizeof(*out));
        out->id = id;
        memcpy(out->handle, e->v.user.handle, sizeof(out->handle));
        memcpy(out->display_name, e->v.user.display_name, sizeof(out->display_name));
    }
    pthread_rwlock_unlock(&s->mu);
    return e != NULL;
}

static int cmp_id(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The entry of viewer's set of kind, or NULL. Shard locked. */
static const entry_t *find_rel(read_cache_t *c, shard_t *s, uint64_t h, read_cache_rel_t kind,
                               uint64_t viewer)
{
    return find(c, s, h, viewer, KIND_REL, kind);
}

bool read_cache_rel_has(read_cache_t *c, read_cache_rel_t kind, uint64_t viewer, uint64_t id,
                        bool *member)
{
    uint64_t h = mix(viewer, KIND_REL, kind);
    shard_t *s = shard_of(c, h);
    pthread_rwlock_rdlock(&s->mu);
    const entry_t *e = find_rel(c, s, h, kind, viewer);
    bool kept = e && e->v.set.ids;
    if (kept)
        *member =
            e->v.set.n && bsearch(&id, e->v.set.ids, e->v.set.n, sizeof(uint64_t), cmp_id) != NULL;
    pthread_rwlock_unlock(&s->mu);
    return kept;
}

bool read_cache_rel_known(read_cache_t *c, read_cache_rel_t kind, uint64_t viewer)
{
    uint64_t h = mix(viewer, KIND_REL, kind);
    shard_t *s = shard_of(c, h);
    pthread_rwlock_rdlock(&s->mu);
    bool known = find_rel(c, s, h, kind, viewer) != NULL;
    pthread_rwlock_unlock(&s->mu);
    return known;
}

/* Whether e, a kept page, is still fresh: none of its celebrities posted since. */
static bool page_fresh(read_cache_t *c, const entry_t *e)
{
    const uint64_t *celebs = e->v.page.ids + 2 * e->v.page.n;
    const uint64_t *gens = celebs + e->v.page.n_celebs;
    for (size_t i = 0; i < e->v.page.n_celebs; i++)
        if (atomic_load(&c->posts_gen[posts_bucket(celebs[i])]) != gens[i])
            return false;
    return true;
}

bool read_cache_get_page(read_cache_t *c, uint64_t user, read_cache_page_t *page)
{
    uint64_t h = mix(user, KIND_PAGE, 0);
    shard_t *s = shard_of(c, h);
    pthread_rwlock_rdlock(&s->mu);
    const entry_t *e = find(c, s, h, user, KIND_PAGE, 0);
    bool hit = e && e->v.page.limit == page->limit && e->v.page.hide == page->hide;
    bool stale = hit && !page_fresh(c, e);
    if (hit && !stale) {
        page->n = e->v.page.n;
        page->next = e->v.page.next;
        memcpy(page->ids, e->v.page.ids, page->n * sizeof(uint64_t));
        memcpy(page->rbs, e->v.page.ids + page->n, page->n * sizeof(uint64_t));
    }
    pthread_rwlock_unlock(&s->mu);
    if (stale) { /* a celebrity posted since: the page goes (if still there, and still stale) */
        pthread_rwlock_wrlock(&s->mu);
        entry_t *gone = find(c, s, h, user, KIND_PAGE, 0);
        if (gone && !page_fresh(c, gone)) {
            unlink_entry(c, s, gone, h);
            entry_free(gone);
        }
        pthread_rwlock_unlock(&s->mu);
    }
    return hit && !stale;
}

/* ---- fills -------------------------------------------------------------------------------- */

/* Puts e (made by the caller) in, replacing an entry of its key, unless the shard moved
 * since t; frees e when it is not kept. */
static void put(read_cache_t *c, const read_cache_ticket_t *t, entry_t *e)
{
    uint64_t h = mix(e->id, e->kind, e->rel);
    shard_t *s = shard_of(c, h);
    pthread_rwlock_wrlock(&s->mu);
    if (!atomic_load(&c->live) || atomic_load(&s->gen) != t->gen[h >> 58]) {
        pthread_rwlock_unlock(&s->mu);
        entry_free(e);
        return;
    }
    entry_t *old = find(c, s, h, e->id, e->kind, e->rel);
    if (old) {
        unlink_entry(c, s, old, h);
        entry_free(old);
    }
    size_t cost = entry_bytes(e);
    while ((s->n >= c->per_shard || s->bytes + cost > c->bytes_per_shard) && s->oldest) {
        entry_t *gone = s->oldest;
        unlink_entry(c, s, gone, mix(gone->id, gone->kind, gone->rel));
        entry_free(gone);
    }
    entry_t **bucket = &s->buckets[h & (c->n_buckets - 1)];
    e->next = *bucket;
    *bucket = e;
    e->older = s->newest;
    e->newer = NULL;
    if (s->newest)
        s->newest->newer = e;
    else
        s->oldest = e;
    s->newest = e;
    s->n++;
    s->bytes += cost;
    pthread_rwlock_unlock(&s->mu);
}

void read_cache_put_post(read_cache_t *c, const read_cache_ticket_t *t, const storage_post_t *p)
{
    entry_t *e = calloc(1, sizeof(*e));
    if (!e)
        return;
    e->id = p->id;
    e->kind = KIND_POST;
    e->v.post = *p;
    e->v.post.text = strdup(p->text ? p->text : "");
    if (!e->v.post.text) {
        free(e);
        return;
    }
    put(c, t, e);
}

void read_cache_put_user(read_cache_t *c, const read_cache_ticket_t *t, const storage_user_t *u)
{
    entry_t *e = calloc(1, sizeof(*e));
    if (!e)
        return;
    e->id = u->id;
    e->kind = KIND_USER;
    memcpy(e->v.user.handle, u->handle, sizeof(e->v.user.handle));
    memcpy(e->v.user.display_name, u->display_name, sizeof(e->v.user.display_name));
    put(c, t, e);
}

void read_cache_put_rel(read_cache_t *c, const read_cache_ticket_t *t, read_cache_rel_t kind,
                        uint64_t viewer, const uint64_t *members, size_t n)
{
    entry_t *e = calloc(1, sizeof(*e));
    if (!e)
        return;
    e->id = viewer;
    e->kind = KIND_REL;
    e->rel = (uint8_t)kind;
    if (n > READ_CACHE_REL_MAX) { /* known too large: not read again until it changes */
        put(c, t, e);
        return;
    }
    e->v.set.n = n;
    e->v.set.ids = malloc((n ? n : 1) * sizeof(uint64_t));
    if (!e->v.set.ids) {
        free(e);
        return;
    }
    if (n)
        memcpy(e->v.set.ids, members, n * sizeof(uint64_t));
    qsort(e->v.set.ids, n, sizeof(uint64_t), cmp_id);
    put(c, t, e);
}

void read_cache_put_page(read_cache_t *c, const read_cache_ticket_t *t, uint64_t user,
                         const read_cache_page_t *page)
{
    if (page->n > page->limit)
        return;
    entry_t *e = calloc(1, sizeof(*e));
    size_t words = 2 * page->n + 2 * page->n_celebs;
    uint64_t *block = malloc((words ? words : 1) * sizeof(uint64_t));
    if (!e || !block) {
        free(e);
        free(block);
        return;
    }
    e->id = user;
    e->kind = KIND_PAGE;
    e->v.page.ids = block;
    e->v.page.n = page->n;
    e->v.page.n_celebs = page->n_celebs;
    e->v.page.limit = page->limit;
    e->v.page.next = page->next;
    e->v.page.hide = page->hide;
    memcpy(block, page->ids, page->n * sizeof(uint64_t));
    memcpy(block + page->n, page->rbs, page->n * sizeof(uint64_t));
    uint64_t *celebs = block + 2 * page->n, *gens = celebs + page->n_celebs;
    for (size_t i = 0; i < page->n_celebs; i++) {
        celebs[i] = page->celebs[i];
        gens[i] = t->posts_gen[posts_bucket(page->celebs[i])]; /* as the read was sent */
    }
    put(c, t, e);
}

void read_cache_count(read_cache_t *c, bool hit)
{
    atomic_fetch_add_explicit(hit ? &c->hits : &c->misses, 1, memory_order_relaxed);
}

void read_cache_count_page(read_cache_t *c, bool hit)
{
    atomic_fetch_add_explicit(hit ? &c->page_hits : &c->page_misses, 1, memory_order_relaxed);
}

void read_cache_stats(read_cache_t *c, read_cache_stats_t *out)
{
    *out = (read_cache_stats_t){0};
    if (!c)
        return;
    out->hits = atomic_load(&c->hits);
    out->misses = atomic_load(&c->misses);
    out->page_hits = atomic_load(&c->page_hits);
    out->page_misses = atomic_load(&c->page_misses);
}
