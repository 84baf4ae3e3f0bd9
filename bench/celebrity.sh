#!/usr/bin/env bash
# bench/celebrity.sh -- what ONE post by a celebrity costs Redis and the engine, on loopback.
#
# A celebrity (an author past --celebrity-threshold) has their posts merged into timelines
# at read time, but connected followers still get the live feed event. This measures the
# price of finding those followers, per post, against a normal author's post in the same run:
#   1. starts its own redis-server (no persistence) on a free loopback port and tidings
#      (--celebrity-threshold THRESHOLD) against it;
#   2. registers the celebrity, a normal author and CONNECTED users through POST /v1/users,
#      and writes the follow edges straight into Redis (pipelined ZADDs, 1,000 members a
#      command): followers:{celebrity} holds the CONNECTED users, spread evenly over the
#      follow order, and FOLLOWERS - CONNECTED made-up ids; the normal author has
#      BASE_FOLLOWERS followers, as many of them connected users as there are (so its post
#      is delivered live too), the rest made up. Scores are follow times in ms, one ms apart:
#      the engine walks followers by score, so they must be unique. The real users get their
#      following:{user} edge too, as storage/graph.c writes it;
#   3. opens one stream per connected user (bench/sse_load.c, holding them) and waits until
#      Redis marks every one of them online (their event log ev:{user} exists);
#   4. the celebrity's first post marks them (its fan-out job walks every follower once);
#      then POSTS celebrity posts and POSTS normal posts, one after the other, each when the
#      fan-out queue is idle. For each: Redis CPU (INFO cpu used_cpu_user + used_cpu_sys),
#      tidings CPU (all threads, /proc/<pid>/task/*/schedstat), the wall time from just
#      before the POST until the fan-out queue is idle (no entry left in fanout:{0..3}, none
#      pending in group "engine": an acknowledged job is deleted), and how many connected
#      streams got the event (tidings_stream_events_sent_total), counted until all had it or
#      nothing came for SETTLE_MS. The CPU figures are read once that count settled, so a
#      delivery that goes on after the job's acknowledgement is charged to its post.
# The summary table goes to stdout, details to stderr. Every wait is bounded; everything
# started here is stopped by an EXIT trap. With the defaults it takes well under a minute.
#
# usage: bench/celebrity.sh                 (after cmake --build build)
# environment: BUILD (build dir), FOLLOWERS (1000000), CONNECTED (1000, at most 18000),
#              POSTS (3), BASE_FOLLOWERS (100), THRESHOLD (10000: --celebrity-threshold),
#              THREADS (tidings --threads, 4), SETTLE_MS (1000), TIMEOUT (120 s per post),
#              MARK_TIMEOUT (600 s for the marking post), REG_THREADS (8), CONCURRENCY (256
#              streams set up at once), TIDINGS_ARGS (more tidings flags), KEEP (1: keep the
#              work directory with the logs)
# shellcheck disable=SC2086,SC2317 # word lists; cleanup runs from the trap
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
FOLLOWERS=${FOLLOWERS:-1000000}
CONNECTED=${CONNECTED:-1000}
POSTS=${POSTS:-3}
BASE_FOLLOWERS=${BASE_FOLLOWERS:-100}
THRESHOLD=${THRESHOLD:-10000}
THREADS=${THREADS:-4}
SETTLE_MS=${SETTLE_MS:-1000}
TIMEOUT=${TIMEOUT:-120}
MARK_TIMEOUT=${MARK_TIMEOUT:-600}
REG_THREADS=${REG_THREADS:-8}
CONCURRENCY=${CONCURRENCY:-256}
TIDINGS_ARGS=${TIDINGS_ARGS:-}
KEEP=${KEEP:-0}
export PYTHONPATH=$ROOT/bench${PYTHONPATH:+:$PYTHONPATH}

TIDINGS=$BUILD/api/tidings
CLIENT=$BUILD/bench/tidings-sse-load
need_built "$TIDINGS" "$CLIENT"
need_tools redis-server redis-cli curl python3
for v in FOLLOWERS CONNECTED POSTS BASE_FOLLOWERS THRESHOLD SETTLE_MS TIMEOUT MARK_TIMEOUT; do
  [[ "${!v}" =~ ^[0-9]+$ ]] || { echo "$v must be a number, not '${!v}'" >&2; exit 2; }
