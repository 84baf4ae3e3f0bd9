/* api/handlers_tickets.c -- POST /v1/stream/tickets: a one-use credential for one stream.
 *
 * A browser's EventSource cannot send an Authorization header, and a long-lived token in a
 * URL ends up in histories and proxy logs. A ticket is good for one GET /v1/stream within
 * TICKET_TTL_MS, and for no other route; the stream it opens counts as opened with the
 * token that asked for the ticket (revoking that token ends it).
 */
#include "api/api.h"
#include "storage/tickets.h"

#include <stdint.h>
#include <time.h>

#define TICKET_TTL_MS 60000

void api_stream_tickets_create(api_req_t *r)
{
    char ticket[API_TOKEN_MAX];
    uint8_t hash[32];
    int rc = api_ticket_new(r->caller.id, ticket, hash);
    if (rc == 0)
        rc = storage_ticket_create(r->api->storage, r->caller.id, hash, r->caller_token,
                                   TICKET_TTL_MS);
    if (rc) {
        api_storage_problem(r, rc, "user");
        return;
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t now_ms = (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000;
    api_reply_json(r, 201,
                   json_pack("{s:s, s:o}", "ticket", ticket, "expires_at",
                             api_time_json(now_ms + TICKET_TTL_MS)));
}
