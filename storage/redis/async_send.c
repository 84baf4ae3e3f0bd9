/* storage/redis/async_send.c -- commands on the async connections: each to its slot's node,
 * redirects followed, one completion per command or per group of commands, and the
 * per-node split of scripts over many users' keys. Loop thread only.
 */
#include "storage/redis/redis_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define REDIRECTS_MAX 5
#define RETRY_REFRESH_MS 100

/* ---- commands --------------------------------------------------------------------------- */

typedef struct acmd_s {
    storage_redis_async_t *sa;
    storage_redis_reply_cb fn;
    void *priv;
    storage_redis_role_t which;
    int redirects;
    bool evalsha; /* sent as EVALSHA (cmd holds the EVAL) */
    size_t len;
    char cmd[]; /* the formatted command, kept to follow a redirect */
} acmd_t;

static const char asking_cmd[] = "*1\r\n$6\r\nASKING\r\n";

/* The connection a command for slot goes out on, or NULL. */
static aconn_t *route(storage_redis_async_t *sa, storage_redis_role_t which, int slot)
{
    if (which == STORAGE_REDIS_READER) {
        for (int i = 0; i < sa->n_readers; i++)
            if (sa->reader_slot[i] == slot)
                return sa->reader[i];
        return NULL;
    }
    pthread_mutex_lock(&sa->cfg->mu);
    int node = sa->cfg->slot_node[slot < 0 ? 0 : slot];
    pthread_mutex_unlock(&sa->cfg->mu);
    return sa->writer[node];
}

static void trampoline(redisAsyncContext *ac, void *reply, void *privdata);

static bool is_noscript(const redisReply *r)
{
    return r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0;
}

/* Follows a MOVED or ASK reply; true when the command went out again. */
static bool redirect(acmd_t *cmd, const aconn_t *from, const redisReply *r)
{
    storage_redis_async_t *sa = cmd->sa;
    int slot, port;
    char host[108];
    storage_redirect_t kind =
        storage_redirect_parse(r->str, r->len, &slot, host, sizeof(host), &port);
    if (kind == STORAGE_REDIRECT_NONE || sa->closing || cmd->redirects >= REDIRECTS_MAX)
        return false;
    if (!host[0]) /* a node without an endpoint: the one that replied */
        snprintf(host, sizeof(host), "%s", sa->cfg->nodes[from->node].host);
    int node;
    if (kind == STORAGE_REDIRECT_MOVED) {
        node = storage_redis__topology_moved(sa->cfg, slot, host, port);
        storage_redis__async_refresh_soon(sa, 0);
    } else {
        pthread_mutex_lock(&sa->cfg->mu);
        node = storage_redis__node_find_or_add(sa->cfg, host, port);
        pthread_mutex_unlock(&sa->cfg->mu);
    }
    /* Readers follow the map on the next arrangement; only writers are resent. */
    if (node < 0 || cmd->which != STORAGE_REDIS_WRITER)
        return false;
    aconn_t *c = storage_redis__writer_for(sa, node);
    if (!c || !c->ac)
        return false;
    if (kind == STORAGE_REDIRECT_ASK &&
        redisAsyncFormattedCommand(c->ac, NULL, NULL, asking_cmd, sizeof(asking_cmd) - 1) !=
            REDIS_OK)
        return false;
    cmd->redirects++;
    return redisAsyncFormattedCommand(c->ac, trampoline, cmd, cmd->cmd, cmd->len) == REDIS_OK;
}

static void trampoline(redisAsyncContext *ac, void *reply, void *privdata)
{
    acmd_t *cmd = privdata;
    storage_redis_async_t *sa = cmd->sa;
    redisReply *r = reply;
    int status = !r                             ? (sa->closing ? -ECANCELED : -EAGAIN)
                 : r->type == REDIS_REPLY_ERROR ? -EIO
                                                : 0;
    if (status == -EIO && cmd->evalsha && is_noscript(r)) {
        cmd->evalsha = false; /* the script is gone (SCRIPT FLUSH): send it whole */
        if (redisAsyncFormattedCommand(ac, trampoline, cmd, cmd->cmd, cmd->len) == REDIS_OK)
            return;
    }
    if (status == -EIO) {
        if (redirect(cmd, ac->data, r))
            return;
        /* A failover or resharding in progress: nothing happened, try again later. */
        if (strncmp(r->str, "CLUSTERDOWN", 11) == 0 || strncmp(r->str, "TRYAGAIN", 8) == 0 ||
            strncmp(r->str, "MOVED", 5) == 0) {
            status = -EAGAIN;
            storage_redis__async_refresh_soon(sa, RETRY_REFRESH_MS);
        } else if (storage_redis_error_is_transient(r)) {
            status = storage_redis_error_status(r);
        }
    }
    sa->in_flight--;
    cmd->fn(cmd->priv, status, status == -EAGAIN ? NULL : r);
    free(cmd);
}

