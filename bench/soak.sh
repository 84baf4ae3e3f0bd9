#!/usr/bin/env bash
# bench/soak.sh -- the memory soak: bounded mixed load on one tidings and its own Redis for
# SOAK_SECONDS (20 minutes), a line a minute, and whether either memory kept growing.
#
#   1. starts its own redis-server (no persistence) and tidings (--timeline-max
#      TIMELINE_MAX, --notifications-max NOTIFICATIONS_MAX: small, so that every bounded
#      structure reaches its bound within the warm-up) against it, registers USERS users;
#   2. runs bench/soak_load.c: the follow graph first (CELEBS users followed by everyone,
#      each user following FOLLOWS of the AUTHORS who post), then RATE actions a second
#      (posts, likes/unlikes, reposts/unreposts, follows/unfollows, deletes) and STREAMS
#      event streams that each reconnect with their Last-Event-ID after 10..60 s;
#   3. every SAMPLE seconds prints: minutes, tidings' VmRSS, Redis' used_memory, the memory
#      of what posts keep forever by design (post:*, posts:*, likes:*, reposts:*, rpa:*,
#      from MEMORY USAGE), used_memory without it, the number of keys, and the client's
#      requests, errors (any answer but 2xx and 429, failed connections), events received
#      and reconnects;
#   4. at the end: the growth of tidings' RSS and of Redis' used_memory without the posts'
#      keys from the end of the warm-up (WARMUP_SECONDS) to the end, PASS when both stay
#      under 5 % and there was no error, FAIL otherwise (exit status 1).
# Every wait is bounded; everything started here is stopped by an EXIT trap.
#
# usage: bench/soak.sh               (after cmake --build build)
# environment: BUILD (build dir), SOAK_SECONDS (1200), WARMUP_SECONDS (420), SAMPLE (60),
#              USERS (1000), CELEBS (3), AUTHORS (100), FOLLOWS (30), RATE (40), STREAMS
#              (2000), TIMELINE_MAX (200), NOTIFICATIONS_MAX (30), THREADS (tidings
#              --threads, 4), TIDINGS_ARGS (more tidings flags), REG_THREADS (8), KEEP (1:
#              keep the work directory)
# shellcheck disable=SC2086,SC2317 # word lists; cleanup runs from the trap
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
SOAK_SECONDS=${SOAK_SECONDS:-1200}
WARMUP_SECONDS=${WARMUP_SECONDS:-420}
SAMPLE=${SAMPLE:-60}
USERS=${USERS:-1000}
CELEBS=${CELEBS:-3}
AUTHORS=${AUTHORS:-100}
FOLLOWS=${FOLLOWS:-30}
RATE=${RATE:-40}
STREAMS=${STREAMS:-2000}
TIMELINE_MAX=${TIMELINE_MAX:-200}
NOTIFICATIONS_MAX=${NOTIFICATIONS_MAX:-30}
THREADS=${THREADS:-4}
TIDINGS_ARGS=${TIDINGS_ARGS:-}
REG_THREADS=${REG_THREADS:-8}
KEEP=${KEEP:-0}
TIDINGS=$BUILD/api/tidings
LOAD=$BUILD/bench/tidings-soak-load
need_built "$TIDINGS" "$LOAD"
need_tools redis-server redis-cli curl python3 bc
[ "$WARMUP_SECONDS" -lt "$SOAK_SECONDS" ] || { log "WARMUP_SECONDS must be below SOAK_SECONDS"; exit 2; }
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tidings-soak.XXXXXX")
trap cleanup_work EXIT

