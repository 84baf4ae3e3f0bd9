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

void api_post_views_append(const storage_post_view_t *v, size_t n, json_t *items)
{
    for (size_t i = 0; i < n; i++) {
        if (!v[i].post.id || v[i].post.deleted || !v[i].author.id ||
            (v[i].reposted_by && !v[i].reposter.id))
            continue;
        json_t *post = api_post_json(&v[i].post, &v[i].author);
        if (post && v[i].reposted_by)
            json_object_set_new(post, "reposted_by",
                                json_pack("{s:o, s:s}", "id", api_id_json(v[i].reposter.id),
                                          "handle", v[i].reposter.handle));
        json_array_append_new(items, post);
    }
}

/* The views of ids for opt (NULL: nobody, nothing hidden), in one round trip on one Redis
 * node, or none from the read cache (storage/post_views.c); NULL with *rc set on failure.
 * Free with storage_post_views_clear and free. */
static storage_post_view_t *views_of(api_t *api, const uint64_t *ids, size_t n,
                                     const api_hydrate_t *opt, int *rc)
{
    static const api_hydrate_t none = {0};
    if (!opt)
        opt = &none;
    storage_post_view_t *views = calloc(n ? n : 1, sizeof(*views));
    *rc = views ? storage_post_views(api->storage, opt->viewer, opt->hide, ids, opt->reposted_by, n,
                                     views)
                : -ENOMEM;
    if (*rc) {
        free(views);
        return NULL;
    }
    return views;
}

int api_posts_hydrate(api_t *api, const uint64_t *ids, size_t n, const api_hydrate_t *opt,
                      json_t *items)
{
    int rc;
    storage_post_view_t *views = views_of(api, ids, n, opt, &rc);
    if (views)
        api_post_views_append(views, n, items);
    storage_post_views_clear(views, views ? n : 0);
    free(views);
    return rc;
}

void api_reply_posts(api_req_t *r, const uint64_t *ids, size_t n, const api_hydrate_t *opt,
                     uint64_t next_cursor)
{
    int rc;
    storage_post_view_t *views = views_of(r->api, ids, n, opt, &rc);
    if (views)
        api_reply_post_page(r, views, n, next_cursor, NULL);
    else
        api_storage_problem(r, rc, "post");
    storage_post_views_clear(views, views ? n : 0);
    free(views);
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
