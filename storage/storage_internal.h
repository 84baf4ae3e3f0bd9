/* storage/storage_internal.h -- shared by the data-model files of storage/ only: the key
 * schema, the two handles and the helpers more than one domain file uses. The Redis client
 * underneath is storage/redis/redis.h; nothing in storage/redis/ includes this file. */
#ifndef TIDINGS_STORAGE_INTERNAL_H
#define TIDINGS_STORAGE_INTERNAL_H

#include "storage/redis/redis.h"
#include "storage/storage.h"
#include "storage/storage_async.h"

#include <pthread.h>
#include <stdatomic.h>

/* ---- key schema ------------------------------------------------------------------------
 * Every key carries its owner in a hash tag so that one user's keys share a Cluster slot.
 * Formats take unsigned long long ids (hiredis formats them itself). */
#define K_USER "user:{%llu}" /* hash: handle display_name bio token created */
#define K_TOKEN                                                                                    \
    "tok:{%llu}:%llu"                /* hash: hash name created last_used expires (ms; 0: none) of
                                   * one API token of the user; expires with it (tokens.c) */
#define K_TOKEN_PREFIX "tok:{%llu}:" /* K_TOKEN without its id, for scripts that add it */
#define K_TOKENS                                                                                   \
    "toks:{%llu}" /* zset: the user's token ids scored by creation ms: the one list
                                * of a user's tokens (pre-device tokens: K_USER's token) */
#define K_TICKET                                                                                   \
    "tkt:{%llu}:%s"            /* string: the token id a stream ticket was issued with; the
                                  * ticket's SHA-256 (hex) names it; expires (tickets.c) */
#define K_HANDLE "handle:{%s}" /* string: user id; the handle lowercased */
/* string "1", expiring: the lowercased handle of a user who left, not registrable until it
 * expires (--handle-quarantine-days); it holds no user id */
#define K_HANDLE_QUARANTINE "handleq:{%s}"
/* zset: "<lowercase handle> <id>" members at score 0, the handles starting with the tag's
 * character (one set per first character), for prefix search by ZRANGEBYLEX (handle_index.c) */
#define K_HANDLE_INDEX "hx:{%b}"
#define K_HANDLE_INDEX_FILLED "hx:filled" /* string: handles from before the index were added */
#define K_FOLLOWERS "followers:{%llu}"    /* zset: follower id scored by edge id */
#define K_FOLLOWING "following:{%llu}"    /* zset: followee id scored by edge id */
/* hash: author text reply_to reply_author mentions deleted, and likes reposts: the sizes of
 * K_LIKES and K_REPOSTS, written with every change of them (storage__add_membership); absent
 * on posts from before they were kept and never liked or reposted since (then read SCARD) */
#define K_POST "post:{%llu}"
#define POST_LIKES_FIELD "likes"
#define POST_REPOSTS_FIELD "reposts"
#define K_POSTS "posts:{%llu}"  /* zset: author's post ids scored by id */
#define K_IDEM "idem:{%llu}:%b" /* string: "<post id> <fingerprint>" */
#define K_FANOUT "fanout:{%d}"  /* stream: fan-out jobs, consumer group FANOUT_GROUP */
#define K_READY "ready:{%d}"    /* string: readiness' write probe, per id node; expires */
/* list: entry ids of an author's post and delete jobs on a shard, in queue order (the stream's
 * slot): the engine runs them one at a time in this order, whichever process holds them */
#define K_JOB_ORDER "fanout:{%d}:order:%llu"
#define K_TIMELINE "tl:{%llu}"          /* zset: home timeline post ids scored by id */
#define K_CELEB "celeb:{%llu}"          /* string: set when the author is merged at read time */
#define K_CELEB_FOLLOWS "celebs:{%llu}" /* set: celebrities the user follows */
#define K_LIKES "likes:{%llu}"          /* set: users who like the post */
#define K_REPOSTS "reposts:{%llu}"      /* set: users who reposted the post */
#define K_REPOSTED_BY "rb:{%llu}"       /* hash: post id -> reposter, for repost timeline entries */
#define K_REPOSTS_OF                                                                               \
    "rpa:{%llu}:%llu"                   /* set: posts of the second user the first reposted,
                                        * so a block finds the reposts it takes back */
