/* api/api.h -- what the HTTP layer's files share: the server, the request context, the
 * reply helpers and the handlers. Thread: MHD (every function runs on an HTTP thread). */
#ifndef TIDINGS_API_API_H
#define TIDINGS_API_API_H

#include "api/client_address.h"
#include "api/config.h"
#include "api/connections.h"
#include "api/metrics.h"
#include "api/rate_limit.h"
#include "fanout/fanout.h"
#include "notify/notify.h"
#include "storage/storage.h"

#include <jansson.h>
#include <stdatomic.h>
#include <microhttpd.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct api_s {
    const api_config_t *cfg; /* borrowed */
    storage_t *storage;      /* borrowed */
    api_metrics_t metrics;
    struct api_auth_cache_s *auth_cache;
    struct api_seen_s *seen;      /* whom this process marked seen lately (seen.c) */
    const fanout_stats_t *fanout; /* borrowed; NULL when this process runs no engine */
    notify_hub_t *hub;            /* borrowed: live streams */
    struct api_render_cache_s *render_cache;
    struct stream_writers_s *stream_writers;       /* the SSE fast path; NULL: resume only */
    struct render_waits_s *render_waits;           /* its cache misses' one read (sse.c) */
    const api_connections_stats_t *connections;    /* borrowed from the server while it runs */
    struct api_address_counts_s *stream_addresses; /* streams per client address (sse.c) */
    struct api_publish_doubts_s *publish_doubts;   /* publishes Redis did not answer */
    atomic_bool suspends_closed; /* shutdown: fibers may no longer park (api_suspends_close) */
} api_t;

#define API_MAX_PARAMS 2
#define API_EXTRA_HEADERS 4

/* Who a request is from: what a request needs of the caller's profile (its own posts'
 * author). Not the whole profile: every open stream holds its request, so its bio would
 * cost each stream 640 bytes more. */
typedef struct {
    uint64_t id; /* 0: anonymous */
    char handle[STORAGE_HANDLE_MAX + 1];
    char display_name[STORAGE_NAME_MAX + 1];
} api_caller_t;

/* One HTTP request: everything it owns, freed when MHD reports it completed. */
/* Where a request stands; the two phases that talk to Redis run as fibers. */
typedef enum {
    API_REQ_ADMIT,    /* with the headers: token, rate check, refusals before the body */
    API_REQ_BODY,     /* the body arriving */
    API_REQ_DISPATCH, /* the handler */
    API_REQ_ANSWERED,
} api_req_phase_t;

typedef struct api_req_s {
    api_t *api;
    struct MHD_Connection *conn;
    const char *method; /* borrowed from MHD for the request's life */
    char *path;         /* owned copy of the URL path */
    char *route_path;   /* owned copy split by the router; params point into it */
    int route;          /* index into api_routes, or -1 */
    const char *params[API_MAX_PARAMS];
    char *body;
    size_t body_len, body_cap;
    bool body_too_large;
    bool answered_early; /* refused with the headers, before an announced body */
    uint64_t start_ns;
    api_address_t client;  /* the peer, or whom a trusted proxy forwarded for */
    bool authenticated;    /* the token was checked (with the headers, before the body) */
    api_caller_t caller;   /* set by auth; id 0 when anonymous */
    uint64_t caller_token; /* set by auth: the id of the caller's token (a pre-device token's
                            * is the caller's id, see storage/tokens.h) */
    storage_rate_gate_t *rate_gate; /* owned: the rate check the handler's batch takes */

    /* the response, filled by one reply helper */
    int status;
    char *resp_body; /* owned */
    size_t resp_len;
    const char *content_type;
    char location[48]; /* "/v1/tokens/<id>" and the like: an id has at most 20 digits */
    char allow[64];
    int retry_after;      /* seconds; 0 for none */
    char rate_policy[64]; /* RateLimit-Policy and RateLimit values; "" for none */
    char rate_state[64];
    struct {
        const char *name, *value;
    } extra[API_EXTRA_HEADERS]; /* borrowed, static: see api_reply_header */
    size_t n_extra;
    struct MHD_Response *custom; /* owned: a streamed response instead of resp_body */

    /* the request's Redis work runs as a fiber that parks instead of blocking (server.c) */
    api_req_phase_t phase;
    struct storage_redis_fiber_s *fiber; /* owned: the phase's, while it runs */
    bool admitted;                       /* the admission phase let the request in */
} api_req_t;

typedef void (*api_handler_fn)(api_req_t *r);

