/* api/handlers_markers.c -- the Markers tag: where the caller stopped reading, shared by
 * their devices (storage/markers.c). The notifications marker is the read mark that
 * POST /v1/notifications/read moves too. */
#include "api/api.h"

#include <errno.h>
#include <string.h>

static json_t *marker_json(uint64_t id)
{
    return id ? api_id_json(id) : json_null();
}

json_t *api_markers_json(const storage_markers_t *m)
{
    return json_pack("{s:o, s:o}", "home", marker_json(m->home), "notifications",
                     marker_json(m->notifications));
}

void api_markers_get(api_req_t *r)
{
    storage_markers_t m;
    int rc = storage_markers_get(r->api->storage, r->caller.id, &m);
    if (rc)
        api_storage_problem(r, rc, "user");
    else
        api_reply_json(r, 200, api_markers_json(&m));
}

/* One marker of the body: absent (0), or an id string (false after a problem). */
static bool parse_marker(api_req_t *r, const json_t *body, const char *name, const char *what,
                         uint64_t *id)
{
    const json_t *v = json_object_get(body, name);
    *id = 0;
    if (!v)
        return true;
    *id = api_parse_id(json_string_value(v));
    if (!*id) {
        api_problem(r, API_BAD_REQUEST, "%s must be %s id string", name, what);
        return false;
    }
    return true;
}

void api_markers_put(api_req_t *r)
{
    static const char *const fields[] = {"home", "notifications", NULL};
    json_t *body = api_body_object(r, fields);
    if (!body)
        return;
    uint64_t home, notifications;
    if (json_object_size(body) == 0)
        api_problem(r, API_BAD_REQUEST, "give home, notifications or both");
    else if (parse_marker(r, body, "home", "a post", &home) &&
             parse_marker(r, body, "notifications", "a notification", &notifications)) {
        storage_markers_t m;
        int rc = storage_markers_move(r->api->storage, r->caller.id, home, notifications,
                                      r->caller_token, &m);
        if (rc)
            api_storage_problem(r, rc, "user");
        else
            api_reply_json(r, 200, api_markers_json(&m));
    }
    json_decref(body);
}
