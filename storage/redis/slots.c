/* storage/redis/slots.c -- key slots (CRC16 mod 16384 with hash tags), the key a formatted
 * command addresses, and MOVED/ASK parsing. */
#include "storage/redis/slots.h"

#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* CRC16-CCITT (XModem) a byte at a time: the engine hashes a key per follower. */
static const uint16_t crc16_table[256] = {
    0x0000, 0x1021, 0x2042, 0x3063, 0x4084, 0x50a5, 0x60c6, 0x70e7, 0x8108, 0x9129, 0xa14a, 0xb16b,
    0xc18c, 0xd1ad, 0xe1ce, 0xf1ef, 0x1231, 0x0210, 0x3273, 0x2252, 0x52b5, 0x4294, 0x72f7, 0x62d6,
    0x9339, 0x8318, 0xb37b, 0xa35a, 0xd3bd, 0xc39c, 0xf3ff, 0xe3de, 0x2462, 0x3443, 0x0420, 0x1401,
    0x64e6, 0x74c7, 0x44a4, 0x5485, 0xa56a, 0xb54b, 0x8528, 0x9509, 0xe5ee, 0xf5cf, 0xc5ac, 0xd58d,
    0x3653, 0x2672, 0x1611, 0x0630, 0x76d7, 0x66f6, 0x5695, 0x46b4, 0xb75b, 0xa77a, 0x9719, 0x8738,
    0xf7df, 0xe7fe, 0xd79d, 0xc7bc, 0x48c4, 0x58e5, 0x6886, 0x78a7, 0x0840, 0x1861, 0x2802, 0x3823,
    0xc9cc, 0xd9ed, 0xe98e, 0xf9af, 0x8948, 0x9969, 0xa90a, 0xb92b, 0x5af5, 0x4ad4, 0x7ab7, 0x6a96,
    0x1a71, 0x0a50, 0x3a33, 0x2a12, 0xdbfd, 0xcbdc, 0xfbbf, 0xeb9e, 0x9b79, 0x8b58, 0xbb3b, 0xab1a,
    0x6ca6, 0x7c87, 0x4ce4, 0x5cc5, 0x2c22, 0x3c03, 0x0c60, 0x1c41, 0xedae, 0xfd8f, 0xcdec, 0xddcd,
    0xad2a, 0xbd0b, 0x8d68, 0x9d49, 0x7e97, 0x6eb6, 0x5ed5, 0x4ef4, 0x3e13, 0x2e32, 0x1e51, 0x0e70,
    0xff9f, 0xefbe, 0xdfdd, 0xcffc, 0xbf1b, 0xaf3a, 0x9f59, 0x8f78, 0x9188, 0x81a9, 0xb1ca, 0xa1eb,
    0xd10c, 0xc12d, 0xf14e, 0xe16f, 0x1080, 0x00a1, 0x30c2, 0x20e3, 0x5004, 0x4025, 0x7046, 0x6067,
    0x83b9, 0x9398, 0xa3fb, 0xb3da, 0xc33d, 0xd31c, 0xe37f, 0xf35e, 0x02b1, 0x1290, 0x22f3, 0x32d2,
    0x4235, 0x5214, 0x6277, 0x7256, 0xb5ea, 0xa5cb, 0x95a8, 0x8589, 0xf56e, 0xe54f, 0xd52c, 0xc50d,
    0x34e2, 0x24c3, 0x14a0, 0x0481, 0x7466, 0x6447, 0x5424, 0x4405, 0xa7db, 0xb7fa, 0x8799, 0x97b8,
    0xe75f, 0xf77e, 0xc71d, 0xd73c, 0x26d3, 0x36f2, 0x0691, 0x16b0, 0x6657, 0x7676, 0x4615, 0x5634,
    0xd94c, 0xc96d, 0xf90e, 0xe92f, 0x99c8, 0x89e9, 0xb98a, 0xa9ab, 0x5844, 0x4865, 0x7806, 0x6827,
    0x18c0, 0x08e1, 0x3882, 0x28a3, 0xcb7d, 0xdb5c, 0xeb3f, 0xfb1e, 0x8bf9, 0x9bd8, 0xabbb, 0xbb9a,
    0x4a75, 0x5a54, 0x6a37, 0x7a16, 0x0af1, 0x1ad0, 0x2ab3, 0x3a92, 0xfd2e, 0xed0f, 0xdd6c, 0xcd4d,
    0xbdaa, 0xad8b, 0x9de8, 0x8dc9, 0x7c26, 0x6c07, 0x5c64, 0x4c45, 0x3ca2, 0x2c83, 0x1ce0, 0x0cc1,
    0xef1f, 0xff3e, 0xcf5d, 0xdf7c, 0xaf9b, 0xbfba, 0x8fd9, 0x9ff8, 0x6e17, 0x7e36, 0x4e55, 0x5e74,
    0x2e93, 0x3eb2, 0x0ed1, 0x1ef0,
};

