/* storage/slots.c -- key slots (CRC16 mod 16384 with hash tags), the key a formatted
 * command addresses, and MOVED/ASK parsing. */
#include "storage/slots.h"

#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

uint16_t storage_crc16(const char *buf, size_t len)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)((uint8_t)buf[i] << 8);
        for (int bit = 0; bit < 8; bit++)
            crc = crc & 0x8000 ? (uint16_t)(crc << 1 ^ 0x1021) : (uint16_t)(crc << 1);
    }
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
    "PING", "ECHO", "AUTH", "SELECT", "INFO", "SCRIPT", "CLUSTER", "ASKING", "READONLY",
    "READWRITE", "MULTI", "EXEC", "DISCARD", "SUBSCRIBE", "UNSUBSCRIBE", "PSUBSCRIBE",
    "PUNSUBSCRIBE", "PUBLISH", "CLIENT", "CONFIG", "DBSIZE", "FLUSHDB", "FLUSHALL", "TIME",
    "COMMAND", "HELLO", "WAIT", "SHUTDOWN", "DEBUG", "SLOWLOG", "FUNCTION", NULL};
/* Scripts: the keys follow numkeys. */
static const char *const scripts[] = {"EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL",
                                      "FCALL_RO", NULL};
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
            strtol(arg, NULL, 10) <= 0)
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
