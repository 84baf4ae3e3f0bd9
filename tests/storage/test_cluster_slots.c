/* tests/storage/test_cluster_slots.c -- storage_cluster_slots_parse on CLUSTER SLOTS replies
 * read by hiredis from RESP text: as a real cluster sends them, and malformed in each way a
 * node could send (those hand over no range at all, so nothing of them is installed). */
#include "storage/redis/cluster_slots.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

TestSuite(cluster_slots, .timeout = 10);

typedef struct seen_s {
    storage_slot_range_t ranges[8];
    char hosts[8][64];
    size_t n, stop_at; /* stop_at: the call that answers -ENOSPC (0: none) */
} seen_t;

static int on_range(void *arg, const storage_slot_range_t *range)
{
    seen_t *seen = arg;
    cr_assert(seen->n < 8);
    seen->ranges[seen->n] = *range;
    snprintf(seen->hosts[seen->n], sizeof(seen->hosts[0]), "%s", range->host);
    seen->n++;
    return seen->n == seen->stop_at ? -ENOSPC : 0;
}

/* Parses the reply that resp spells; the reply is freed before returning. */
static int parse(const char *resp, size_t len, seen_t *seen)
{
    redisReader *reader = redisReaderCreate();
    void *reply = NULL;
    cr_assert(reader);
    cr_assert_eq(redisReaderFeed(reader, resp, len), REDIS_OK);
    cr_assert_eq(redisReaderGetReply(reader, &reply), REDIS_OK);
    cr_assert(reply, "incomplete RESP: %s", resp);
    int rc = storage_cluster_slots_parse(reply, on_range, seen);
    freeReplyObject(reply);
    redisReaderFree(reader);
    return rc;
}

#define RANGE(first, last, host_len, host, port)                                                   \
    "*4\r\n:" first "\r\n:" last "\r\n*3\r\n$" host_len "\r\n" host "\r\n:" port                   \
    "\r\n$4\r\nid01\r\n*3\r\n$9\r\n127.0.0.1\r\n:7100\r\n$4\r\nid02\r\n"

Test(cluster_slots, a_reply_is_read_range_by_range_with_its_master)
{
    static const char reply[] = "*3\r\n" RANGE("0", "5460", "9", "127.0.0.1", "7000")
        RANGE("5461", "10922", "8", "10.0.0.2", "7001") RANGE("10923", "16383", "0", "", "7002");
    seen_t seen = {0};
    cr_assert_eq(parse(reply, sizeof(reply) - 1, &seen), 0);
    cr_assert_eq(seen.n, 3);
    cr_expect(seen.ranges[0].first == 0 && seen.ranges[0].last == 5460);
    cr_expect(seen.ranges[0].port == 7000 && strcmp(seen.hosts[0], "127.0.0.1") == 0,
              "the master, not the replica after it");
    cr_expect(seen.ranges[1].first == 5461 && seen.ranges[1].last == 10922);
    cr_expect(seen.ranges[1].port == 7001 && strcmp(seen.hosts[1], "10.0.0.2") == 0);
    cr_expect(seen.ranges[2].first == 10923 && seen.ranges[2].last == 16383);
    cr_expect(seen.ranges[2].port == 7002 && seen.hosts[2][0] == '\0',
              "an empty host stays empty: the node that answered");
}

Test(cluster_slots, a_malformed_reply_hands_over_no_range)
{
    /* sizeof, not strlen: a host may hold a NUL. */
#define CASE(resp)                                                                                 \
    {                                                                                              \
        resp, sizeof(resp) - 1                                                                     \
    }
    static const struct {
        const char *resp;
        size_t len;
    } bad[] = {
        CASE("*1\r\n" RANGE("0", "16383", "9", "127.0.0.1", "0")), /* port 0: a unix socket */
        CASE("*1\r\n" RANGE("0", "16383", "9", "127.0.0.1", "65536")),
        CASE("*1\r\n" RANGE("0", "16383", "9", "127.0.0.1", "-7000")),
        CASE("*1\r\n" RANGE("0", "16384", "9", "127.0.0.1", "7000")), /* beyond the last slot */
        CASE("*1\r\n" RANGE("-1", "10", "9", "127.0.0.1", "7000")),
        CASE("*1\r\n" RANGE("10", "9", "9", "127.0.0.1", "7000")), /* backwards */
        CASE("*1\r\n" RANGE("0", "16383", "3", "a\0b", "7000")),   /* a NUL inside the host */
        CASE("*1\r\n*2\r\n:0\r\n:16383\r\n"),                      /* no master */
        CASE("*1\r\n*3\r\n:0\r\n:16383\r\n*1\r\n$1\r\na\r\n"),     /* a master without port */
        CASE("*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n:1\r\n:7000\r\n"), /* a host that is no string */
        CASE("*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n$1\r\na\r\n$4\r\n7000\r\n"), /* port as text */
        CASE("*1\r\n*3\r\n$1\r\n0\r\n:16383\r\n*2\r\n$1\r\na\r\n:7000\r\n"), /* bound as text */
        CASE("*1\r\n:5\r\n"), /* a range that is no array */
        CASE("*1\r\n*-1\r\n"),
        CASE("-ERR This instance has cluster support disabled\r\n"),
        CASE(":1\r\n"),
        /* a good range, then a bad one: neither is handed over */
        CASE("*2\r\n" RANGE("0", "100", "9", "127.0.0.1", "7000")
                 RANGE("101", "16384", "9", "127.0.0.1", "7001")),
    };
#undef CASE
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        seen_t seen = {0};
        cr_expect_eq(parse(bad[i].resp, bad[i].len, &seen), -EPROTO, "case %zu", i);
        cr_expect_eq(seen.n, 0, "case %zu handed over %zu ranges", i, seen.n);
    }
    cr_expect_eq(storage_cluster_slots_parse(NULL, on_range, NULL), -EPROTO);
}

Test(cluster_slots, the_callbacks_refusal_stops_the_walk)
{
    static const char reply[] = "*3\r\n" RANGE("0", "1", "1", "a", "1")
        RANGE("2", "3", "1", "b", "2") RANGE("4", "16383", "1", "c", "65535");
    seen_t seen = {.stop_at = 2};
    cr_assert_eq(parse(reply, sizeof(reply) - 1, &seen), -ENOSPC);
    cr_expect_eq(seen.n, 2);
    seen_t all = {0};
    cr_assert_eq(parse(reply, sizeof(reply) - 1, &all), 0);
    cr_expect(all.n == 3 && all.ranges[2].port == 65535 && all.ranges[0].first == 0 &&
              all.ranges[0].last == 1);
}