done
if [ "$FOLLOWERS" -le "$THRESHOLD" ] || [ "$BASE_FOLLOWERS" -gt "$THRESHOLD" ] ||
  [ "$CONNECTED" -gt "$FOLLOWERS" ] || [ "$CONNECTED" -gt 18000 ] || [ "$POSTS" -lt 1 ]; then
  echo "need BASE_FOLLOWERS <= THRESHOLD < FOLLOWERS, CONNECTED <= FOLLOWERS, CONNECTED <= 18000" \
    "(the open-files limit) and POSTS >= 1" >&2
  exit 2
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tidings-celebrity.XXXXXX")
REDIS_PID="" TIDINGS_PID="" CLIENT_PID=""
trap cleanup_work EXIT
trap 'exit 130' INT TERM

R() { redis-cli -p "$REDIS_PORT" "$@"; }

# ---- servers ---------------------------------------------------------------------------------

start_tidings() {
  start_tidings_at "redis://127.0.0.1:$REDIS_PORT" "$WORK/tidings.log" --threads "$THREADS" \
    --log-level warn --celebrity-threshold "$THRESHOLD" --max-streams $((CONNECTED + 1000)) \
    $TIDINGS_ARGS
}

# ---- users and edges ---------------------------------------------------------------------------

# edges AUTHOR N USERS-FILE REAL: followers:{AUTHOR} gets N members: the first REAL users of
# USERS-FILE, spread evenly over the follow order (a walk meets them all along, not first),
# each also given their following:{user} edge, and made-up ids.
edges() {
  timeout 600 python3 - "$REDIS_PORT" "$@" <<'PY'
import sys, time
from redis_route import Router
port, author, n, path, real = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
users = [line.split()[0] for line in open(path)][:real] if real else []
at = {j * n // len(users): user for j, user in enumerate(users)} if users else {}
fake_base = 10**12                         # no registered id is this small
t0 = int(time.time() * 1000) - n - 1000    # follow times, one ms apart
key = "followers:{%s}" % author
def commands():
    for i, user in at.items():
        yield ("ZADD", "following:{%s}" % user, "NX", t0 + i, author)
    for lo in range(0, n, 1000):
        args = ["ZADD", key]
        for i in range(lo, min(n, lo + 1000)):
            args += [t0 + i, at.get(i, fake_base + i)]
        yield tuple(args)
r = Router("redis://127.0.0.1:%s" % port)
sent, errors, err = r.pipeline(commands())
if errors:
    sys.exit("follow edges: %d of %d commands failed: %s" % (errors, sent, err))
have = r.call("ZCARD", key)
if have != n:
    sys.exit("%s holds %d members, not %d" % (key, have, n))
PY
}

# ---- one post, measured ------------------------------------------------------------------------

# measure TOKEN TEXT EXPECTED TIMEOUT: waits for an idle queue, posts, and prints
# "post=… redis_ms=… tidings_ms=… idle_s=… deliv_s=… got=… polls=…".
measure() {
  timeout $(($4 + 120)) python3 - "$HTTP_PORT" "$REDIS_PORT" "$TIDINGS_PID" "$@" "$SETTLE_MS" <<'PY'
import glob, http.client, json, sys, time
from redis_route import Conn, encode
hport, rport, tpid, token, text, expected, limit, settle_ms = sys.argv[1:9]
expected, limit, settle = int(expected), float(limit), int(settle_ms) / 1000
r = Conn("127.0.0.1", rport)
polls = 0
QUEUE = b"".join(encode(c) for k in range(4)
                 for c in (("XLEN", "fanout:{%d}" % k), ("XPENDING", "fanout:{%d}" % k, "engine")))
def backlog():
    global polls
    polls += 1
    r.send(QUEUE)
    total = 0
    for k in range(4):
        length, pending = r.reply(), r.reply()
        total += length + (pending[0] if isinstance(pending, list) else 0)
    return total
def wait_idle(deadline):
    while backlog():
        if time.time() > deadline:
            sys.exit("the fan-out queue is not idle %.0f s after the previous post" % limit)
        time.sleep(0.005)
def redis_cpu():
    info = r.call("INFO", "cpu").decode()
    f = dict(l.split(":", 1) for l in info.split("\r\n") if ":" in l)
    return float(f["used_cpu_user"]) + float(f["used_cpu_sys"])
def tidings_cpu():  # ns, every thread (schedstat: not the 10 ms ticks of /proc/<pid>/stat)
    total = 0
    for p in glob.glob("/proc/%s/task/*/schedstat" % tpid):
        try:
            total += int(open(p).read().split()[0])
        except (OSError, ValueError, IndexError):
            pass  # a thread that just ended
    return total / 1e9
http_conn = http.client.HTTPConnection("127.0.0.1", int(hport), timeout=limit)
def events_sent():
    http_conn.request("GET", "/metrics")
    for line in http_conn.getresponse().read().decode().splitlines():
        if line.startswith("tidings_stream_events_sent_total "):
            return float(line.split()[1])
    sys.exit("/metrics has no tidings_stream_events_sent_total")

wait_idle(time.time() + limit)
e0, c0, t0cpu = events_sent(), redis_cpu(), tidings_cpu()
polls = 0
t0 = time.time()
http_conn.request("POST", "/v1/posts", body=json.dumps({"text": text}),
                  headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
resp = http_conn.getresponse()
body = resp.read()
if resp.status != 202:
    sys.exit("POST /v1/posts answered %d: %s" % (resp.status, body[:200]))
post = json.loads(body)["id"]
# Until the queue is idle and every connected follower's stream sent the event (or none came
# for settle after both): a delivery may go on after the job is acknowledged. /metrics is read
# every 20 ms only, to keep its own cost out of tidings' figure.
t_idle, got, t_got, last_change, next_metrics, pause = None, 0, None, t0, t0, 0.0005
while True:
    now = time.time()
    if t_idle is None and not backlog():
        t_idle = now - t0
    if got < expected and now >= next_metrics:
        next_metrics = now + 0.02
        count = events_sent() - e0
        if count != got:
            got, t_got, last_change = count, now - t0, now
    if t_idle is not None and (got >= expected or now - max(last_change, t0 + t_idle) >= settle):
        break
    if now - t0 > limit:
        sys.exit("the fan-out queue is not idle %.0f s after the post" % limit if t_idle is None
                 else "streams still counting %.0f s after the post" % limit)
    time.sleep(pause)
    pause = min(pause * 1.5, 0.005)  # fine-grained for short jobs, light for long ones
c1, t1cpu = redis_cpu(), tidings_cpu()
print("post=%s redis_ms=%.1f tidings_ms=%.1f idle_s=%.3f deliv_s=%s got=%d polls=%d" % (
    post, (c1 - c0) * 1000, (t1cpu - t0cpu) * 1000, t_idle,
    "%.3f" % t_got if t_got is not None else "-", got, polls))
PY
}

# Redis CPU over 2 s with nothing posted: online refreshes and cron, in every row too.
idle_redis_ms_per_s() {
  python3 - "$REDIS_PORT" <<'PY'
import sys, time
from redis_route import Conn
r = Conn("127.0.0.1", sys.argv[1])
def cpu():
    f = dict(l.split(":", 1) for l in r.call("INFO", "cpu").decode().split("\r\n") if ":" in l)
    return float(f["used_cpu_user"]) + float(f["used_cpu_sys"])
a = cpu(); time.sleep(2); b = cpu()
print("%.2f" % ((b - a) * 1000 / 2))
PY
}

# ---- the run ---------------------------------------------------------------------------------

t_start=$SECONDS
start_redis_server
start_tidings
log "redis on port $REDIS_PORT, tidings on port $HTTP_PORT (--celebrity-threshold $THRESHOLD)"
register celeb 1 "$WORK/celebrity.txt"
register normal 1 "$WORK/normal.txt"
: >"$WORK/users.txt"
[ "$CONNECTED" = 0 ] || register fan "$CONNECTED" "$WORK/users.txt"
read -r CELEB_ID CELEB_TOKEN <"$WORK/celebrity.txt"
read -r NORMAL_ID NORMAL_TOKEN <"$WORK/normal.txt"
BASE_REAL=$((BASE_FOLLOWERS < CONNECTED ? BASE_FOLLOWERS : CONNECTED))
t0=$SECONDS
edges "$CELEB_ID" "$FOLLOWERS" "$WORK/users.txt" "$CONNECTED"
edges "$NORMAL_ID" "$BASE_FOLLOWERS" "$WORK/users.txt" "$BASE_REAL"
log "registered $CONNECTED users; wrote $FOLLOWERS followers of the celebrity and $BASE_FOLLOWERS" \
  "of the normal author in $((SECONDS - t0)) s"

if [ "$CONNECTED" -gt 0 ]; then
  awk '{print $2}' "$WORK/users.txt" >"$WORK/tokens.txt"
  timeout --signal=TERM 3600 "$CLIENT" --port "$HTTP_PORT" --tokens "$WORK/tokens.txt" \
    --connections "$CONNECTED" --connect-concurrency "$CONCURRENCY" --ready-file "$WORK/ready" \
    --go-file "$WORK/go" --hold 3500 --ready-timeout 180 --max-time 3590 \
    >"$WORK/client.out" 2>"$WORK/client.err" &
  CLIENT_PID=$!
  wait_streams "$WORK/client.err"
  log "client: $(grep '^READY' "$WORK/client.out" || true)"
  # Online: an event log ev:{user} exists (made with the presence online:{user}, which a post
  # needs to reach the stream live).
  deadline=$((SECONDS + 60))
  while online=$(R --scan --pattern 'ev:*' | grep -c . || true) && [ "$online" -lt "$CONNECTED" ]; do
    [ $SECONDS -lt $deadline ] || { log "after 60 s only $online of $CONNECTED users online; going on"; break; }
    sleep 0.2
  done
  log "$online users online"
fi
IDLE_REDIS=$(idle_redis_ms_per_s)
log "Redis CPU at rest: $IDLE_REDIS ms/s"

declare -a NAMES ROWS
run() { # name token text expected timeout
  local res
  res=$(measure "$2" "$3" "$4" "$5") || { log "$1: measuring failed"; exit 1; }
  log "$1: $res"
  NAMES+=("$1") ROWS+=("$res")
}
run "celebrity, marking post" "$CELEB_TOKEN" "the post that makes a celebrity" "$CONNECTED" "$MARK_TIMEOUT"
[ "$(R exists "celeb:{$CELEB_ID}")" = 1 ] || log "note: celeb:{$CELEB_ID} does not exist after the marking post"
for i in $(seq "$POSTS"); do
  run "celebrity post $i" "$CELEB_TOKEN" "celebrity post $i" "$CONNECTED" "$TIMEOUT"
done
for i in $(seq "$POSTS"); do
  run "normal post $i" "$NORMAL_TOKEN" "normal post $i" "$BASE_REAL" "$TIMEOUT"
done

if [ -n "$CLIENT_PID" ]; then
  touch "$WORK/go"
  wait "$CLIENT_PID" 2>/dev/null || log "the stream client ended with an error: $(cat "$WORK/client.err")"
  CLIENT_PID=""
  log "client: $(grep '^held' "$WORK/client.out" || true)"
fi

# ---- summary -----------------------------------------------------------------------------------
printf '\n== one post: celebrity with %s followers (%s connected, --celebrity-threshold %s) vs. a normal author with %s (%s connected) ==\n' \
  "$FOLLOWERS" "$CONNECTED" "$THRESHOLD" "$BASE_FOLLOWERS" "$BASE_REAL"
printf '%-24s %12s %12s %12s %12s %12s\n' post redis_cpu_ms tidings_cpu_ms queue_idle_s delivered_s streams
for k in "${!ROWS[@]}"; do
  r=${ROWS[$k]}
  case "${NAMES[$k]}" in normal*) want=$BASE_REAL ;; *) want=$CONNECTED ;; esac
  printf '%-24s %12s %12s %12s %12s %12s\n' "${NAMES[$k]}" "$(field "$r" redis_ms)" \
    "$(field "$r" tidings_ms)" "$(field "$r" idle_s)" "$(field "$r" deliv_s)" "$(field "$r" got)/$want"