uint16_t storage_crc16(const char *buf, size_t len)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++)
        crc = (uint16_t)(crc << 8) ^ crc16_table[((crc >> 8) ^ (uint8_t)buf[i]) & 0xff];
    return crc;
}

int storage_key_slot(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len);
    if (open) {
        size_t rest = len - (size_t)(open - key) - 1;
        const char *close = memchr(open + 1, '}', rest);
        if (close && close > open + 1)
            return storage_crc16(open + 1, (size_t)(close - open - 1)) & (STORAGE_SLOTS - 1);
    }
    return storage_crc16(key, len) & (STORAGE_SLOTS - 1);
}

/* ---- walking a RESP array of bulk strings ------------------------------------------------ */

typedef struct resp_args_s {
    const char *p, *end;
    long left; /* arguments not yet read */
} resp_args_t;

/* "<type><digits>\r\n", never reading past the end (the buffer need not end in NUL). */
static bool read_number(resp_args_t *it, char type, long *out)
{
    const char *p = it->p;
    if (p >= it->end || *p++ != type)
        return false;
    long v = 0;
    const char *digits = p;
    for (; p < it->end && *p >= '0' && *p <= '9'; p++) {
        if (v > (LONG_MAX - 9) / 10)
            return false;
        v = v * 10 + (*p - '0');
    }
    if (p == digits || it->end - p < 2 || p[0] != '\r' || p[1] != '\n')
        return false;
    it->p = p + 2;
    *out = v;
    return true;
}

static bool args_open(resp_args_t *it, const char *cmd, size_t len)
{
    it->p = cmd;
    it->end = cmd + len;
    return read_number(it, '*', &it->left);
}

static bool args_next(resp_args_t *it, const char **arg, size_t *len)
{
    long n;
    if (it->left <= 0 || !read_number(it, '$', &n) || (size_t)(it->end - it->p) < (size_t)n + 2)
        return false;
    *arg = it->p;
    *len = (size_t)n;
    it->p += n + 2;
    it->left--;
    return true;
}

/* A script's numkeys: len decimal digits, read within the argument (it does not end in NUL,
 * and strtol would skip the "\r\n" after an empty one and read on past the command); -1 when
 * it is not a count. */
static long arg_count(const char *arg, size_t len)
{
    long v = 0;
    if (len == 0)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (arg[i] < '0' || arg[i] > '9' || v > (LONG_MAX - 9) / 10)
            return -1;
        v = v * 10 + (arg[i] - '0');
    }
    return v;
}

static bool is(const char *arg, size_t len, const char *name)
{
    return strlen(name) == len && strncasecmp(arg, name, len) == 0;
}

static bool is_any(const char *arg, size_t len, const char *const *names)
{
    for (; *names; names++)
        if (is(arg, len, *names))
            return true;
    return false;
}

/* Commands that name no key: they may go to any node. */
static const char *const keyless[] = {
    "PING",        "ECHO",       "AUTH",         "SELECT",  "INFO",   "SCRIPT",  "CLUSTER",
    "ASKING",      "READONLY",   "READWRITE",    "MULTI",   "EXEC",   "DISCARD", "SUBSCRIBE",
    "UNSUBSCRIBE", "PSUBSCRIBE", "PUNSUBSCRIBE", "PUBLISH", "CLIENT", "CONFIG",  "DBSIZE",
    "FLUSHDB",     "FLUSHALL",   "TIME",         "COMMAND", "HELLO",  "WAIT",    "SHUTDOWN",
    "DEBUG",       "SLOWLOG",    "FUNCTION",     NULL};
