/* storage/post_views.c -- posts as a reader sees them: each with its counts, its author's
 * and reposter's briefs, and whether the reader hides either, read together.
 *
 * On one Redis node (one Redis, the default deployment, or a cluster of one master) a page
 * is one EVALSHA_RO of SCRIPT_HYDRATE (storage/script_call.c): a script may read keys of
 * any slot on its own node, and one that only reads lets the request's rate check ride in
 * the same round trip (storage/redis/gate.c). On a Redis Cluster the posts and their authors sit on other nodes:
 * one pipeline reads the posts (and, for posts from before counts were kept, a second their
 * set sizes), then one reads the authors' and reposters' briefs with the viewer's relations
 * to exactly them (storage_profiles_get_as). A script's error reply (a cluster that grew
 * under us) falls back to that path.
 */
#include "storage/read_cache.h"
#include "storage/storage_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POST_STRIDE 9   /* id reposter author text reply_to mentions deleted likes reposts */
#define PERSON_STRIDE 4 /* id hidden handle display_name */

void storage_post_views_clear(storage_post_view_t *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        storage_post_clear(&v[i].post);
}

/* How long the answer of storage__one_node is kept: reading the slot map walks its 16,384
 * slots under the client's lock, too much for every page. A cluster that grew meanwhile
 * answers the script with an error, and the page falls back to pipelines. */
#define ONE_NODE_KEEP_MS 1000

bool storage__one_node(storage_t *s)
{
    uint64_t now = storage__now_ms(), then = atomic_load(&s->one_node_ms);
    if (then && now - then < ONE_NODE_KEEP_MS)
        return atomic_load(&s->one_node) == 1;
    bool cluster;
    int masters;
    uint64_t redirects, refreshes, pipelines;
    storage_redis_topology_stats(s->redis, &cluster, &masters, &redirects, &refreshes, &pipelines);
    atomic_store(&s->one_node, masters == 1);
    /* An unknown slot map (no command yet) is asked again next time. */
    atomic_store(&s->one_node_ms, masters > 0 ? now : 0);
    return masters == 1;
}

/* The brief of person id from a script's people (id 0 when absent, hidden or gone). */
static void brief_of(const redisReply *people, uint64_t id, storage_user_t *out)
{
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; id && i + PERSON_STRIDE <= people->elements; i += PERSON_STRIDE) {
        redisReply **p = people->element + i;
        if (storage_redis_uint_str(p[0]) != id)
            continue;
        if (storage_redis_int(p[1]) == 0 && p[2]->type == REDIS_REPLY_STRING) {
            out->id = id;
            storage_redis_copy_str(out->handle, sizeof(out->handle), p[2]);
            storage_redis_copy_str(out->display_name, sizeof(out->display_name), p[3]);
        }
        return;
    }
}

int storage__views_from_reply(const redisReply *posts, const redisReply *people,
                              storage_post_view_t *out, size_t max, size_t *n)
{
    *n = 0;
    if (!posts || !people || posts->type != REDIS_REPLY_ARRAY ||
        people->type != REDIS_REPLY_ARRAY || posts->elements % POST_STRIDE ||
        posts->elements / POST_STRIDE > max)
        return -EIO;
    for (size_t i = 0; i < posts->elements / POST_STRIDE; i++) {
        redisReply **f = posts->element + POST_STRIDE * i;
        storage_post_view_t *v = &out[(*n)++];
        memset(v, 0, sizeof(*v));
        int rc = storage__post_from_fields(f + 2, storage_redis_uint_str(f[0]), &v->post);
        if (rc)
            return rc;
        v->reposted_by = storage_redis_uint_str(f[1]);
        if (!v->post.id || v->post.deleted)
            continue;
        brief_of(people, v->post.author, &v->author);
        brief_of(people, v->reposted_by, &v->reposter);
    }
    return 0;
}

/* KEYS[1]: the first post's key (routing only); ARGV: n, the n ids, their n reposters ('0':
 * none), then the viewer's relation sets to hide. */
static const char views_body[] =
    SCRIPT_HYDRATE "local n = tonumber(ARGV[1])\n"
                   "local ids, rbs, rels = {}, {}, {}\n"
                   "for i = 1, n do\n"
                   "  ids[i] = ARGV[1 + i]\n"
                   "  rbs[i] = ARGV[1 + n + i]\n"
                   "end\n"
                   "for i = 2 + 2 * n, #ARGV do rels[#rels + 1] = ARGV[i] end\n"
                   "local posts, people = hydrate(ids, rbs, rels)\n"
                   "return {posts, people}\n";
static storage__script_t views_script = STORAGE__SCRIPT(views_body);

