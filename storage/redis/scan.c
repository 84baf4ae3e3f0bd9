/* storage/redis/scan.c -- SCAN over every master: the whole keyspace, node by node.
 *
 * On a cluster each master holds only its slots' keys, so a scan visits each node that owns
 * a slot in the map learnt first (a slot moving during the scan may hide or repeat keys:
 * callers use it for idempotent one-off work). A single Redis is one such node.
 */
#include "storage/redis/redis_internal.h"

#include <errno.h>
#include <string.h>

#define SCAN_COUNT "1000"

/* Scans node i to the end, handing each page of keys to cb. */
static int scan_node(storage_redis_t *s, int i, const char *match, storage_redis_scan_cb cb,
                     void *arg)
{
    bool fresh;
    storage_redis__conn_t *c = storage_redis__acquire(s, i, &fresh);
    if (!c)
        return -EAGAIN;
    char cursor[32] = "0";
    int rc = 0;
    storage_redis__conn_end_t end = STORAGE_REDIS__CONN_OK;
    do {
        const char *argv[] = {"SCAN", cursor, "MATCH", match, "COUNT", SCAN_COUNT};
        redisReply *r = redisCommandArgv(c->c, 6, argv, NULL);
        if (!r) {
            end = storage_redis__conn_failure(c->c, errno);
            rc = -EAGAIN;
            break;
        }
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[0]->type != REDIS_REPLY_STRING || r->element[0]->len >= sizeof(cursor) ||
            r->element[1]->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(r);
            rc = -EIO;
            break;
        }
        memcpy(cursor, r->element[0]->str, r->element[0]->len);
        cursor[r->element[0]->len] = '\0';
        rc = cb(arg, r->element[1]);
        freeReplyObject(r);
    } while (rc == 0 && strcmp(cursor, "0") != 0);
    storage_redis__release(s, i, c, fresh, end);
    return rc;
}

int storage_redis_scan(storage_redis_t *s, const char *match, storage_redis_scan_cb cb, void *arg)
{
    if (storage_redis__topology_node(s, -1) < 0)
        return -EAGAIN;
    bool owns[STORAGE_REDIS_MAX_NODES] = {0};
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < STORAGE_SLOTS; i++)
        owns[s->slot_node[i]] = true;
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < STORAGE_REDIS_MAX_NODES; i++) {
        if (!owns[i])
            continue;
        int rc = scan_node(s, i, match, cb, arg);
        if (rc)
            return rc;
    }
    return 0;
}