/* Scripts: the keys follow numkeys. */
static const char *const scripts[] = {"EVAL",  "EVALSHA",  "EVAL_RO", "EVALSHA_RO",
                                      "FCALL", "FCALL_RO", NULL};
/* A subcommand comes first, then the key. */
static const char *const with_subcommand[] = {"XGROUP", "XINFO", "OBJECT", "MEMORY", NULL};

int storage_command_slot(const char *cmd, size_t len)
{
    resp_args_t it;
    const char *name, *arg;
    size_t name_len, arg_len;
    if (!args_open(&it, cmd, len) || !args_next(&it, &name, &name_len))
        return -1;
    if (is_any(name, name_len, keyless))
        return -1;
    if (is_any(name, name_len, scripts)) {
        if (!args_next(&it, &arg, &arg_len) || !args_next(&it, &arg, &arg_len) ||
            arg_count(arg, arg_len) <= 0)
            return -1;
    } else if (is(name, name_len, "XREAD") || is(name, name_len, "XREADGROUP")) {
        do {
            if (!args_next(&it, &arg, &arg_len))
                return -1;
        } while (!is(arg, arg_len, "STREAMS"));
    } else if (is_any(name, name_len, with_subcommand)) {
        if (!args_next(&it, &arg, &arg_len))
            return -1;
    }
    if (!args_next(&it, &arg, &arg_len))
        return -1;
    return storage_key_slot(arg, arg_len);
}

/* Commands that read and never write (XINFO and PING included: a batch of them is a read;
 * CLIENT too, which sets the connection's own state: a tracked read is CLIENT TRACKING and
 * CLIENT CACHING before its script). */
static const char *const reads[] = {"CLIENT",        "GET",
                                    "MGET",          "HGET",
                                    "HMGET",         "HGETALL",
                                    "HEXISTS",       "EXISTS",
                                    "TYPE",          "TTL",
                                    "PTTL",          "SCARD",
                                    "SISMEMBER",     "SMEMBERS",
                                    "SMISMEMBER",    "ZCARD",
                                    "ZCOUNT",        "ZSCORE",
                                    "ZMSCORE",       "ZRANGE",
                                    "ZRANGEBYSCORE", "ZREVRANGEBYSCORE",
                                    "ZREVRANGE",     "ZRANK",
                                    "ZREVRANK",      "XLEN",
                                    "XRANGE",        "XREVRANGE",
                                    "XINFO",         "PING",
                                    "EVAL_RO",       "EVALSHA_RO",
                                    "FCALL_RO",      NULL};

bool storage_command_reads_only(const char *cmd, size_t len)
{
    resp_args_t it;
    const char *name;
    size_t name_len;
    return args_open(&it, cmd, len) && args_next(&it, &name, &name_len) &&
           is_any(name, name_len, reads);
}

storage_redirect_t storage_redirect_parse(const char *err, size_t len, int *slot, char *host,
                                          size_t host_size, int *port)
{
    storage_redirect_t kind;
    size_t skip;
    if (len > 6 && strncmp(err, "MOVED ", 6) == 0) {
        kind = STORAGE_REDIRECT_MOVED;
        skip = 6;
    } else if (len > 4 && strncmp(err, "ASK ", 4) == 0) {
        kind = STORAGE_REDIRECT_ASK;
        skip = 4;
    } else {
        return STORAGE_REDIRECT_NONE;
    }
    char buf[128];
    if (len - skip >= sizeof(buf))
        return STORAGE_REDIRECT_NONE;
    memcpy(buf, err + skip, len - skip);
    buf[len - skip] = '\0';
    char *end;
    long s = strtol(buf, &end, 10);
    if (end == buf || *end != ' ' || s < 0 || s >= STORAGE_SLOTS)
        return STORAGE_REDIRECT_NONE;
    char *addr = end + 1;
    char *colon = strrchr(addr, ':');
    if (!colon || (size_t)(colon - addr) >= host_size)
        return STORAGE_REDIRECT_NONE;
    long p = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || *end || p <= 0 || p > 65535)
        return STORAGE_REDIRECT_NONE;
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    *slot = (int)s;
    *port = (int)p;
    return kind;
}