#define K_LIKED "liked:{%llu}"          /* zset: posts the user likes, scored by post id */
#define K_REPOSTED "reposted:{%llu}"    /* zset: posts the user reposted, scored by post id */
#define K_POSTS_DELETED "dposts:{%llu}" /* zset: the author's deleted posts (tombstones) */
/* zset: posts the user reposted, scored by the repost's id (its score in followers' timelines),
 * so a timeline rebuild orders them as the fan-out did (timeline_rebuild.c) */
#define K_REPOSTED_AT "rpat:{%llu}"
/* string: when the user was last seen (ms), written at most once an hour (seen.c); absent for
 * users from before it: never taken for inactive. The timeline-write scripts read it as
 * "seen:" .. the timeline key's tag, on the timeline's slot. */
#define K_SEEN "seen:{%llu}"
/* string: the user's home timeline is being rebuilt (a rebuild job is queued or running);
 * deleted by the job, expires (REBUILD_MARK_MS) should the job never come */
#define K_REBUILD "rebuild:{%llu}"
#define K_DELIVERY "delivery:{%llu}" /* hash: where a post's fan-out stands (delivery.c); a day */
#define K_BLOCKS "blocks:{%llu}"     /* zset: users this user blocked, scored by edge id */
#define K_BLOCKED_BY "blockedby:{%llu}" /* zset: users who blocked this user */
#define K_MUTES "mutes:{%llu}"          /* zset: users this user muted */
#define K_MUTED_BY "mutedby:{%llu}"     /* zset: users who muted this user */
#define K_NOTIFS "nt:{%llu}"            /* zset: notification group keys scored by last activity */
#define K_NOTIF_PREFIX "ng:{%llu}:"     /* + group key: zset of actors scored by action id */
#define K_NOTIF_FOLLOWS "nfd:{%llu}"    /* hash: follower -> group key of their follow notice */
#define K_NOTIF_REFOLLOW                                                                           \
    "nfw:{%llu}" /* zset: follower scored by the event id of the last
                                        * follow that notified (kept --refollow-window) */
#define K_NOTIF_READ                                                                               \
    "nr:{%llu}"                   /* string: notifications up to this id are read; it is also
                                        * the notifications marker (markers.c) */
#define K_MARKER_HOME "mk:{%llu}" /* string: the home marker, a post id (markers.c) */
#define K_EVENTS                                                                                   \
    "ev:{%llu}" /* stream: the user's live events (log for replay); it
                                        * exists while the user has a stream, plus the
                                        * retention (--stream-retention) */
#define K_ONLINE                                                                                   \
    "online:{%llu}"        /* string: presence, set while the user has a stream, plus the grace
                      * (--stream-grace-ms): events are published live to those only */
#define EVENTS_MAXLEN 1000 /* events kept per user for replay */
/* hash: until (ms, Redis' clock) dirty (1: a change came inside the window): the user's
 * window of at most one counts event (SCRIPT_COUNTS); expires */
#define K_COUNTS_WINDOW "cw:{%llu}"
/* ms between two counts events of a user, at least. A window is a millisecond longer: event
 * ids take the script's start time, which may be that much behind the TIME it reads. */
#define COUNTS_WINDOW_STR "100"
#define K_NODE "node:{%d}"    /* string: lease on an id-generator node id */
#define K_NODE_SEQ "node:seq" /* counter spreading nodes over the 64 slots */
#define FANOUT_GROUP "engine"

#define IDEM_TTL_S 86400
#define NODE_LEASE_MS 30000
#define NODE_BITS 6
#define SEQ_BITS 6

typedef unsigned long long ull;

/* The synchronous handle: the Redis client, and what the data model keeps beside it. */
struct storage_s {
    storage_redis_t *redis;
    int fanout_shards;

    /* id generator (ids.c) */
    pthread_mutex_t id_mu;
    uint64_t id_last_ms;
    unsigned id_seq;
    atomic_int node;
    char node_token[64];
    /* The lease is known to be ours until lease_until_ms (monotonic; 0: not known), and only
     * while the client has not reconnected since it was last confirmed (lease_reconnects):
     * a reconnect may mean a Redis that lost its data, where another process can take the
     * node at once. */
    atomic_ullong lease_until_ms, lease_reconnects;

