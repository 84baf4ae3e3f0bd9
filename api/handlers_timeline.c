/* api/handlers_timeline.c -- the Timeline tag: the caller's home timeline, and whether it is
 * being rebuilt for a user back after --inactive-days (storage/seen.h). */
#include "api/api.h"

void api_timeline_get(api_req_t *r)
{
    uint64_t cursor;
    size_t limit;
    if (!api_query_page(r, &limit, &cursor))
        return;
    /* Entries of users the caller blocked, was blocked by or muted (those written before the
     * block or mute, until the engine's scrub) are left out: the page comes with its posts,
     * their people and the caller's relations to exactly them (one script on one Redis). */
    storage_timeline_t tl;
    int rc = storage_timeline_view(r->api->storage, r->caller.id, cursor, limit,
                                   r->api->cfg->fanout.timeline_max,
                                   STORAGE_REL_BLOCK | STORAGE_REL_MUTES, &tl);
    if (rc) {
        api_storage_problem(r, rc, "timeline");
        return;
    }
    /* Always has rebuilding: a client tells "more is coming" from "this is all" without
     * guessing. */
    api_reply_post_page(r, tl.views, tl.page.n, tl.page.next_cursor, &tl.rebuilding);
    storage_timeline_free(&tl);
}