/* ---- EVAL as EVALSHA ---------------------------------------------------------------------
 * Redis reads and hashes an EVAL's body on every call. A formatted EVAL goes out as EVALSHA
 * instead, its script loaded on the connection first (SCRIPT LOAD, once per connection:
 * ahead of it on the same connection, so the EVALSHA can only find it). A NOSCRIPT (a
 * SCRIPT FLUSH since) sends the EVAL itself, which the command keeps for redirects too. */

static const char eval_head[] = "$4\r\nEVAL\r\n";

/* Where formatted's script body starts and how long it is, when it is an EVAL; *rest: the
 * arguments after the body. */
static bool eval_body(const char *f, size_t len, const char **body, size_t *body_len,
                      const char **rest)
{
    const char *p = memchr(f, '\n', len);
    size_t head = sizeof(eval_head) - 1;
    if (!p || (size_t)(f + len - ++p) < head || memcmp(p, eval_head, head) != 0)
        return false;
    p += head;
    if (p >= f + len || *p != '$')
        return false;
    char *end;
    unsigned long n = strtoul(p + 1, &end, 10);
    if (end + 2 > f + len || end[0] != '\r' || end[1] != '\n' || (size_t)(f + len - end) < n + 4)
        return false;
    *body = end + 2;
    *body_len = n;
    *rest = end + 2 + n + 2;
    return true;
}

/* The EVALSHA of formatted on c (malloc'd, *out_len), with its SCRIPT LOAD sent first when c
 * has not loaded it; NULL when formatted is no EVAL or the script table is full. */
static char *as_evalsha(aconn_t *c, const char *f, size_t len, size_t *out_len)
{
    const char *body, *rest;
    size_t body_len;
    char sha[41];
    if (!eval_body(f, len, &body, &body_len, &rest))
        return NULL;
    int k = storage_redis__script_index(body, body_len, sha);
    if (k < 0)
        return NULL;
    uint64_t bit = 1ULL << (k % 64);
    if (!(c->scripts_loaded[k / 64] & bit)) {
        char *load = NULL;
        const char *argv[] = {"SCRIPT", "LOAD", body};
        size_t lens[] = {6, 4, body_len};
        int n = redisFormatCommandArgv(&load, 3, argv, lens);
        bool sent =
            n > 0 && redisAsyncFormattedCommand(c->ac, NULL, NULL, load, (size_t)n) == REDIS_OK;
        redisFreeCommand(load);
        if (!sent)
            return NULL;
        c->scripts_loaded[k / 64] |= bit;
    }
    const char *count_end = memchr(f, '\n', len) + 1; /* "*<n>\r\n" */
    size_t head = (size_t)(count_end - f), tail = (size_t)(f + len - rest);
    static const char sha_head[] = "$7\r\nEVALSHA\r\n$40\r\n";
    char *out = malloc(head + sizeof(sha_head) - 1 + 40 + 2 + tail);
    if (!out)
        return NULL;
    char *p = out;
    memcpy(p, f, head);
    p += head;
    memcpy(p, sha_head, sizeof(sha_head) - 1);
    p += sizeof(sha_head) - 1;
    memcpy(p, sha, 40);
    p += 40;
    memcpy(p, "\r\n", 2);
    p += 2;
    memcpy(p, rest, tail);
    p += tail;
    *out_len = (size_t)(p - out);
    return out;
}

