/* storage/redis/subscriber.c -- the live path's receiving end: one connection per master node,
 * subscribed (sharded pub/sub) to that node's live channel.
 *
 * hiredis 0.14 knows no sharded pub/sub: it hands unsolicited replies only to a context it
 * believes subscribed, matched by channel name. So each connection first SUBSCRIBEs the
 * plain channel of the same name (nobody publishes there), and once that is confirmed
 * SSUBSCRIBEs the sharded one; its confirmation means the live path is in place, and its
 * "smessage" replies find the callback through the name. What a message says is the
 * caller's business: it gets (channel, payload).
 */
#include "storage/redis/redis_internal.h"

#include <string.h>

static void on_sub_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    aconn_t *c = priv;
    storage_redis_async_t *sa = c->sa;
    redisReply *r = reply;
    if (!r || sa->closing || c->retired)
        return;
    if (r->type == REDIS_REPLY_ERROR) { /* MOVED: our map is stale */
        storage_redis__async_refresh_soon(sa, 100);
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 ||
        r->element[0]->type != REDIS_REPLY_STRING)
        return;
    const char *type = r->element[0]->str;
    if (strcmp(type, "subscribe") == 0)
        redisAsyncCommand(ac, on_sub_reply, c, "SSUBSCRIBE %s", c->channel);
    else if (strcmp(type, "ssubscribe") == 0 && sa->cb.subscribed)
        sa->cb.subscribed(sa->cb.arg, c->channel);
    else if (strcmp(type, "smessage") == 0 && sa->cb.message &&
             r->element[2]->type == REDIS_REPLY_STRING)
        sa->cb.message(sa->cb.arg, c->channel, r->element[2]->str);
    else if (strcmp(type, "sunsubscribe") == 0) /* the slot moved: resubscribe elsewhere */
        storage_redis__async_refresh_soon(sa, 0);
}

void storage_redis__sub_connected(aconn_t *c)
{
    if (c->ac)
        redisAsyncCommand(c->ac, on_sub_reply, c, "SUBSCRIBE %s", c->channel);
}
