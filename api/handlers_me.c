/* api/handlers_me.c -- the caller's own profile: GET /v1/me and PATCH /v1/me.
 *
 * GET reads the user fresh from storage, not the token cache (which may be 10 s old), so a
 * client sees its edit at once. PATCH checks every field before writing any of them.
 */
#include "api/api.h"
#include "api/input.h"

#include <stdint.h>
#include <string.h>

void api_me_get(api_req_t *r)
{
    storage_user_t user;
    int rc = storage_user_get(r->api->storage, r->caller.id, &user);
    if (rc)
        api_storage_problem(r, rc, "user");
    else
        api_reply_json(r, 200, api_user_json(&user));
}

void api_me_patch(api_req_t *r)
{
    static const char *const fields[] = {"display_name", "bio", NULL};
    json_t *body = api_body_object(r, fields);
    if (!body)
        return;
    const char *name, *bio;
    char detail[API_DETAIL_MAX];
    if (!api_input_me(body, &name, &bio, detail, sizeof(detail))) {
        api_problem(r, API_BAD_REQUEST, "%s", detail);
    } else {
        storage_user_t user;
        int rc = storage_user_update(r->api->storage, r->caller.id, name, bio, &user);
        if (rc)
            api_storage_problem(r, rc, "user");
        else
            api_reply_json(r, 200, api_user_json(&user));
    }
    json_decref(body);
}
