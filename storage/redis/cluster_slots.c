/* storage/redis/cluster_slots.c -- a CLUSTER SLOTS reply, checked whole, then walked.
 *
 * The reply comes from a node we were pointed at, so nothing in it is trusted: every range
 * needs integer bounds inside 0..16383 in order, and a master entry of a string host (no NUL
 * inside: it becomes a C string) and an integer port of 1..65535 (port 0 would name a unix
 * socket in the node table). Replica entries after the master are not read.
 */
#include "storage/redis/cluster_slots.h"

#include <errno.h>
#include <string.h>

/* Reads range i of r into out; false when it is not well formed. */
static bool read_range(const redisReply *r, size_t i, storage_slot_range_t *out)
{
    const redisReply *range = r->element[i];
    if (!range || range->type != REDIS_REPLY_ARRAY || range->elements < 3 ||
        range->element[0]->type != REDIS_REPLY_INTEGER ||
        range->element[1]->type != REDIS_REPLY_INTEGER ||
        range->element[2]->type != REDIS_REPLY_ARRAY || range->element[2]->elements < 2)
        return false;
    const redisReply *master = range->element[2];
    if (master->element[0]->type != REDIS_REPLY_STRING ||
        master->element[1]->type != REDIS_REPLY_INTEGER ||
        strlen(master->element[0]->str) != master->element[0]->len)
        return false;
    long long first = range->element[0]->integer, last = range->element[1]->integer;
    long long port = master->element[1]->integer;
    if (first < 0 || last >= STORAGE_SLOTS || first > last || port < 1 || port > 65535)
        return false;
    out->first = (int)first;
    out->last = (int)last;
    out->host = master->element[0]->str;
    out->port = (int)port;
    return true;
}

int storage_cluster_slots_parse(const redisReply *r, storage_slot_range_cb range, void *arg)
{
    storage_slot_range_t one;
    if (!r || r->type != REDIS_REPLY_ARRAY)
        return -EPROTO;
    for (size_t i = 0; i < r->elements; i++)
        if (!read_range(r, i, &one))
            return -EPROTO;
    for (size_t i = 0; i < r->elements; i++) {
        read_range(r, i, &one);
        int rc = range(arg, &one);
        if (rc)
            return rc;
    }
    return 0;
}
