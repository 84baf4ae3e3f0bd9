/* storage/read_cache.h -- posts, people's briefs and viewers' relation sets kept in the
 * process, coherent with Redis through its invalidations (read_cache.c says how). Internal
 * to storage/. Every function may be called from any thread. */
#ifndef TIDINGS_STORAGE_READ_CACHE_H
#define TIDINGS_STORAGE_READ_CACHE_H

#include "storage/storage.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define READ_CACHE_SHARDS 64
/* A relation set larger than this is never kept: its viewer's reads go to Redis. */
#define READ_CACHE_REL_MAX 1024
/* The memory a cache of N posts may hold in all (briefs and sets included): N times this. */
#define READ_CACHE_BYTES_PER_POST 1024

typedef struct read_cache_s read_cache_t;

/* The cache's generations when a read was sent: what it brings back is kept only where
 * nothing was invalidated since (read_cache.c, "Filling"). posts_gen: the same for
 * authors' post lists (posts:{author}), which a timeline page merges for celebrities. */
typedef struct read_cache_ticket_s {
    uint64_t gen[READ_CACHE_SHARDS];
    uint64_t posts_gen[READ_CACHE_SHARDS];
} read_cache_ticket_t;

/* A home timeline's first page as its ids script answered it (storage/timeline_view.c), for
 * the limit and the hidden relations it was read with. */
typedef struct read_cache_page_s {
    size_t limit;
    unsigned hide;
    size_t n;               /* entries: ids[i], reposted by rbs[i] (0: none) */
    uint64_t *ids, *rbs;    /* the caller's arrays of limit entries (get), or n (put) */
    uint64_t next;          /* the next page's cursor, 0: none */
    const uint64_t *celebs; /* put: the celebrities merged in, whose new posts drop the page */
    size_t n_celebs;
} read_cache_page_t;

/* The relation sets kept, one per kind of STORAGE_REL_* bit. */
typedef enum {
    READ_CACHE_BLOCKS,
    READ_CACHE_BLOCKED_BY,
    READ_CACHE_MUTES,
    READ_CACHE_RELS
} read_cache_rel_t;

/* A cache of at most entries posts, as many briefs and as many relation sets, holding at
 * most entries * READ_CACHE_BYTES_PER_POST bytes; NULL when entries is 0 or memory is short. It starts down: nothing is kept until read_cache_reset
 * says invalidations flow. */
read_cache_t *read_cache_new(size_t entries);
void read_cache_free(read_cache_t *c);

/* Drops everything; live: invalidations flow from now on (else nothing is kept until they
 * do again). */
void read_cache_reset(read_cache_t *c, bool live);
/* Key (a Redis key name, len bytes) changed: its entry goes, and reads in flight for its
 * shard will not be kept. */
void read_cache_invalidate(read_cache_t *c, const char *key, size_t len);
bool read_cache_live(read_cache_t *c);

void read_cache_ticket(read_cache_t *c, read_cache_ticket_t *t);

/* Copies of entries; false on a miss (or no memory for the copy). */
bool read_cache_get_post(read_cache_t *c, uint64_t id, storage_post_t *out);
bool read_cache_get_user(read_cache_t *c, uint64_t id, storage_user_t *out);
/* Whether the viewer's set of kind is kept; if so *member says whether id is in it. */
bool read_cache_rel_has(read_cache_t *c, read_cache_rel_t kind, uint64_t viewer, uint64_t id,
                        bool *member);
/* Whether the set is kept, or known to be too large to keep (so not worth reading again). */
bool read_cache_rel_known(read_cache_t *c, read_cache_rel_t kind, uint64_t viewer);

/* The first page of user's timeline for page->limit and page->hide into page (ids, rbs, n,
 * next); false on a miss. */
bool read_cache_get_page(read_cache_t *c, uint64_t user, read_cache_page_t *page);
/* Keeps user's first page (read under ticket t, tracked by Redis: read_cache.c). */
void read_cache_put_page(read_cache_t *c, const read_cache_ticket_t *t, uint64_t user,
                         const read_cache_page_t *page);

/* Keeps what a read sent under ticket t brought back (skipped when its shard saw an
 * invalidation since, or the cache is not live). */
void read_cache_put_post(read_cache_t *c, const read_cache_ticket_t *t, const storage_post_t *p);
void read_cache_put_user(read_cache_t *c, const read_cache_ticket_t *t, const storage_user_t *u);
/* members: the whole set, n of them; a set over READ_CACHE_REL_MAX is remembered as too large
 * (members unread), and reads that need it go to Redis until it changes. */
void read_cache_put_rel(read_cache_t *c, const read_cache_ticket_t *t, read_cache_rel_t kind,
                        uint64_t viewer, const uint64_t *members, size_t n);

/* Reads served whole from the cache, and reads that went to Redis; the same for timeline
 * first pages' ids. */
void read_cache_count(read_cache_t *c, bool hit);
void read_cache_count_page(read_cache_t *c, bool hit);
typedef struct read_cache_stats_s {
    uint64_t hits, misses, page_hits, page_misses;
} read_cache_stats_t;
void read_cache_stats(read_cache_t *c, read_cache_stats_t *out);

#endif
