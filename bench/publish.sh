#!/usr/bin/env bash
# bench/publish.sh -- the publishing benchmark of DESIGN §7, on loopback.
#
# Starts its own redis-server (no persistence: --save "" --appendonly no) on a free port,
# the ceiling (bench/ceiling.c: libmicrohttpd with tidings' daemon options, static 202) and
# tidings against that Redis, registers users and collects their tokens, pre-creates posts,
# then measures with bench/load.c:
#   1. ceiling, POST, closed loop                  -> the ceiling rate C
#   2. tidings POST /v1/posts, closed loop         -> ratio to C (target >= 0.5)
#   3. tidings GET /v1/posts/{id}, closed loop     -> ratio to C (for reference)
#   4. tidings POST and GET, open loop at C/2      -> p99 (target < 5 ms)
#   5. tidings POST and GET, open loop at half of tidings' own closed-loop rate (reference)
#   6. tidings POST, open loop at C/64, C/32, C/16, C/8: the highest rate with p99 < 5 ms
#   7. tidings and the ceiling with --threads 2, 4, 8, 16, closed loop
#   8. tidings POST with --engine off (no fan-out in the process), when the binary has it:
#      closed loop, and open loop at the rate of phase 5 (last: its jobs are never drained)
# tidings runs its fan-out engine (the default); the users have no followers, so each job is
# light but still costs the process. Before each tidings phase the script waits until the
# fan-out streams have no lag and no pending jobs, so no phase pays for an earlier one, and
# after each POST phase it reports the backlog left and how long the engine took to clear it.
# The machine may be shared: each phase first waits (at most QUIET_WAIT s) for a quiet second,
# is repeated (at most REPEAT times) while more than QUIET_CORES cores were busy elsewhere
# during it, keeps its quietest run, and the summary's "other" column shows that figure.
# Every phase is bounded by DURATION seconds and MAX_REQUESTS requests (draining by
# DRAIN_MAX seconds); everything started here is stopped on exit. Server CPU per request
# (split into the loop thread, which runs the fan-out engine, and the MHD workers) and Redis
# CPU per request come from /proc/PID/stat, Redis commands per request from INFO stats.
#
# usage: bench/publish.sh            (after cmake --build build)
# environment: BUILD (build), THREADS (4), SWEEP ("2 4 8 16"), DURATION (10), SWEEP_DURATION (5),
#              WARMUP (1), MAX_REQUESTS (2000000), CONNECTIONS (64), USERS (200), POSTS (200),
#              LOAD_THREADS (1), DRAIN_MAX (120), LADDER ("64 32 16 8": divisors of C),
#              LADDER_DURATION (5), QUIET_WAIT (20), QUIET_CORES (0.15), REPEAT (3),
#              CEILING_ARGS (e.g. "--connection-memory 16384" to follow api/server.c),
#              KEEP (keep the work directory when 1)
# R_<phase>_<field> variables are set through printf -v; the table formats are ours.
# shellcheck disable=SC2154,SC2059
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
THREADS=${THREADS:-4}
SWEEP=${SWEEP:-2 4 8 16}
DURATION=${DURATION:-10}
SWEEP_DURATION=${SWEEP_DURATION:-5}
WARMUP=${WARMUP:-1}
MAX_REQUESTS=${MAX_REQUESTS:-2000000}
CONNECTIONS=${CONNECTIONS:-64}
USERS=${USERS:-200}
POSTS=${POSTS:-200}
LOAD_THREADS=${LOAD_THREADS:-1}
DRAIN_MAX=${DRAIN_MAX:-120}
LADDER=${LADDER:-64 32 16 8}
LADDER_DURATION=${LADDER_DURATION:-5}
QUIET_WAIT=${QUIET_WAIT:-20}
REPEAT=${REPEAT:-3}
CEILING_ARGS=${CEILING_ARGS:-}
QUIET_CORES=${QUIET_CORES:-0.15}
KEEP=${KEEP:-0}

TIDINGS=$BUILD/api/tidings
CEILING=$BUILD/bench/tidings-ceiling
LOAD=$BUILD/bench/tidings-load
need_built "$TIDINGS" "$CEILING" "$LOAD"
need_tools redis-server redis-cli curl jq python3 bc

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tidings-bench.XXXXXX")
REDIS_PID="" TIDINGS_PID="" CEILING_PID=""
trap cleanup_work EXIT
trap 'exit 130' INT TERM

