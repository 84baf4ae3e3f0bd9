/* api/config.c -- flags and their environment twins; the only reader of argv and environ.
 *
 * Every flag --name has a twin TIDINGS_NAME (dashes become underscores). The environment
 * is applied first, flags after, so a flag wins. Values are checked here, with a message
 * naming the flag, so the rest of the program can trust them.
 */
#include "api/config.h"
#include "api/log.h"
#include "fanout/fanout.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef TIDINGS_VERSION
#define TIDINGS_VERSION "0.0.0"
#endif

#define METRICS_TOKEN_MIN 16 /* a guessable operators' token is no token */

enum {
    OPT_LISTEN = 256,
    OPT_REDIS,
    OPT_DATA_DIR,
    OPT_REDIS_SERVER,
    OPT_EMBEDDED_MAXMEMORY,
    OPT_THREADS,
    OPT_TIMELINE_MAX,
    OPT_NOTIFICATIONS_MAX,
    OPT_CELEBRITY_THRESHOLD,
    OPT_REFOLLOW_WINDOW,
    OPT_HANDLE_QUARANTINE_DAYS,
    OPT_MAX_BODY,
    OPT_LOG_LEVEL,
    OPT_LOG_FORMAT,
    OPT_SHUTDOWN_GRACE,
    OPT_ENGINE,
    OPT_FANOUT_JOBS,
    OPT_FANOUT_SHARDS,
    OPT_FANOUT_IN_FLIGHT,
    OPT_READ_CACHE,
    OPT_CLAIM_IDLE_MS,
    OPT_HEARTBEAT,
    OPT_CORS_ORIGIN,
    OPT_MAX_STREAMS,
    OPT_STREAM_BUFFER,
    OPT_STREAM_GRACE_MS,
    OPT_STREAM_RETENTION,
    OPT_STREAM_WRITERS,
    OPT_MAX_CONNECTIONS,
    OPT_MAX_CONNECTIONS_PER_ADDRESS,
    OPT_REQUEST_DEADLINE,
    OPT_TRUSTED_PROXIES,
    OPT_METRICS_TOKEN,
    OPT_MAX_STREAMS_PER_USER,
    OPT_MAX_STREAMS_PER_ADDRESS,
    OPT_RATE_LIMITS,
    OPT_MAX_FOLLOWING,
    OPT_MAX_MENTIONS,
    OPT_INACTIVE_DAYS,
    OPT_CLOCK_OFFSET_MS,
    OPT_RATE_CLASS, /* OPT_RATE_CLASS + api_rate_class_t: --rate-publish … */
    OPT_RATE_CLASS_END = OPT_RATE_CLASS + API_RATE_CLASSES,
};

