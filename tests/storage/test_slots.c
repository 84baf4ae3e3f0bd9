/* tests/storage/test_slots.c -- storage/redis/slots.h against the Redis Cluster specification's
 * vectors and rules (CRC16, hash tags, MOVED/ASK), against commands formatted by hiredis
 * itself, and against a real cluster-enabled redis-server's CLUSTER KEYSLOT.
 *
 * The server is a private node started with --cluster-enabled yes: it answers CLUSTER
 * KEYSLOT (a pure computation) without any slot assigned, so no cluster needs creating.
 */
#include "storage/redis/slots.h"
#include "tests/support/support.h"

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

TestSuite(slots, .timeout = 60);

static int slot_of(const char *key)
{
    return storage_key_slot(key, strlen(key));
}

/* ---- CRC16 and hash tags --------------------------------------------------------------------- */

Test(slots, crc16_matches_the_specification_vector)
{
    cr_assert_eq(storage_crc16("123456789", 9), 0x31C3);
    cr_assert_eq(storage_crc16("", 0), 0);
    /* Only len bytes count: what follows is not read. */
    cr_assert_eq(storage_crc16("123456789xyz", 9), 0x31C3);
}

Test(slots, a_key_without_a_tag_hashes_whole_and_stays_in_range)
{
    cr_assert_eq(slot_of("123456789"), 0x31C3 % STORAGE_SLOTS);
    cr_assert_eq(slot_of("foo"), storage_crc16("foo", 3) & (STORAGE_SLOTS - 1));
    cr_assert_eq(slot_of("foo"), 12182); /* CLUSTER KEYSLOT foo */
    cr_assert_eq(slot_of(""), 0);
    /* Keys are binary: a NUL inside is part of the key. */
    cr_assert_eq(storage_key_slot("a\0b", 3), storage_crc16("a\0b", 3) & (STORAGE_SLOTS - 1));
    cr_assert_neq(storage_key_slot("a\0b", 3), storage_key_slot("a", 1));
}

Test(slots, hash_tags_follow_the_cluster_specification)
{
    /* The specification's examples. */
    cr_assert_eq(slot_of("{user1000}.following"), slot_of("{user1000}.followers"));
    cr_assert_eq(slot_of("{user1000}.following"), slot_of("user1000"));
    cr_assert_eq(slot_of("foo{}{bar}"), storage_crc16("foo{}{bar}", 10) & (STORAGE_SLOTS - 1),
                 "an empty tag: the whole key is hashed");
    cr_assert_eq(slot_of("foo{{bar}}zap"), slot_of("{bar"), "the tag runs to the first '}'");
    cr_assert_eq(slot_of("foo{{bar}}"), slot_of("{bar"));
    cr_assert_eq(slot_of("foo{bar}{zap}"), slot_of("bar"), "only the first tag counts");
    /* Edge cases of the same rules. */
    cr_assert_eq(slot_of("foo{bar"), storage_crc16("foo{bar", 7) & (STORAGE_SLOTS - 1),
                 "an unclosed '{' is no tag");
    cr_assert_eq(slot_of("foo}bar{x}"), slot_of("x"), "a '}' before the first '{' is ignored");
    cr_assert_eq(slot_of("{}"), storage_crc16("{}", 2) & (STORAGE_SLOTS - 1));
    cr_assert_eq(slot_of("{}{x}"), storage_crc16("{}{x}", 5) & (STORAGE_SLOTS - 1),
                 "after an empty first tag no later tag is looked for");
    cr_assert_eq(slot_of("{a}"), slot_of("a"));
    /* Tidings's own keys: one user's keys share a slot. */
    cr_assert_eq(slot_of("user:{42}"), slot_of("followers:{42}"));
    cr_assert_eq(slot_of("user:{42}"), slot_of("tl:{42}"));
    cr_assert_eq(slot_of("user:{42}"), slot_of("idem:{42}:abc"));
    /* The tag is looked for only within len. */
    cr_assert_eq(storage_key_slot("ab{cd}", 4), storage_crc16("ab{c", 4) & (STORAGE_SLOTS - 1));
}

/* ---- the key of a formatted command ---------------------------------------------------------- */

/* The slot storage_command_slot finds in the command hiredis formats from fmt. */
static int command_slot(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *cmd = NULL;
    int len = redisvFormatCommand(&cmd, fmt, ap);
    va_end(ap);
    cr_assert(len > 0 && cmd, "redisvFormatCommand failed for %s", fmt);
    int slot = storage_command_slot(cmd, (size_t)len);
    redisFreeCommand(cmd);
    return slot;
}

