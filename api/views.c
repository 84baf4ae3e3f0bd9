/* api/views.c -- domain records as the JSON shapes of DESIGN §4 (ids as decimal strings,
 * times as RFC 3339 UTC with milliseconds). */
#include "api/api.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

json_t *api_id_json(uint64_t id)
{
    char buf[24];
    snprintf(buf, sizeof(buf), "%llu", (unsigned long long)id);
    return json_string(buf);
}

json_t *api_time_json(uint64_t ms)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    char buf[40];
    gmtime_r(&secs, &tm);
    size_t n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, sizeof(buf) - n, ".%03uZ", (unsigned)(ms % 1000));
    return json_string(buf);
}

json_t *api_user_json(const storage_user_t *u)
{
    return json_pack("{s:o, s:s, s:s, s:s, s:o, s:I, s:I, s:I}", "id", api_id_json(u->id), "handle",
                     u->handle, "display_name", u->display_name, "bio", u->bio, "created_at",
                     api_time_json(u->created_ms), "followers_count",
                     (json_int_t)u->followers_count, "following_count",
                     (json_int_t)u->following_count, "posts_count", (json_int_t)u->posts_count);
}

json_t *api_post_json(const storage_post_t *p, const storage_user_t *author)
{
    json_t *mentions = json_array();
    for (size_t i = 0; mentions && i < p->n_mentions; i++)
        json_array_append_new(mentions, api_id_json(p->mentions[i]));
    return json_pack("{s:o, s:{s:o, s:s, s:s}, s:s, s:o, s:o, s:o, s:I, s:I}", "id",
                     api_id_json(p->id), "author", "id", api_id_json(author->id), "handle",
                     author->handle, "display_name", author->display_name, "text", p->text,
                     "reply_to", p->reply_to ? api_id_json(p->reply_to) : json_null(), "mentions",
                     mentions, "created_at", api_time_json(storage_id_time_ms(p->id)), "like_count",
                     (json_int_t)p->like_count, "repost_count", (json_int_t)p->repost_count);
}

json_t *api_list_json(json_t *items, uint64_t next_cursor)
{
    return json_pack("{s:o, s:o}", "items", items, "next_cursor",
                     next_cursor ? api_id_json(next_cursor) : json_null());
}

/* Finds author in users (n entries); NULL when absent. */
static const storage_user_t *find_user(const storage_user_t *users, size_t n, uint64_t id)
{
    for (size_t i = 0; i < n; i++)
        if (users[i].id == id)
            return &users[i];
    return NULL;
}

static bool listed(const uint64_t *ids, size_t n, uint64_t id)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] == id)
            return true;
    return false;
}

int api_posts_hydrate(api_t *api, const uint64_t *ids, size_t n, const api_hydrate_t *opt,
                      json_t *items)
{
    static const api_hydrate_t none = {0};
    if (!opt)
        opt = &none;
    storage_post_t *posts = calloc(n ? n : 1, sizeof(*posts));
    uint64_t *people = calloc(2 * n + 1, sizeof(*people));
    storage_user_t *users = calloc(2 * n + 1, sizeof(*users));
    size_t n_people = 0;
    int rc = posts && people && users ? storage_posts_get(api->storage, ids, n, posts) : -ENOMEM;
    if (rc)
        goto out;
    for (size_t i = 0; i < n; i++) {
        uint64_t who[2] = {posts[i].id ? posts[i].author : 0,
                           opt->reposted_by ? opt->reposted_by[i] : 0};
        for (int k = 0; k < 2; k++)
            if (who[k] && !listed(people, n_people, who[k]))
                people[n_people++] = who[k];
    }
    /* One round trip for every author and reposter of the page, not one per post; a post
     * shows no follower counts, so they are not read. Whom the viewer must not see comes
     * back unknown, tested for exactly these people in the same round trip. */
    rc = storage_profiles_get_as(api->storage, opt->viewer, opt->hide, people, n_people, users);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const storage_user_t *author = find_user(users, n_people, posts[i].author);
        uint64_t rb = opt->reposted_by ? opt->reposted_by[i] : 0;
        const storage_user_t *reposter = rb ? find_user(users, n_people, rb) : NULL;
        if (!posts[i].id || posts[i].deleted || !author || (rb && !reposter))
            continue;
        json_t *post = api_post_json(&posts[i], author);
        if (post && reposter)
            json_object_set_new(post, "reposted_by",
                                json_pack("{s:o, s:s}", "id", api_id_json(reposter->id), "handle",
                                          reposter->handle));
        json_array_append_new(items, post);
    }
out:
    for (size_t i = 0; posts && i < n; i++)
        storage_post_clear(&posts[i]);
    free(posts);
    free(people);
    free(users);
    return rc;
}

void api_reply_posts(api_req_t *r, const uint64_t *ids, size_t n, const api_hydrate_t *opt,
                     uint64_t next_cursor)
{
    json_t *items = json_array();
    int rc = items ? api_posts_hydrate(r->api, ids, n, opt, items) : -ENOMEM;
    if (rc) {
        api_storage_problem(r, rc, "post");
        json_decref(items);
        return;
    }
    api_reply_json(r, 200, api_list_json(items, next_cursor));
}

void api_reply_users(api_req_t *r, const uint64_t *ids, size_t n, unsigned hide,
                     uint64_t next_cursor)
{
    storage_user_t *users = calloc(n ? n : 1, sizeof(*users));
    json_t *items = json_array();
    int rc = users && items
                 ? storage_users_get_as(r->api->storage, r->caller.id, hide, ids, n, users)
                 : -ENOMEM;
    if (rc) {
        api_storage_problem(r, rc, "user");
        json_decref(items);
    } else {
        for (size_t i = 0; i < n; i++)
            if (users[i].id)
                json_array_append_new(items, api_user_json(&users[i]));
        api_reply_json(r, 200, api_list_json(items, next_cursor));
    }
    free(users);
}