static const struct option options[] = {
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"redis", required_argument, NULL, OPT_REDIS},
    {"data-dir", required_argument, NULL, OPT_DATA_DIR},
    {"redis-server", required_argument, NULL, OPT_REDIS_SERVER},
    {"embedded-maxmemory", required_argument, NULL, OPT_EMBEDDED_MAXMEMORY},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"timeline-max", required_argument, NULL, OPT_TIMELINE_MAX},
    {"notifications-max", required_argument, NULL, OPT_NOTIFICATIONS_MAX},
    {"celebrity-threshold", required_argument, NULL, OPT_CELEBRITY_THRESHOLD},
    {"refollow-window", required_argument, NULL, OPT_REFOLLOW_WINDOW},
    {"handle-quarantine-days", required_argument, NULL, OPT_HANDLE_QUARANTINE_DAYS},
    {"max-body", required_argument, NULL, OPT_MAX_BODY},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
    {"shutdown-grace", required_argument, NULL, OPT_SHUTDOWN_GRACE},
    {"engine", required_argument, NULL, OPT_ENGINE},
    {"fanout-jobs", required_argument, NULL, OPT_FANOUT_JOBS},
    {"fanout-shards", required_argument, NULL, OPT_FANOUT_SHARDS},
    {"read-cache", required_argument, NULL, OPT_READ_CACHE},
    {"fanout-in-flight", required_argument, NULL, OPT_FANOUT_IN_FLIGHT},
    {"claim-idle-ms", required_argument, NULL, OPT_CLAIM_IDLE_MS},
    {"heartbeat", required_argument, NULL, OPT_HEARTBEAT},
    {"cors-origin", required_argument, NULL, OPT_CORS_ORIGIN},
    {"max-streams", required_argument, NULL, OPT_MAX_STREAMS},
    {"stream-buffer", required_argument, NULL, OPT_STREAM_BUFFER},
    {"stream-grace-ms", required_argument, NULL, OPT_STREAM_GRACE_MS},
    {"stream-retention", required_argument, NULL, OPT_STREAM_RETENTION},
    {"stream-writers", required_argument, NULL, OPT_STREAM_WRITERS},
    {"max-connections", required_argument, NULL, OPT_MAX_CONNECTIONS},
    {"max-connections-per-address", required_argument, NULL, OPT_MAX_CONNECTIONS_PER_ADDRESS},
    {"request-deadline", required_argument, NULL, OPT_REQUEST_DEADLINE},
    {"trusted-proxies", required_argument, NULL, OPT_TRUSTED_PROXIES},
    {"metrics-token", required_argument, NULL, OPT_METRICS_TOKEN},
    {"max-streams-per-user", required_argument, NULL, OPT_MAX_STREAMS_PER_USER},
    {"max-streams-per-address", required_argument, NULL, OPT_MAX_STREAMS_PER_ADDRESS},
    {"rate-limits", required_argument, NULL, OPT_RATE_LIMITS},
    {"max-following", required_argument, NULL, OPT_MAX_FOLLOWING},
    {"max-mentions", required_argument, NULL, OPT_MAX_MENTIONS},
    {"inactive-days", required_argument, NULL, OPT_INACTIVE_DAYS},
    {"clock-offset-ms", required_argument, NULL, OPT_CLOCK_OFFSET_MS},
    {"rate-publish", required_argument, NULL, OPT_RATE_CLASS + API_RATE_PUBLISH},
    {"rate-interact", required_argument, NULL, OPT_RATE_CLASS + API_RATE_INTERACT},
    {"rate-follow", required_argument, NULL, OPT_RATE_CLASS + API_RATE_FOLLOW},
    {"rate-register", required_argument, NULL, OPT_RATE_CLASS + API_RATE_REGISTER},
    {"rate-read", required_argument, NULL, OPT_RATE_CLASS + API_RATE_READ},
    {"rate-stream", required_argument, NULL, OPT_RATE_CLASS + API_RATE_STREAM},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