done
celeb_ms=0 normal_ms=0
for k in "${!ROWS[@]}"; do
  case "${NAMES[$k]}" in
    "celebrity post"*) celeb_ms=$(python3 -c "print($celeb_ms + $(field "${ROWS[$k]}" redis_ms))") ;;
    "normal post"*) normal_ms=$(python3 -c "print($normal_ms + $(field "${ROWS[$k]}" redis_ms))") ;;
  esac
done
python3 - "$celeb_ms" "$normal_ms" "$POSTS" "$IDLE_REDIS" <<'PY'
import sys
posts = int(sys.argv[3])
c, n, idle = float(sys.argv[1]) / posts, float(sys.argv[2]) / posts, float(sys.argv[4])
print("Redis CPU per post, mean of %s: celebrity %.1f ms, normal %.2f ms: ratio celebrity/normal %s" % (
    sys.argv[3], c, n, ("%.0f" % (c / n)) if n > 0 else "n/a (normal post took no measurable CPU)"))
print("(Redis CPU at rest: %.2f ms/s, included in every row; queue_idle_s: POST sent -> no job left in"
      % idle)
print(" fanout:{0..3}; delivered_s: -> the last stream event counted by /metrics (20 ms polls, '-': none);"
      " streams: events sent / connected followers)")
PY
log "total run time $((SECONDS - t_start)) s"
exit 0
