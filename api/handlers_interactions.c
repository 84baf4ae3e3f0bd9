/* api/handlers_interactions.c -- likes and reposts (Posts tag), blocks and mutes (Users
 * tag). Each is idempotent; the engine writes the consequences from the queued job. */
#include "api/api.h"

#include <errno.h>

static void interact(api_req_t *r, bool repost, bool on)
{
    uint64_t id;
    if (!api_param_id(r, 0, &id))
        return;
    int rc = repost ? storage_repost(r->api->storage, r->caller.id, id, on)
                    : storage_like(r->api->storage, r->caller.id, id, on);
    if (rc) {
        api_storage_problem(r, rc, "post");
        return;
    }
    if (!(repost && on)) {
        api_reply_empty(r, 204);
        return;
    }
    /* A repost is fanned out asynchronously, like a post: 202 with the post. */
    json_t *items = json_array();
    rc = items ? api_posts_hydrate(r->api, &id, 1, NULL, items) : -ENOMEM;
    if (rc)
        api_storage_problem(r, rc, "post");
    else if (json_array_size(items) == 0)
        api_problem(r, API_NOT_FOUND, "post not found");
    else
        api_reply_json(r, 202, json_incref(json_array_get(items, 0)));
    json_decref(items);
}

void api_posts_like(api_req_t *r)
{
    interact(r, false, true);
}

void api_posts_unlike(api_req_t *r)
{
    interact(r, false, false);
}

void api_posts_repost(api_req_t *r)
{
    interact(r, true, true);
}

void api_posts_unrepost(api_req_t *r)
{
    interact(r, true, false);
}

static void relate(api_req_t *r, storage_relation_t rel, bool on)
{
    uint64_t id;
    if (!api_param_id(r, 0, &id))
        return;
    if (id == r->caller.id) {
        api_problem(r, API_UNPROCESSABLE, "you cannot %s yourself",
                    rel == STORAGE_BLOCK ? "block" : "mute");
        return;
    }
    int rc = storage_relation_set(r->api->storage, rel, r->caller.id, id, on);
    if (rc)
        api_storage_problem(r, rc, "user");
    else
        api_reply_empty(r, 204);
}

void api_users_block(api_req_t *r)
{
    relate(r, STORAGE_BLOCK, true);
}

void api_users_unblock(api_req_t *r)
{
    relate(r, STORAGE_BLOCK, false);
}

void api_users_mute(api_req_t *r)
{
    relate(r, STORAGE_MUTE, true);
}

void api_users_unmute(api_req_t *r)
{
    relate(r, STORAGE_MUTE, false);
}

static void list_relations(api_req_t *r, storage_relation_t rel)
{
    uint64_t cursor;
    size_t limit;
    if (!api_query_page(r, &limit, &cursor))
        return;
    storage_page_t page;
    int rc = storage_relations_page(r->api->storage, rel, r->caller.id, cursor, limit, &page);
    if (rc) {
        api_storage_problem(r, rc, "user");
        return;
    }
    api_reply_users(r, page.ids, page.n, 0, page.next_cursor); /* whom you blocked, listed */
    storage_page_free(&page);
}

void api_blocks_list(api_req_t *r)
{
    list_relations(r, STORAGE_BLOCK);
}

void api_mutes_list(api_req_t *r)
{
    list_relations(r, STORAGE_MUTE);
}
