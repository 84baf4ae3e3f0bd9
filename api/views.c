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
    return json_pack("{s:o, s:s, s:s, s:o, s:I, s:I, s:I}", "id", api_id_json(u->id), "handle",
                     u->handle, "display_name", u->display_name, "created_at",
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
                     "reply_to", p->reply_to ? api_id_json(p->reply_to) : json_null(),
                     "mentions", mentions, "created_at", api_time_json(storage_id_time_ms(p->id)),
                     "like_count", (json_int_t)p->like_count, "repost_count",
                     (json_int_t)p->repost_count);
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

int api_posts_hydrate(api_t *api, const uint64_t *ids, size_t n, json_t *items)
{
    storage_post_t *posts = calloc(n ? n : 1, sizeof(*posts));
    uint64_t *authors = calloc(n ? n : 1, sizeof(*authors));
    storage_user_t *users = calloc(n ? n : 1, sizeof(*users));
    size_t n_authors = 0;
    int rc = posts && authors && users ? storage_posts_get(api->storage, ids, n, posts) : -ENOMEM;
    if (rc)
        goto out;
    for (size_t i = 0; i < n; i++) {
        bool seen = false;
        for (size_t j = 0; j < n_authors && !seen; j++)
            seen = authors[j] == posts[i].author;
        if (posts[i].id && !seen)
            authors[n_authors++] = posts[i].author;
    }
    /* One round trip for every author of the page, not one per post. */
    rc = storage_users_get(api->storage, authors, n_authors, users);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const storage_user_t *author = find_user(users, n_authors, posts[i].author);
        if (posts[i].id && !posts[i].deleted && author)
            json_array_append_new(items, api_post_json(&posts[i], author));
    }
out:
    for (size_t i = 0; posts && i < n; i++)
        storage_post_clear(&posts[i]);
    free(posts);
    free(authors);
    free(users);
    return rc;
}

void api_reply_posts(api_req_t *r, const uint64_t *ids, size_t n, uint64_t next_cursor)
{
    json_t *items = json_array();
    int rc = items ? api_posts_hydrate(r->api, ids, n, items) : -ENOMEM;
    if (rc) {
        api_storage_problem(r, rc, "post");
        json_decref(items);
        return;
    }
    api_reply_json(r, 200, api_list_json(items, next_cursor));
}