static const char usage[] =
    "usage: tidings [options]\n"
    "\n"
    "Social feed fan-out and notification server. Every option also reads an environment\n"
    "variable: --data-dir is TIDINGS_DATA_DIR, and so on; a flag wins over its variable.\n"
    "\n"
    "  --listen HOST:PORT           address to serve HTTP on (127.0.0.1:8080)\n"
    "  --redis URL                  redis://[:password@]host:port[/db] or unix:///path;\n"
    "                               for Redis Cluster, any node or a list of seeds:\n"
    "                               redis://host1:port1,host2:port2;\n"
    "                               unset: start an embedded redis-server (AOF on)\n"
    "  --data-dir DIR               embedded Redis data directory (./tidings-data)\n"
    "  --redis-server PATH          embedded Redis binary (redis-server)\n"
    "  --embedded-maxmemory MB      embedded Redis memory cap; writes are refused (503), never\n"
    "                               evicted, beyond it (half the machine's memory)\n"
    "  --threads N                  HTTP worker threads, 1..256 (one per core, 2 at least)\n"
    "  --timeline-max N             entries kept per home timeline (800)\n"
    "  --notifications-max N        notifications kept per user (1000)\n"
    "  --celebrity-threshold N      followers above which posts merge at read time (10000)\n"
    "  --refollow-window S          a re-follow within S seconds notifies no more (86400; 0: off)\n"
    "  --handle-quarantine-days D   a left user's handle is free again after D days (30; a\n"
    "                               fraction for less than a day; 0: at once)\n"
    "  --inactive-days N            followers not seen for N days get no timeline entries;\n"
    "                               their first request queues a rebuild (30; 0: off)\n"
    "  --clock-offset-ms MS         run the clock MS ahead of the wall clock, for tests of\n"
    "                               time passing; never behind, as ids are time-ordered (0)\n"
    "  --max-body BYTES             largest request body accepted, 413 beyond (65536)\n"
    "  --log-level LEVEL            debug, info, warn or error (info)\n"
    "  --log-format FORMAT          text or json (text)\n"
    "  --shutdown-grace MS          how long shutdown waits for in-flight requests (10000)\n"
    "  --engine on|off              run the fan-out engine in this process (on)\n"
    "  --fanout-jobs N              fan-out jobs worked on at once (64)\n"
    "  --fanout-shards N            job queue streams fanout:{0..N-1}, spread over a\n"
    "                               cluster's nodes; the same N for every process (4)\n"
    "  --fanout-in-flight N         timeline writes the engine keeps outstanding (100000)\n"
    "  --read-cache N               posts (and as many author briefs and relation sets)\n"
    "                               kept in the process for reads, in at most N KiB,\n"
    "                               coherent through Redis' invalidations; one Redis\n"
    "                               node only; 0: off (50000)\n"
    "  --claim-idle-ms MS           take over jobs a dead process left idle this long (30000)\n"
    "  --heartbeat SECONDS          comment sent on idle event streams (15)\n"
    "  --cors-origin ORIGIN         Access-Control-Allow-Origin for browsers on another origin\n"
    "  --max-streams N              event streams open at once, 503 beyond (20000)\n"
    "  --max-streams-per-user N     event streams one user may hold, 429 beyond; 0: no cap (10)\n"
    "  --max-streams-per-address N  event streams one client address may hold, 429 beyond;\n"
    "                               0: no cap (64)\n"
    "  --stream-buffer BYTES        queued per stream before a slow reader is cut off (262144)\n"
    "  --stream-grace-ms MS         a user counts as connected this long after their last\n"
    "                               stream: events are published live to them (300000)\n"
    "  --stream-retention SECONDS   a user's event log is kept this long after their last\n"
    "                               stream: a reconnect within it replays what was missed\n"
    "                               instead of a reset (3600)\n"
    "  --stream-writers N           threads writing live events to idle streams; 0: only\n"
    "                               libmicrohttpd's resume path (one per CPU, at most 16)\n"
    "  --max-connections N          HTTP connections at once; 0: what the open-files limit\n"
    "                               leaves after a reserve for Redis and the rest (0)\n"
    "  --max-connections-per-address N\n"
    "                               connections one client address may hold; 0: no cap (128)\n"
    "  --request-deadline SECONDS   a request's head and body must arrive within this from\n"
    "                               the connection's start or its previous answer; 0: none (10)\n"
    "  --trusted-proxies LIST       reverse proxies (addresses or CIDRs, comma-separated)\n"
    "                               whose X-Forwarded-For names the client; exempt from the\n"
    "                               per-address cap (none)\n"
    "  --rate-limits on|off         rate limits per user (per client address for\n"
    "                               registration), shared through Redis; off: none (on)\n"
    "  --rate-publish COUNT/UNIT[:BURST]  posts, replies, deletes (300/h:30); UNIT is s, m\n"
    "                               or h; BURST (at most ten times COUNT) defaults to COUNT;\n"
    "                               off: no limit for the class\n"
    "  --rate-interact SPEC         likes, reposts and their undoing (1200/h:120)\n"
    "  --rate-follow SPEC           follows, blocks, mutes and their undoing (400/h:60)\n"
    "  --rate-register SPEC         new accounts per client address (60/h:20)\n"
    "  --rate-read SPEC             reads and marking notifications read (3600/m:600)\n"
    "  --rate-stream SPEC           event streams opened (60/m:20)\n"
    "  --max-following N            accounts one user may follow, 409 beyond; 0: no cap (5000)\n"
    "  --max-mentions N             mentioned users one post notifies, the first N; the text\n"
    "                               keeps the others, unnotified; 0..20 (10)\n"
    "  --metrics-token TOKEN        GET /metrics answers only with Authorization: Bearer\n"
    "                               TOKEN (set it through TIDINGS_METRICS_TOKEN, which ps does\n"
    "                               not show); unset: /metrics is open\n"
    "  -h, --help                   this text\n"
    "  -V, --version                the version\n";

/* One HTTP thread per core (two at least): a request waiting for Redis parks its fiber, not
 * its thread, so more threads than cores only take turns. With four on two cores, the
 * timeline read's p99 was 51-85 ms against 5-14 with two, at the same rate (issue 17). */
static int default_threads(void)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    return cores < 2 ? 2 : cores > 256 ? 256 : (int)cores;
}

