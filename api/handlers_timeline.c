/* api/handlers_timeline.c -- the Timeline tag: the caller's home timeline. */
#include "api/api.h"

void api_timeline_get(api_req_t *r)
{
    uint64_t cursor;
    size_t limit;
    if (!api_query_page(r, &limit, &cursor))
        return;
    storage_timeline_t tl;
    int rc = storage_timeline_page(r->api->storage, r->caller.id, cursor, limit,
                                   r->api->cfg->fanout.timeline_max, &tl);
    if (rc) {
        api_storage_problem(r, rc, "timeline");
        return;
    }
    /* Entries of users the caller blocked, was blocked by or muted (those written before the
     * block or mute, until the engine's scrub) are left out here. */
    api_hydrate_t opt = {.reposted_by = tl.reposted_by,
                         .viewer = r->caller.id,
                         .hide = STORAGE_REL_BLOCK | STORAGE_REL_MUTES};
    api_reply_posts(r, tl.page.ids, tl.page.n, &opt, tl.page.next_cursor);
    storage_timeline_free(&tl);
}