    /* readiness (readiness.c): the background probe's last outcome, read by any thread. The
     * probe in flight was sent at ready_sent_ms (0: none); the last one settled at
     * ready_answered_ms (monotonic; 0: never), with a reply or not, and the last write probe
     * (or failure to reach Redis) left ready_write_status. ready_probes: the loop's alone. */
    atomic_ullong ready_sent_ms, ready_answered_ms;
    atomic_bool ready_replied;
    atomic_int ready_write_status;
    unsigned ready_probes;

    /* post_views.c: whether every key lives on one node, as last read from the slot map
     * (1 yes, 0 no) and when (storage__now_ms; 0: never), any thread. */
    atomic_int one_node;
    atomic_ullong one_node_ms;

    /* read_cache.c: posts, briefs and relation sets kept in the process, and Redis'
     * invalidations for them (storage/redis/tracking.c); both NULL with --read-cache 0. */
    struct read_cache_s *cache;
    storage_redis_tracking_t *tracking;
};

/* The read cache, when it may be read now: on, on one node, its invalidations flowing and
 * all of them handed over (storage/redis/tracking.c); NULL otherwise. Any thread. */
struct read_cache_s *storage__cache_settled(storage_t *s);
/* The read cache when it is on (to fill it after a read), else NULL. */
struct read_cache_s *storage__cache(storage_t *s);
/* The CLIENT ID a read tracked for the cache redirects its invalidations to; 0 when the
 * cache is off or its tracking connection down. */
unsigned long long storage__tracking_id(storage_t *s);
/* storage_post_views with the cache's settled check made already by the caller (cached: its
 * storage__cache_settled, NULL to read Redis): a timeline page from the cache checks once. */
int storage__post_views_settled(storage_t *s, struct read_cache_s *cached, uint64_t viewer,
                                unsigned hide, const uint64_t *ids, const uint64_t *reposted_by,
                                size_t n, storage_post_view_t *out);
/* post_views_cached.c: the views of ids (as storage_post_views) from the cache alone: 0, or
 * -ENOENT when anything is missing (out is then cleared). */
struct read_cache_ticket_s;
int storage__views_from_cache(struct read_cache_s *c, uint64_t viewer, unsigned hide,
                              const uint64_t *ids, const uint64_t *reposted_by, size_t n,
                              storage_post_view_t *out);
/* Keeps views v (read from Redis under ticket t) in the cache, with the viewer's relation
 * sets of hide not kept yet (read now, one round trip when any is missing). */
void storage__views_fill_cache(storage_t *s, struct read_cache_s *c,
                               const struct read_cache_ticket_s *t, uint64_t viewer, unsigned hide,
                               const storage_post_view_t *v, size_t n);

/* The asynchronous handle: the Redis client's async side, and the live-path callbacks a
 * subscriber hands typed events to (events.c and celebrity_live.c parse what they wrote). */
struct storage_async_s {
    storage_redis_async_t *redis;
    int fanout_shards;
    storage_sub_callbacks_t sub_cb;
    void (*closed_cb)(void *arg);
    void *closed_arg;
};

/* Milliseconds since the Unix epoch. */
uint64_t storage__now_ms(void);
/* delivery.c: the same by the wall clock, without the test clock's offset: a post's delivery
 * status tells real times. The status lives DELIVERY_TTL_S (delivery.c, post_job.c). */
uint64_t storage__wall_ms(void);
#define DELIVERY_TTL_S 86400

/* page.c: a page of the sorted set key_fmt (a K_ format) of owner, newest first, scores below
 * cursor (exclusive; 0 for the first page). -ENOENT when owner is no user, or when viewer
 * (0: nobody) and owner blocked one another (read in the same round trip). */
int storage__zpage(storage_t *s, const char *key_fmt, uint64_t owner, uint64_t viewer,
                   uint64_t cursor, size_t limit, storage_page_t *out);

/* interactions.c: appends to b one ZMSCORE per relation in which (STORAGE_REL_* bits) of
 * viewer over the n ids (n > 0; all on viewer's slot) and returns how many it added;
 * storage__relation_hits ORs those count replies into hit[0..n). Membership of exactly the
 * ids at hand: a set strangers grow (blockedby) is never read whole. */