rcli() { redis-cli -p "$REDIS_PORT" "$@"; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$TIDINGS_PID/status"; }
used_memory() { rcli info memory | sed -n 's/^used_memory:\([0-9]*\).*/\1/p'; }

# posts_memory: bytes Redis keeps for the posts, which are kept forever by design (the
# post hashes, the authors' post lists, who liked and reposted each, reposts by author).
posts_memory() {
  local p
  for p in 'post:*' 'posts:*' 'likes:*' 'reposts:*' 'rpa:*'; do rcli --scan --pattern "$p"; done |
    awk '{print "MEMORY USAGE " $0 " SAMPLES 0"}' | rcli 2>/dev/null | awk '{s += $1} END {print s + 0}'
}

# fill: how far the bounded structures are filled, from a sample of 50 users: mean timeline
# entries (of TIMELINE_MAX) and mean event log length (of 1,000).
fill() {
  local tl=0 ev=0 n=0 id
  while read -r id _; do
    tl=$((tl + $(rcli zcard "tl:{$id}"))); ev=$((ev + $(rcli xlen "ev:{$id}"))); n=$((n + 1))
  done < <(awk 'NR % 20 == 0' "$WORK/users")
  echo "timelines $((tl / n))/$TIMELINE_MAX events $((ev / n))/1000 (mean of $n users)"
}

start_redis_server
start_tidings_at "redis://127.0.0.1:$REDIS_PORT" "$WORK/tidings.log" --log-level warn \
  --threads "$THREADS" --timeline-max "$TIMELINE_MAX" --notifications-max "$NOTIFICATIONS_MAX" $TIDINGS_ARGS
log "redis on $REDIS_PORT, tidings on $HTTP_PORT (pid $TIDINGS_PID); registering $USERS users"
register soak "$USERS" "$WORK/users"

"$LOAD" --port "$HTTP_PORT" --users "$WORK/users" --celebs "$CELEBS" --authors "$AUTHORS" \
  --follows "$FOLLOWS" --rate "$RATE" --streams "$STREAMS" --duration "$SOAK_SECONDS" \
  --stats-file "$WORK/stats" >"$WORK/result" 2>"$WORK/load.err" &
CLIENT_PID=$!
deadline=$((SECONDS + 600))
until [ -f "$WORK/stats" ]; do
  kill -0 "$CLIENT_PID" 2>/dev/null || { log "the load client died: $(cat "$WORK/load.err")"; exit 1; }
  [ $SECONDS -lt $deadline ] || { log "the graph setup took over 600 s"; exit 1; }
  sleep 0.2
done
t0=$(now_s)
log "$(cat "$WORK/load.err")"

echo "== soak: $USERS users ($CELEBS followed by all, $AUTHORS posting, $FOLLOWS follows each), $RATE actions/s, $STREAMS streams reconnecting every 10..60 s"
echo "   $SOAK_SECONDS s, warm-up $WARMUP_SECONDS s, --timeline-max $TIMELINE_MAX, --notifications-max $NOTIFICATIONS_MAX, tidings --threads $THREADS, $(redis-server --version | cut -d' ' -f3 | tr -d v=)"
printf '%5s %9s %9s %9s %9s %8s %9s %7s %9s %9s\n' min rss_MB used_MB posts_MB rest_MB keys requests errors events reconnects
sample=0 rss_w='' rest_w='' rss_e='' rest_e=''
while :; do
  next=$(echo "$t0 + ($sample + 1) * $SAMPLE" | bc)
  sleep "$(echo "d = $next - $(now_s); if (d < 0) d = 0; d" | bc)"
  sample=$((sample + 1))
  kill -0 "$TIDINGS_PID" 2>/dev/null || { log "tidings died; see $WORK/tidings.log"; exit 1; }
  rss=$(rss_kb) used=$(used_memory) posts=$(posts_memory) keys=$(rcli dbsize)
  rest=$((used - posts))
  s=$(cat "$WORK/stats")
  printf '%5.1f %9.1f %9.1f %9.1f %9.1f %8d %9d %7d %9d %9d\n' "$(echo "$sample * $SAMPLE / 60" | bc -l)" \
    "$(echo "$rss / 1024" | bc -l)" "$(echo "$used / 1048576" | bc -l)" "$(echo "$posts / 1048576" | bc -l)" \
    "$(echo "$rest / 1048576" | bc -l)" "$keys" "$(field "$s" requests)" "$(field "$s" errors)" \
    "$(field "$s" events)" "$(field "$s" reconnects)"
  if [ -z "$rss_w" ] && [ $((sample * SAMPLE)) -ge "$WARMUP_SECONDS" ]; then
    rss_w=$rss rest_w=$rest
    echo "   end of warm-up: $(fill)"
  fi
  rss_e=$rss rest_e=$rest
  [ $((sample * SAMPLE)) -lt "$SOAK_SECONDS" ] || break
done
wait "$CLIENT_PID" || { log "the load client failed: $(cat "$WORK/load.err")"; exit 1; }
CLIENT_PID=''
result=$(cat "$WORK/result")
echo "   at the end: $(fill)"
echo "   client: ${result#RESULT }"
[ ! -s "$WORK/load.err" ] || sed 's/^/   client: /' "$WORK/load.err" | tail -n 6

growth() { echo "scale=2; 100 * ($2 - $1) / $1" | bc; }
g_rss=$(growth "$rss_w" "$rss_e") g_rest=$(growth "$rest_w" "$rest_e")
errors=$(field "$result" errors)
verdict=PASS
for g in "$g_rss" "$g_rest"; do [ "$(echo "$g < 5" | bc)" = 1 ] || verdict=FAIL; done
[ "$errors" = 0 ] || verdict=FAIL
printf '   growth after warm-up: tidings RSS %.1f -> %.1f MB (%+.2f %%), Redis without posts %.1f -> %.1f MB (%+.2f %%); errors %s\n' \
  "$(echo "$rss_w / 1024" | bc -l)" "$(echo "$rss_e / 1024" | bc -l)" "$g_rss" \
  "$(echo "$rest_w / 1048576" | bc -l)" "$(echo "$rest_e / 1048576" | bc -l)" "$g_rest" "$errors"
echo "$verdict (limit: 5 % growth of each memory, no error)"
[ "$verdict" = PASS ]