static int argv_slot(int argc, const char **argv)
{
    char *cmd = NULL;
    long long len = redisFormatCommandArgv(&cmd, argc, argv, NULL);
    cr_assert(len > 0 && cmd);
    int slot = storage_command_slot(cmd, (size_t)len);
    redisFreeCommand(cmd);
    return slot;
}

Test(slots, a_command_addresses_its_first_key)
{
    cr_assert_eq(command_slot("GET %s", "foo"), slot_of("foo"));
    cr_assert_eq(command_slot("get %s", "foo"), slot_of("foo"), "command names are case-blind");
    cr_assert_eq(command_slot("SET %s %s", "user:{7}", "v"), slot_of("7"));
    cr_assert_eq(command_slot("SET %b %s", "a\0b", (size_t)3, "v"), storage_key_slot("a\0b", 3));
    cr_assert_eq(command_slot("ZADD %s %d %s", "tl:{99}", 1, "x"), slot_of("99"));
    cr_assert_eq(command_slot("HSET %s a b c d", "post:{5}"), slot_of("5"));
    cr_assert_eq(command_slot("MGET %s %s", "{t}a", "{t}b"), slot_of("t"));
}

Test(slots, scripts_address_the_first_key_after_numkeys)
{
    cr_assert_eq(command_slot("EVAL %s 0", "return 1"), -1, "no keys: any node");
    cr_assert_eq(command_slot("EVAL %s 0 %s", "return ARGV[1]", "arg"), -1,
                 "an argument is not a key");
    cr_assert_eq(command_slot("EVAL %s 2 %s %s a1", "return 1", "tl:{3}", "followers:{3}"),
                 slot_of("3"));
    cr_assert_eq(
        command_slot("EVALSHA %s 1 %s", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", "user:{11}"),
        slot_of("11"));
    cr_assert_eq(
        command_slot("evalsha %s 1 %s", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", "user:{11}"),
        slot_of("11"));
    cr_assert_eq(command_slot("EVAL %s 1", "return 1"), -1, "numkeys 1 but no key: malformed");
    cr_assert_eq(command_slot("EVAL %s", "return 1"), -1, "no numkeys");
}

Test(slots, stream_commands_address_their_stream)
{
    cr_assert_eq(command_slot("XREADGROUP GROUP %s %s COUNT 10 BLOCK 100 STREAMS %s >", "engine",
                              "host:1:abc", "fanout:{3}"),
                 slot_of("3"));
    cr_assert_eq(command_slot("XREADGROUP GROUP %s %s STREAMS %s %s > >", "g", "c", "fanout:{0}",
                              "fanout:{1}"),
                 slot_of("0"), "several streams: the first one's slot");
    cr_assert_eq(command_slot("XREAD COUNT 1 STREAMS %s 0", "ev:{8}"), slot_of("8"));
    cr_assert_eq(command_slot("xread count 1 streams %s 0", "ev:{8}"), slot_of("8"));
    cr_assert_eq(command_slot("XREADGROUP GROUP g c COUNT 10"), -1, "no STREAMS: no key");
    cr_assert_eq(command_slot("XREADGROUP GROUP g c STREAMS"), -1, "STREAMS without a key");
    cr_assert_eq(command_slot("XGROUP CREATE %s %s $ MKSTREAM", "fanout:{5}", "engine"),
                 slot_of("5"));
    cr_assert_eq(command_slot("XGROUP"), -1);
    cr_assert_eq(command_slot("XADD %s * kind post", "fanout:{6}"), slot_of("6"));
    cr_assert_eq(command_slot("XACK %s engine 1-1", "fanout:{6}"), slot_of("6"));
    cr_assert_eq(command_slot("XPENDING %s engine - + 10", "fanout:{6}"), slot_of("6"));
    cr_assert_eq(command_slot("XCLAIM %s engine c 100 1-1", "fanout:{6}"), slot_of("6"));
    cr_assert_eq(command_slot("XINFO STREAM %s", "fanout:{6}"), slot_of("6"));
}

Test(slots, keyless_commands_go_anywhere)
{
    cr_assert_eq(command_slot("PING"), -1);
    cr_assert_eq(command_slot("PING %s", "hello"), -1);
    cr_assert_eq(command_slot("SCRIPT LOAD %s", "return 1"), -1);
    cr_assert_eq(command_slot("CLUSTER SLOTS"), -1);
    cr_assert_eq(command_slot("CLUSTER KEYSLOT %s", "foo"), -1);
    cr_assert_eq(command_slot("PUBLISH %s %s", "ch", "msg"), -1);
    cr_assert_eq(command_slot("INFO"), -1);
    cr_assert_eq(command_slot("GET"), -1, "a command without its key");
}

Test(slots, malformed_commands_name_no_key)
{
    static const char *const bad[] = {
        "",
        "*",
        "*1",
        "*1\r\n",
        "GET foo\r\n",                       /* inline, not RESP */
        "*2\r\n$3\r\nGET\r\n$10\r\nfoo\r\n", /* bulk longer than what is there */
        "*2\r\n$3\r\nGET\r\n$3\r\nfoo",      /* bulk without its CRLF */
        "*2\r\n$3\r\nGET\r\n",               /* one argument short */
        "*2\r\n$3\r\nGET\r\n:3\r\nfoo\r\n",  /* an integer where a bulk belongs */
        "*2\r\n$3\r\nGET\r\n$-1\r\n",        /* a null bulk */
        "*2\r\n$3\r\nGET\r\n$x\r\nfoo\r\n",  /* no length */
        "*-1\r\n",
        "*x\r\n$3\r\nGET\r\n$3\r\nfoo\r\n",
        "$3\r\nGET\r\n",
        "*2\n$3\nGET\n$3\nfoo\n", /* LF only */
        "*1\r\n$3\r\nGE",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(storage_command_slot(bad[i], strlen(bad[i])), -1, "case %zu: %s", i, bad[i]);
    /* A well-formed command cut anywhere names no key (or, once the key is whole, its slot). */
    char *cmd = NULL;
    int len = redisFormatCommand(&cmd, "SET %s %s", "user:{77}", "value");
    cr_assert(len > 0);
    int want = slot_of("77");
    for (int cut = 0; cut < len; cut++) {
        int got = storage_command_slot(cmd, (size_t)cut);
        cr_assert(got == -1 || got == want, "cut at %d of %d: slot %d", cut, len, got);
    }
    cr_assert_eq(storage_command_slot(cmd, (size_t)len), want);
    redisFreeCommand(cmd);
    const char *argv[] = {"GET", "k"};
    cr_assert_eq(argv_slot(1, argv), -1);
    cr_assert_eq(argv_slot(2, argv), slot_of("k"));
}

/* Only len bytes are read, also where a number runs to the end of the buffer: each prefix
 * sits in a heap block of exactly its size (no terminating NUL), so a read past it is a
 * heap-buffer-overflow under ASan (the Asan build), while other builds see only -1. */
Test(slots, a_command_is_read_no_further_than_its_length)
{
    static const char *const prefixes[] = {
        "*", "*2", "*2\r\n$", "*2\r\n$3", "*2\r\n$3\r\nGET\r\n$1", "*2\r\n$3\r\nGET\r\n$12"};
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        size_t n = strlen(prefixes[i]);
        char *exact = malloc(n);
        cr_assert(exact);
        memcpy(exact, prefixes[i], n);
        cr_assert_eq(storage_command_slot(exact, n), -1, "prefix %zu", i);
        free(exact);
    }
}

/* A script's numkeys is read within its bulk argument, which does not end in NUL: an empty
 * one is followed by "\r\n", which strtol skipped to read on past the command (found by
 * tests/fuzz/fuzz_command, its input is corpus/fuzz_command/regress_eval_empty_numkeys), and
 * a count with anything but digits is no count. */
Test(slots, a_scripts_numkeys_is_read_within_its_argument)
{
    static const char *const cases[] = {
        "*3\r\n$4\r\nEVAL\r\n$8\r\nreturn 1\r\n$0\r\n\r\n",
        "*3\r\n$4\r\nEVAL\r\n$8\r\nre4urn 1\r\n$0\r\n\r\r\n",
        "*4\r\n$4\r\nEVAL\r\n$1\r\nx\r\n$2\r\n1x\r\n$4\r\nk{1}\r\n",
        "*4\r\n$4\r\nEVAL\r\n$1\r\nx\r\n$2\r\n 1\r\n$4\r\nk{1}\r\n",
        "*4\r\n$4\r\nEVAL\r\n$1\r\nx\r\n$2\r\n+1\r\n$4\r\nk{1}\r\n",
        "*4\r\n$4\r\nEVAL\r\n$1\r\nx\r\n$2\r\n-1\r\n$4\r\nk{1}\r\n",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = strlen(cases[i]);
        char *exact = malloc(n);
        cr_assert(exact);
        memcpy(exact, cases[i], n);
        cr_expect_eq(storage_command_slot(exact, n), -1, "case %zu", i);
        free(exact);
    }
    const char *ok = "*4\r\n$4\r\nEVAL\r\n$1\r\nx\r\n$2\r\n01\r\n$4\r\nk{1}\r\n";
    cr_expect_eq(storage_command_slot(ok, strlen(ok)), slot_of("1"), "leading zero: still 1");
}

/* ---- MOVED and ASK --------------------------------------------------------------------------- */

static storage_redirect_t redirect(const char *err, int *slot, char *host, size_t host_size,
                                   int *port)
{
    return storage_redirect_parse(err, strlen(err), slot, host, host_size, port);
}

Test(slots, moved_and_ask_are_parsed)
{
    int slot = -1, port = -1;
    char host[64] = "";
    cr_assert_eq(redirect("MOVED 3999 127.0.0.1:6381", &slot, host, sizeof(host), &port),
                 STORAGE_REDIRECT_MOVED);
    cr_assert_eq(slot, 3999);
    cr_assert_str_eq(host, "127.0.0.1");
    cr_assert_eq(port, 6381);

    cr_assert_eq(redirect("ASK 0 10.0.0.2:7000", &slot, host, sizeof(host), &port),
                 STORAGE_REDIRECT_ASK);
    cr_assert_eq(slot, 0);
    cr_assert_str_eq(host, "10.0.0.2");
    cr_assert_eq(port, 7000);

    cr_assert_eq(redirect("MOVED 16383 redis-3.example:65535", &slot, host, sizeof(host), &port),
                 STORAGE_REDIRECT_MOVED);
    cr_assert_eq(slot, 16383);
    cr_assert_str_eq(host, "redis-3.example");
    cr_assert_eq(port, 65535);

    /* An IPv6 address: the port follows the last colon. */
    cr_assert_eq(redirect("MOVED 12 ::1:7001", &slot, host, sizeof(host), &port),
                 STORAGE_REDIRECT_MOVED);
    cr_assert_str_eq(host, "::1");
    cr_assert_eq(port, 7001);

    /* A node that knows no endpoint for itself names only the port: the host is the
     * node that replied, which the caller fills in. */
    cr_assert_eq(redirect("MOVED 77 :7003", &slot, host, sizeof(host), &port),
                 STORAGE_REDIRECT_MOVED);
    cr_assert_eq(slot, 77);
    cr_assert_str_eq(host, "");
    cr_assert_eq(port, 7003);

    /* Only len bytes are read. */
    const char *longer = "ASK 5 127.0.0.1:7002 and more";
    cr_assert_eq(storage_redirect_parse(longer, strlen("ASK 5 127.0.0.1:7002"), &slot, host,
                                        sizeof(host), &port),
                 STORAGE_REDIRECT_ASK);
    cr_assert_eq(slot, 5);
    cr_assert_eq(port, 7002);
}

Test(slots, anything_else_is_no_redirect)
{
    static const char *const bad[] = {
        "",
        "MOVED",
        "MOVED ",
        "MOVED 3999",
        "MOVED 3999 ",
        "MOVED abc 127.0.0.1:6381",
        "MOVED 3999x 127.0.0.1:6381",
        "MOVED 3999 127.0.0.1",
        "MOVED 3999 127.0.0.1:",
        "MOVED 3999 :",
        "ASK 3999",
        "moved 3999 127.0.0.1:6381",
        "ERR unknown command",
        "CLUSTERDOWN The cluster is down",
        "TRYAGAIN Multiple keys request during rehashing of slot",
        /* bad ports */
        "MOVED 3999 127.0.0.1:0",
        "MOVED 3999 127.0.0.1:65536",
        "MOVED 3999 127.0.0.1:-1",
        "MOVED 3999 127.0.0.1:abc",
        "MOVED 3999 127.0.0.1:6381x",
        "ASK 1 127.0.0.1:99999999999999999999",
        /* slots out of range */
        "MOVED 16384 127.0.0.1:6381",
        "MOVED -1 127.0.0.1:6381",
        "ASK 99999 127.0.0.1:6381",
        "ASK 99999999999999999999 127.0.0.1:6381",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int slot = -7, port = -7;
        char host[64] = "untouched";
        cr_assert_eq(redirect(bad[i], &slot, host, sizeof(host), &port), STORAGE_REDIRECT_NONE,
                     "case %zu: '%s'", i, bad[i]);
        cr_assert(slot == -7 && port == -7 && strcmp(host, "untouched") == 0,
                  "case %zu: '%s' wrote its outputs", i, bad[i]);
    }
    /* A host that does not fit the caller's buffer is refused, not truncated. */
    int slot, port;
    char small[8];
    cr_assert_eq(redirect("MOVED 1 a-long-hostname:7000", &slot, small, sizeof(small), &port),
                 STORAGE_REDIRECT_NONE);
    cr_assert_eq(redirect("MOVED 1 1234567:7000", &slot, small, sizeof(small), &port),
                 STORAGE_REDIRECT_MOVED, "a host of exactly size - 1 fits");
    cr_assert_str_eq(small, "1234567");
    /* A message longer than any real redirect. */
    char huge[512];
    memset(huge, 'a', sizeof(huge));
    memcpy(huge, "MOVED 1 ", 8);
    memcpy(huge + sizeof(huge) - 5, ":700", 4);
    huge[sizeof(huge) - 1] = '\0';
    char host[600];
    cr_assert_eq(redirect(huge, &slot, host, sizeof(host), &port), STORAGE_REDIRECT_NONE);
}

/* ---- against a real server ------------------------------------------------------------------- */

static ts_redis_t node; /* ts_redis_start_node's */

static void node_stop(void)
{
    ts_redis_cleanup(&node);
}

Test(slots, key_slots_agree_with_cluster_keyslot, .fini = node_stop)
{
    ts_redis_start_node(&node);
    redisContext *c = ts_redis_connect(node.port);
    redisReply *info = ts_redis_cmd_ok(c, "CLUSTER INFO");
    cr_assert(strstr(info->str, "cluster_slots_assigned:0\r"), "the node serves slots: %s",
              info->str);
    freeReplyObject(info);
    enum { KEYS = 400, MAX_LEN = 24 };
    static char keys[KEYS][MAX_LEN];
    static size_t lens[KEYS];
    /* Mostly printable keys with braces in them (so tags of every shape occur), some binary. */
    static const char alphabet[] = "ab{}{}:0123456789";
    for (int i = 0; i < KEYS; i++) {
        unsigned char rnd[MAX_LEN + 1];
        cr_assert(getrandom(rnd, sizeof(rnd), 0) == (ssize_t)sizeof(rnd));
        lens[i] = rnd[0] % MAX_LEN; /* 0 … MAX_LEN - 1: the empty key too */
        for (size_t k = 0; k < lens[i]; k++)
            keys[i][k] =
                i % 4 == 3 ? (char)rnd[k + 1] : alphabet[rnd[k + 1] % (sizeof(alphabet) - 1)];
    }
    /* Tidings's key shapes. */
    snprintf(keys[0], MAX_LEN, "user:{%d}", 1234567);
    lens[0] = strlen(keys[0]);
    snprintf(keys[1], MAX_LEN, "fanout:{%d}", 3);
    lens[1] = strlen(keys[1]);
    snprintf(keys[2], MAX_LEN, "123456789");
    lens[2] = strlen(keys[2]);

    for (int i = 0; i < KEYS; i++)
        cr_assert(redisAppendCommand(c, "CLUSTER KEYSLOT %b", keys[i], lens[i]) == REDIS_OK);
    for (int i = 0; i < KEYS; i++) {
        redisReply *r = NULL;
        cr_assert(redisGetReply(c, (void **)&r) == REDIS_OK && r, "no reply: %s", c->errstr);
        cr_assert_eq(r->type, REDIS_REPLY_INTEGER, "CLUSTER KEYSLOT answered %s",
                     r->type == REDIS_REPLY_ERROR ? r->str : "a non-integer");
        int ours = storage_key_slot(keys[i], lens[i]);
        char shown[4 * MAX_LEN + 1];
        size_t used = 0;
        for (size_t k = 0; k < lens[i]; k++) {
            unsigned char ch = (unsigned char)keys[i][k];
            used += (size_t)snprintf(shown + used, sizeof(shown) - used,
                                     ch >= 0x20 && ch < 0x7f ? "%c" : "\\x%02x", ch);
        }
        shown[used] = '\0';
        cr_assert_eq(ours, (int)r->integer, "key %d '%s' (%zu bytes): ours %d, redis %lld", i,
                     shown, lens[i], ours, r->integer);
        freeReplyObject(r);
    }
    ts_redis_close(c);
}