thread_ticks() { awk '{print $14 + $15}' "/proc/$1/task/$1/stat"; }  # the main thread only
redis_cmds() { redis-cli -p "$REDIS_PORT" info stats | awk -F: '/^total_commands_processed/ {print $2+0}'; }

# ---- processes -------------------------------------------------------------------------

ENGINE=on
start_tidings() { # start_tidings THREADS [EXTRA-FLAGS...]
  local threads=$1
  shift
  ENGINE=on
  case " $* " in *" --engine off "*) ENGINE=off ;; esac
  start_tidings_at "redis://127.0.0.1:$REDIS_PORT" "$WORK/tidings.log" --threads "$threads" \
    --log-level warn "$@"
}
stop_tidings() { stop_pid "$TIDINGS_PID"; wait "$TIDINGS_PID" 2>/dev/null || true; TIDINGS_PID=""; }

start_ceiling() { # start_ceiling THREADS
  # shellcheck disable=SC2086 # CEILING_ARGS is a word list
  "$CEILING" --listen 127.0.0.1:0 --threads "$1" $CEILING_ARGS >"$WORK/ceiling.out" \
    2>>"$WORK/ceiling.log" &
  CEILING_PID=$!
  for _ in $(seq 100); do
    CEILING_PORT=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$WORK/ceiling.out")
    [ -n "$CEILING_PORT" ] && return 0
    sleep 0.05
  done
  log "the ceiling did not start; see $WORK/ceiling.log"
  exit 1
}
stop_ceiling() { stop_pid "$CEILING_PID"; wait "$CEILING_PID" 2>/dev/null || true; CEILING_PID=""; }

# ---- measuring -------------------------------------------------------------------------

# Waits until the fan-out backlog is empty (at most DRAIN_MAX s); prints the seconds taken.
drain_fanout() {
  local t0 left
  t0=$(now_s)
  while left=$(fanout_backlog) && [ "$left" -gt 0 ]; do
    if [ "$(echo "$(now_s) - $t0 > $DRAIN_MAX" | bc -l)" = 1 ]; then
      log "  fan-out backlog still $left jobs after $DRAIN_MAX s; measuring anyway"
      break
    fi
    sleep 0.1
  done
  printf '%.1f' "$(echo "$(now_s) - $t0" | bc -l)"
}