typedef struct api_route_s {
    const char *method;
    const char *pattern; /* "/v1/users/{id}/follow"; also the metrics label */
    api_handler_fn handler;
    bool auth;
    api_rate_class_t rate; /* whose bucket it spends: see api/rate_limit.h */
} api_route_t;

extern const api_route_t api_routes[];
extern const size_t api_routes_count;

/* Matches path: returns the route index and fills params, or -1. When the path exists
 * under other methods only, returns -2 and writes them to allow ("GET, PUT"). */
int api_route_match(const char *method, char *path, const char **params, char *allow,
                    size_t allow_size);

/* ---- replies (reply.c): each sets the response; the last call wins ------------------- */
/* Takes json (a reference) and serialises it. */
void api_reply_json(api_req_t *r, int status, json_t *json);
void api_reply_empty(api_req_t *r, int status);
/* Forgets whatever answer was set, headers included, for another one. */
void api_reply_reset(api_req_t *r);
void api_reply_text(api_req_t *r, int status, const char *content_type, const char *text,
                    size_t len);
/* Takes body (malloc'd, len bytes) as the answer. */
void api_reply_owned(api_req_t *r, int status, const char *content_type, char *body, size_t len);
/* Adds a header to the response (up to API_EXTRA_HEADERS); name and value are borrowed
 * and must live as long as the program (string literals, static buffers). */
void api_reply_header(api_req_t *r, const char *name, const char *value);

/* ---- problems (problem.c): the only mapping of failures to HTTP status -------------- */
typedef enum {
    API_BAD_REQUEST,        /* 400 */
    API_UNAUTHORIZED,       /* 401 */
    API_FORBIDDEN,          /* 403 */
    API_NOT_FOUND,          /* 404 */
    API_METHOD_NOT_ALLOWED, /* 405 */
    API_CONFLICT,           /* 409 */
    API_TOO_LARGE,          /* 413 */
    API_UNSUPPORTED_MEDIA,  /* 415 */
    API_UNPROCESSABLE,      /* 422 */
    API_TOO_MANY_REQUESTS,  /* 429 */
    API_INTERNAL,           /* 500 */
    API_UNAVAILABLE,        /* 503 */
} api_problem_t;

