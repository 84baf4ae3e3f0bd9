/* storage/subscriber.c -- the live path's receiving end: one connection per master node,
 * subscribed (sharded pub/sub) to that node's live channel.
 *
 * hiredis 0.14 knows no sharded pub/sub: it hands unsolicited replies only to a context it
 * believes subscribed, matched by channel name. So each connection first SUBSCRIBEs the
 * plain channel of the same name (nobody publishes there), and once that is confirmed
 * SSUBSCRIBEs the sharded one; its confirmation means the live path is in place, and its
 * "smessage" replies find the callback through the name.
 */
#include "storage/async_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "<kind> <ref> <user>:<id> <user>:<id> …": one event for many users. */
static void deliver(storage_async_t *sa, const char *channel, const char *msg)
{
    if (msg[0] == '@') { /* an announcement (celebrity_live.c) */
        if (sa->sub_cb.announce)
            sa->sub_cb.announce(sa->sub_cb.arg, channel, msg + 1);
        return;
    }
    char kind[32], ref[128];
    int used = 0;
    if (sscanf(msg, "%31s %127s %n", kind, ref, &used) != 2)
        return;
    for (const char *p = msg + used; *p;) {
        char *end;
        unsigned long long user = strtoull(p, &end, 10);
        if (*end != ':')
            return;
        const char *id = end + 1;
        size_t len = strcspn(id, " ");
        char idbuf[64];
        if (len == 0 || len >= sizeof(idbuf))
            return;
        memcpy(idbuf, id, len);
        idbuf[len] = '\0';
        sa->sub_cb.message(sa->sub_cb.arg, (uint64_t)user, idbuf, kind, ref);
        p = id + len;
        while (*p == ' ')
            p++;
    }
}

static void on_sub_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    aconn_t *c = priv;
    storage_async_t *sa = c->sa;
    redisReply *r = reply;
    if (!r || sa->closing || c->retired)
        return;
    if (r->type == REDIS_REPLY_ERROR) { /* MOVED: our map is stale */
        storage__async_refresh_soon(sa, 100);
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 ||
        r->element[0]->type != REDIS_REPLY_STRING)
        return;
    const char *type = r->element[0]->str;
    if (strcmp(type, "subscribe") == 0)
        redisAsyncCommand(ac, on_sub_reply, c, "SSUBSCRIBE %s", c->channel);
    else if (strcmp(type, "ssubscribe") == 0 && sa->sub_cb.subscribed)
        sa->sub_cb.subscribed(sa->sub_cb.arg, c->channel);
    else if (strcmp(type, "smessage") == 0 && sa->sub_cb.message &&
             r->element[2]->type == REDIS_REPLY_STRING) {
        if (sa->sub_cb.batch)
            sa->sub_cb.batch(sa->sub_cb.arg, true);
        deliver(sa, c->channel, r->element[2]->str);
        if (sa->sub_cb.batch)
            sa->sub_cb.batch(sa->sub_cb.arg, false);
    }
    else if (strcmp(type, "sunsubscribe") == 0) /* the slot moved: resubscribe elsewhere */
        storage__async_refresh_soon(sa, 0);
}

void storage__sub_connected(aconn_t *c)
{
    if (c->ac)
        redisAsyncCommand(c->ac, on_sub_reply, c, "SUBSCRIBE %s", c->channel);
}