/* Sends a formatted command; fn fires exactly once unless this returns non-zero. */
static int send_formatted(storage_redis_async_t *sa, storage_redis_role_t which,
                          storage_redis_reply_cb fn, void *priv, const char *formatted, size_t len)
{
    if (sa->closing)
        return -ECANCELED;
    aconn_t *c = route(sa, which, storage_command_slot(formatted, len));
    if (!c || !c->ac || !c->connected)
        return -EAGAIN;
    acmd_t *cmd = malloc(sizeof(*cmd) + len);
    if (!cmd)
        return -ENOMEM;
    *cmd = (acmd_t){.sa = sa, .fn = fn, .priv = priv, .which = which, .len = len};
    memcpy(cmd->cmd, formatted, len);
    size_t sha_len = 0;
    char *sha_cmd =
        c->role == STORAGE_REDIS_WRITER ? as_evalsha(c, formatted, len, &sha_len) : NULL;
    if (sha_cmd) {
        cmd->evalsha = true;
        int ok = redisAsyncFormattedCommand(c->ac, trampoline, cmd, sha_cmd, sha_len);
        free(sha_cmd);
        if (ok != REDIS_OK) {
            free(cmd);
            return -ENOMEM;
        }
        sa->in_flight++;
        return 0;
    }
    if (redisAsyncFormattedCommand(c->ac, trampoline, cmd, formatted, len) != REDIS_OK) {
        free(cmd);
        return -ENOMEM;
    }
    sa->in_flight++;
    return 0;
}

int storage_redis_send(storage_redis_async_t *sa, storage_redis_role_t which,
                       storage_redis_reply_cb fn, void *priv, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *cmd = NULL;
    int len = redisvFormatCommand(&cmd, fmt, ap);
    va_end(ap);
    if (len < 0)
        return -ENOMEM;
    int rc = send_formatted(sa, which, fn, priv, cmd, (size_t)len);
    redisFreeCommand(cmd);
    return rc;
}

int storage_redis_send_argv(storage_redis_async_t *sa, storage_redis_role_t which,
                            storage_redis_reply_cb fn, void *priv, int argc, const char **argv,
                            const size_t *lens)
{
    char *cmd = NULL;
    int len = redisFormatCommandArgv(&cmd, argc, argv, lens);
    if (len < 0)
        return -ENOMEM;
    int rc = send_formatted(sa, which, fn, priv, cmd, (size_t)len);
    redisFreeCommand(cmd);
    return rc;
}

/* ---- groups: many commands, one completion ---------------------------------------------- */

storage_redis_group_t *storage_redis_group_new(storage_redis_async_t *sa, void (*cb)(void *, int),
                                               void *arg)
{
    storage_redis_group_t *g = calloc(1, sizeof(*g));
    if (g) {
        g->client = sa;
        g->cb = cb;
        g->arg = arg;
        g->pending = 1; /* the submitter's own reference, dropped by storage_redis_group_end */
    }
    return g;
}

void storage_redis_group_unref(storage_redis_group_t *g)
{
    if (--g->pending > 0)
        return;
    g->cb(g->arg, g->status);
    free(g);
}

static void group_reply(void *priv, int status, redisReply *r)
{
    storage_redis_group_t *g = priv;
    if (status && !g->status)
        g->status = status;
    if (!status && g->sum && r && r->type == REDIS_REPLY_INTEGER && r->integer > 0)
        *g->sum += (size_t)r->integer;
    storage_redis_group_unref(g);
}

static void group_send(storage_redis_group_t *g, char *cmd, int len)
{
    if (len < 0) {
        g->status = -ENOMEM;
        return;
    }
    int rc = send_formatted(g->client, STORAGE_REDIS_WRITER, group_reply, g, cmd, (size_t)len);
    redisFreeCommand(cmd);
    if (rc)
        g->status = rc;
    else
        g->pending++;
}

void storage_redis_group_add(storage_redis_group_t *g, const char *fmt, ...)
{
    if (g->status)
        return;
    va_list ap;
    va_start(ap, fmt);
    char *cmd = NULL;
    int len = redisvFormatCommand(&cmd, fmt, ap);
    va_end(ap);
    group_send(g, cmd, len);
}

void storage_redis_group_add_argv(storage_redis_group_t *g, int argc, const char **argv)
{
    if (g->status)
        return;
    char *cmd = NULL;
    int len = redisFormatCommandArgv(&cmd, argc, argv, NULL);
    group_send(g, cmd, len);
}

