/* api/handlers_timeline.c -- the Timeline tag: the caller's home timeline. */
#include "api/api.h"

void api_timeline_get(api_req_t *r)
{
    uint64_t cursor;
    size_t limit;
    if (!api_query_page(r, &limit, &cursor))
        return;
    storage_page_t page;
    int rc = storage_timeline_page(r->api->storage, r->caller.id, cursor, limit,
                                   r->api->cfg->timeline_max, &page);
    if (rc) {
        api_storage_problem(r, rc, "timeline");
        return;
    }
    api_reply_posts(r, page.ids, page.n, page.next_cursor);
    storage_page_free(&page);
}
