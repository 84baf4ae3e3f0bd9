#!/usr/bin/env bash
# bench/search.sh -- GET /v1/users/search latency over a handle index of a million members,
# beside GET /healthz in the same run, on loopback.
#
# Starts its own redis-server (no persistence) on a free port and loads MEMBERS users into it
# directly, in one redis-cli --pipe stream: each a profile hash, a handle key and its member
# of the handle index (storage/handle_index.c), with random handles of 8 characters spread
# over the 37 first characters. Then starts tidings, registers one caller through the API and
# measures, one request at a time over one keep-alive connection each, REQUESTS rounds of
# GET /healthz (the baseline: the HTTP path without Redis) and GET /v1/users/search?q=<2
# random characters>&limit=LIMIT (a full page, about MEMBERS/1369 handles per prefix),
# interleaved so both see the same machine. Last, it deletes the index's marker and starts a
# second tidings, timing the startup fill that indexes every handle key again (SCAN).
# Prints p50/p99/max of each and the search's extra cost over the baseline. The client is
# Python (http.client), so both figures include its own overhead, the same for both.
#
# usage: bench/search.sh         (after cmake --build build)
# environment: BUILD (build), MEMBERS (1000000), REQUESTS (2000), LIMIT (10), FILL (1: time
#              the startup fill, 0: skip), KEEP (keep the work directory when 1)
# REG_THREADS and REDIS_PID are lib.sh's (register, cleanup_work).
# shellcheck disable=SC2034
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
MEMBERS=${MEMBERS:-1000000}
REQUESTS=${REQUESTS:-2000}
LIMIT=${LIMIT:-10}
FILL=${FILL:-1}
KEEP=${KEEP:-0}
REG_THREADS=1
TIDINGS=$BUILD/api/tidings
need_built "$TIDINGS"
need_tools redis-server redis-cli curl python3

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tidings-bench.XXXXXX")
REDIS_PID="" TIDINGS_PID=""
trap cleanup_work EXIT
trap 'exit 130' INT TERM

start_redis_server
log "loading $MEMBERS users into redis-server :$REDIS_PORT"
t0=$(now_s)
timeout 900 python3 - "$MEMBERS" <<'PY' | redis-cli -p "$REDIS_PORT" --pipe >"$WORK/pipe.log"
import random, sys
n = int(sys.argv[1])
abc = "abcdefghijklmnopqrstuvwxyz0123456789_"
rnd = random.Random(15)
out = sys.stdout.buffer
def cmd(*args):
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(parts)
buf = []
seen = set()
base = 100000000000000  # made-up ids, far below the server's own
for i in range(n):
    while True:
        h = "".join(rnd.choice(abc) for _ in range(8))
        if h not in seen:
            seen.add(h)
            break
    uid = base + i
    buf.append(cmd("HSET", "user:{%d}" % uid, "handle", h, "display_name", h, "created", "1"))
    buf.append(cmd("SET", "handle:{%s}" % h, uid))
    buf.append(cmd("ZADD", "hx:{%s}" % h[0], "0", "%s %d" % (h, uid)))
    if len(buf) >= 30000:
        out.write(b"".join(buf)); buf = []
buf.append(cmd("SET", "hx:filled", "1"))
out.write(b"".join(buf))
PY
LOAD_S=$(echo "$(now_s) - $t0" | bc)
log "$(tail -1 "$WORK/pipe.log") in ${LOAD_S}s"
MEM=$(redis-cli -p "$REDIS_PORT" info memory | awk -F: '/^used_memory_human/ {print $2}' | tr -d '\r')
INDEX=0
for c in a b c d e f g h i j k l m n o p q r s t u v w x y z 0 1 2 3 4 5 6 7 8 9 _; do
  INDEX=$((INDEX + $(redis-cli -p "$REDIS_PORT" memory usage "hx:{$c}" samples 0)))
done

start_tidings_at "redis://127.0.0.1:$REDIS_PORT" "$WORK/tidings.log"
register bench 1 "$WORK/users"
TOKEN=$(awk '{print $2}' "$WORK/users")

