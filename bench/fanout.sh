#!/usr/bin/env bash
# bench/fanout.sh [N ...] -- end-to-end fan-out throughput against redis-benchmark.
#
# For each N (default 1000 10000 100000), builds an author with N followers (pipelined
# straight into Redis), publishes one post through the HTTP API and measures the time
# until every follower's timeline holds it: timeline writes per second. In the same run,
# on the same Redis, redis-benchmark's pipelined ZADD (-c 50 -P 16, random keys) is the
# baseline; the ratio is printed. Then, while a 100,000-follower fan-out runs, it
# measures POST /v1/posts latency (the write path must not stall behind the engine).
# Loopback only; every loop is bounded. Needs a built tree (cmake --build build).
#
# environment: BUILD (build dir, build), TIDINGS_BIN (the server, $BUILD/api/tidings),
#   REDIS_URL (use this Redis instead of starting one: redis://host:port, or a Redis Cluster
#   seed list redis://h:p1,h:p2,...; it is FLUSHALLed first; redis-benchmark then runs with
#   --cluster), BASELINE (0: skip redis-benchmark), LATENCY (0: skip the POST latency part),
#   REPEAT (1: fan-outs per N, each to N new followers), QUIET_WAIT (0: before each fan-out,
#   wait up to this many seconds for a second with under QUIET_CORES (0.25) cores busy),
#   TIDINGS_LOG (tidings' stderr; default a file in the work directory, removed at exit),
#   RESULTS (append one "fanout followers=N seconds=T writes_per_s=W baseline=B" line per
#   fan-out to this file, for bench/cluster.sh), FOLLOWERS_SEEN (when the made-up followers
#   were last seen, seen:{id}: unset, none written (never inactive); "now", active; "old",
#   60 days ago, inactive: the fan-out skips them), TIDINGS_INACTIVE_DAYS (the server's
#   --inactive-days, read from the environment; 0: skipping off)
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(1000 10000 100000)
BUILD=${BUILD:-build}
BIN=${TIDINGS_BIN:-$BUILD/api/tidings}
REDIS_URL=${REDIS_URL:-}
BASELINE=${BASELINE:-1}
LATENCY=${LATENCY:-1}
RESULTS=${RESULTS:-}
REPEAT=${REPEAT:-1}
QUIET_WAIT=${QUIET_WAIT:-0}
QUIET_CORES=${QUIET_CORES:-0.25}
export PYTHONPATH=$PWD/bench${PYTHONPATH:+:$PYTHONPATH}
WORK=$(mktemp -d /tmp/tidings-fanout-bench.XXXXXX)
HPORT=$(free_port) OWN_REDIS=0
if [ -z "$REDIS_URL" ]; then
  RPORT=$(free_port) OWN_REDIS=1
  REDIS_URL=redis://127.0.0.1:$RPORT