size_t storage__add_relation_reads(storage_redis_batch_t *b, uint64_t viewer, unsigned which,
                                   const uint64_t *ids, size_t n);
int storage__relation_hits(redisReply **r, size_t count, size_t n, bool *hit);
/* interactions.c: the names of viewer's relation sets in which (STORAGE_REL_* bits; at most
 * 3) into keys, and how many; none for viewer 0. */
size_t storage__relation_keys(uint64_t viewer, unsigned which, char keys[][48]);

/* script_call.c: a read-only script, called by its SHA1 once loaded. Static, one per
 * script: STORAGE__SCRIPT(body). */
typedef struct storage__script_s {
    const char *body;
    pthread_mutex_t mu;
    char sha[41]; /* empty until loaded */
} storage__script_t;
#define STORAGE__SCRIPT(text)                                                                      \
    {                                                                                              \
        .body = (text), .mu = PTHREAD_MUTEX_INITIALIZER, .sha = ""                                 \
    }
/* Runs EVALSHA_RO of sc with argv (numkeys, keys, args) as the one command of b (initialised
 * here; the caller frees it), loading the script first when this process has not (one more
 * round trip) or Redis answers NOSCRIPT. One Redis node only (storage__one_node). */
int storage__script_ro(storage_t *s, storage__script_t *sc, int argc, const char **argv,
                       storage_redis_batch_t *b);
/* The same, with Redis remembering the keys it declares for the connection whose CLIENT ID is
 * redirect (the read cache's tracking connection): a later write to any of them is an
 * invalidation there. *tracked: whether Redis took the tracking (else nothing read may be
 * kept). The script's reply is b->r[0] as well. */
int storage__script_ro_tracked(storage_t *s, storage__script_t *sc, unsigned long long redirect,
                               int argc, const char **argv, storage_redis_batch_t *b,
                               bool *tracked);

/* post_views.c: whether every key lives on one Redis node (one Redis, or a cluster of one
 * master), so that one script may read any of them. */
bool storage__one_node(storage_t *s);
/* Fills n views from a script's reply: posts (9 fields per post: id reposter, then the
 * HMGET POST_FIELDS of storage__post_from_fields) and people (4 per person: id hidden handle
 * display_name), as SCRIPT_HYDRATE returns them. *n: the posts read. 0, -EIO or -ENOMEM. */
int storage__views_from_reply(const redisReply *posts, const redisReply *people,
                              storage_post_view_t *out, size_t max, size_t *n);

/* Lua, for a script on one Redis node (every key local: storage__one_node): hydrate(ids,
 * rbs, rels) reads the posts ids (rbs: per post, its reposter or '0') with their counts
 * (each post's set size where the hash has no count yet), and returns them flat, 9 fields
 * each: id reposter author text reply_to mentions deleted likes reposts; then their
 * authors' and reposters' briefs, 4 fields each: id hidden handle display_name, where
 * hidden (1) says the person is in one of the relation sets rels (names, on the viewer's
 * slot) and comes without a brief. Key names follow K_POST, K_LIKES, K_REPOSTS and K_USER.
 * Deleted posts need no people. */