/* The one-script read; -EPROTO when the script answered an error (read the other way). */
static int views_by_script(storage_t *s, uint64_t viewer, unsigned hide, const uint64_t *ids,
                           const uint64_t *reposted_by, size_t n, storage_post_view_t *out)
{
    char rels[3][48], key[40], count[24];
    size_t n_rels = storage__relation_keys(viewer, hide, rels);
    size_t argc = 3 + 2 * n + n_rels;
    const char **argv = malloc(argc * sizeof(*argv));
    char(*nums)[24] = malloc(2 * n * sizeof(*nums));
    if (!argv || !nums) {
        free(argv);
        free(nums);
        return -ENOMEM;
    }
    snprintf(key, sizeof(key), K_POST, (ull)ids[0]);
    snprintf(count, sizeof(count), "%zu", n);
    size_t a = 0;
    argv[a++] = "1";
    argv[a++] = key;
    argv[a++] = count;
    for (size_t i = 0; i < n; i++) {
        snprintf(nums[i], sizeof(nums[i]), "%llu", (ull)ids[i]);
        snprintf(nums[n + i], sizeof(nums[n + i]), "%llu", (ull)(reposted_by ? reposted_by[i] : 0));
    }
    for (size_t i = 0; i < 2 * n; i++)
        argv[a++] = nums[i];
    for (size_t i = 0; i < n_rels; i++)
        argv[a++] = rels[i];
    storage_redis_batch_t b;
    int rc = storage__script_ro(s, &views_script, (int)a, argv, &b);
    size_t got = 0;
    if (rc == 0) {
        const redisReply *r = b.r[0];
        if (storage_redis_is_error(r) || r->type != REDIS_REPLY_ARRAY || r->elements != 2)
            rc = -EPROTO;
        else if ((rc = storage__views_from_reply(r->element[0], r->element[1], out, n, &got)) ==
                     0 &&
                 got != n)
            rc = -EIO;
    }
    if (rc)
        storage_post_views_clear(out, got);
    storage_redis_batch_free(&b);
    free(argv);
    free(nums);
    return rc;
}

static bool listed(const uint64_t *ids, size_t n, uint64_t id)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] == id)
            return true;
    return false;
}

static const storage_user_t *find_user(const storage_user_t *users, size_t n, uint64_t id)
{
    for (size_t i = 0; id && i < n; i++)
        if (users[i].id == id)
            return &users[i];
    return NULL;
}

/* The pipelined read, for keys on many nodes. */
static int views_by_pipelines(storage_t *s, uint64_t viewer, unsigned hide, const uint64_t *ids,
                              const uint64_t *reposted_by, size_t n, storage_post_view_t *out)
{
    storage_post_t *posts = calloc(n, sizeof(*posts));
    uint64_t *people = calloc(2 * n, sizeof(*people));
    storage_user_t *users = calloc(2 * n, sizeof(*users));
    size_t n_people = 0;
    int rc = posts && people && users ? storage_posts_get(s, ids, n, posts) : -ENOMEM;
    if (rc)
        goto out;
    for (size_t i = 0; i < n; i++) {
        uint64_t who[2] = {posts[i].id && !posts[i].deleted ? posts[i].author : 0,
                           posts[i].id && !posts[i].deleted && reposted_by ? reposted_by[i] : 0};
        for (int k = 0; k < 2; k++)
            if (who[k] && !listed(people, n_people, who[k]))
                people[n_people++] = who[k];
    }
    rc = storage_profiles_get_as(s, viewer, hide, people, n_people, users);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        storage_post_view_t *v = &out[i];
        v->post = posts[i]; /* takes its text */
        memset(&posts[i], 0, sizeof(posts[i]));
        v->reposted_by = reposted_by ? reposted_by[i] : 0;
        const storage_user_t *a = find_user(users, n_people, v->post.author);
        const storage_user_t *r = find_user(users, n_people, v->reposted_by);
        if (a && !v->post.deleted)
            v->author = *a;
        if (r && !v->post.deleted)
            v->reposter = *r;
    }
out:
    for (size_t i = 0; posts && i < n; i++)
        storage_post_clear(&posts[i]);
    free(posts);
    free(people);
    free(users);
    return rc;
}

int storage_post_views(storage_t *s, uint64_t viewer, unsigned hide, const uint64_t *ids,
                       const uint64_t *reposted_by, size_t n, storage_post_view_t *out)
{
    return storage__post_views_settled(s, storage__cache_settled(s), viewer, hide, ids, reposted_by,
                                       n, out);
}

int storage__post_views_settled(storage_t *s, read_cache_t *cached, uint64_t viewer, unsigned hide,
                                const uint64_t *ids, const uint64_t *reposted_by, size_t n,
                                storage_post_view_t *out)
{
    memset(out, 0, n * sizeof(*out));
    if (n == 0)
        return 0;
    if (cached && storage__views_from_cache(cached, viewer, hide, ids, reposted_by, n, out) == 0) {
        read_cache_count(cached, true);
        return 0;
    }
    /* The ticket before the read: what it brings back is kept only where nothing changed. */
    read_cache_ticket_t ticket;
    read_cache_t *fill = storage__cache(s);
    if (fill)
        read_cache_ticket(fill, &ticket);
    int rc =
        storage__one_node(s) ? views_by_script(s, viewer, hide, ids, reposted_by, n, out) : -EPROTO;
    if (rc == 0 && fill) {
        read_cache_count(fill, false);
        storage__views_fill_cache(s, fill, &ticket, viewer, hide, out, n);
    }
    if (rc == -EPROTO)
        rc = views_by_pipelines(s, viewer, hide, ids, reposted_by, n, out);
    if (rc) {
        storage_post_views_clear(out, n);
        memset(out, 0, n * sizeof(*out));
    }
    return rc;
}
