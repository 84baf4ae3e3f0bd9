/* api/config.h -- the server's configuration: flags, each with an environment twin. */
#ifndef TIDINGS_API_CONFIG_H
#define TIDINGS_API_CONFIG_H

#include "api/client_address.h"
#include "api/rate_limit.h"
#include "fanout/fanout.h"
#include "fanout/live.h"
#include "notify/notify.h"
#include "storage/storage.h"

#include <stddef.h>

/* What one queued event is taken to cost, to turn --stream-buffer (bytes) into a count. */
#define API_STREAM_EVENT_BYTES 512

typedef struct api_config_s {
    char listen[256];            /* --listen / TIDINGS_LISTEN: host:port */
    char redis[1024];            /* --redis / TIDINGS_REDIS: empty means embedded */
    char data_dir[1024];         /* --data-dir / TIDINGS_DATA_DIR */
    char redis_server[1024];     /* --redis-server / TIDINGS_REDIS_SERVER: embedded binary */
    long embedded_maxmemory_mb;  /* --embedded-maxmemory: 0 for half the machine's memory */
    int threads;                 /* --threads: HTTP worker threads */
    size_t max_body;             /* --max-body: bytes */
    int log_level;               /* --log-level: LOG_DEBUG .. LOG_ERROR */
    int log_json;                /* --log-format json */
    int shutdown_grace_ms;       /* --shutdown-grace: wait for in-flight requests */
    int engine;                  /* --engine on|off: run the fan-out engine in this process */
    char cors_origin[256];       /* --cors-origin: Access-Control-Allow-Origin, empty for none */
    int max_streams_per_address; /* --max-streams-per-address: 429 beyond, 0 for no cap */
    int stream_writers;          /* --stream-writers: threads of the SSE fast path, 0 for none */
    int max_connections;         /* --max-connections: 0 for what the open-files limit allows */
    int max_connections_per_address; /* --max-connections-per-address: 0 for no cap */
    int request_deadline_s;          /* --request-deadline: head and body within this, 0 for none */
    api_proxies_t trusted_proxies;   /* --trusted-proxies: whose X-Forwarded-For we believe */
    char metrics_token[256]; /* --metrics-token: GET /metrics needs it as a Bearer; "" open */
    int rate_limits;         /* --rate-limits on|off: off lifts every class's limit */
    api_rate_policy_t rate[API_RATE_CLASSES]; /* --rate-publish, --rate-interact, … */
    long handle_quarantine_s; /* --handle-quarantine-days, in seconds: a left handle's rest */
    int max_following; /* --max-following: accounts one user may follow, 409 beyond; 0 no cap */
    int max_mentions; /* --max-mentions: mentioned users a post notifies, 0..STORAGE_MENTIONS_MAX */
    long clock_offset_ms; /* --clock-offset-ms: the data model's clock runs this far ahead */

    /* Each module's own configuration, filled by its _defaults() (one default per setting)
     * and then by the flags that belong to it. */
    storage_config_t storage;  /* --fanout-shards; url and pool_size are set by main.c */
    fanout_config_t fanout;    /* --fanout-jobs, --fanout-in-flight, --timeline-max,
                                 --notifications-max, --celebrity-threshold, --claim-idle-ms,
                                 --refollow-window, --inactive-days */
    fanout_live_config_t live; /* --heartbeat, --stream-grace-ms, --stream-retention */
    notify_config_t notify;    /* --max-streams, --max-streams-per-user, --stream-buffer */
} api_config_t;

void api_config_defaults(api_config_t *cfg);

/* Reads the environment, then argv (flags win). Returns 0 to run, 1 when --help or
 * --version printed what was asked (exit 0), -EINVAL after printing the error (exit 2). */
int api_config_parse(api_config_t *cfg, int argc, char **argv);

#endif
