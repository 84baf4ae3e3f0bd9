/* api/handlers_posts.c -- the Posts tag: publish, read, delete, an author's posts.
 *
 * Publishing answers 202 once the post and its fan-out job are in Redis; it never touches
 * a follower's timeline. A 503 means the post does not stand and never will (see
 * api/publish_outcome.c for a publish that Redis did not answer). With an Idempotency-Key, the key is claimed for a new post id
 * before anything is written, so a retried request writes (or returns) that same post.
 */
#include "api/api.h"
#include "api/input.h"
#include "api/publish_outcome.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* How long a publish that Redis did not answer waits to learn whether it stands: longer
 * than a Redis restart or a short pause, well within a client's usual 15-30 s timeout. */
#define PUBLISH_SETTLE_WAIT_MS 8000

/* Resolves mentions and checks the parent in one round trip each (and one more for the
 * blocks between the author and those). Mentions of users who blocked the author, or whom
 * the author blocked, are dropped (the post stands, the mention is not delivered); then at
 * most --max-mentions are kept, the first ones, and the text keeps them all. A parent whose
 * author blocked the replier, or whom the replier blocked, does not exist for the reply. */
static bool resolve_references(api_req_t *r, storage_post_t *post)
{
    char handles[STORAGE_MENTIONS_MAX][STORAGE_HANDLE_MAX + 1];
    size_t n = api_mentions_parse(post->text, handles, STORAGE_MENTIONS_MAX);
    uint64_t ids[STORAGE_MENTIONS_MAX + 1];
    size_t n_ids = 0;
    int rc = 0;
    if (n) {
        const char *names[STORAGE_MENTIONS_MAX];
        for (size_t i = 0; i < n; i++)
            names[i] = handles[i];
        rc = storage_users_by_handle(r->api->storage, names, n, ids);
        for (size_t i = 0; rc == 0 && i < n; i++)
            if (ids[i])
                ids[n_ids++] = ids[i];
    }
    storage_post_t parent = {0};
    if (rc == 0 && post->reply_to) {
        rc = storage_post_get(r->api->storage, post->reply_to, &parent);
        if (rc == -ENOENT) {
            rc = 0;
            parent.deleted = true;
        }
    }
    /* The parent's author goes last in the one relations check. */
    bool blocked[STORAGE_MENTIONS_MAX + 1] = {false};
    size_t check = n_ids;
    if (rc == 0 && post->reply_to && !parent.deleted && parent.author != post->author)
        ids[check++] = parent.author;
    if (rc == 0 && check)
        rc = storage_relations_among(r->api->storage, post->author, STORAGE_REL_BLOCK, ids, check,
                                     blocked);
    size_t cap = (size_t)r->api->cfg->max_mentions;
    for (size_t i = 0; rc == 0 && i < n_ids; i++)
        if (!blocked[i] && post->n_mentions < cap)
            post->mentions[post->n_mentions++] = ids[i];
    if (rc == 0 && post->reply_to) {
        bool gone = parent.deleted || (check > n_ids && blocked[n_ids]);
        post->reply_author = parent.author;
        storage_post_clear(&parent);
        if (gone) {
            /* The same answer as for a missing parent: a block is not to be told apart. */
            api_problem(r, API_UNPROCESSABLE, "reply_to names no post (it may have been deleted)");
            return false;
        }
    }
    storage_post_clear(&parent);
    if (rc)
        api_storage_problem(r, rc, "post");
    return rc == 0;
}

static void reply_post(api_req_t *r, int status, const storage_post_t *post)
{
    storage_user_t author = {.id = r->caller.id};
    memcpy(author.handle, r->caller.handle, sizeof(author.handle));
    memcpy(author.display_name, r->caller.display_name, sizeof(author.display_name));
    api_reply_json(r, status, api_post_json(post, &author));
    snprintf(r->location, sizeof(r->location), "/v1/posts/%llu", (unsigned long long)post->id);
}

/* An Idempotency-Key seen before: answer with its post, or let the request write it. */
static bool replay(api_req_t *r, uint64_t id, bool same_request, storage_post_t *post)
{
    if (!same_request) {
        api_problem(r, API_UNPROCESSABLE, "this Idempotency-Key was used for a different request");
        return true;
    }
    storage_post_t existing;
    int rc = storage_post_get(r->api->storage, id, &existing);
    if (rc == -ENOENT) { /* the first attempt never wrote it: write it now, same id */
        post->id = id;
        return false;
    }
    if (rc)
        api_storage_problem(r, rc, "post");
    else if (existing.deleted)
        api_problem(r, API_CONFLICT, "the post created with this Idempotency-Key was deleted");
    else
        reply_post(r, 202, &existing);
    storage_post_clear(&existing);
    return true;
}