#define SCRIPT_HYDRATE                                                                             \
    "local function hydrate(ids, rbs, rels)\n"                                                     \
    "  local posts, people, listed = {}, {}, {}\n"                                                 \
    "  local function person(id)\n"                                                                \
    "    if id and id ~= '0' and not listed[id] then\n"                                            \
    "      listed[id] = true\n"                                                                    \
    "      people[#people + 1] = id\n"                                                             \
    "    end\n"                                                                                    \
    "  end\n"                                                                                      \
    "  for i, id in ipairs(ids) do\n"                                                              \
    "    local p = redis.call('HMGET', 'post:{' .. id .. '}', 'author', 'text', 'reply_to',\n"     \
    "                         'mentions', 'deleted', 'likes', 'reposts')\n"                        \
    "    if p[1] and not p[6] then p[6] = redis.call('SCARD', 'likes:{' .. id .. '}') end\n"       \
    "    if p[1] and not p[7] then p[7] = redis.call('SCARD', 'reposts:{' .. id .. '}') end\n"     \
    "    local at = #posts\n"                                                                      \
    "    posts[at + 1] = id\n"                                                                     \
    "    posts[at + 2] = rbs[i]\n"                                                                 \
    "    for k = 1, 7 do posts[at + 2 + k] = p[k] end\n"                                           \
    "    if p[1] and p[5] ~= '1' then\n"                                                           \
    "      person(p[1])\n"                                                                         \
    "      person(rbs[i])\n"                                                                       \
    "    end\n"                                                                                    \
    "  end\n"                                                                                      \
    "  local hidden = {}\n"                                                                        \
    "  for _, rel in ipairs(rels) do\n"                                                            \
    "    if #people > 0 then\n"                                                                    \
    "      local r = redis.call('ZMSCORE', rel, unpack(people))\n"                                 \
    "      for i = 1, #people do\n"                                                                \
    "        if r[i] then hidden[i] = true end\n"                                                  \
    "      end\n"                                                                                  \
    "    end\n"                                                                                    \
    "  end\n"                                                                                      \
    "  local briefs = {}\n"                                                                        \
    "  for i, id in ipairs(people) do\n"                                                           \
    "    local u = {false, false}\n"                                                               \
    "    if not hidden[i] then\n"                                                                  \
    "      u = redis.call('HMGET', 'user:{' .. id .. '}', 'handle', 'display_name')\n"             \
    "    end\n"                                                                                    \
    "    local at = #briefs\n"                                                                     \
    "    briefs[at + 1] = id\n"                                                                    \
    "    briefs[at + 2] = hidden[i] and 1 or 0\n"                                                  \
    "    briefs[at + 3] = u[1]\n"                                                                  \
    "    briefs[at + 4] = u[2]\n"                                                                  \
    "  end\n"                                                                                      \
    "  return posts, briefs\n"                                                                     \
    "end\n"

/* posts.c: a post from the replies to HMGET POST_FIELDS (f[0..7): author text reply_to
 * mentions deleted likes reposts); id 0 when it has no author. A count absent from the hash
 * (a post from before counts were kept) comes back -1. 0 or -ENOMEM. */
int storage__post_from_fields(redisReply **f, uint64_t id, storage_post_t *out);
/* A count reply: an integer (SCARD), or a decimal string (a hash field); -1 when absent. */
int64_t storage__count_reply(const redisReply *r);
/* interactions.c: adds to b user's joining (on) or leaving of post's likes (or reposts), and
 * the post's count of them, atomically: every change of those sets goes through it. */
void storage__add_membership(storage_redis_batch_t *b, bool repost, uint64_t post, uint64_t user,
                             bool on);

/* Lua, for scripts that trim a home timeline: trim_timeline(tl, rb, max) keeps tl's newest
 * max entries and deletes the rb:{user} fields (reposted-by) of the entries it drops, so the
 * index never outgrows the timeline. Every trim of tl goes through it (timeline_write.c's
 * scripts, the rebuild); a read trims nothing. HDEL takes the dropped ids 1,000 at a time
 * (Lua's unpack limit). */
#define SCRIPT_TRIM_TIMELINE                                                                       \
    "local function trim_timeline(tl, rb, max)\n"                                                  \
    "  local gone = redis.call('ZRANGE', tl, 0, -tonumber(max) - 1)\n"                             \
    "  if #gone == 0 then return 0 end\n"                                                          \
    "  redis.call('ZREMRANGEBYRANK', tl, 0, -tonumber(max) - 1)\n"                                 \
    "  for i = 1, #gone, 1000 do\n"                                                                \
    "    redis.call('HDEL', rb, unpack(gone, i, math.min(i + 999, #gone)))\n"                      \
    "  end\n"                                                                                      \
    "  return #gone\n"                                                                             \
    "end\n"

/* Lua (SCRIPT_TRIM_TIMELINE comes first): add_timelines(keys, args) writes a post into the
 * timelines tl:{user}… with args post, timeline-max, trim ('1': trim too) and the cutoff of
 * the inactive; storage_timelines_add's script (timeline_write.c says why it is so) and the
 * small post job's (post_job.c). Returns the keys' count. */
