/* storage/notification_newest.c -- the newest notification activity, for a stream's reset.
 *
 * A reset tells the client whether its notifications are stale, from the newest group's last
 * activity (its id in GET /v1/notifications): one read on the reader's slot, the top of
 * nt:{user}, without the page's checks of hidden actors and deleted posts (api/
 * stream_reset.c says what that leaves out).
 */
#include "storage/storage_internal.h"

#include <errno.h>

int storage_notification_newest(storage_t *s, uint64_t user, uint64_t *id)
{
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    storage_redis_batch_add(&b, "ZREVRANGE " K_NOTIFS " 0 0 WITHSCORES", (ull)user);
    int rc = storage_redis_batch_run_checked(&b);
    const redisReply *r = rc == 0 ? b.r[0] : NULL;
    if (rc == 0 && r->type != REDIS_REPLY_ARRAY)
        rc = -EIO;
    *id = rc == 0 && r->elements == 2 ? storage_redis_uint_str(r->element[1]) : 0;
    storage_redis_batch_free(&b);
    return rc;
}
