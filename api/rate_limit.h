/* api/rate_limit.h -- rate limits by route class: a token bucket per user (per client address
 * for routes without a token), shared by every process through Redis, answered with the
 * IETF httpapi RateLimit-Policy / RateLimit headers and 429 beyond. Thread: any. */
#ifndef TIDINGS_API_RATE_LIMIT_H
#define TIDINGS_API_RATE_LIMIT_H

#include <stdbool.h>
#include <stdint.h>

typedef enum {
    API_RATE_NONE = -1, /* not limited (health, metrics, the spec, the demo page) */
    API_RATE_PUBLISH,   /* posts, replies and deletes */
    API_RATE_INTERACT,  /* likes, reposts and their undoing */
    API_RATE_FOLLOW,    /* follows, blocks, mutes and their undoing */
    API_RATE_REGISTER,  /* new accounts, per client address */
    API_RATE_READ,      /* every read, and marking notifications read */
    API_RATE_STREAM,    /* opening an event stream */
    API_RATE_CLASSES
} api_rate_class_t;

/* count requests per window_s seconds, at most burst at once; count 0: no limit. */
typedef struct api_rate_policy_s {
    uint32_t count, window_s, burst;
} api_rate_policy_t;

/* "publish", "interact", … (the --rate-<name> flags and the metrics' class label). */
extern const char *const api_rate_class_names[API_RATE_CLASSES];

/* The defaults, one per class. */
void api_rate_policy_defaults(api_rate_policy_t policies[API_RATE_CLASSES]);
/* Parses "COUNT/UNIT[:BURST]" (UNIT s, m or h; BURST defaults to COUNT, at most COUNT * 10)
 * or "off". 0 or -EINVAL. */
int api_rate_policy_parse(const char *text, api_rate_policy_t *out);

struct api_req_s;
/* Thread: MHD; with the headers. Takes a token for r's route from r's bucket (the caller's,
 * else the client address's) and sets the RateLimit headers; false after setting a 429
 * problem with Retry-After. With now false (a request without a body), the check is only
 * prepared: api_rate_handle runs it with the handler's own first batch. Stream opens are
 * checked now always. A Redis failure lets the request through (it meets the outage
 * itself). */
bool api_rate_check(struct api_req_s *r, bool now);
/* Thread: MHD. Runs handler with r's prepared check armed: the check rides on the handler's
 * first batch that only reads, or runs alone before its first that writes (so a refused
 * request writes nothing), or after the handler when it used no Redis; refused, the
 * handler's answer is replaced by the 429. */
void api_rate_handle(struct api_req_s *r, void (*handler)(struct api_req_s *));

#endif
