/* storage/pool.c -- a pool of synchronous hiredis connections and the batch runner.
 *
 * HTTP threads call Redis synchronously (a loopback round trip is tens of microseconds).
 * The pool keeps up to pool_size idle connections. When a connection breaks, the pool's
 * generation moves on so that every idle connection opened before is dropped instead of
 * failing one request each. Connect attempts back off exponentially (100 ms .. 2 s); in
 * between, callers fail fast with -EAGAIN so requests answer 503 instead of waiting.
 */
#include "storage/storage_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000

uint64_t storage__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static struct timeval ms_to_tv(int ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    return tv;
}

void storage_config_defaults(storage_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->url = "redis://127.0.0.1:6379";
    cfg->pool_size = 64;
    cfg->connect_timeout_ms = 1000;
    cfg->command_timeout_ms = 2000;
    cfg->fanout_shards = 1;
}

/* Accepts redis://[[user]:password@]host[:port][/db] and unix:///path. */
static int parse_url(storage_t *s, const char *url)
{
    s->port = 6379;
    if (strncmp(url, "unix://", 7) == 0) {
        if (url[7] != '/')
            return -EINVAL;
        s->unix_path = strdup(url + 7);
        return s->unix_path ? 0 : -ENOMEM;
    }
    if (strncmp(url, "redis://", 8) != 0)
        return -EINVAL;
    const char *p = url + 8;
    const char *at = strchr(p, '@');
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon) {
            s->password = strndup(colon + 1, (size_t)(at - colon - 1));
            if (!s->password)
                return -ENOMEM;
        }
        p = at + 1;
    }
    size_t hostlen = strcspn(p, ":/");
    if (hostlen == 0)
        return -EINVAL;
    s->host = strndup(p, hostlen);
    if (!s->host)
        return -ENOMEM;
    p += hostlen;
    if (*p == ':') {
        char *end;
        long port = strtol(p + 1, &end, 10);
        if (end == p + 1 || port <= 0 || port > 65535)
            return -EINVAL;
        s->port = (int)port;
        p = end;
    }
    if (*p == '/' && p[1]) {
        char *end;
        long db = strtol(p + 1, &end, 10);
        if (*end || db < 0)
            return -EINVAL;
        s->db = (int)db;
    } else if (*p && strcmp(p, "/") != 0) {
        return -EINVAL;
    }
    return 0;
}

storage_t *storage_create(const storage_config_t *cfg)
{
    storage_t *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->pool_size = cfg->pool_size > 0 ? cfg->pool_size : 1;
    s->connect_timeout_ms = cfg->connect_timeout_ms;
    s->command_timeout_ms = cfg->command_timeout_ms;
    s->fanout_shards = cfg->fanout_shards > 0 ? cfg->fanout_shards : 1;
    s->idle = calloc((size_t)s->pool_size, sizeof(*s->idle));
    if (!s->idle || parse_url(s, cfg->url ? cfg->url : "") != 0) {
        storage_destroy(s);
        return NULL;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->id_mu, NULL);
    atomic_init(&s->up, false);
    atomic_init(&s->reconnects, 0);
    atomic_init(&s->node, -1);
    return s;
}

static void conn_free(storage__conn_t *c)
{
    if (c) {
        redisFree(c->c);
        free(c);
    }
}

void storage_destroy(storage_t *s)
{
    if (!s)
        return;
    if (s->idle) {
        for (size_t i = 0; i < s->n_idle; i++)
            conn_free(s->idle[i]);
        free(s->idle);
        pthread_mutex_destroy(&s->mu);
        pthread_mutex_destroy(&s->id_mu);
    }
    free(s->host);
    free(s->unix_path);
    free(s->password);
    free(s);
}

bool storage_is_up(const storage_t *s)
{
    return atomic_load(&s->up);
}

uint64_t storage_reconnects(const storage_t *s)
{
    return atomic_load(&s->reconnects);
}

static bool command_ok(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    bool ok = r && r->type != REDIS_REPLY_ERROR;
    if (r)
        freeReplyObject(r);
    return ok;
}