#define SCRIPT_ADD_TIMELINES                                                                       \
    "local function add_timelines(KEYS, ARGV)\n"                                                   \
    "  local cutoff, seen = tonumber(ARGV[4]), {}\n"                                               \
    "  if cutoff > 0 then\n"                                                                       \
    "    local names = {}\n"                                                                       \
    "    for i, key in ipairs(KEYS) do names[i] = 'seen:' .. string.sub(key, 4) end\n"             \
    "    seen = redis.pcall('MGET', unpack(names))\n"                                              \
    "    if seen.err then\n" /* a cluster node refuses keys of many slots in one command */        \
    "      seen = {}\n"                                                                            \
    "      for i, name in ipairs(names) do seen[i] = redis.call('GET', name) end\n"                \
    "    end\n"                                                                                    \
    "  end\n"                                                                                      \
    "  for i, key in ipairs(KEYS) do\n"                                                            \
    "    if not seen[i] or tonumber(seen[i]) >= cutoff then\n"                                     \
    "      redis.call('ZADD', key, ARGV[1], ARGV[1])\n"                                            \
    "      if ARGV[3] == '1' then trim_timeline(key, 'rb:' .. string.sub(key, 4), ARGV[2]) end\n"  \
    "    end\n"                                                                                    \
    "  end\n"                                                                                      \
    "  return #KEYS\n"                                                                             \
    "end\n"

/* timeline_write.c: whether the fan-out of post also trims the timelines it writes (one post
 * in TRIM_EVERY, by its millisecond, so trims spread over time). */
bool storage__timeline_trims(uint64_t post);

#define TRIM_EVERY_STR "8" /* one log append in this many trims the log to EVENTS_MAXLEN */

/* Lua: publish_events(keys, args) logs an event in the logs ev:{user}… that exist and
 * publishes it to those present, with args maxlen kind ref job since settled muted channel;
 * storage_events_publish's script (events.c says how) and the small post job's
 * (post_job.c). Returns how many it published to. */
#define SCRIPT_PUBLISH_EVENTS                                                                      \
    "local function publish_events(KEYS, ARGV)\n"                                                  \
    "  local job = ARGV[4]\n"                                                                      \
    "  local tail = ' ' .. job\n"                                                                  \
    "  local function logged(key)\n"                                                               \
    "    for _, e in ipairs(redis.call('XRANGE', key, ARGV[5], '+', 'COUNT', 1000)) do\n"          \
    "      local f = e[2]\n"                                                                       \
    "      for i = 1, #f - 1, 2 do\n"                                                              \
    "        local v = f[i + 1]\n"                                                                 \
    "        if (f[i] == 'e' and string.sub(v, -#tail) == tail) or (f[i] == 'j' and v == job) "    \
    "then\n"                                                                                       \
    "          return true\n"                                                                      \
    "        end\n"                                                                                \
    "      end\n"                                                                                  \
    "    end\n"                                                                                    \
    "    return false\n"                                                                           \
    "  end\n"                                                                                      \
    "  local about = ' ' .. ARGV[3] .. ' '\n"                                                      \
    "  local function retracted(key)\n"                                                            \
    "    for _, e in ipairs(redis.call('XREVRANGE', key, '+', ARGV[6], 'COUNT', 1000)) do\n"       \
    "      local v = e[2][1] == 'e' and e[2][2] or ''\n"                                           \
    "      local at = string.find(v, about, 1, true)\n"                                            \
    "      if at then return string.sub(v, 1, at - 1) == 'delete' end\n"                           \
    "    end\n"                                                                                    \
    "    return false\n"                                                                           \
    "  end\n"                                                                                      \
    "  local settle = ARGV[6] ~= ''\n"                                                             \
    "  local function muted(key)\n"                                                                \
    "    return ARGV[7] ~= '' and redis.call('ZSCORE', 'mutes' .. string.sub(key, 3), ARGV[7])\n"  \
    "  end\n"                                                                                      \
    "  local rerun = ARGV[5] ~= ''\n"                                                              \
    "  local entry = ARGV[2] .. ' ' .. ARGV[3] .. tail\n"                                          \
    "  local turn = tonumber(string.match(job, '/(%d+)')) or 0\n"                                  \
    "  local parts, n = {ARGV[2], ARGV[3]}, 2\n"                                                   \
    "  for i, key in ipairs(KEYS) do\n"                                                            \
    "    if (not rerun or not logged(key)) and (not settle or not retracted(key)) and\n"           \
    "       not muted(key) then\n"                                                                 \
    "      local id\n"                                                                             \
    "      if (i + turn) % " TRIM_EVERY_STR " == 0 then\n"                                         \
    "        id = redis.call('XADD', key, 'NOMKSTREAM', 'MAXLEN', '~', ARGV[1], '*', 'e', "        \
    "entry)\n"                                                                                     \
    "      else\n"                                                                                 \
    "        id = redis.call('XADD', key, 'NOMKSTREAM', '*', 'e', entry)\n"                        \
    "      end\n"                                                                                  \
    "      if id and redis.call('EXISTS', 'online' .. string.sub(key, 3)) == 1 then\n"             \
    "        n = n + 1\n"                                                                          \
    "        parts[n] = string.sub(key, 5, -2) .. ':' .. id\n"                                     \
    "      end\n"                                                                                  \
    "    end\n"                                                                                    \
    "  end\n"                                                                                      \
    "  if n > 2 then redis.call('SPUBLISH', ARGV[8], table.concat(parts, ' ')) end\n"              \
    "  return n - 2\n"                                                                             \
    "end\n"