fi
H=http://127.0.0.1:$HPORT
cleanup() {
  [ -n "${TPID:-}" ] && kill "$TPID" 2>/dev/null && wait "$TPID" 2>/dev/null
  [ "$OWN_REDIS" = 1 ] && { redis-cli -p "$RPORT" shutdown nosave >/dev/null 2>&1 || true; }
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
TIDINGS_LOG=${TIDINGS_LOG:-$WORK/tidings.log}
RR() { python3 bench/redis_route.py "$REDIS_URL" "$@"; } # routed by key on a cluster

if [ "$OWN_REDIS" = 1 ]; then
  redis-server --port "$RPORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
    --dir "$WORK" --logfile "$WORK/redis.log" >/dev/null
  for _ in $(seq 100); do redis-cli -p "$RPORT" ping 2>/dev/null | grep -q PONG && break; sleep 0.05; done
fi
RR each flushall >/dev/null
CLUSTER=0
[ "$(RR masters | wc -l)" -gt 1 ] && CLUSTER=1

base=""
if [ "$BASELINE" = 1 ]; then
  # On a cluster, redis-benchmark sends each key to its master: "{tag}" becomes a hash tag
  # of the node a client talks to.
  read -r bhost bport < <(RR masters | head -1 | tr ':' ' ')
  if [ "$CLUSTER" = 1 ]; then bopts=(--cluster) bkey='bench:{tag}:__rand_int__'
  else bopts=() bkey='bench:{__rand_int__}'; fi
  echo "== baseline: redis-benchmark pipelined ZADD on the same Redis =="
  base=$(redis-benchmark -h "$bhost" -p "$bport" "${bopts[@]}" -c 50 -P 16 -n 2000000 -r 1000000 -q \
           zadd "$bkey" 1 member 2>/dev/null | tr '\r' '\n' | grep -o '[0-9.]* requests per second' | tail -1 | cut -d' ' -f1)
  echo "redis-benchmark ZADD (-c 50 -P 16, 1M keys$([ "$CLUSTER" = 1 ] && echo ", --cluster")): ${base} writes/s"
  RR each flushall >/dev/null
fi

"$BIN" --redis "$REDIS_URL" --listen "127.0.0.1:$HPORT" --log-level warn --rate-limits off \
  --celebrity-threshold 2000000 --timeline-max 800 2>>"$TIDINGS_LOG" &
TPID=$!
for _ in $(seq 200); do curl -sf "$H/readyz" >/dev/null && break; sleep 0.05; done

register() { # handle -> "id token"
  curl -sf -X POST "$H/v1/users" -H 'Content-Type: application/json' -d "{\"handle\":\"$1\"}" |
    python3 -c 'import sys,json; d=json.load(sys.stdin); print(d["user"]["id"], d["token"])'
}
add_followers() { # author n first-follower-id
  python3 - "$REDIS_URL" "$1" "$2" "$3" "${FOLLOWERS_SEEN:-}" <<'PY'
import sys, time
from redis_route import Router
url, author, n, first, seen = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
key = "followers:{%s}" % author
sent, errors, err = Router(url).pipeline(("ZADD", key, i + 1, first + i) for i in range(n))
if errors:
    sys.exit("follower edges: %d of %d failed: %s" % (errors, sent, err))
if seen:
    at = int(time.time() * 1000) - (0 if seen == "now" else 60 * 86400000)
    sent, errors, err = Router(url).pipeline(("SET", "seen:{%d}" % (first + i), at) for i in range(n))
    if errors:
        sys.exit("seen keys: %d of %d failed: %s" % (errors, sent, err))
PY
}
post() { # token text -> post id
  curl -sf -X POST "$H/v1/posts" -H "Authorization: Bearer $1" -H 'Content-Type: application/json' \
       -d "{\"text\":\"$2\"}" | python3 -c 'import sys,json; print(json.load(sys.stdin)["id"])'
}
# Publishes through HTTP and polls Redis (one kept-open connection per node) until the last
# follower's timeline holds the post and the queue is empty; prints the seconds.
# With FOLLOWERS_SEEN=old no timeline gets the post: it waits for every queue shard to empty.
measure() { # token last-follower
  python3 - "$HPORT" "$REDIS_URL" "$1" "$2" "${FOLLOWERS_SEEN:-}" <<'PY'
import http.client, json, sys, time
from redis_route import Router, encode
hport, url, token, last, seen = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
r = Router(url)
tl, queue = "tl:{%s}" % last, "fanout:{0}"
def drained(pid):
    for k in range(4):
        node = r.node_of("fanout:{%d}" % k)
        node.send(encode(("XLEN", "fanout:{%d}" % k)))
        if node.reply() != 0:
            return False
    return True
def ask(pid):
    if seen == "old":
        return drained(pid)
    # both questions in flight at once, even when the keys live on two nodes
    a, b = r.node_of(tl), r.node_of(queue)
    a.send(encode(("ZSCORE", tl, pid)))
    if b is a:
        a.send(encode(("XLEN", queue)))
    else:
        b.send(encode(("XLEN", queue)))
    present, queued = a.reply() is not None, b.reply()
    return present and queued == 0
def redis_cpu():  # seconds of CPU every master has used (INFO cpu)
    total = 0.0
    for info in r.each("INFO", "cpu"):
        text = info.decode() if isinstance(info, bytes) else str(info)
        for line in text.split("\r\n"):
            if line.startswith(("used_cpu_user:", "used_cpu_sys:")):
                total += float(line.split(":")[1])
    return total
c = http.client.HTTPConnection("127.0.0.1", hport)
cpu0 = redis_cpu()
t0 = time.time()
c.request("POST", "/v1/posts", body='{"text":"fan-out"}',
          headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
pid = json.loads(c.getresponse().read())["id"]
deadline = t0 + 300
while not ask(pid):
    if time.time() > deadline:
        sys.exit("timed out")
    time.sleep(0.0005)
secs = time.time() - t0
print("%.4f %.4f" % (secs, redis_cpu() - cpu0))
PY
}

printf '\n== end-to-end fan-out: POST, then every follower timeline holds the post ==\n'
printf '%10s %12s %14s %8s %14s\n' followers seconds writes/s ratio "redis busy"
# The machine may be shared: wait (at most QUIET_WAIT s, 0: not at all) for a second with few
# cores busy, silently (lib.sh's wait_quiet samples at least once and reports a busy machine).
wait_quiet_silent() {
  local t0=$SECONDS b0 b1
  while [ $((SECONDS - t0)) -lt "$QUIET_WAIT" ]; do
    b0=$(busy_ticks); sleep 1; b1=$(busy_ticks)
    python3 -c "import sys; sys.exit(0 if ($b1 - $b0) / $CLK_TCK < $QUIET_CORES else 1)" && return 0
  done
}
first=1000000000000
for n in "${SIZES[@]}"; do
  for rep in $(seq "$REPEAT"); do
    read -r aid atok < <(register "bench_${n}_$rep")
    add_followers "$aid" "$n" "$first"
    wait_quiet_silent
    read -r secs rcpu < <(measure "$atok" $((first + n - 1)))
    python3 -c "n=$n; t=$secs; b=float('${base:-0}' or 0); print('%10d %12.3f %14.0f %8s %13.0f%%' % (n, t, n/t, ('%.2f' % (n/t/b)) if b else '-', 100 * $rcpu / t))"
    [ -z "$RESULTS" ] || python3 -c "n=$n; t=$secs; print('fanout followers=%d seconds=%.4f writes_per_s=%.0f baseline=%s' % (n, t, n/t, '${base:--}'))" >>"$RESULTS"
    first=$((first + n))
  done
done
[ "$LATENCY" = 1 ] || exit 0

printf '\n== POST /v1/posts latency while a 100,000-follower fan-out runs ==\n'
read -r bid btok < <(register bench_busy)
read -r _ wtok < <(register bench_writer)
add_followers "$bid" 100000 "$first"
lat() { for _ in $(seq "$1"); do
  curl -s -o /dev/null -w '%{time_total}\n' -X POST "$H/v1/posts" -H "Authorization: Bearer $wtok" \
       -H 'Content-Type: application/json' -d '{"text":"while busy"}'; done; }
lat 200 > "$WORK/idle.txt"
post "$btok" "big one" >/dev/null
lat 200 > "$WORK/busy.txt"
python3 - "$WORK/idle.txt" "$WORK/busy.txt" <<'PY'
import sys
def pct(xs, p): xs = sorted(xs); return xs[min(len(xs) - 1, int(p * len(xs)))] * 1000
for label, path in (("idle engine", sys.argv[1]), ("during fan-out", sys.argv[2])):
    xs = [float(l) for l in open(path) if l.strip()]
    print("%-16s n=%d p50 %.2f ms  p99 %.2f ms  max %.2f ms" % (label, len(xs), pct(xs, .5), pct(xs, .99), max(xs) * 1000))
PY
echo "(curl sequential requests: each includes curl's own connect; compare the two lines)"
