/* api/handlers_lookup.c -- finding people by handle: GET /v1/users/lookup?handle= (one user)
 * and GET /v1/users/search?q= (handles starting with a prefix, for mention autocomplete).
 *
 * Both answer as GET /v1/users/{id} does about blocks: between two users where either
 * blocked the other, the other does not exist (lookup answers 404, search leaves them out).
 * Query values are read with their length, so an encoded NUL ("%00") is refused rather
 * than cutting the value short.
 */
#include "api/api.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Could this be a handle, or the start of one (1..30 of [A-Za-z0-9_])? */
static bool handle_chars(const char *s, size_t n)
{
    if (n < 1 || n > STORAGE_HANDLE_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return false;
    }
    return true;
}

/* The query parameter name as a possible handle (prefix); NULL after answering a 400. */
static const char *handle_param(api_req_t *r, const char *name)
{
    const char *v = NULL;
    size_t n = 0;
    if (MHD_lookup_connection_value_n(r->conn, MHD_GET_ARGUMENT_KIND, name, strlen(name), &v, &n) !=
            MHD_YES ||
        !v) {
        api_problem(r, API_BAD_REQUEST, "the %s parameter is required", name);
        return NULL;
    }
    if (!handle_chars(v, n)) {
        api_problem(r, API_BAD_REQUEST, "%s must be 1 to %d letters, digits or underscores", name,
                    STORAGE_HANDLE_MAX);
        return NULL;
    }
    return v;
}

void api_users_lookup(api_req_t *r)
{
    const char *handle = handle_param(r, "handle");
    if (!handle)
        return;
    uint64_t id = 0;
    storage_user_t user;
    int rc = storage_users_by_handle(r->api->storage, &handle, 1, &id);
    if (rc == 0 && id == 0)
        rc = -ENOENT;
    /* As GET /v1/users/{id}: between two users where either blocked the other, 404. */
    if (rc == 0)
        rc = storage_users_get_as(r->api->storage, r->caller.id, STORAGE_REL_BLOCK, &id, 1, &user);
    if (rc == 0 && user.id == 0)
        rc = -ENOENT;
    if (rc == -ENOENT)
        api_problem(r, API_NOT_FOUND, "no user has the handle '%s'", handle);
    else if (rc)
        api_storage_problem(r, rc, "user");
    else
        api_reply_json(r, 200, api_user_json(&user));
}

#define SEARCH_LIMIT_DEFAULT 10

void api_users_search(api_req_t *r)
{
    const char *q = handle_param(r, "q");
    if (!q)
        return;
    size_t limit = SEARCH_LIMIT_DEFAULT;
    const char *l = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "limit");
    if (l) {
        uint64_t v = api_parse_id(l);
        if (v < 1 || v > STORAGE_SEARCH_MAX) {
            api_problem(r, API_BAD_REQUEST, "limit must be an integer from 1 to %d",
                        STORAGE_SEARCH_MAX);
            return;
        }
        limit = (size_t)v;
    }
    storage_user_t *users = calloc(limit, sizeof(*users));
    if (!users) {
        api_storage_problem(r, -ENOMEM, "user");
        return;
    }
    size_t n = 0;
    int rc = storage_users_search(r->api->storage, r->caller.id, q, limit, users, &n);
    /* No cursor: autocomplete asks again with a longer prefix instead of paging. */
    json_t *page = json_object(), *items = json_array();
    for (size_t i = 0; rc == 0 && items && i < n; i++)
        json_array_append_new(items, api_user_json(&users[i]));
    free(users);
    if (rc) {
        json_decref(items);
        json_decref(page);
        api_storage_problem(r, rc, "user");
    } else if (!page || json_object_set_new(page, "items", items) != 0) {
        json_decref(page);
        api_storage_problem(r, -ENOMEM, "user");
    } else {
        api_reply_json(r, 200, page);
    }
}
