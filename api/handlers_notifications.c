/* api/handlers_notifications.c -- the Notifications tag: the grouped inbox, the unread
 * count and the read mark. */
#include "api/api.h"
#include "api/input.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* types ("like,reply"); all types when absent. False after a problem. */
static bool parse_types(api_req_t *r, unsigned *types)
{
    const char *q = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "types");
    char detail[API_DETAIL_MAX];
    if (!api_input_types(q, types, detail, sizeof(detail))) {
        api_problem(r, API_BAD_REQUEST, "%s", detail);
        return false;
    }
    return true;
}

static const json_t *find_by_id(const json_t *list, uint64_t id)
{
    size_t i;
    const json_t *v;
    json_t *want = api_id_json(id);
    const json_t *hit = NULL;
    json_array_foreach(list, i, v)
    {
        if (json_equal(json_object_get(v, "id"), want))
            hit = v;
    }
    json_decref(want);
    return hit;
}

int api_notices_json(api_t *api, const storage_notifications_t *page, json_t *items)
{
    size_t n = page->n;
    uint64_t *actor_ids = calloc(n * STORAGE_NOTIFICATION_ACTORS + 1, sizeof(*actor_ids));
    uint64_t *post_ids = calloc(n + 1, sizeof(*post_ids));
    storage_user_t *actors = calloc(n * STORAGE_NOTIFICATION_ACTORS + 1, sizeof(*actors));
    json_t *posts = json_array();
    size_t na = 0, np = 0;
    int rc = actor_ids && post_ids && actors && posts ? 0 : -ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        for (size_t k = 0; k < page->items[i].n_actors; k++)
            actor_ids[na++] = page->items[i].actors[k];
        if (page->items[i].subject)
            post_ids[np++] = page->items[i].subject;
    }
    if (rc == 0)
        rc = storage_users_get(api->storage, actor_ids, na, actors);
    if (rc == 0)
        rc = api_posts_hydrate(api, post_ids, np, NULL, posts);
    for (size_t i = 0, a = 0; rc == 0 && i < n; i++) {
        const storage_notification_t *it = &page->items[i];
        json_t *list = json_array();
        for (size_t k = 0; k < it->n_actors; k++, a++)
            if (actors[a].id)
                json_array_append_new(list, api_user_json(&actors[a]));
        const json_t *post = it->subject ? find_by_id(posts, it->subject) : NULL;
        if (json_array_size(list) == 0 || (it->subject && !post)) {
            json_decref(list); /* its post was deleted, or its actors are gone */
            continue;
        }
        json_t *obj =
            json_pack("{s:o, s:s, s:s, s:o, s:I, s:o, s:b}", "id", api_id_json(it->id), "type",
                      storage_notification_types[it->type], "group_key", it->group, "actors", list,
                      "actor_count", (json_int_t)it->actor_count, "created_at",
                      api_time_json(storage_id_time_ms(it->id)), "read", it->read);
        if (obj && post)
            json_object_set(obj, "post", (json_t *)post);
        json_array_append_new(items, obj);
    }
    free(actor_ids);
    free(post_ids);
    free(actors);
    json_decref(posts);
    return rc;
}

void api_notifications_list(api_req_t *r)
{
    uint64_t cursor;
    size_t limit;
    unsigned types;
    if (!api_query_page(r, &limit, &cursor) || !parse_types(r, &types))
        return;
    storage_notifications_t page;
    int rc = storage_notifications_page(r->api->storage, r->caller.id, cursor, limit, types,
                                        (size_t)r->api->cfg->fanout.notifications_max, &page);
    if (rc) {
        api_storage_problem(r, rc, "notification");
        return;
    }
    json_t *items = json_array();
    rc = items ? api_notices_json(r->api, &page, items) : -ENOMEM;
    if (rc) {
        api_storage_problem(r, rc, "notification");
        json_decref(items);
    } else {
        api_reply_json(r, 200, api_list_json(items, page.next_cursor));
    }
    storage_notifications_free(&page);
}

void api_notifications_unread(api_req_t *r)
{
    int64_t count;
    int rc = storage_notifications_unread(r->api->storage, r->caller.id, &count);
    if (rc)
        api_storage_problem(r, rc, "notification");
    else
        api_reply_json(r, 200, json_pack("{s:I}", "count", (json_int_t)count));
}

void api_notifications_read(api_req_t *r)
{
    static const char *const fields[] = {"up_to", NULL};
    json_t *body = api_body_object(r, fields);
    if (!body)
        return;
    uint64_t up_to;
    char detail[API_DETAIL_MAX];
    if (!api_input_read_mark(body, &up_to, detail, sizeof(detail)))
        api_problem(r, API_BAD_REQUEST, "%s", detail);
    else {
        /* The notifications marker: the caller's other devices hear of it. */
        int rc =
            storage_markers_move(r->api->storage, r->caller.id, 0, up_to, r->caller_token, NULL);
        if (rc)
            api_storage_problem(r, rc, "notification");
        else
            api_reply_empty(r, 204);
    }
    json_decref(body);
}
