/* api/handlers_users.c -- the Users tag: registration, profiles, the follow graph. */
#include "api/api.h"
#include "api/input.h"
#include "api/utf8.h"
#include "storage/tokens.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void api_users_create(api_req_t *r)
{
    static const char *const fields[] = {"handle", "display_name", NULL};
    json_t *body = api_body_object(r, fields);
    if (!body)
        return;
    const char *handle, *name;
    char detail[API_DETAIL_MAX];
    if (!api_input_user(body, &handle, &name, detail, sizeof(detail))) {
        api_problem(r, API_BAD_REQUEST, "%s", detail);
    } else {
        char token[API_TOKEN_MAX];
        storage_token_t tok;
        storage_user_t user;
        /* Both ids first: once the user's write has reconnected to Redis, the id generator
         * may refuse until its lease is confirmed again (storage/ids.c), which would leave a
         * user without a token. */
        uint64_t id = storage_id_next(r->api->storage);
        uint64_t token_id = id ? storage_id_next(r->api->storage) : 0;
        int rc = token_id ? storage_user_create(r->api->storage, id, handle, name ? name : handle,
                                                NULL, &user)
                          : -EAGAIN;
        /* The first device token. Should it fail, the user has none: registering again takes
         * another handle, as after any failed registration. */
        if (rc == 0)
            rc = api_token_issue(r->api, id, token_id, "registration", 0, token, &tok);
        if (rc == -EEXIST)
            api_problem(r, API_CONFLICT, "the handle '%s' is taken", handle);
        else if (rc)
            api_storage_problem(r, rc, "user");
        else {
            json_t *out = json_pack("{s:o, s:s}", "user", api_user_json(&user), "token", token);
            api_reply_json(r, 201, out);
            snprintf(r->location, sizeof(r->location), "/v1/users/%llu",
                     (unsigned long long)user.id);
        }
    }
    json_decref(body);
}

void api_users_get(api_req_t *r)
{
    uint64_t id;
    if (!api_param_id(r, 0, &id))
        return;
    storage_user_t user;
    /* Someone who blocked you, or whom you blocked, does not exist for you. */
    int rc = storage_users_get_as(r->api->storage, r->caller.id, STORAGE_REL_BLOCK, &id, 1, &user);
    if (rc == 0 && user.id == 0)
        rc = -ENOENT;
    if (rc)
        api_storage_problem(r, rc, "user");
    else
        api_reply_json(r, 200, api_user_json(&user));
}

static void change_follow(api_req_t *r, bool follow)
{
    uint64_t id;
    if (!api_param_id(r, 0, &id))
        return;
    if (id == r->caller.id && follow) {
        api_problem(r, API_UNPROCESSABLE, "you cannot follow yourself");
        return;
    }
    bool changed;
    int max = r->api->cfg->max_following;
    int rc = follow ? storage_follow_at_most(r->api->storage, r->caller.id, id, max, &changed)
                    : storage_unfollow(r->api->storage, r->caller.id, id, &changed);
    if (rc == -EPERM)
        api_problem(r, API_FORBIDDEN, "you cannot follow a user you blocked or who blocked you");
    else if (rc == -ENOSPC)
        api_problem(r, API_CONFLICT, "you follow %d accounts, the most allowed: unfollow one first",
                    max);
    else if (rc)
        api_storage_problem(r, rc, "user");
    else
        api_reply_empty(r, 204);
}

void api_users_follow(api_req_t *r)
{
    change_follow(r, true);
}

void api_users_unfollow(api_req_t *r)
{
    change_follow(r, false);
}

static void list_edges(api_req_t *r, storage_edge_t which)
{
    uint64_t id, cursor;
    size_t limit;
    if (!api_param_id(r, 0, &id) || !api_query_page(r, &limit, &cursor))
        return;
    storage_page_t page;
    /* The lists of someone who blocked you (or whom you blocked) do not exist for you, and
     * whom you blocked or who blocked you is left out of anyone's. */
    int rc = storage_edges_page_as(r->api->storage, which, id, r->caller.id, cursor, limit, &page);
    if (rc) {
        api_storage_problem(r, rc, "user");
        return;
    }
    api_reply_users(r, page.ids, page.n, STORAGE_REL_BLOCK, page.next_cursor);
    storage_page_free(&page);
}

void api_users_followers(api_req_t *r)
{
    list_edges(r, STORAGE_FOLLOWERS);
}

void api_users_following(api_req_t *r)
{
    list_edges(r, STORAGE_FOLLOWING);
}
