/* tests/support/feed.c -- what one user received over any number of stream connections.
 *
 * A feed keeps what a browser's EventSource keeps -- the last event id -- and resumes from
 * it on whichever process f->port names, so a test can move a reader off a process it
 * killed. Order is checked on event ids, which the server assigns per user in log order:
 * every event taken must come after the last one, whatever its type.
 */
#include "tests/support/sse.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ts_feed_add(ts_feed_t *f, const char *event, const char *post, const char *text)
{
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 256;
        f->event = realloc(f->event, f->cap * sizeof(*f->event));
        f->post = realloc(f->post, f->cap * sizeof(*f->post));
        f->text = realloc(f->text, f->cap * sizeof(*f->text));
        cr_assert(f->event && f->post && f->text);
    }
    snprintf(f->event[f->n], sizeof(f->event[0]), "%s", event);
    snprintf(f->post[f->n], sizeof(f->post[0]), "%s", post);
    snprintf(f->text[f->n], sizeof(f->text[0]), "%s", text);
    snprintf(f->last_id, sizeof(f->last_id), "%s", event);
    f->n++;
}

/* Takes a feed event (asserted to follow f->last_id) into f. */
static void add_event(ts_feed_t *f, const ts_sse_item_t *ev, const char *what)
{
    if (f->last_id[0])
        cr_assert_gt(ts_sse_id_cmp(ev->id, f->last_id), 0,
                     "%s: event %s (type '%s') came after %s: a duplicate or out of order", what,
                     ev->id, ev->type, f->last_id);
    json_t *j = ts_sse_data(ev);
    const char *post = ts_str(j, "id");
    cr_assert(post[0], "%s: feed event %s without a post id: %.200s", what, ev->id, ev->data);
    ts_feed_add(f, ev->id, post, ts_str(j, "text"));
    json_decref(j);
}

void ts_feed_read(ts_sse_t *c, ts_feed_t *f, int timeout_ms, const char *what)
{
    ts_sse_item_t ev;
    ts_sse_expect(c, "feed", &ev, timeout_ms, what);
    add_event(f, &ev, what);
    ts_sse_item_clear(&ev);
}

ts_sse_t *ts_feed_resume_until(ts_feed_t *f, int port, const ts_user_t *u, size_t total,
                               int wait_ms, const char *what)
{
    cr_assert(f->n > 0, "nothing to resume from");
    for (int attempt = 1;; attempt++) {
        char last[64];
        snprintf(last, sizeof(last), "%s", f->last_id);
        ts_sse_t *c = ts_stream(port, u, last);
        size_t before = f->n;
        while (f->n < total) {
            ts_sse_item_t ev;
            ts_sse_kind_t k = ts_sse_next_event(c, &ev, wait_ms);
            cr_assert(k != TS_SSE_TIMEOUT,
                      "%s: resuming after %s (connection %d): nothing for %d ms with %zu of %zu "
                      "events received",
                      what, last, attempt, wait_ms, f->n, total);
            if (k == TS_SSE_END)
                break;
            cr_assert_str_eq(ev.type, "feed", "%s: resuming after %s: a '%s' event (id %s)", what,
                             last, ev.type, ev.id);
            add_event(f, &ev, what);
            ts_sse_item_clear(&ev);
        }
        if (f->n >= total)
            return c;
        cr_assert_gt(f->n, before,
                     "%s: the server ended the stream resumed after %s (connection %d) without "
                     "sending any of the %zu events still missing; a client resuming from there "
                     "would repeat this forever",
                     what, last, attempt, total - f->n);
        ts_sse_close(c);
    }
}

void ts_feed_open(ts_feed_t *f, int port, const ts_user_t *u)
{
    memset(f, 0, sizeof(*f));
    f->port = port;
    snprintf(f->token, sizeof(f->token), "%s", u->token);
    ts_sse_opts_t o = {.token = f->token};
    f->c = ts_stream_opts(port, &o);
    f->connections = 1;
}

/* One event already complete or arriving within wait_ms; false when none (or the end). */
static bool take_one(ts_feed_t *f, int wait_ms)
{
    ts_sse_item_t ev;
    ts_sse_kind_t k = ts_sse_next_event(f->c, &ev, wait_ms);
    if (k == TS_SSE_END) {
        f->ends++;
        ts_sse_close(f->c);
        f->c = NULL;
        return false;
    }
    if (k != TS_SSE_EVENT)
        return false;
    cr_assert(ev.has_id && ev.id[0], "an event without id (type '%s')", ev.type);
    if (strcmp(ev.type, "feed") == 0 && ev.has_data) {
        add_event(f, &ev, "a feed event");
    } else {
        /* Notifications (follows, mentions) and their unread counts come too; a bare id moves
         * the position on. */
        cr_assert(strcmp(ev.type, "notification") == 0 || strcmp(ev.type, "counts") == 0 ||
                      !ev.has_data,
                  "unexpected '%s' event %s on the stream: %.300s", ev.type, ev.id,
                  ev.data ? ev.data : "");
        if (f->last_id[0])
            cr_assert_gt(ts_sse_id_cmp(ev.id, f->last_id), 0,
                         "event %s (type '%s') came after %s: a duplicate or out of order", ev.id,
                         ev.type, f->last_id);
        snprintf(f->last_id, sizeof(f->last_id), "%s", ev.id);
        f->other_events++;
    }
    ts_sse_item_clear(&ev);
    return true;
}

bool ts_feed_poll(ts_feed_t *f, int wait_ms)
{
    if (!f->c)
        return false;
    bool first = true;
    for (int i = 0; i < 100000 && f->c; i++) {
        if (!take_one(f, first ? wait_ms : 0))
            break;
        first = false;
    }
    return f->c != NULL;
}

/* Opens the stream again after last_id; false when the server refused (or did not answer). */
static bool reopen(ts_feed_t *f)
{
    ts_sse_opts_t o = {.token = f->token, .last_event_id = f->last_id[0] ? f->last_id : NULL};
    ts_sse_t *c = ts_sse_open(f->port, &o, TS_SSE_OPEN_MS);
    f->connections++;
    if (c->status != 200) {
        f->refused++;
        ts_sse_close(c);
        return false;
    }
    ts_sse_item_t it;
    ts_sse_kind_t k = ts_sse_next(c, &it, TS_SSE_OPEN_MS);
    cr_assert(k == TS_SSE_RETRY && it.retry_ms == 3000,
              "a reopened stream did not start with retry: 3000 (item kind %d)", k);
    ts_sse_item_clear(&it);
    f->c = c;
    return true;
}

size_t ts_feed_until(ts_feed_t *f, size_t want, int timeout_ms)
{
    uint64_t deadline = ts_now_ms() + (uint64_t)timeout_ms;
    for (int round = 0; round < 100000 && f->n < want; round++) {
        int64_t left = (int64_t)deadline - (int64_t)ts_now_ms();
        if (left <= 0)
            break;
        if (!f->c && !reopen(f)) {
            ts_sleep_ms(200);
            continue;
        }
        take_one(f, left > 1000 ? 1000 : (int)left);
    }
    return f->n;
}

size_t ts_feed_count(const ts_feed_t *f, const char *post)
{
    size_t times = 0;
    for (size_t i = 0; i < f->n; i++)
        times += strcmp(f->post[i], post) == 0;
    return times;
}

void ts_feed_free(ts_feed_t *f)
{
    ts_sse_close(f->c);
    free(f->event);
    free(f->post);
    free(f->text);
    memset(f, 0, sizeof(*f));
}