static redisContext *connect_one(storage_t *s)
{
    struct timeval tv = ms_to_tv(s->connect_timeout_ms);
    redisContext *c = s->unix_path ? redisConnectUnixWithTimeout(s->unix_path, tv)
                                   : redisConnectWithTimeout(s->host, s->port, tv);
    if (!c || c->err)
        goto fail;
    if (redisSetTimeout(c, ms_to_tv(s->command_timeout_ms)) != REDIS_OK)
        goto fail;
    if (!s->unix_path)
        redisEnableKeepAlive(c);
    if (s->password && !command_ok(c, "AUTH %s", s->password))
        goto fail;
    if (s->db && !command_ok(c, "SELECT %d", s->db))
        goto fail;
    return c;
fail:
    if (c)
        redisFree(c);
    return NULL;
}

/* Returns a connection (*fresh tells whether it was just opened) or NULL when Redis is
 * unreachable or we are still backing off. */
static storage__conn_t *acquire(storage_t *s, bool *fresh)
{
    pthread_mutex_lock(&s->mu);
    while (s->n_idle > 0) {
        storage__conn_t *c = s->idle[--s->n_idle];
        if (c->gen == s->gen) {
            pthread_mutex_unlock(&s->mu);
            *fresh = false;
            return c;
        }
        conn_free(c);
    }
    if (monotonic_ms() < s->next_attempt_ms) {
        pthread_mutex_unlock(&s->mu);
        return NULL;
    }
    unsigned gen = s->gen;
    pthread_mutex_unlock(&s->mu);

    redisContext *rc = connect_one(s);
    storage__conn_t *c = rc ? malloc(sizeof(*c)) : NULL;
    pthread_mutex_lock(&s->mu);
    if (!c) {
        if (rc)
            redisFree(rc);
        s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : BACKOFF_MIN_MS;
        if (s->backoff_ms > BACKOFF_MAX_MS)
            s->backoff_ms = BACKOFF_MAX_MS;
        s->next_attempt_ms = monotonic_ms() + (uint64_t)s->backoff_ms;
        atomic_store(&s->up, false);
        pthread_mutex_unlock(&s->mu);
        return NULL;
    }
    if (!atomic_load(&s->up))
        atomic_fetch_add(&s->reconnects, 1);
    s->backoff_ms = 0;
    s->next_attempt_ms = 0;
    atomic_store(&s->up, true);
    pthread_mutex_unlock(&s->mu);
    c->c = rc;
    c->gen = gen;
    *fresh = true;
    return c;
}

static void release(storage_t *s, storage__conn_t *c, bool broken)
{
    pthread_mutex_lock(&s->mu);
    if (broken) {
        s->gen++;
        atomic_store(&s->up, false);
    } else if (c->gen == s->gen && s->n_idle < (size_t)s->pool_size) {
        s->idle[s->n_idle++] = c;
        c = NULL;
    }
    pthread_mutex_unlock(&s->mu);
    conn_free(c);
}

/* ---- batches ------------------------------------------------------------------------- */

void storage__batch_init(storage__batch_t *b, storage_t *s)
{
    memset(b, 0, sizeof(*b));
    b->s = s;
}

static bool batch_reserve(storage__batch_t *b)
{
    if (b->n < b->cap)
        return true;
    size_t cap = b->cap ? b->cap * 2 : STORAGE__BATCH_INLINE;
    char **cmds = realloc(b->cmds, cap * sizeof(*cmds));
    if (!cmds)
        return false;
    b->cmds = cmds;
    size_t *lens = realloc(b->lens, cap * sizeof(*lens));
    if (!lens)
        return false;
    b->lens = lens;
    b->cap = cap;
    return true;
}

static void batch_push(storage__batch_t *b, char *cmd, int len)
{
    if (len < 0 || !cmd) {
        b->err = -ENOMEM;
        return;
    }
    if (!batch_reserve(b)) {
        redisFreeCommand(cmd);
        b->err = -ENOMEM;
        return;
    }
    b->cmds[b->n] = cmd;
    b->lens[b->n] = (size_t)len;
    b->n++;
}