void api_problem(api_req_t *r, api_problem_t kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Maps a storage code to a problem; what names the missing thing for -ENOENT. */
void api_storage_problem(api_req_t *r, int rc, const char *what);

/* ---- request input (request.c): false means a problem reply was set ------------------ */
bool api_param_id(api_req_t *r, int index, uint64_t *id);
/* Parses limit (1..100, default 20) and cursor (absent, or an id). */
bool api_query_page(api_req_t *r, size_t *limit, uint64_t *cursor);
/* Parses the body as a JSON object whose keys are all in allowed (NULL-terminated).
 * Returns a new reference or NULL after setting a problem. */
json_t *api_body_object(api_req_t *r, const char *const *allowed);
const char *api_header(api_req_t *r, const char *name);
/* Parses a decimal id of 1..16 digits (no sign, no leading zero); 0 when invalid. */
uint64_t api_parse_id(const char *s);

/* ---- auth (auth.c) --------------------------------------------------------------------- */
#define API_TOKEN_MAX 96
int api_auth_create(api_t *api);
void api_auth_destroy(api_t *api);
/* Writes the text of a new token token_id of user, "tdg_<user>_<token id>_<secret>", and its
 * SHA-256. */
int api_token_new(uint64_t user, uint64_t token_id, char token[API_TOKEN_MAX], uint8_t hash[32]);
/* Forgets this process's cached verifications of token_id of user (0: every token of the
 * user's), so that a revoked token is asked of Redis again at its next use. Thread: any. */
void api_auth_forget(api_t *api, uint64_t user, uint64_t token_id);
/* ---- last seen (seen.c) ------------------------------------------------------------------ */
int api_seen_create(api_t *api);
void api_seen_destroy(api_t *api);
/* Marks the authenticated caller seen (at most once an hour per user and process; storage
 * decides whether the time is written) and, when they come back after --inactive-days,
 * queues their timeline's rebuild. Best effort: a failure is logged, never answered. */
void api_seen(api_req_t *r);

/* Checks the bearer token; sets r->caller, or a 401 problem and returns false. */
bool api_authenticate(api_req_t *r);
/* The same for a token that came another way (the stream's access_token). */
bool api_authenticate_token(api_req_t *r, const char *token);
/* Writes the text of a new stream ticket of user, "tkt_<user>_<secret>", and its SHA-256. */
int api_ticket_new(uint64_t user, char ticket[API_TOKEN_MAX], uint8_t hash[32]);
/* Uses up a stream ticket (?ticket=): sets r->caller and r->caller_token (the token that
 * issued it), or a 401 problem and returns false. */
bool api_authenticate_ticket(api_req_t *r, const char *ticket);
/* Thread: any. Forgets every cached verification of user's tokens: a user who left is not let
 * in by this process's cache. (Other processes' caches hold them for up to 10 s.) */
void api_auth_forget_user(api_t *api, uint64_t user);
/* Whether the Bearer token is secret (the operators' token, e.g. --metrics-token); sets a
 * 401 problem when not. */
bool api_authenticate_operator(api_req_t *r, const char *secret);

/* Hex SHA-256 of data: the fingerprint of a request body for Idempotency-Key. */
void api_fingerprint(const char *data, size_t len, char out[65]);

/* ---- tokens (handlers_tokens.c) ------------------------------------------------------- */
#define API_TOKENS_MAX 50 /* live tokens per user */
struct storage_token_s;
/* Issues token token_id (from storage_id_next; 0: take one now) named name (borrowed) to
 * user, expiring expires_in_s seconds from now (0: never): its text goes to token, its
 * metadata to out. -ENOSPC when the user holds API_TOKENS_MAX already; a storage code
 * otherwise. */
int api_token_issue(api_t *api, uint64_t user, uint64_t token_id, const char *name,
                    uint64_t expires_in_s, char token[API_TOKEN_MAX], struct storage_token_s *out);

/* ---- mentions (mentions.c) --------------------------------------------------------------
 * Finds "@handle" in text: '@' at the start or after a character that cannot be part of a
 * handle, then 1..30 handle characters not followed by another. Fills up to max distinct
 * (case-insensitively) handles, in order of first appearance; returns how many. */
size_t api_mentions_parse(const char *text, char (*handles)[STORAGE_HANDLE_MAX + 1], size_t max);

/* ---- views (views.c): domain records as the JSON shapes of DESIGN §4 ---------------- */
json_t *api_id_json(uint64_t id);
json_t *api_time_json(uint64_t ms);
json_t *api_user_json(const storage_user_t *u);
json_t *api_post_json(const storage_post_t *p, const storage_user_t *author);
/* {items, next_cursor}; takes items. */
json_t *api_list_json(json_t *items, uint64_t next_cursor);
/* Options for hydrating a page of posts; every field may be NULL/0. */
typedef struct api_hydrate_s {
    const uint64_t *reposted_by; /* per post: the reposter to show, or 0 */
    uint64_t viewer; /* who reads: posts and reposts of users with whom viewer has one of */
    unsigned hide;   /* the relations hide (STORAGE_REL_* bits) are left out */
} api_hydrate_t;
/* Appends the posts ids (with their authors) to items, skipping unknown and deleted
 * posts, in one round trip on one Redis node whatever n is (storage_post_views). opt is
 * borrowed. Returns a storage code. */
int api_posts_hydrate(api_t *api, const uint64_t *ids, size_t n, const api_hydrate_t *opt,
                      json_t *items);
/* Appends the views that may be shown (see storage_post_view_t) to items as post JSON. */
void api_post_views_append(const storage_post_view_t *v, size_t n, json_t *items);
/* ---- posts as JSON text (post_render.c): the shapes of api_post_json, without trees ---- */
struct api_text_s;
/* Whether a view may be shown (storage_post_view_t says when not). */
bool api_post_view_shown(const storage_post_view_t *v);
/* Appends v as a Post (with reposted_by when it came through a repost). */
void api_post_view_render(struct api_text_s *t, const storage_post_view_t *v);
/* Replies 200 {items, next_cursor[, rebuilding]} with the views that may be shown. */
void api_reply_post_page(api_req_t *r, const storage_post_view_t *v, size_t n, uint64_t next_cursor,
                         const bool *rebuilding);
/* Replies 200 with the one view as a Post. */
void api_reply_post_view(api_req_t *r, const storage_post_view_t *v);
/* Hydrates page ids into post JSON (skipping deleted) and replies 200. */
void api_reply_posts(api_req_t *r, const uint64_t *ids, size_t n, const api_hydrate_t *opt,
                     uint64_t next_cursor);

/* Appends the notifications of page as JSON to items (actors and posts hydrated in one
 * round trip each), leaving out those whose post is gone. */
int api_notices_json(api_t *api, const storage_notifications_t *page, json_t *items);
/* Hydrates user ids into user JSON (skipping unknown ones, and those with whom the caller has
 * one of the relations hide, STORAGE_REL_* bits) and replies 200 with a list. */
void api_reply_users(api_req_t *r, const uint64_t *ids, size_t n, unsigned hide,
                     uint64_t next_cursor);

/* ---- handlers ------------------------------------------------------------------------- */
void api_users_create(api_req_t *r);
void api_users_get(api_req_t *r);
void api_me_get(api_req_t *r);
void api_me_patch(api_req_t *r);
void api_users_lookup(api_req_t *r);
void api_users_search(api_req_t *r);
void api_me_delete(api_req_t *r); /* handlers_erase.c */
void api_me_export(api_req_t *r); /* handlers_export.c */
void api_users_follow(api_req_t *r);
void api_users_unfollow(api_req_t *r);
void api_users_followers(api_req_t *r);
void api_users_following(api_req_t *r);
void api_posts_create(api_req_t *r);
void api_posts_get(api_req_t *r);
void api_posts_delete(api_req_t *r);
void api_posts_by_author(api_req_t *r);
void api_timeline_get(api_req_t *r);
void api_posts_like(api_req_t *r);
void api_posts_unlike(api_req_t *r);
void api_posts_repost(api_req_t *r);
void api_posts_unrepost(api_req_t *r);
void api_posts_delivery(api_req_t *r);
void api_users_block(api_req_t *r);
void api_users_unblock(api_req_t *r);
void api_users_mute(api_req_t *r);
void api_users_unmute(api_req_t *r);
void api_blocks_list(api_req_t *r);
void api_mutes_list(api_req_t *r);
void api_tokens_create(api_req_t *r);
void api_tokens_list(api_req_t *r);
void api_tokens_revoke(api_req_t *r);
void api_tokens_revoke_current(api_req_t *r);
void api_notifications_list(api_req_t *r);
void api_notifications_unread(api_req_t *r);
void api_notifications_read(api_req_t *r);
void api_markers_get(api_req_t *r);
void api_markers_put(api_req_t *r);
/* {"home": id|null, "notifications": id|null} (returns new). */
json_t *api_markers_json(const storage_markers_t *m);
void api_system_healthz(api_req_t *r);
void api_system_readyz(api_req_t *r);
void api_system_metrics(api_req_t *r);
void api_system_openapi(api_req_t *r);
void api_system_demo(api_req_t *r);
void api_stream_get(api_req_t *r);
void api_stream_tickets_create(api_req_t *r);
void api_stream_options(api_req_t *r);

/* stream_reset.c: the data of a reset event for user's stream (openapi.yaml's Reset) into
 * *json (new, compact): what to refetch, judged against after, the last event id the client
 * saw (NULL, or an id from the future: cannot be told, so everything), and the log's events
 * after it up to upto, the reset's own id (NULL: none read). Thread: any but the loop (it
 * reads Redis synchronously). Returns 0 or a storage code; never a guess. */
int api_stream_reset_json(api_t *api, uint64_t user, const char *after, const char *upto,
                          char **json);

/* server.c: runs (or runs on) the step fn(arg) as *fiber, so that its Redis batches park
 * instead of holding the thread. True when the step is over (*fiber freed); false when it
 * parked: conn is suspended and wake(arg), called from the I/O thread once the replies are
 * in, must resume conn and then count *suspended down. *suspended counts the step from
 * before it runs, so shutdown (api_suspends_close, then the counts) never misses one. */
bool api_fiber_step(api_t *api, struct storage_redis_fiber_s **fiber, void (*fn)(void *),
                    void (*wake)(void *), void *arg, atomic_llong *suspended,
                    struct MHD_Connection *conn);
/* From now on a fiber step no longer parks (its batches fail at once): shutdown calls it
 * before it reads the counts of suspended connections it waits for. Thread: any. */
void api_suspends_close(api_t *api);

/* sse.c: the feed-event render cache (posts rendered once for all their followers). */
int api_sse_create(api_t *api);
/* Stops the SSE writer threads: before the HTTP daemon stops (their streams' connections
 * must outlive them); wakes resume connections from then on. */
void api_sse_stop_writers(api_t *api);
/* Stream connections suspended now (parked, or held by a writer), and reader steps running
 * as fibers, which may suspend theirs (api_fiber_step). libmicrohttpd must not be stopped
 * while any is: it aborts. Thread: any. */
long long api_sse_suspended(const api_t *api);
void api_sse_destroy(api_t *api);

extern const char api_openapi_yaml[];
extern const size_t api_openapi_yaml_len;
/* web/index.html, the demo page, embedded at build time like the spec. */
extern const char api_demo_html[];
extern const size_t api_demo_html_len;

#endif