int storage_redis_group_end(storage_redis_group_t *g)
{
    /* A group that failed before sending anything reports to its caller, not its callback. */
    if (g->status && g->pending == 1) {
        int rc = g->status;
        free(g);
        return rc;
    }
    storage_redis_group_unref(g);
    return 0;
}

/* ---- one script call per node ---------------------------------------------------------------- */

/* The decimal digits of v into buf (no NUL); returns how many. */
static size_t u64_digits(uint64_t v, char *buf)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    return n;
}

/* The node of a user whose id's digits are given: their hash tag is the id. Caller holds
 * the storage's lock. */
static int user_node_locked(const storage_redis_t *s, const char *digits, size_t len)
{
    return s->slot_node[storage_crc16(digits, len) & (STORAGE_SLOTS - 1)];
}

int storage_redis_async_user_node(storage_redis_async_t *sa, uint64_t user)
{
    char digits[20];
    size_t len = u64_digits(user, digits);
    pthread_mutex_lock(&sa->cfg->mu);
    int node = user_node_locked(sa->cfg, digits, len);
    pthread_mutex_unlock(&sa->cfg->mu);
    return node;
}

bool storage_redis_async_one_node(storage_redis_async_t *sa, int *node)
{
    const storage_redis_t *s = sa->cfg;
    pthread_mutex_lock(&sa->cfg->mu);
    /* Each slot's node equals the next one's: all are the first's. */
    bool one = s->topology_known && memcmp(s->slot_node, s->slot_node + 1, STORAGE_SLOTS - 1) == 0;
    *node = s->slot_node[0];
    pthread_mutex_unlock(&sa->cfg->mu);
    return one;
}

/* Keys per script call. A call publishes its live message when it ends, so smaller calls
 * let the streams of the first followers be written while Redis appends the rest. */
#ifndef EVAL_KEYS_PER_CALL
#define EVAL_KEYS_PER_CALL 1000
#endif

void storage_redis_group_eval_by_node(storage_redis_group_t *g, const char *script,
                                      const char *key_fmt, const uint64_t *users, size_t n,
                                      int nargs, const char **args)
{
    storage_redis_async_t *sa = g->client;
    /* key_fmt is "<prefix>{%llu}": keys are built by hand, since this runs per follower. */
    size_t prefix = strcspn(key_fmt, "{");
    int *node = malloc((n ? n : 1) * sizeof(*node));
    bool *sent = calloc(n ? n : 1, sizeof(*sent));
    const char **argv = malloc((n + (size_t)nargs + 6) * sizeof(*argv));
    char(*keys)[48] = malloc((n ? n : 1) * sizeof(*keys));
    if (!node || !sent || !argv || !keys || prefix > 16) {
        if (!g->status)
            g->status = -ENOMEM;
        n = 0;
    }
    pthread_mutex_lock(&sa->cfg->mu);
    for (size_t i = 0; i < n; i++) {
        char *k = keys[i];
        memcpy(k, key_fmt, prefix);
        k[prefix] = '{';
        size_t d = u64_digits(users[i], k + prefix + 1);
        memcpy(k + prefix + 1 + d, "}", 2);
        node[i] = user_node_locked(sa->cfg, k + prefix + 1, d);
    }
    pthread_mutex_unlock(&sa->cfg->mu);
    for (size_t first = 0; first < n; first++) {
        if (sent[first])
            continue;
        char count[24], channel[32];
        size_t a = 0, k = 0;
        argv[a++] = "EVAL";
        argv[a++] = script;
        argv[a++] = "1";
        argv[a++] = keys[first]; /* declared, so the call is routed (and redirected) by it */
        argv[a++] = count;
        for (size_t i = first; i < n && k < EVAL_KEYS_PER_CALL; i++)
            if (node[i] == node[first] && !sent[i]) {
                argv[a++] = keys[i];
                sent[i] = true;
                k++;
            }
        snprintf(count, sizeof(count), "%zu", k);
        for (int i = 0; i < nargs; i++)
            argv[a++] = args[i];
        storage_redis_live_channel(sa->cfg, node[first], channel, sizeof(channel));
        argv[a++] = channel;
        storage_redis_group_add_argv(g, (int)a, argv);
    }
    free(node);
    free(sent);
    free(argv);
    free(keys);
}
