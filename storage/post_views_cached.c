/* storage/post_views_cached.c -- posts as a reader sees them, from the read cache.
 *
 * A page is served from the cache only whole: every post, every brief it shows and the
 * viewer's relation sets it is tested against must be there, else post_views.c reads it
 * from Redis and fills the cache with what came back (read_cache.c says why that is safe).
 * The result is the one the hydrate script gives (SCRIPT_HYDRATE): a deleted post comes
 * without people, a person in one of the viewer's sets without a brief.
 */
#include "storage/read_cache.h"
#include "storage/storage_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The kept set of each relation (its key: storage__relation_keys). */
static const struct {
    unsigned bit;
    read_cache_rel_t kind;
} rels[] = {{STORAGE_REL_BLOCKS, READ_CACHE_BLOCKS},
            {STORAGE_REL_BLOCKED_BY, READ_CACHE_BLOCKED_BY},
            {STORAGE_REL_MUTES, READ_CACHE_MUTES}};
#define N_RELS (sizeof(rels) / sizeof(*rels))

/* Whether person is hidden from viewer by the sets in hide; false when a set is not kept. */
static bool hidden_by(read_cache_t *c, uint64_t viewer, unsigned hide, uint64_t person,
                      bool *hidden)
{
    *hidden = false;
    for (size_t k = 0; viewer && k < N_RELS; k++) {
        bool member = false;
        if (!(hide & rels[k].bit))
            continue;
        if (!read_cache_rel_has(c, rels[k].kind, viewer, person, &member))
            return false;
        *hidden = *hidden || member;
    }
    return true;
}

/* A person's brief as the script gives it: id 0 when hidden. False on a miss. */
static bool person_of(read_cache_t *c, uint64_t viewer, unsigned hide, uint64_t person,
                      storage_user_t *out)
{
    bool hidden;
    memset(out, 0, sizeof(*out));
    if (!person)
        return true;
    if (!hidden_by(c, viewer, hide, person, &hidden))
        return false;
    return hidden || read_cache_get_user(c, person, out);
}

int storage__views_from_cache(read_cache_t *c, uint64_t viewer, unsigned hide, const uint64_t *ids,
                              const uint64_t *reposted_by, size_t n, storage_post_view_t *out)
{
    size_t got = 0; /* views holding a post's text */
    bool whole = n > 0;
    for (size_t i = 0; whole && i < n; i++) {
        storage_post_view_t *v = &out[i];
        memset(v, 0, sizeof(*v));
        if (!read_cache_get_post(c, ids[i], &v->post)) {
            whole = false;
            break;
        }
        got++;
        v->reposted_by = reposted_by ? reposted_by[i] : 0;
        if (!v->post.deleted)
            whole = person_of(c, viewer, hide, v->post.author, &v->author) &&
                    person_of(c, viewer, hide, v->reposted_by, &v->reposter);
    }
    if (whole)
        return 0;
    storage_post_views_clear(out, got);
    memset(out, 0, n * sizeof(*out));
    return -ENOENT;
}

/* The viewer's sets of hide not kept yet, read whole (one round trip) and kept unless larger
 * than READ_CACHE_REL_MAX. */
static void fill_relations(storage_t *s, read_cache_t *c, const read_cache_ticket_t *t,
                           uint64_t viewer, unsigned hide)
{
    size_t asked[N_RELS], n_asked = 0;
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    for (size_t k = 0; viewer && k < N_RELS; k++) {
        if ((hide & rels[k].bit) && !read_cache_rel_known(c, rels[k].kind, viewer)) {
            char key[1][48];
            storage__relation_keys(viewer, rels[k].bit, key);
            storage_redis_batch_add(&b, "ZRANGE %s 0 %d", key[0], READ_CACHE_REL_MAX);
            asked[n_asked++] = k;
        }
    }
    if (n_asked && storage_redis_batch_run(&b) == 0) {
        uint64_t *ids = malloc((READ_CACHE_REL_MAX + 1) * sizeof(*ids));
        for (size_t a = 0; ids && a < n_asked; a++) {
            const redisReply *r = b.r[a];
            if (r->type != REDIS_REPLY_ARRAY)
                continue;
            for (size_t i = 0; i < r->elements && i < READ_CACHE_REL_MAX; i++)
                ids[i] = storage_redis_uint_str(r->element[i]);
            read_cache_put_rel(c, t, rels[asked[a]].kind, viewer, ids, r->elements);
        }
        free(ids);
    }
    storage_redis_batch_free(&b);
}

void storage__views_fill_cache(storage_t *s, read_cache_t *c, const read_cache_ticket_t *t,
                               uint64_t viewer, unsigned hide, const storage_post_view_t *v,
                               size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!v[i].post.id)
            continue; /* unknown: nothing to keep (its creation would be invalidated anyway) */
        read_cache_put_post(c, t, &v[i].post);
        if (v[i].author.id)
            read_cache_put_user(c, t, &v[i].author);
        if (v[i].reposter.id)
            read_cache_put_user(c, t, &v[i].reposter);
    }
    fill_relations(s, c, t, viewer, hide);
}
