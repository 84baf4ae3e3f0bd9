/* api/routes.c -- the route table (the same routes as openapi.yaml) and path matching.
 *
 * Patterns are literal segments and "{name}" captures. Matching splits the request path
 * in place; a path that exists under other methods only is reported with its Allow list
 * so that the server can answer 405 instead of 404.
 */
#include "api/api.h"

#include <stdio.h>
#include <string.h>

const api_route_t api_routes[] = {
    {"POST", "/v1/users", api_users_create, false, API_RATE_REGISTER},
    {"GET", "/v1/me", api_me_get, true, API_RATE_READ},
    {"PATCH", "/v1/me", api_me_patch, true, API_RATE_PUBLISH},
    {"DELETE", "/v1/me", api_me_delete, true, API_RATE_PUBLISH},
    {"GET", "/v1/me/export", api_me_export, true, API_RATE_READ},
    /* Literal paths before "/v1/users/{id}": the first match wins. */
    {"GET", "/v1/users/lookup", api_users_lookup, true, API_RATE_READ},
    {"GET", "/v1/users/search", api_users_search, true, API_RATE_READ},
    {"GET", "/v1/users/{id}", api_users_get, true, API_RATE_READ},
    {"PUT", "/v1/users/{id}/follow", api_users_follow, true, API_RATE_FOLLOW},
    {"DELETE", "/v1/users/{id}/follow", api_users_unfollow, true, API_RATE_FOLLOW},
    {"GET", "/v1/users/{id}/followers", api_users_followers, true, API_RATE_READ},
    {"GET", "/v1/users/{id}/following", api_users_following, true, API_RATE_READ},
    {"GET", "/v1/users/{id}/posts", api_posts_by_author, true, API_RATE_READ},
    {"PUT", "/v1/users/{id}/block", api_users_block, true, API_RATE_FOLLOW},
    {"DELETE", "/v1/users/{id}/block", api_users_unblock, true, API_RATE_FOLLOW},
    {"PUT", "/v1/users/{id}/mute", api_users_mute, true, API_RATE_FOLLOW},
    {"DELETE", "/v1/users/{id}/mute", api_users_unmute, true, API_RATE_FOLLOW},
    {"GET", "/v1/blocks", api_blocks_list, true, API_RATE_READ},
    {"GET", "/v1/mutes", api_mutes_list, true, API_RATE_READ},
    {"POST", "/v1/posts", api_posts_create, true, API_RATE_PUBLISH},
    {"GET", "/v1/posts/{id}", api_posts_get, true, API_RATE_READ},
    {"DELETE", "/v1/posts/{id}", api_posts_delete, true, API_RATE_PUBLISH},
    {"GET", "/v1/posts/{id}/delivery", api_posts_delivery, true, API_RATE_READ},
    {"PUT", "/v1/posts/{id}/like", api_posts_like, true, API_RATE_INTERACT},
    {"DELETE", "/v1/posts/{id}/like", api_posts_unlike, true, API_RATE_INTERACT},
    {"POST", "/v1/posts/{id}/repost", api_posts_repost, true, API_RATE_INTERACT},
    {"DELETE", "/v1/posts/{id}/repost", api_posts_unrepost, true, API_RATE_INTERACT},
    {"GET", "/v1/timeline", api_timeline_get, true, API_RATE_READ},
    {"GET", "/v1/notifications", api_notifications_list, true, API_RATE_READ},
    {"GET", "/v1/notifications/unread_count", api_notifications_unread, true, API_RATE_READ},
    {"POST", "/v1/notifications/read", api_notifications_read, true, API_RATE_READ},
    {"GET", "/v1/markers", api_markers_get, true, API_RATE_READ},
    {"PUT", "/v1/markers", api_markers_put, true, API_RATE_READ},
    {"POST", "/v1/tokens", api_tokens_create, true, API_RATE_FOLLOW},
    {"GET", "/v1/tokens", api_tokens_list, true, API_RATE_READ},
    {"DELETE", "/v1/tokens/current", api_tokens_revoke_current, true, API_RATE_FOLLOW},
    {"DELETE", "/v1/tokens/{id}", api_tokens_revoke, true, API_RATE_FOLLOW},
    {"GET", "/v1/stream", api_stream_get, true, API_RATE_STREAM},
    {"POST", "/v1/stream/tickets", api_stream_tickets_create, true, API_RATE_STREAM},
    {"OPTIONS", "/v1/stream", api_stream_options, false, API_RATE_NONE},
    {"GET", "/healthz", api_system_healthz, false, API_RATE_NONE},
    {"GET", "/readyz", api_system_readyz, false, API_RATE_NONE},
    {"GET", "/metrics", api_system_metrics, false, API_RATE_NONE},
    {"GET", "/openapi.yaml", api_system_openapi, false, API_RATE_NONE},
    {"GET", "/", api_system_demo, false, API_RATE_NONE},
};
const size_t api_routes_count = sizeof(api_routes) / sizeof(api_routes[0]);

#define MAX_SEGMENTS 8

/* Splits path ("/a/b/c") in place into segments; returns their count or -1. */
static int split(char *path, char **segs)
{
    if (path[0] != '/')
        return -1;
    int n = 0;
    char *p = path + 1;
    if (*p == '\0')
        return 0;
    for (;;) {
        if (n == MAX_SEGMENTS)
            return -1;
        segs[n++] = p;
        char *slash = strchr(p, '/');
        if (!slash)
            return n;
        *slash = '\0';
        p = slash + 1;
    }
}

/* Does the pattern match these segments? Captures go to params. */
static bool match(const char *pattern, char **segs, int n, const char **params)
{
    const char *p = pattern + 1;
    int np = 0;
    for (int i = 0; i < n; i++) {
        if (*p == '\0')
            return false;
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (p[0] == '{') {
            if (segs[i][0] == '\0' || np == API_MAX_PARAMS)
                return false;
            params[np++] = segs[i];
        } else if (strlen(segs[i]) != len || memcmp(segs[i], p, len) != 0) {
            return false;
        }
        p += len + (end ? 1 : 0);
    }
    return *p == '\0';
}

/* Is method one of the comma-separated list? */
static bool listed(const char *list, const char *method)
{
    size_t len = strlen(method);
    for (const char *p = list; *p;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == len && memcmp(p, method, len) == 0)
            return true;
        if (!end)
            break;
        p = end + 2; /* ", " */
    }
    return false;
}

/* Appends method to the Allow list unless it is there already: a literal route and a
 * "{capture}" route can both match one path (GET /v1/users/lookup, GET /v1/users/{id}). */
static void allow_add(char *allow, size_t allow_size, const char *method)
{
    if (listed(allow, method))
        return;
    size_t used = strlen(allow);
    snprintf(allow + used, allow_size - used, "%s%s", used ? ", " : "", method);
}

int api_route_match(const char *method, char *path, const char **params, char *allow,
                    size_t allow_size)
{
    char *segs[MAX_SEGMENTS];
    int n = split(path, segs);
    if (n < 0)
        return -1;
    const char *wanted = strcmp(method, "HEAD") == 0 ? "GET" : method;
    bool other_methods = false;
    allow[0] = '\0';
    for (size_t i = 0; i < api_routes_count; i++) {
        if (!match(api_routes[i].pattern, segs, n, params))
            continue;
        if (strcmp(api_routes[i].method, wanted) == 0)
            return (int)i;
        allow_add(allow, allow_size, api_routes[i].method);
        if (strcmp(api_routes[i].method, "GET") == 0)
            allow_add(allow, allow_size, "HEAD");
        other_methods = true;
    }
    return other_methods ? -2 : -1;
}