void api_posts_create(api_req_t *r)
{
    static const char *const fields[] = {"text", "reply_to", NULL};
    const char *key = api_header(r, "Idempotency-Key");
    if (key && !api_input_idempotency_key(key)) {
        api_problem(r, API_BAD_REQUEST, "Idempotency-Key must be 1 to %d visible ASCII characters",
                    API_IDEMPOTENCY_KEY_MAX);
        return;
    }
    json_t *body = api_body_object(r, fields);
    if (!body)
        return;
    storage_post_t post = {.author = r->caller.id};
    const char *text;
    char detail[API_DETAIL_MAX];
    if (!api_input_post(body, &text, &post.reply_to, detail, sizeof(detail))) {
        api_problem(r, API_BAD_REQUEST, "%s", detail);
        goto out;
    }
    post.text = (char *)text; /* borrowed from body for the request's life */
    /* References first: a request refused for them claims no Idempotency-Key. */
    if (!resolve_references(r, &post))
        goto out;
    post.id = storage_id_next(r->api->storage);
    if (!post.id) {
        api_storage_problem(r, -EAGAIN, "post");
        goto out;
    }
    if (key) {
        char fingerprint[65];
        uint64_t existing = 0;
        bool same = false;
        api_fingerprint(r->body, r->body_len, fingerprint);
        int rc = storage_idempotency_claim(r->api->storage, r->caller.id, key, fingerprint, post.id,
                                           &existing, &same);
        if (rc == -EEXIST && replay(r, existing, same, &post))
            goto out;
        if (rc && rc != -EEXIST) {
            api_storage_problem(r, rc, "post");
            goto out;
        }
    }
    bool answered;
    int rc = storage_post_create(r->api->storage, &post, &answered);
    if (rc == 0) {
        reply_post(r, 202, &post);
        goto out;
    }
    /* Refused: what was written goes. Unanswered: it may stand, or may yet; find out. */
    api_publish_outcome_t outcome =
        answered ? API_PUBLISH_NOT_PUBLISHED
                 : api_publish_settle(r->api->publish_doubts, r->api->storage, &post,
                                      PUBLISH_SETTLE_WAIT_MS);
    if (outcome == API_PUBLISH_PUBLISHED) {
        reply_post(r, 202, &post);
        goto out;
    }
    if (answered)
        storage_post_abandon(r->api->storage, &post);
    /* A retry with the key then mints a new post: this one does not stand, or will not. */
    if (key)
        storage_idempotency_release(r->api->storage, r->caller.id, key);
    api_storage_problem(r, rc, "post");
out:
    json_decref(body); /* post.text was borrowed from it */
}

void api_posts_get(api_req_t *r)
{
    uint64_t id;
    if (!api_param_id(r, 0, &id))
        return;
    /* A post of someone who blocked you, or whom you blocked, answers as a missing one. */
    storage_post_view_t view;
    int rc =
        storage_post_views(r->api->storage, r->caller.id, STORAGE_REL_BLOCK, &id, NULL, 1, &view);
    if (rc)
        api_storage_problem(r, rc, "post");
    else if (!api_post_view_shown(&view))
        api_problem(r, API_NOT_FOUND, "post not found");
    else
        api_reply_post_view(r, &view);
    if (rc == 0)
        storage_post_views_clear(&view, 1);
}

void api_posts_delete(api_req_t *r)
{
    uint64_t id;
    if (!api_param_id(r, 0, &id))
        return;
    storage_post_t post;
    int rc = storage_post_get(r->api->storage, id, &post);
    if (rc == 0 && post.deleted)
        rc = -ENOENT;
    if (rc)
        api_storage_problem(r, rc, "post");
    else if (post.author != r->caller.id)
        api_problem(r, API_FORBIDDEN, "only the author may delete a post");
    else if ((rc = storage_post_delete(r->api->storage, id, post.author)) != 0)
        api_storage_problem(r, rc, "post");
    else
        api_reply_empty(r, 204);
    storage_post_clear(&post);
}

/* A time, or null for one that has not come yet. */
static json_t *time_or_null(uint64_t ms)
{
    return ms ? api_time_json(ms) : json_null();
}

void api_posts_delivery(api_req_t *r)
{
    uint64_t id;
    if (!api_param_id(r, 0, &id))
        return;
    storage_delivery_t d;
    int rc = storage_delivery_get(r->api->storage, id, &d);
    if (rc == -ENODATA) {
        api_problem(r, API_NOT_FOUND, "a post's delivery status is kept for a day");
        return;
    }
    if (rc) {
        api_storage_problem(r, rc, "post");
        return;
    }
    if (d.author != r->caller.id) {
        api_problem(r, API_FORBIDDEN, "only the author may see a post's delivery");
        return;
    }
    bool queued = d.state == STORAGE_DELIVERY_QUEUED;
    api_reply_json(
        r, 200,
        json_pack("{s:o, s:s, s:o, s:o, s:I, s:I, s:o, s:o, s:o}", "post", api_id_json(id), "state",
                  storage_delivery_state_name(d.state), "fanout",
                  queued ? json_null() : json_string(d.merged ? "merged_at_read" : "timelines"),
                  "followers", queued ? json_null() : json_integer(d.followers),
                  "timelines_written", (json_int_t)d.timelines, "live_deliveries",
                  (json_int_t)d.live, "queued_at", api_time_json(storage_id_time_ms(id)),
                  "started_at", time_or_null(d.started_ms), "finished_at",
                  time_or_null(d.finished_ms)));
}

void api_posts_by_author(api_req_t *r)
{
    uint64_t id, cursor;
    size_t limit;
    if (!api_param_id(r, 0, &id) || !api_query_page(r, &limit, &cursor))
        return;
    storage_page_t page;
    int rc = storage_author_posts_page_as(r->api->storage, id, r->caller.id, cursor, limit, &page);
    if (rc) {
        api_storage_problem(r, rc, "user");
        return;
    }
    api_reply_posts(r, page.ids, page.n, NULL, page.next_cursor);
    storage_page_free(&page);
}
