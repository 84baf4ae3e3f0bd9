/* api/stream_reset.c -- what a stream's `reset` event tells the client to refetch.
 *
 * A reset means the log cannot replay what the client missed. Rather than "refetch
 * everything", it says which lists changed since the last event the client saw: `timeline`
 * when the home timeline's newest entry is newer than that event (the timeline is read as
 * GET /v1/timeline reads it, celebrities merged at read included, with limit 1), and
 * `notifications` likewise for the newest notification group's last activity (one read on
 * the reader's slot). Post and activity ids carry their millisecond (storage/ids.c), log
 * ids theirs, so "newer" compares the two. A millisecond cannot order an entry made in the
 * same one as the last event (a post made right after it was received): so what the log
 * still holds between that event and the reset (a hole at the cursor leaves the rest of the
 * log in place) counts too, exactly: a feed or notification event there was skipped by the
 * reset, so missed. When the last event cannot be told (none given, or an id from the future,
 * beyond any this server handed out) both are true. `newest` carries both lists' newest ids,
 * for the client to check against what it holds.
 *
 * What this does not see, as openapi.yaml's Reset says: removals (a deleted post, an emptied
 * group, a read mark moved on another device) and, once the log lost it, an entry made before
 * the last event but written to this user after it (a fan-out that lagged). A Redis error is
 * returned, never a guess: the stream ends before the reset, as for any event it cannot
 * render.
 */
#include "api/api.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define RESET_REASON "events were missed; refetch the lists that timeline and notifications name"

/* The millisecond of after ("<ms>-<seq>"), or 0 when it cannot be told: none, unreadable, or
 * beyond the clock (another deployment's id, or one a lost log handed out). */
static uint64_t after_ms(const char *after)
{
    if (!after || !*after)
        return 0;
    char *end;
    unsigned long long ms = strtoull(after, &end, 10);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t now_ms = (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000;
    return *end == '-' && ms <= now_ms + 1000 ? (uint64_t)ms : 0;
}

/* The timeline's newest post (*post, 0: empty) and whether its entry is newer than since, by
 * its score: when it came (a repost entry's is the repost's id). */
static int newest_entry(api_t *api, uint64_t user, uint64_t since, uint64_t *post, bool *newer)
{
    uint64_t score;
    int rc =
        storage_timeline_newest(api->storage, user, api->cfg->fanout.timeline_max, post, &score);
    *newer = rc == 0 && *post && storage_id_time_ms(score) > since;
    return rc;
}

/* Whether the log holds, after the id after and up to upto (the reset's own), a feed event
 * (*feed) or a notification (*notice): the reset skips them, so the client missed them,
 * whatever their millisecond. The first SKIPPED_READ are enough to tell in practice; what is
 * not read, or was lost, is left to the millisecond. */
#define SKIPPED_READ 256
static int skipped_events(api_t *api, uint64_t user, const char *after, const char *upto,
                          bool *feed, bool *notice)
{
    *feed = *notice = false;
    storage_event_t *ev = calloc(SKIPPED_READ, sizeof(*ev));
    if (!ev)
        return -ENOMEM;
    size_t n = 0;
    bool lost;
    int rc = storage_events_since(api->storage, user, after, SKIPPED_READ, ev, &n, &lost);
    for (size_t i = 0; rc == 0 && i < n && notify_id_cmp(ev[i].id, upto) <= 0; i++) {
        *feed = *feed || ev[i].kind == STORAGE_EVENT_FEED;
        *notice = *notice || ev[i].kind == STORAGE_EVENT_NOTIFICATION;
    }
    free(ev);
    return rc;
}

int api_stream_reset_json(api_t *api, uint64_t user, const char *after, const char *upto,
                          char **json)
{
    *json = NULL;
    uint64_t since = after_ms(after), post = 0, notice = 0;
    bool timeline = false, feed_skipped = false, notice_skipped = false;
    int rc = newest_entry(api, user, since, &post, &timeline);
    if (rc == 0)
        rc = storage_notification_newest(api->storage, user, &notice);
    if (rc == 0 && since && upto && *upto)
        rc = skipped_events(api, user, after, upto, &feed_skipped, &notice_skipped);
    if (rc)
        return rc;
    timeline = timeline || feed_skipped;
    bool notifications = notice_skipped || (notice && storage_id_time_ms(notice) > since);
    json_t *data = json_pack("{s:s, s:b, s:b, s:{s:o, s:o}}", "reason", RESET_REASON, "timeline",
                             !since || timeline, "notifications", !since || notifications, "newest",
                             "timeline", post ? api_id_json(post) : json_null(), "notification",
                             notice ? api_id_json(notice) : json_null());
    if (data)
        *json = json_dumps(data, JSON_COMPACT);
    json_decref(data);
    return *json ? 0 : -ENOMEM;
}