void api_config_defaults(api_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    snprintf(cfg->listen, sizeof(cfg->listen), "127.0.0.1:8080");
    snprintf(cfg->data_dir, sizeof(cfg->data_dir), "./tidings-data");
    snprintf(cfg->redis_server, sizeof(cfg->redis_server), "redis-server");
    storage_config_defaults(&cfg->storage);
    fanout_config_defaults(&cfg->fanout);
    fanout_live_config_defaults(&cfg->live);
    notify_config_defaults(&cfg->notify);
    cfg->threads = default_threads();
    cfg->max_body = 64 * 1024;
    cfg->log_level = LOG_INFO;
    cfg->log_json = 0;
    cfg->shutdown_grace_ms = 10000;
    cfg->engine = 1;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN); /* the sends are CPU work: one writer a core */
    cfg->stream_writers = cpus < 1 ? 1 : cpus > 16 ? 16 : (int)cpus;
    cfg->max_streams_per_address = 64;
    cfg->rate_limits = 1;
    api_rate_policy_defaults(cfg->rate);
    cfg->max_connections = 0;
    cfg->max_connections_per_address = 128;
    cfg->request_deadline_s = 10;
    cfg->max_following = 5000;
    cfg->handle_quarantine_s = 30 * 86400;
    cfg->max_mentions = 10;
}

static int parse_int(const char *name, const char *value, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (errno || end == value || *end || v < min || v > max) {
        fprintf(stderr, "tidings: --%s must be an integer from %ld to %ld, not '%s'\n", name, min,
                max, value);
        return -EINVAL;
    }
    *out = v;
    return 0;
}

static int copy_value(const char *name, char *dst, size_t size, const char *value)
{
    if (strlen(value) >= size) {
        fprintf(stderr, "tidings: --%s is too long\n", name);
        return -EINVAL;
    }
    memcpy(dst, value, strlen(value) + 1);
    return 0;
}

