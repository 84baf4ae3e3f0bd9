#!/usr/bin/env bash
# bench/celebrity_merge.sh -- what one home-timeline page costs a reader who follows many
# celebrities (authors whose posts are merged at read time, not fanned out), on loopback.
#
#   1. starts its own redis-server (no persistence) on a free loopback port and tidings against
#      it;
#   2. registers a reader and CELEBS authors through POST /v1/users, then writes straight into
#      Redis what the engine would have: each author marked a celebrity (celeb:{id}), POSTS
#      posts each (post:{id} hashes and the posts:{author} index, ids interleaved across the
#      authors so that every page draws on many of them), and the reader's celebs:{reader} set
#      naming all of them;
#   3. GET /v1/timeline?limit=LIMIT, REQUESTS times on one keep-alive connection: first the
#      first page over and over, then a walk down the pages following next_cursor (starting at
#      the top again when it ends). Each answer is checked (200, LIMIT items, newest first,
#      no post twice within the walk).
# Prints p50/p99/max latency (ms) of each phase to stdout, details to stderr. Every wait is
# bounded; everything started here is stopped by an EXIT trap. Takes well under a minute.
#
# usage: bench/celebrity_merge.sh           (after cmake --build build)
# environment: BUILD (build dir), CELEBS (600), POSTS (20 per celebrity), LIMIT (20),
#              REQUESTS (200 per phase), THREADS (tidings --threads, 4), REG_THREADS (8),
#              TIDINGS_ARGS (more tidings flags), KEEP (1: keep the work directory)
# shellcheck disable=SC2086,SC2317 # word lists; cleanup runs from the trap
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
CELEBS=${CELEBS:-600}
POSTS=${POSTS:-20}
LIMIT=${LIMIT:-20}
REQUESTS=${REQUESTS:-200}
THREADS=${THREADS:-4}
REG_THREADS=${REG_THREADS:-8}
TIDINGS_ARGS=${TIDINGS_ARGS:-}
KEEP=${KEEP:-0}
export PYTHONPATH=$ROOT/bench${PYTHONPATH:+:$PYTHONPATH}

TIDINGS=$BUILD/api/tidings
need_built "$TIDINGS"
need_tools redis-server redis-cli curl python3
for v in CELEBS POSTS LIMIT REQUESTS; do
  [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || { echo "$v must be a positive number, not '${!v}'" >&2; exit 2; }
done
[ "$LIMIT" -le 100 ] || { echo "LIMIT must be at most 100 (the API's page limit)" >&2; exit 2; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tidings-celebrity-merge.XXXXXX")
REDIS_PID="" TIDINGS_PID=""
trap cleanup_work EXIT
trap 'exit 130' INT TERM

start_redis_server
start_tidings_at "redis://127.0.0.1:$REDIS_PORT" "$WORK/tidings.log" --threads "$THREADS" \
  --log-level warn $TIDINGS_ARGS
log "redis on port $REDIS_PORT, tidings on port $HTTP_PORT"
register reader 1 "$WORK/reader.txt"
register celeb "$CELEBS" "$WORK/celebs.txt"
read -r READER_ID READER_TOKEN <"$WORK/reader.txt"

t0=$SECONDS
timeout 300 python3 - "$REDIS_PORT" "$READER_ID" "$WORK/celebs.txt" "$POSTS" <<'PY'
import sys, time
from redis_route import Router
port, reader, path, posts = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
celebs = [line.split()[0] for line in open(path)]
# Ids as storage/ids.c makes them (ms << 12), older than now, one apart across authors.
base = (int(time.time() * 1000) - 3600 * 1000) << 12
def commands():
    for c, author in enumerate(celebs):
        yield ("SET", "celeb:{%s}" % author, "1")
        args = ["ZADD", "posts:{%s}" % author]
        for j in range(posts):
            pid = base + j * len(celebs) + c
            yield ("HSET", "post:{%d}" % pid, "author", author, "text", "post %d of %s" % (j, author),
                   "reply_to", "0", "reply_author", "0", "mentions", "")
            args += [pid, pid]
        yield tuple(args)
        yield ("SADD", "celebs:{%s}" % reader, author)
r = Router("redis://127.0.0.1:%s" % port)
sent, errors, err = r.pipeline(commands())
if errors:
    sys.exit("writing celebrities: %d of %d commands failed: %s" % (errors, sent, err))
PY
log "wrote $CELEBS celebrities with $POSTS posts each in $((SECONDS - t0)) s"

timeout 600 python3 - "$HTTP_PORT" "$READER_TOKEN" "$LIMIT" "$REQUESTS" "$CELEBS" "$POSTS" <<'PY'
import http.client, json, sys, time
port, token, limit, requests, celebs, posts = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:7])
c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=60)
def get(cursor):
    path = "/v1/timeline?limit=%d" % limit + ("&cursor=%s" % cursor if cursor else "")
    t = time.perf_counter()
    c.request("GET", path, headers={"Authorization": "Bearer " + token})
    r = c.getresponse()
    body = r.read()
    ms = (time.perf_counter() - t) * 1000
    if r.status != 200:
        sys.exit("GET %s answered %d: %s" % (path, r.status, body[:200]))
    page = json.loads(body)
    ids = [int(p["id"]) for p in page["items"]]
    if ids != sorted(ids, reverse=True) or len(set(ids)) != len(ids):
        sys.exit("GET %s: the page is not newest first without repeats" % path)
    return ms, ids, page.get("next_cursor")
def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]
get(None)  # warm up: connections, scripts
first = []
for _ in range(requests):
    ms, ids, _ = get(None)
    if len(ids) != min(limit, celebs * posts):
        sys.exit("the first page holds %d posts, not %d" % (len(ids), min(limit, celebs * posts)))
    first.append(ms)
walk, cursor, seen, last = [], None, set(), None
for _ in range(requests):
    ms, ids, cursor = get(cursor)
    walk.append(ms)
    if last is not None and ids and ids[0] >= last:
        sys.exit("pages overlap: %d after %d" % (ids[0], last))
    if seen & set(ids):
        sys.exit("a post came twice in the walk")
    seen |= set(ids)
    last = ids[-1] if ids else None
    if not cursor:
        if len(seen) != celebs * posts:
            sys.exit("the walk served %d posts, not %d" % (len(seen), celebs * posts))
        seen, last = set(), None
print("== GET /v1/timeline?limit=%d, reader following %d celebrities with %d posts each, %d requests a phase ==" % (
    limit, celebs, posts, requests))
print("%-12s %10s %10s %10s" % ("phase", "p50_ms", "p99_ms", "max_ms"))
for name, xs in (("first page", first), ("page walk", walk)):
    print("%-12s %10.2f %10.2f %10.2f" % (name, pct(xs, 0.5), pct(xs, 0.99), max(xs)))
PY