# measure NAME SERVER_PID PORT DURATION LOAD-ARGS... : runs the load generator and keeps its
# RESULT fields in R_<NAME>_<field>, plus server and Redis CPU and Redis commands per request.
measure() {
  local name=$1 pid=$2 port=$3 duration=$4
  shift 4
  wait_quiet "  "
  local s0 l0 r0 c0 b0 t0 s1 l1 r1 c1 b1 t1 out
  s0=$(cpu_ticks "$pid"); l0=$(thread_ticks "$pid"); r0=$(cpu_ticks "$REDIS_PID"); c0=$(redis_cmds)
  b0=$(busy_ticks); t0=$(now_s)
  out=$("$LOAD" --port "$port" --tokens "$WORK/tokens" --connections "$CONNECTIONS" \
    --threads "$LOAD_THREADS" --duration "$duration" --warmup "$WARMUP" \
    --requests "$MAX_REQUESTS" "$@")
  b1=$(busy_ticks); t1=$(now_s)
  s1=$(cpu_ticks "$pid"); l1=$(thread_ticks "$pid"); r1=$(cpu_ticks "$REDIS_PID"); c1=$(redis_cmds)
  printf '%s\n' "$out" | sed "s/^/  [$name] /" >&2
  local line kv
  line=$(printf '%s\n' "$out" | grep '^RESULT ')
  for kv in ${line#RESULT }; do
    printf -v "R_${name}_${kv%%=*}" '%s' "${kv#*=}"
  done
  # Over every request sent, warmup included: the /proc counters cannot tell them apart.
  local sent=$(( $(printf '%s\n' "$out" | sed -n 's/.*(\([0-9]*\) sent in all.*/\1/p') + 0 ))
  [ "$sent" -gt 0 ] || sent=1
  printf -v "R_${name}_srv_us" '%.1f' "$(echo "($s1 - $s0) * 1000000 / $CLK_TCK / $sent" | bc -l)"
  printf -v "R_${name}_loop_us" '%.1f' "$(echo "($l1 - $l0) * 1000000 / $CLK_TCK / $sent" | bc -l)"
  printf -v "R_${name}_redis_us" '%.1f' "$(echo "($r1 - $r0) * 1000000 / $CLK_TCK / $sent" | bc -l)"
  printf -v "R_${name}_cmds" '%.2f' "$(echo "($c1 - $c0) / $sent" | bc -l)"
  # CPU the machine spent outside server, Redis and load generator, in cores: other
  # sessions' builds and tests show up here and make a phase's figures suspect.
  local client_s=${line##*client_cpu_s=}
  local other
  other=$(echo "(($b1 - $b0) - ($s1 - $s0) - ($r1 - $r0) - ${client_s%% *} * $CLK_TCK) / $CLK_TCK / ($t1 - $t0)" | bc -l)
  [ "$(echo "$other < 0" | bc -l)" = 1 ] && other=0 # tick rounding
  printf -v "R_${name}_other" '%.2f' "$other"
}
get() { local v="R_$1_$2"; printf '%s' "${!v:--}"; }

# best_of NAME COMMAND NAME ARGS... : runs the measuring command up to REPEAT times, until one
# run had less than QUIET_CORES cores busy elsewhere, and keeps the quietest run's figures.
FIELDS="rps n p50_ms p90_ms p99_ms p999_ms max_ms errors non2xx conn_errors proto_errors
  timeouts lag_p99_ms client_cpu_s srv_us loop_us redis_us cmds other backlog drain_s"
best_of() {
  local name=$1 i f v best=999 o
  shift
  for ((i = 1; i <= REPEAT; i++)); do
    "$@"
    o=$(get "$name" other)
    if [ "$(echo "$o < $best" | bc -l)" = 1 ]; then
      best=$o
      for f in $FIELDS; do v="R_${name}_$f"; printf -v "B_${name}_$f" '%s' "${!v:-}"; done
    fi
    [ "$(echo "$o < $QUIET_CORES" | bc -l)" = 1 ] && break
    [ "$i" -lt "$REPEAT" ] && log "  $name: $o cores were busy elsewhere; again ($((i + 1))/$REPEAT)"
  done
  for f in $FIELDS; do v="B_${name}_$f"; printf -v "R_${name}_$f" '%s' "${!v:-}"; done
}

# measure_tidings NAME DURATION LOAD-ARGS... : measure against the running tidings after the
# fan-out backlog is gone; records the backlog the phase left and the time to clear it.
measure_tidings() {
  local name=$1 duration=$2
  shift 2
  if [ "$ENGINE" = on ]; then drain_fanout >/dev/null; fi
  measure "$name" "$TIDINGS_PID" "$HTTP_PORT" "$duration" "$@"
  if [ "$ENGINE" = on ]; then
    printf -v "R_${name}_backlog" '%s' "$(fanout_backlog)"
    printf -v "R_${name}_drain_s" '%s' "$(drain_fanout)"
  fi
}
ratio() { echo "scale=2; $1 / $2" | bc -l | sed 's/^\./0./'; }

# ---- setup -----------------------------------------------------------------------------

log "work directory $WORK"
start_redis_server
log "redis-server $(redis-server --version | awk '{print $3}' | tr -d v=) on 127.0.0.1:$REDIS_PORT (no persistence)"
start_tidings "$THREADS"
log "tidings on 127.0.0.1:$HTTP_PORT, --threads $THREADS; registering $USERS users"

: >"$WORK/tokens"
tag=$(date +%s)
for i in $(seq "$USERS"); do
  curl -fsS -X POST -H 'Content-Type: application/json' \
    -d "{\"handle\":\"b${tag}_$i\"}" "http://127.0.0.1:$HTTP_PORT/v1/users" | jq -r .token >>"$WORK/tokens"
done
: >"$WORK/ids"
for i in $(seq "$POSTS"); do
  token=$(sed -n "$(( (i - 1) % USERS + 1 ))p" "$WORK/tokens")
  curl -fsS -X POST -H 'Content-Type: application/json' -H "Authorization: Bearer $token" \
    -d "{\"text\":\"pre-created post $i\"}" "http://127.0.0.1:$HTTP_PORT/v1/posts" | jq -r .id >>"$WORK/ids"
done
log "$(wc -l <"$WORK/tokens") tokens, $(wc -l <"$WORK/ids") post ids"

# ---- phases 1-6 at THREADS -------------------------------------------------------------

start_ceiling "$THREADS"
log "phase 1: ceiling, POST, closed loop"
best_of ceil measure ceil "$CEILING_PID" "$CEILING_PORT" "$DURATION" --mode post
stop_ceiling
HALF=$(( ${R_ceil_rps%.*} / 2 ))

log "phase 2: tidings POST /v1/posts, closed loop"
best_of post measure_tidings post "$DURATION" --mode post
log "phase 3: tidings GET /v1/posts/{id}, closed loop"
best_of get measure_tidings get "$DURATION" --mode get --ids "$WORK/ids"
log "phase 4: tidings open loop at $HALF req/s (half the ceiling)"
best_of post_open measure_tidings post_open "$DURATION" --mode post --rate "$HALF"
best_of get_open measure_tidings get_open "$DURATION" --mode get --ids "$WORK/ids" --rate "$HALF"
OWN_POST=$(( ${R_post_rps%.*} / 2 )) OWN_GET=$(( ${R_get_rps%.*} / 2 ))
log "phase 5: tidings open loop at half its own closed-loop rates ($OWN_POST, $OWN_GET req/s)"
best_of post_own measure_tidings post_own "$DURATION" --mode post --rate "$OWN_POST"
best_of get_own measure_tidings get_own "$DURATION" --mode get --ids "$WORK/ids" --rate "$OWN_GET"
log "phase 6: tidings POST, open loop at C/${LADDER// /, C/}"
for d in $LADDER; do
  best_of "ladder_$d" measure_tidings "ladder_$d" "$LADDER_DURATION" --mode post --rate $(( ${R_ceil_rps%.*} / d ))
done
stop_tidings

# ---- phase 7: the thread sweep ---------------------------------------------------------

for t in $SWEEP; do
  log "phase 7: --threads $t"
  start_ceiling "$t"
  best_of "ceil_t$t" measure "ceil_t$t" "$CEILING_PID" "$CEILING_PORT" "$SWEEP_DURATION" --mode post
  stop_ceiling
  start_tidings "$t"
  best_of "post_t$t" measure_tidings "post_t$t" "$SWEEP_DURATION" --mode post
  best_of "get_t$t" measure_tidings "get_t$t" "$SWEEP_DURATION" --mode get --ids "$WORK/ids"
  stop_tidings
done

# ---- phase 8: no fan-out engine in the process ----------------------------------------

if "$TIDINGS" --help | grep -q -- '--engine'; then
  log "phase 8: tidings POST, --engine off: closed loop, open loop at $OWN_POST/s"
  start_tidings "$THREADS" --engine off
  best_of post_noeng measure_tidings post_noeng "$DURATION" --mode post
  best_of post_noeng_own measure_tidings post_noeng_own "$DURATION" --mode post --rate "$OWN_POST"
  stop_tidings
fi

# ---- summary ---------------------------------------------------------------------------

FMT='%-36s %7s %7s %7s %8s %8s %6s %6s %6s %6s %5s %7s %5s %5s\n'
row() { # row LABEL NAME
  printf "$FMT" "$1" "$(get "$2" rps)" "$(get "$2" p50_ms)" "$(get "$2" p90_ms)" \
    "$(get "$2" p99_ms)" "$(get "$2" max_ms)" "$(get "$2" errors)" "$(get "$2" srv_us)" \
    "$(get "$2" loop_us)" "$(get "$2" redis_us)" "$(get "$2" cmds)" "$(get "$2" backlog)" \
    "$(get "$2" drain_s)" "$(get "$2" other)"
}
verdict() { if [ "$1" = 1 ]; then printf 'met'; else printf 'MISSED'; fi; }

post_ratio=$(ratio "$R_post_rps" "$R_ceil_rps")
get_ratio=$(ratio "$R_get_rps" "$R_ceil_rps")
post_ok=$(echo "$post_ratio >= 0.5" | bc -l)
p99_post_ok=$(echo "$R_post_open_p99_ms < 5 && $R_post_open_errors == 0" | bc -l)
p99_get_ok=$(echo "$R_get_open_p99_ms < 5 && $R_get_open_errors == 0" | bc -l)
slo_rate=0
for d in $LADDER; do
  if [ "$(echo "$(get "ladder_$d" p99_ms) < 5 && $(get "ladder_$d" errors) == 0" | bc -l)" = 1 ] &&
    [ "$(get "ladder_$d" rps | cut -d. -f1)" -gt "$slo_rate" ]; then
    slo_rate=$(get "ladder_$d" rps | cut -d. -f1)
  fi
done

echo
echo "== publishing benchmark: $(nproc) cores, redis $(redis-server --version | awk '{print $3}' | tr -d v=) (no persistence), libmicrohttpd $(pkg-config --modversion libmicrohttpd 2>/dev/null || echo '?')"
echo "   --threads $THREADS (tidings and ceiling), $CONNECTIONS keep-alive connections, $LOAD_THREADS load thread(s), ${DURATION} s per phase after ${WARMUP} s warmup, at most $MAX_REQUESTS requests"
echo "   $(wc -l <"$WORK/tokens") users (no followers) rotating tokens, $(wc -l <"$WORK/ids") posts for GET; fan-out engine on unless noted"
echo
printf "$FMT" phase "req/s" "p50 ms" "p90 ms" "p99 ms" "max ms" errors "srv us" "loop" "rds us" cmds backlog drain other
row "ceiling POST, closed loop" ceil
row "tidings POST /v1/posts, closed" post
row "tidings GET /v1/posts/{id}, closed" get
row "tidings POST, open $HALF/s (C/2)" post_open
row "tidings GET, open $HALF/s (C/2)" get_open
row "tidings POST, open $OWN_POST/s (own/2)" post_own
row "tidings GET, open $OWN_GET/s (own/2)" get_own
for d in $LADDER; do row "tidings POST, open $(( ${R_ceil_rps%.*} / d ))/s (C/$d)" "ladder_$d"; done
if [ -n "${R_post_noeng_rps:-}" ]; then
  row "tidings POST, closed, engine off" post_noeng
  row "tidings POST, open $OWN_POST/s, engine off" post_noeng_own
fi
echo "  srv us: server CPU microseconds per request (all threads), of which loop: the main (libuv,"
echo "  fan-out) thread; rds us: redis-server CPU per request; cmds: Redis commands per request;"
echo "  backlog: fan-out jobs unfinished when the phase ended; drain: seconds the engine then took;"
echo "  other: cores busy outside server, Redis and load generator (other sessions: noise)."
echo "  Open-loop latency runs from each request's scheduled time; errors there are mostly timeouts."
echo
echo "thread sweep (closed loop, ${SWEEP_DURATION} s each):"
SFMT='%-8s %10s %10s %6s %10s %6s %9s %9s %8s %8s %6s\n'
printf "$SFMT" threads "ceiling/s" "POST/s" ratio "GET/s" ratio "POST p99" "GET p99" "POST us" backlog other
best_t="" best_rps=0
for t in $SWEEP; do
  c=$(get "ceil_t$t" rps) p=$(get "post_t$t" rps) g=$(get "get_t$t" rps)
  printf "$SFMT" "$t" "$c" "$p" "$(ratio "$p" "$c")" "$g" "$(ratio "$g" "$c")" \
    "$(get "post_t$t" p99_ms)" "$(get "get_t$t" p99_ms)" "$(get "post_t$t" srv_us)" \
    "$(get "post_t$t" backlog)" "$(get "post_t$t" other)"
  if [ "${p%.*}" -gt "$best_rps" ]; then best_rps=${p%.*} best_t=$t; fi
done
echo
echo "targets (DESIGN §7, publishing), ceiling C = $R_ceil_rps req/s:"
echo "  POST throughput / C = $post_ratio   (target >= 0.5)  $(verdict "$post_ok")"
[ -n "${R_post_noeng_rps:-}" ] &&
  echo "  POST throughput / C with --engine off = $(ratio "$R_post_noeng_rps" "$R_ceil_rps")   (reference)"
echo "  POST p99 at C/2 = $HALF/s: $R_post_open_p99_ms ms, $R_post_open_errors errors, $R_post_open_rps req/s answered   (target < 5 ms)  $(verdict "$p99_post_ok")"
echo "  GET  p99 at C/2 = $HALF/s: $R_get_open_p99_ms ms, $R_get_open_errors errors, $R_get_open_rps req/s answered   (reference)  $(verdict "$p99_get_ok")"
echo "  highest POST rate tried with p99 < 5 ms: $slo_rate req/s = $(ratio "$slo_rate" "$R_ceil_rps") C   (the target asks 0.5 C)"
echo "  GET throughput / C = $get_ratio   (reference)"
echo "  best POST rate in the sweep: --threads $best_t, $best_rps req/s"