/* handle_index.c: adds to b the index member of user id's handle (lowercase, non-empty),
 * or its removal; storage__handle_index_fill adds every handle key's user to the index
 * unless K_HANDLE_INDEX_FILLED says it was done (storage_prepare). */
void storage__handle_index_add(storage_redis_batch_t *b, const char *lower, uint64_t id);
void storage__handle_index_del(storage_redis_batch_t *b, const char *lower, uint64_t id);
int storage__handle_index_fill(storage_t *s);
/* Lua, for scripts that change a user's notification groups (on the user's slot):
 * log_event(ev, maxlen, channel, user, kind, ref) appends the event to the user's log when
 * it exists (XADD NOMKSTREAM: nobody connected, nothing written) and publishes it on the
 * node's live channel, in the format storage__live_deliver reads: so the event is atomic
 * with the change it tells of. ref holds no space. */
#define SCRIPT_LOG_EVENT                                                                           \
    "local function log_event(ev, maxlen, channel, user, kind, ref)\n"                             \
    "  local id = redis.call('XADD', ev, 'NOMKSTREAM', 'MAXLEN', '~', maxlen, '*',\n"              \
    "                        'k', kind, 'r', ref)\n"                                               \
    "  if id then\n"                                                                               \
    "    redis.call('SPUBLISH', channel, kind .. ' ' .. ref .. ' ' .. user .. ':' .. id)\n"        \
    "  end\n"                                                                                      \
    "end\n"

/* Lua, for scripts that may change a user's unread count (SCRIPT_LOG_EVENT comes first):
 * unread(nt, nr) is the count (groups above the read mark); counts_changed(nt, nr, cw, ev,
 * maxlen, channel, user, before) tells the user's streams of a count that is no longer
 * before. At most one "counts <n>" event per COUNTS_WINDOW_MS per user: outside a window it
 * is logged at once and opens one (cw's until); inside, the window is marked dirty and, the
 * first time, "counts_due <ms> <user>:0-0" is published (never logged) on the node's channel:
 * the processes holding the user's streams then run storage_counts_flush after the window,
 * which logs the count as it is then (the last value wins). Nobody connected (no log): no
 * event, no window. */