void storage__batch_add(storage__batch_t *b, const char *fmt, ...)
{
    char *cmd = NULL;
    va_list ap;
    va_start(ap, fmt);
    int len = redisvFormatCommand(&cmd, fmt, ap);
    va_end(ap);
    batch_push(b, cmd, len);
}

void storage__batch_addargv(storage__batch_t *b, int argc, const char **argv, const size_t *lens)
{
    char *cmd = NULL;
    int len = redisFormatCommandArgv(&cmd, argc, argv, lens);
    batch_push(b, cmd, len);
}

static void free_replies(storage__batch_t *b)
{
    if (!b->r)
        return;
    for (size_t i = 0; i < b->n; i++)
        if (b->r[i])
            freeReplyObject(b->r[i]);
    free(b->r);
    b->r = NULL;
}

/* Sends every command and reads every reply. Returns false on an I/O error. */
static bool run_on(storage__batch_t *b, redisContext *c)
{
    for (size_t i = 0; i < b->n; i++)
        if (redisAppendFormattedCommand(c, b->cmds[i], b->lens[i]) != REDIS_OK)
            return false;
    for (size_t i = 0; i < b->n; i++) {
        void *reply = NULL;
        if (redisGetReply(c, &reply) != REDIS_OK || !reply)
            return false;
        b->r[i] = reply;
    }
    return true;
}

int storage__batch_run(storage__batch_t *b)
{
    if (b->err)
        return b->err;
    free_replies(b);
    for (int attempt = 0; attempt < 2; attempt++) {
        bool fresh = false;
        storage__conn_t *c = acquire(b->s, &fresh);
        if (!c)
            return -EAGAIN;
        b->r = calloc(b->n ? b->n : 1, sizeof(*b->r));
        if (!b->r) {
            release(b->s, c, false);
            return -ENOMEM;
        }
        bool ok = run_on(b, c->c);
        release(b->s, c, !ok);
        if (ok)
            return 0;
        free_replies(b);
        if (fresh)
            break; /* a connection we just opened failed: Redis is in trouble, not the pool */
    }
    return -EAGAIN;
}

void storage__batch_free(storage__batch_t *b)
{
    free_replies(b);
    for (size_t i = 0; i < b->n; i++)
        redisFreeCommand(b->cmds[i]);
    free(b->cmds);
    free(b->lens);
    memset(b, 0, sizeof(*b));
}

/* ---- replies ------------------------------------------------------------------------- */

bool storage__is_error(const redisReply *r)
{
    return !r || r->type == REDIS_REPLY_ERROR;
}

int64_t storage__int(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_INTEGER ? (int64_t)r->integer : -1;
}

uint64_t storage__parse_u64(const char *p, size_t n)
{
    if (!p || n == 0 || n > 20)
        return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return 0;
        uint64_t d = (uint64_t)(p[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return 0;
        v = v * 10 + d;
    }
    return v;
}

uint64_t storage__uint_str(const redisReply *r)
{
    if (!r || r->type != REDIS_REPLY_STRING)
        return 0;
    return storage__parse_u64(r->str, r->len);
}

int storage__shard(const storage_t *s, uint64_t user)
{
    return (int)(user % (uint64_t)s->fanout_shards);
}

int storage_ping(storage_t *s)
{
    storage__batch_t b;
    storage__batch_init(&b, s);
    storage__batch_add(&b, "PING");
    int rc = storage__batch_run(&b);
    if (rc == 0 && storage__is_error(b.r[0]))
        rc = -EIO;
    storage__batch_free(&b);
    return rc;
}

int storage_prepare(storage_t *s)
{
    storage__batch_t b;
    storage__batch_init(&b, s);
    for (int i = 0; i < s->fanout_shards; i++)
        storage__batch_add(&b, "XGROUP CREATE " K_FANOUT " " FANOUT_GROUP " 0 MKSTREAM", i);
    int rc = storage__batch_run(&b);
    for (size_t i = 0; rc == 0 && i < b.n; i++)
        if (storage__is_error(b.r[i]) && strncmp(b.r[i]->str, "BUSYGROUP", 9) != 0)
            rc = -EIO;
    storage__batch_free(&b);
    return rc;
}