timeout 900 python3 - "$HTTP_PORT" "$TOKEN" "$REQUESTS" "$LIMIT" <<'PY' >"$WORK/latency"
import http.client, json, random, sys, time
port, token, n, limit = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
abc = "abcdefghijklmnopqrstuvwxyz0123456789_"
rnd = random.Random(7)
health = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
search = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
auth = {"Authorization": "Bearer " + token}
lat = {"healthz": [], "search": []}
found = 0
def timed(conn, path, headers):
    t = time.perf_counter()
    conn.request("GET", path, headers=headers)
    r = conn.getresponse()
    body = r.read()
    dt = time.perf_counter() - t
    if r.status != 200:
        raise SystemExit("GET %s: %d %s" % (path, r.status, body[:200]))
    return dt, body
for i in range(n + n // 10):  # the first tenth warms up, unrecorded
    dh, _ = timed(health, "/healthz", {})
    q = rnd.choice(abc) + rnd.choice(abc)
    ds, body = timed(search, "/v1/users/search?q=%s&limit=%d" % (q, limit), auth)
    if i >= n // 10:
        lat["healthz"].append(dh)
        lat["search"].append(ds)
        found += len(json.loads(body)["items"])
def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(p * len(v)))] * 1000
for k in ("healthz", "search"):
    print("%s p50=%.3f p99=%.3f max=%.3f" % (k, pct(lat[k], 0.5), pct(lat[k], 0.99), max(lat[k]) * 1000))
print("items_per_search %.2f" % (found / n))
PY

FILL_S="skipped"
if [ "$FILL" = 1 ]; then
  stop_pid "$TIDINGS_PID"
  redis-cli -p "$REDIS_PORT" del hx:filled >/dev/null
  redis-cli -p "$REDIS_PORT" eval "for _, c in ipairs(ARGV) do redis.call('DEL', 'hx:{' .. c .. '}') end" 0 \
    a b c d e f g h i j k l m n o p q r s t u v w x y z 0 1 2 3 4 5 6 7 8 9 _ >/dev/null
  t0=$(now_s)
  HTTP_PORT=$(free_port)
  "$TIDINGS" --redis "redis://127.0.0.1:$REDIS_PORT" --listen "127.0.0.1:$HTTP_PORT" \
    --rate-limits off 2>>"$WORK/tidings.log" &
  TIDINGS_PID=$!
  for _ in $(seq 6000); do
    curl -fs "http://127.0.0.1:$HTTP_PORT/readyz" >/dev/null 2>&1 && break
    kill -0 "$TIDINGS_PID" 2>/dev/null || { log "tidings died during the fill; see $WORK/tidings.log"; exit 1; }
    sleep 0.05
  done
  FILL_S="$(printf '%.1f s' "$(echo "$(now_s) - $t0" | bc)")"
  members=0
  for c in a b c d e f g h i j k l m n o p q r s t u v w x y z 0 1 2 3 4 5 6 7 8 9 _; do
    members=$((members + $(redis-cli -p "$REDIS_PORT" zcard "hx:{$c}")))
  done
  [ "$members" -ge "$MEMBERS" ] || { log "the fill indexed $members of $MEMBERS handles"; exit 1; }
fi

h=$(grep '^healthz' "$WORK/latency") s=$(grep '^search' "$WORK/latency")
printf 'search over %d handles (limit %d, %s items a page), %d requests each, one at a time\n' \
  "$MEMBERS" "$LIMIT" "$(awk '/^items_per_search/ {print $2}' "$WORK/latency")" "$REQUESTS"
printf '  %-22s p50 %7s ms  p99 %7s ms  max %7s ms\n' "GET /healthz" "$(field "$h" p50)" \
  "$(field "$h" p99)" "$(field "$h" max)"
printf '  %-22s p50 %7s ms  p99 %7s ms  max %7s ms\n' "GET /v1/users/search" "$(field "$s" p50)" \
  "$(field "$s" p99)" "$(field "$s" max)"
printf '  search - healthz: p50 %+.3f ms, p99 %+.3f ms\n' \
  "$(echo "$(field "$s" p50) - $(field "$h" p50)" | bc)" "$(echo "$(field "$s" p99) - $(field "$h" p99)" | bc)"
printf '  load %.1f s; Redis memory %s, of which the index %d MB; startup fill of the index: %s\n' \
  "$LOAD_S" "$MEM" $((INDEX / 1048576)) "$FILL_S"