#define SCRIPT_COUNTS                                                                              \
    "local function unread(nt, nr)\n"                                                              \
    "  return redis.call('ZCOUNT', nt, '(' .. (redis.call('GET', nr) or '0'), '+inf')\n"           \
    "end\n"                                                                                        \
    "local function counts_changed(nt, nr, cw, ev, maxlen, channel, user, before)\n"               \
    "  local n = unread(nt, nr)\n"                                                                 \
    "  if n == before or redis.call('EXISTS', ev) == 0 then return end\n"                          \
    "  local t = redis.call('TIME')\n"                                                             \
    "  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"                    \
    "  local w = redis.call('HMGET', cw, 'until', 'dirty')\n"                                      \
    "  local untl = tonumber(w[1] or '0')\n"                                                       \
    "  if now < untl then\n"                                                                       \
    "    if w[2] ~= '1' then\n"                                                                    \
    "      redis.call('HSET', cw, 'dirty', '1')\n"                                                 \
    "      redis.call('SPUBLISH', channel, 'counts_due ' .. string.format('%.0f', untl - now)\n"   \
    "                 .. ' ' .. user .. ':0-0')\n"                                                 \
    "    end\n"                                                                                    \
    "    return\n"                                                                                 \
    "  end\n"                                                                                      \
    "  redis.call('HSET', cw, 'until', string.format('%.0f', now + 1 + " COUNTS_WINDOW_STR "),\n"  \
    "             'dirty', '0')\n"                                                                 \
    "  redis.call('PEXPIRE', cw, 10000)\n"                                                         \
    "  log_event(ev, maxlen, channel, user, 'counts', tostring(n))\n"                              \
    "end\n"

/* notification_write.c: the withdrawal of actor's notice from target's group (NULL: the
 * group their follow notice went to, found through nfd); a group left empty goes, and the
 * change is a live event (the group's new state, or its removal). channel: the live channel
 * of target's node. The arguments live in the struct, for a batch or a group to send. */
typedef struct storage__group_remove_s {
    char nt[40], ev[40], nr[40], cw[40], nfd[40], prefix[40], actor[24], maxlen[16], channel[40],
        target[24];
    const char *argv[16];
    int argc;
} storage__group_remove_t;
void storage__group_remove_args(storage__group_remove_t *gr, const char *channel, uint64_t target,
                                const char *group, uint64_t actor);

/* The shard of a fan-out job about user. */
int storage__shard(const storage_t *s, uint64_t user);
/* Adds to b the queueing of a fan-out job on shard, once however often b is sent: fields is a
 * printf format of "name value" pairs separated by single spaces (no value holds a space),
 * at the request's unique id, which the job's "at" field carries too. A job in_order_of an
 * author (posts and deletes; 0 for others) joins that author's order list. (job_queue.c) */
void storage__job_enqueue(storage_redis_batch_t *b, int shard, uint64_t at, uint64_t in_order_of,
                          const char *fields, ...) __attribute__((format(printf, 5, 6)));

/* Adds the one command that tells whether the job queued with at was queued (reply 1) or
 * not (0). With fence, a "not" is made final: an enqueue of that job arriving later (a
 * batch still in a paused Redis's socket) queues nothing and answers an error. */
void storage__job_fence(storage_redis_batch_t *b, int shard, uint64_t at, bool fence);

/* ---- asynchronous helpers, loop thread only ----------------------------------------------- */
int storage__async_shards(const storage_async_t *sa);
/* A subscriber's message, parsed where its format is written and handed to cb typed:
 * live events (events.c) and announcements, without their '@' (celebrity_live.c). */
void storage__live_deliver(const storage_sub_callbacks_t *cb, const char *msg);
void storage__announcement_deliver(const storage_sub_callbacks_t *cb, const char *channel,
                                   const char *msg);
/* Publishes msg ("@…", see celebrity_live.c) on the live channel of the node of user
 * about, after the group's commands before it on that node. */
void storage__announce_in_group(storage_redis_group_t *g, uint64_t about, const char *msg);
/* The same in a round trip of its own, from a synchronous caller. */
int storage__announce_sync(storage_t *s, uint64_t about, const char *msg);
/* EVAL of a SCRIPT_NODE_KEYS script on the events key of id (K_EVENTS), as
 * storage_redis_group_eval_by_node calls it for one id: its nargs (at most 8) arguments,
 * then that node's live channel. One round trip. */
int storage__eval_events_key_sync(storage_t *s, const char *script, uint64_t id, int nargs,
                                  const char **args);
/* Logs announcement a (a post's, storage_events_publish_announced's way: once per job,
 * skipped for a user who mutes the author) for user, and publishes it if user is present. */
int storage__events_publish_announced_sync(storage_t *s, uint64_t user,
                                           const storage_announcement_t *a);

#endif
