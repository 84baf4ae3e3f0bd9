/* api/handlers_tokens.c -- the Tokens tag: a user's tokens, one per device, and revocation.
 *
 * A token is shown once, when it is issued; listing shows its metadata only, and marks the
 * one the request came with ("current"). Revoking deletes it in Redis and forgets this
 * process's cached verification of it.
 */
#include "api/api.h"
#include "api/utf8.h"
#include "storage/tokens.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAME_MAX_CHARS 64
#define EXPIRES_IN_MIN_S 60
#define EXPIRES_IN_MAX_S (365LL * 24 * 3600)

int api_token_issue(api_t *api, uint64_t user, uint64_t token_id, const char *name,
                    uint64_t expires_in_s, char token[API_TOKEN_MAX], storage_token_t *out)
{
    memset(out, 0, sizeof(*out));
    out->id = token_id ? token_id : storage_id_next(api->storage);
    if (!out->id)
        return -EAGAIN;
    snprintf(out->name, sizeof(out->name), "%s", name);
    out->created_ms = storage_id_time_ms(out->id);
    out->expires_ms = expires_in_s ? out->created_ms + expires_in_s * 1000 : 0;
    uint8_t hash[32];
    int rc = api_token_new(user, out->id, token, hash);
    return rc ? rc : storage_token_create(api->storage, user, out, hash, API_TOKENS_MAX);
}

static json_t *token_json(const storage_token_t *t, bool current)
{
    return json_pack("{s:o, s:s, s:o, s:o, s:o, s:b}", "id", api_id_json(t->id), "name", t->name,
                     "created_at", api_time_json(t->created_ms), "last_used_at",
                     t->last_used_ms ? api_time_json(t->last_used_ms) : json_null(), "expires_at",
                     t->expires_ms ? api_time_json(t->expires_ms) : json_null(), "current",
                     current);
}

/* Reads name; false after answering a problem. */
static bool read_name(api_req_t *r, json_t *body, const char **name)
{
    json_t *j = json_object_get(body, "name");
    *name = json_string_value(j);
    if (!j)
        api_problem(r, API_BAD_REQUEST, "name is required");
    else if (!*name)
        api_problem(r, API_BAD_REQUEST, "name must be a string");
    else if (api_utf8_length(*name) < 1 || api_utf8_length(*name) > NAME_MAX_CHARS ||
             api_has_control_chars(*name))
        api_problem(r, API_BAD_REQUEST,
                    "name must be 1 to %d characters without control characters", NAME_MAX_CHARS);
    else
        return true;
    return false;
}

/* Reads expires_in (absent or null: never); false after answering a problem. */
static bool read_expires_in(api_req_t *r, json_t *body, uint64_t *secs)
{
    json_t *j = json_object_get(body, "expires_in");
    *secs = 0;
    if (!j || json_is_null(j))
        return true;
    if (!json_is_integer(j) || json_integer_value(j) < EXPIRES_IN_MIN_S ||
        json_integer_value(j) > EXPIRES_IN_MAX_S) {
        api_problem(r, API_BAD_REQUEST, "expires_in must be an integer of %d to %lld seconds",
                    EXPIRES_IN_MIN_S, EXPIRES_IN_MAX_S);
        return false;
    }
    *secs = (uint64_t)json_integer_value(j);
    return true;
}

void api_tokens_create(api_req_t *r)
{
    static const char *const fields[] = {"name", "expires_in", NULL};
    json_t *body = api_body_object(r, fields);
    if (!body)
        return;
    const char *name;
    uint64_t expires_in;
    if (read_name(r, body, &name) && read_expires_in(r, body, &expires_in)) {
        char token[API_TOKEN_MAX];
        storage_token_t tok;
        int rc = api_token_issue(r->api, r->caller.id, 0, name, expires_in, token, &tok);
        if (rc == -ENOSPC) {
            api_problem(r, API_CONFLICT, "you hold %d tokens, the most allowed: revoke one first",
                        API_TOKENS_MAX);
        } else if (rc) {
            api_storage_problem(r, rc, "token");
        } else {
            json_t *out = token_json(&tok, false);
            json_object_set_new(out, "token", json_string(token));
            api_reply_json(r, 201, out);
            snprintf(r->location, sizeof(r->location), "/v1/tokens/%llu",
                     (unsigned long long)tok.id);
        }
    }
    json_decref(body);
}

void api_tokens_list(api_req_t *r)
{
    storage_token_t *toks;
    size_t n;
    int rc = storage_tokens_list(r->api->storage, r->caller.id, &toks, &n);
    if (rc) {
        api_storage_problem(r, rc, "user");
        return;
    }
    json_t *items = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(items, token_json(&toks[i], toks[i].id == r->caller_token));
    free(toks);
    api_reply_json(r, 200, json_pack("{s:o}", "items", items));
}

static void revoke(api_req_t *r, uint64_t id)
{
    int rc = storage_token_revoke(r->api->storage, r->caller.id, id);
    if (rc == -ENOENT) {
        api_problem(r, API_NOT_FOUND, "you hold no token %llu", (unsigned long long)id);
        return;
    }
    if (rc) {
        api_storage_problem(r, rc, "token");
        return;
    }
    api_auth_forget(r->api, r->caller.id, id);
    api_reply_empty(r, 204);
}

void api_tokens_revoke(api_req_t *r)
{
    uint64_t id;
    if (api_param_id(r, 0, &id))
        revoke(r, id);
}

void api_tokens_revoke_current(api_req_t *r)
{
    revoke(r, r->caller_token);
}