static int apply(api_config_t *cfg, int opt, const char *value)
{
    const char *name = NULL;
    for (const struct option *o = options; o->name; o++)
        if (o->val == opt)
            name = o->name;
    long v = 0;
    int rc = 0;
    if (opt >= OPT_RATE_CLASS && opt < OPT_RATE_CLASS_END) {
        if (api_rate_policy_parse(value, &cfg->rate[opt - OPT_RATE_CLASS]) != 0) {
            fprintf(stderr,
                    "tidings: --%s must be COUNT/UNIT[:BURST] (UNIT s, m or h; BURST up to ten "
                    "times COUNT) or off, not '%s'\n",
                    name, value);
            return -EINVAL;
        }
        return 0;
    }
    switch (opt) {
    case OPT_LISTEN:
        if (!strchr(value, ':')) {
            fprintf(stderr, "tidings: --listen must be HOST:PORT, not '%s'\n", value);
            return -EINVAL;
        }
        return copy_value(name, cfg->listen, sizeof(cfg->listen), value);
    case OPT_REDIS:
        if (*value && strncmp(value, "redis://", 8) != 0 && strncmp(value, "unix:///", 8) != 0) {
            char shown[sizeof(cfg->redis)];
            log_redact_url(value, shown, sizeof(shown));
            fprintf(stderr, "tidings: --redis must start with redis:// or unix:///, not '%s'\n",
                    shown);
            return -EINVAL;
        }
        return copy_value(name, cfg->redis, sizeof(cfg->redis), value);
    case OPT_DATA_DIR:
        return copy_value(name, cfg->data_dir, sizeof(cfg->data_dir), value);
    case OPT_REDIS_SERVER:
        return copy_value(name, cfg->redis_server, sizeof(cfg->redis_server), value);
    case OPT_EMBEDDED_MAXMEMORY:
        rc = parse_int(name, value, 16, 64L * 1024 * 1024, &v);
        cfg->embedded_maxmemory_mb = v;
        break;
    case OPT_THREADS:
        rc = parse_int(name, value, 1, 256, &v);
        cfg->threads = (int)v;
        break;
    case OPT_TIMELINE_MAX:
        rc = parse_int(name, value, 1, 100000, &v);
        cfg->fanout.timeline_max = (int)v;
        break;
    case OPT_NOTIFICATIONS_MAX:
        rc = parse_int(name, value, 1, 100000, &v);
        cfg->fanout.notifications_max = (int)v;
        break;
    case OPT_CELEBRITY_THRESHOLD:
        rc = parse_int(name, value, 1, INT_MAX, &v);
        cfg->fanout.celebrity_threshold = (int)v;
        break;
    case OPT_HANDLE_QUARANTINE_DAYS: {
        char *end;
        double days = strtod(value, &end);
        if (end == value || *end || !(days >= 0 && days <= 3650)) {
            fprintf(stderr, "tidings: --%s must be a number of days from 0 to 3650, not '%s'\n",
                    name, value);
            return -EINVAL;
        }
        long s = (long)(days * 86400 + 0.5);
        cfg->handle_quarantine_s = days > 0 && s < 1 ? 1 : s;
        return 0;
    }
    case OPT_INACTIVE_DAYS:
        rc = parse_int(name, value, 0, 3650, &v);
        cfg->fanout.inactive_days = (int)v;
        break;
    case OPT_CLOCK_OFFSET_MS:
        rc = parse_int(name, value, 0, 10L * 366 * 86400 * 1000, &v);
        cfg->clock_offset_ms = v;
        break;
    case OPT_REFOLLOW_WINDOW:
        rc = parse_int(name, value, 0, 366L * 86400, &v);
        cfg->fanout.refollow_window_s = (int)v;
        break;
    case OPT_MAX_BODY:
        rc = parse_int(name, value, 256, 64L * 1024 * 1024, &v);
        cfg->max_body = (size_t)v;
        break;
    case OPT_SHUTDOWN_GRACE:
        rc = parse_int(name, value, 0, 600000, &v);
        cfg->shutdown_grace_ms = (int)v;
        break;
    case OPT_ENGINE:
        if (strcmp(value, "on") != 0 && strcmp(value, "off") != 0) {
            fprintf(stderr, "tidings: --engine must be on or off\n");
            return -EINVAL;
        }
        cfg->engine = strcmp(value, "on") == 0;
        break;
    case OPT_FANOUT_JOBS:
        rc = parse_int(name, value, 1, 4096, &v);
        cfg->fanout.max_jobs = (int)v;
        break;
    case OPT_FANOUT_SHARDS:
        rc = parse_int(name, value, 1, STORAGE_MAX_SHARDS, &v);
        cfg->storage.fanout_shards = (int)v;
        break;
    case OPT_READ_CACHE:
        rc = parse_int(name, value, 0, 10000000, &v);
        cfg->storage.read_cache = (size_t)v;
        break;
    case OPT_FANOUT_IN_FLIGHT:
        rc = parse_int(name, value, 2000, 1000000, &v);
        cfg->fanout.max_in_flight = (int)v;
        break;
    case OPT_CLAIM_IDLE_MS:
        rc = parse_int(name, value, 100, 3600000, &v);
        cfg->fanout.claim_idle_ms = (int)v;
        break;
    case OPT_HEARTBEAT:
        rc = parse_int(name, value, 1, 3600, &v);
        cfg->live.heartbeat_ms = (int)v * 1000;
        break;
    case OPT_CORS_ORIGIN:
        return copy_value(name, cfg->cors_origin, sizeof(cfg->cors_origin), value);
    case OPT_MAX_STREAMS:
        rc = parse_int(name, value, 1, 1000000, &v);
        cfg->notify.max_streams = (size_t)v;
        break;
    case OPT_STREAM_BUFFER:
        rc = parse_int(name, value, 4096, 64L * 1024 * 1024, &v);
        cfg->notify.queue_max = (size_t)v / API_STREAM_EVENT_BYTES;
        break;
    case OPT_STREAM_GRACE_MS:
        rc = parse_int(name, value, 1000, 86400000, &v);
        cfg->live.stream_grace_ms = (int)v;
        break;
    case OPT_STREAM_RETENTION:
        rc = parse_int(name, value, 1, 7 * 86400, &v);
        cfg->live.stream_retention_ms = (int64_t)v * 1000;
        break;
    case OPT_STREAM_WRITERS:
        rc = parse_int(name, value, 0, 64, &v);
        cfg->stream_writers = (int)v;
        break;
    case OPT_MAX_CONNECTIONS:
        rc = parse_int(name, value, 0, 1000000, &v);
        cfg->max_connections = (int)v;
        break;
    case OPT_MAX_CONNECTIONS_PER_ADDRESS:
        rc = parse_int(name, value, 0, 1000000, &v);
        cfg->max_connections_per_address = (int)v;
        break;
    case OPT_REQUEST_DEADLINE:
        rc = parse_int(name, value, 0, 3600, &v);
        cfg->request_deadline_s = (int)v;
        break;
    case OPT_TRUSTED_PROXIES:
        if (api_proxies_parse(value, &cfg->trusted_proxies) != 0) {
            fprintf(stderr,
                    "tidings: --trusted-proxies must be up to %d comma-separated addresses or "
                    "CIDRs (10.0.0.0/8, ::1), not '%s'\n",
                    API_PROXIES_MAX, value);
            return -EINVAL;
        }
        break;
    case OPT_MAX_STREAMS_PER_USER:
        rc = parse_int(name, value, 0, 1000000, &v);
        cfg->notify.max_streams_per_user = (size_t)v;
        break;
    case OPT_MAX_FOLLOWING:
        rc = parse_int(name, value, 0, 10000000, &v);
        cfg->max_following = (int)v;
        break;
    case OPT_MAX_MENTIONS:
        rc = parse_int(name, value, 0, STORAGE_MENTIONS_MAX, &v);
        cfg->max_mentions = (int)v;
        break;
    case OPT_MAX_STREAMS_PER_ADDRESS:
        rc = parse_int(name, value, 0, 1000000, &v);
        cfg->max_streams_per_address = (int)v;
        break;
    case OPT_RATE_LIMITS:
        if (strcmp(value, "on") != 0 && strcmp(value, "off") != 0) {
            fprintf(stderr, "tidings: --rate-limits must be on or off\n");
            return -EINVAL;
        }
        cfg->rate_limits = strcmp(value, "on") == 0;
        break;
    case OPT_METRICS_TOKEN:
        if (strlen(value) < METRICS_TOKEN_MIN) {
            fprintf(stderr, "tidings: --metrics-token must be at least %d characters\n",
                    METRICS_TOKEN_MIN);
            return -EINVAL;
        }
        return copy_value(name, cfg->metrics_token, sizeof(cfg->metrics_token), value);
    case OPT_LOG_LEVEL:
        cfg->log_level = log_level_parse(value);
        if (cfg->log_level < 0) {
            fprintf(stderr, "tidings: --log-level must be debug, info, warn or error\n");
            return -EINVAL;
        }
        break;
    case OPT_LOG_FORMAT:
        if (strcmp(value, "text") != 0 && strcmp(value, "json") != 0) {
            fprintf(stderr, "tidings: --log-format must be text or json\n");
            return -EINVAL;
        }
        cfg->log_json = strcmp(value, "json") == 0;
        break;
    }
    return rc;
}

static int apply_environment(api_config_t *cfg)
{
    for (const struct option *o = options; o->name; o++) {
        if (o->has_arg != required_argument)
            continue;
        char var[64] = "TIDINGS_";
        size_t n = strlen(var);
        for (const char *c = o->name; *c && n < sizeof(var) - 1; c++)
            var[n++] = *c == '-' ? '_' : (char)toupper((unsigned char)*c);
        var[n] = '\0';
        const char *value = getenv(var);
        if (value && apply(cfg, o->val, value) != 0) {
            fprintf(stderr, "tidings: (from %s)\n", var);
            return -EINVAL;
        }
    }
    return 0;
}

int api_config_parse(api_config_t *cfg, int argc, char **argv)
{
    if (apply_environment(cfg) != 0)
        return -EINVAL;
    optind = 1;
    opterr = 1;
    int opt;
    while ((opt = getopt_long(argc, argv, "hV", options, NULL)) != -1) {
        if (opt == 'h') {
            fputs(usage, stdout);
            return 1;
        }
        if (opt == 'V') {
            printf("tidings %s\n", TIDINGS_VERSION);
            return 1;
        }
        if (opt == '?') {
            fputs(usage, stderr);
            return -EINVAL;
        }
        if (apply(cfg, opt, optarg) != 0)
            return -EINVAL;
    }
    if (optind < argc) {
        fprintf(stderr, "tidings: unexpected argument '%s'\n", argv[optind]);
        return -EINVAL;
    }
    return 0;
}
