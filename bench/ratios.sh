#!/usr/bin/env bash
# bench/ratios.sh -- tidings beside nginx and the libmicrohttpd ceiling, in the same run (issue 17).
#
# DESIGN §7 states its HTTP targets as ratios to baselines measured in the same run. This
# measures them with wrk (one thread, CONNECTIONS keep-alive connections, tokens rotating over
# USERS users, bench/wrk_rotate.lua) against:
#   nginx    nginx-light, one worker, `return 202` with a body the size of tidings' POST
#            answer, access log off, its own prefix and conf in the work directory;
#   ceiling  bench/ceiling.c: libmicrohttpd with tidings' daemon options, a static 202;
#   tidings  each build of BUILDS, --log-level warn, on a Redis holding "full timelines".
# Setup, once per build: a fresh redis-server (no persistence), that build's tidings, USERS
# users registered, then bench/full_timelines.py: every user follows FOLLOWS others and
# publishes POSTS posts, one in REPOST_EVERY users reposts in each round, the fan-out backlog
# is drained, and Redis is SAVEd. Every round restores that snapshot into a fresh
# redis-server and starts a fresh tidings, so every round of a build reads the same state.
# Each round runs nginx POST and ceiling POST once, then for each build in turn:
#   tidings GET /v1/timeline?limit=20, GET /v1/posts/{id} (the setup's posts), and
#   POST /v1/posts (last, so both reads see the snapshot as it was; its fan-out backlog is
#   then drained and the time printed).
# Each phase: a WARMUP-second wrk run (not recorded), a wait for a quiet second, then
# wrk -t1 -cCONNECTIONS -dDURATION --latency. A phase in which wrk saw any error (an answer
# >= 400, a connect, read, write or timeout error) is reported as errors, not as a rate.
# Per phase: Redis commands per request (INFO stats; for POST also with its fan-out drain)
# and "other": cores busy outside server, Redis and wrk (other sessions; "nice" is the part
# that ran niced, such as background fuzzers at nice 19, which yield to us).
# After the timeline and POST phases, where the closed loop reached the target's ratio (0.3
# and 0.5 of the round's nginx), bench/load.c runs an open loop at exactly that rate: the
# targets' p99 (< 5 ms) is judged there, at the target's rate, not at saturation.
# The summary gives, per build and phase, the median over ROUNDS of req/s, p50, p99 and the
# ratios to nginx and to the ceiling of the same round, and with several builds each later
# build's req/s over the first one's, round by round (before/after, interleaved).
#
# usage: bench/ratios.sh                      (after cmake --build build)
#        BUILDS="/tmp/old /tmp/new" bench/ratios.sh    (before/after, interleaved)
# environment: BUILDS (BUILD, default build: one or more build dirs; the first one's
#              tidings-ceiling is used), ROUNDS (3), DURATION (10 s per phase), WARMUP (1 s),
#              CONNECTIONS (64), THREADS (nproc, as tidings' default: tidings and ceiling --threads), USERS (200),
#              FOLLOWS (20), POSTS (8 rounds), REPOST_EVERY (5), REG_THREADS (8),
#              DRAIN_MAX (120 s), QUIET_WAIT (10 s), QUIET_CORES (0.15), WRK_TIMEOUT (5 s),
#              TIDINGS_ARGS, CEILING_ARGS (more flags), KEEP (1: keep the work directory)
# shellcheck disable=SC2086,SC2059 # word lists; the table formats are ours
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH=$ROOT/bench
BUILD=${BUILD:-$ROOT/build}
BUILDS=${BUILDS:-$BUILD}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-1}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-$(nproc)}
USERS=${USERS:-200}
FOLLOWS=${FOLLOWS:-20}
POSTS=${POSTS:-8}
REPOST_EVERY=${REPOST_EVERY:-5}
REG_THREADS=${REG_THREADS:-8}
DRAIN_MAX=${DRAIN_MAX:-120}
QUIET_WAIT=${QUIET_WAIT:-10}
QUIET_CORES=${QUIET_CORES:-0.15}
WRK_TIMEOUT=${WRK_TIMEOUT:-5}
TIDINGS_ARGS=${TIDINGS_ARGS:-}
CEILING_ARGS=${CEILING_ARGS:-}
KEEP=${KEEP:-0}

need_tools redis-server redis-cli curl jq python3 bc wrk
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
[ -x "$NGINX" ] || { echo "ratios.sh needs nginx (Debian's nginx-light)" >&2; exit 2; }
# Bounded: every phase is DURATION s, every wait has a limit, the rounds are counted.
for v in ROUNDS:1:20 DURATION:1:120 WARMUP:0:30 CONNECTIONS:1:1000 USERS:3:5000 POSTS:1:100; do
  IFS=: read -r name lo hi <<<"$v"
  val=${!name}
  if ! [[ "$val" =~ ^[0-9]+$ ]] || [ "$val" -lt "$lo" ] || [ "$val" -gt "$hi" ]; then
    echo "$name must be $lo..$hi, not '$val'" >&2
    exit 2
  fi
done
read -r -a BUILD_DIRS <<<"$BUILDS"
LABELS=()
for b in "${!BUILD_DIRS[@]}"; do
  need_built "${BUILD_DIRS[$b]}/api/tidings"
  LABELS[b]=$(basename "${BUILD_DIRS[$b]}")
  # Two dirs named alike (old/build, new/build) still need telling apart in the tables.
  for ((o = 0; o < b; o++)); do [ "${LABELS[o]}" != "${LABELS[b]}" ] || LABELS[b]+="#$((b + 1))"; done
done
CEILING=${BUILD_DIRS[0]}/bench/tidings-ceiling
LOAD=${BUILD_DIRS[0]}/bench/tidings-load
need_built "$CEILING"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tidings-ratios.XXXXXX")
REDIS_PID="" TIDINGS_PID="" CEILING_PID="" NGINX_PID=""
cleanup() { stop_pid "$NGINX_PID"; cleanup_work; }
trap cleanup EXIT
trap 'exit 130' INT TERM

redis_cmds() { redis-cli -p "$REDIS_PORT" info stats | awk -F: '/^total_commands_processed/ {print $2+0}'; }
nice_ticks() { awk '/^cpu / {print $3; exit}' /proc/stat; }
unniced_ticks() { awk '/^cpu / {print $2 + $4 + $7 + $8 + $9; exit}' /proc/stat; }
children() { ps -o pid= --ppid "$1" | tr -d ' ' | tr '\n' ' '; }

# wait_calm: like lib.sh's wait_quiet, but niced work (background fuzzers at nice 19, builds
# at nice 10) does not count as busy, since it yields to ours; `other` still shows it.
wait_calm() {
  local t0=$SECONDS b0 b1
  while :; do
    b0=$(unniced_ticks); sleep 1; b1=$(unniced_ticks)
    [ "$(echo "($b1 - $b0) / $CLK_TCK < $QUIET_CORES" | bc -l)" = 1 ] && return 0
    if [ $((SECONDS - t0)) -ge "$QUIET_WAIT" ]; then
      log "    busy ($(echo "scale=2; ($b1 - $b0) / $CLK_TCK" | bc) cores not niced) after $QUIET_WAIT s; measuring anyway"
      return 0
    fi
  done
}

# ---- the fan-out backlog ---------------------------------------------------------------

# Waits until the fan-out backlog is empty (at most DRAIN_MAX s); prints the seconds taken,
# with a ">" when it gave up.
drain_fanout() {
  local t0 left
  t0=$(now_s)
  while left=$(fanout_backlog) && [ "$left" -gt 0 ]; do
    if [ "$(echo "$(now_s) - $t0 > $DRAIN_MAX" | bc -l)" = 1 ]; then
      log "    fan-out backlog still $left jobs after $DRAIN_MAX s"
      printf '>'
      break
    fi
    sleep 0.1
  done
  printf '%.1f' "$(echo "$(now_s) - $t0" | bc -l)"
}

# ---- servers ---------------------------------------------------------------------------

start_ceiling() {
  "$CEILING" --listen 127.0.0.1:0 --threads "$THREADS" $CEILING_ARGS >"$WORK/ceiling.out" \
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

# start_nginx BODY-FILE: one worker answering every request with 202 and the file's bytes,
# as the ceiling does (Cache-Control: no-store; `always` because add_header skips a 202).
# keepalive_requests is raised from 1,000 so that nginx, like tidings, never closes wrk's
# connections during a phase.
start_nginx() {
  local body
  body=$(cat "$1")
  mkdir -p "$WORK/nginx/logs"
  for _ in 1 2 3 4 5; do
    NGINX_PORT=$(free_port)
    cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000000;
  keepalive_timeout 60s;
  client_body_temp_path $WORK/nginx/body;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / {
      default_type application/json;
      add_header Cache-Control no-store always;
      return 202 '$body';
    }
  }
}
EOF
    "$NGINX" -p "$WORK/nginx/" -c "$WORK/nginx/nginx.conf" 2>>"$WORK/nginx/error.log" &
    NGINX_PID=$!
    for _ in $(seq 100); do
      if curl -fs -o /dev/null "http://127.0.0.1:$NGINX_PORT/"; then
        NGINX_WORKER=$(children "$NGINX_PID")
        return 0
      fi
      kill -0 "$NGINX_PID" 2>/dev/null || break
      sleep 0.05
    done
    stop_pid "$NGINX_PID"
  done
  log "nginx did not start; see $WORK/nginx/error.log"
  exit 1
}

# restore_redis B: a fresh redis-server loading build B's snapshot (lib.sh's redis-server
# reads $WORK/dump.rdb at start).
restore_redis() {
  stop_pid "$REDIS_PID"
  cp "$WORK/state$1.rdb" "$WORK/dump.rdb"
  start_redis_server
  rm -f "$WORK/dump.rdb"
}
start_tidings() { # start_tidings B
  TIDINGS=${BUILD_DIRS[$1]}/api/tidings
  start_tidings_at "redis://127.0.0.1:$REDIS_PORT" "$WORK/tidings$1.log" --threads "$THREADS" \
    --log-level warn $TIDINGS_ARGS
}
stop_tidings() { stop_pid "$TIDINGS_PID"; TIDINGS_PID=""; }

# ---- setup: full timelines, once per build ---------------------------------------------

# setup B: the state every round of build B starts from, saved as $WORK/stateB.rdb; the
# users (id token), tokens and post ids go to $WORK/bB.*, the size of a POST answer to
# $WORK/bB.answer.
setup() {
  local b=$1 t0 n reposts
  rm -f "$WORK/dump.rdb"
  start_redis_server
  start_tidings "$b"
  t0=$SECONDS
  register "ratio${b}u" "$USERS" "$WORK/b$b.users"
  awk '{print $2}' "$WORK/b$b.users" >"$WORK/b$b.tokens"
  # The answer a wrk POST gets, as nginx's body: the same text shape as bench/wrk_rotate.lua.
  curl -fsS -X POST -H 'Content-Type: application/json' \
    -H "Authorization: Bearer $(head -1 "$WORK/b$b.tokens")" \
    -d '{"text":"wrk post 1 from a benchmark"}' "http://127.0.0.1:$HTTP_PORT/v1/posts" \
    >"$WORK/b$b.answer"
  timeout 900 python3 "$BENCH/full_timelines.py" "$HTTP_PORT" "$WORK/b$b.users" "$FOLLOWS" \
    "$POSTS" "$REPOST_EVERY" "$REG_THREADS" "$WORK/b$b.ids"
  log "  ${LABELS[$b]}: $USERS users, $((USERS * FOLLOWS)) follows, $(wc -l <"$WORK/b$b.ids") posts" \
    "and their reposts in $((SECONDS - t0)) s; fan-out drained in $(drain_fanout) s"
  # What a page holds: the second user's timeline, newest 100 and newest 20.
  n=$(curl -fsS -H "Authorization: Bearer $(sed -n 2p "$WORK/b$b.tokens")" \
    "http://127.0.0.1:$HTTP_PORT/v1/timeline?limit=100" | jq '.items | length')
  reposts=$(curl -fsS -H "Authorization: Bearer $(sed -n 2p "$WORK/b$b.tokens")" \
    "http://127.0.0.1:$HTTP_PORT/v1/timeline?limit=20" | jq '[.items[] | select(.reposted_by)] | length')
  log "  ${LABELS[$b]}: a timeline's newest 100: $n entries; newest 20: $reposts reposts"
  [ "$n" -ge 100 ] || log "  warning: timelines hold fewer than 100 entries; raise FOLLOWS or POSTS"
  SETUP_INFO[b]="$n entries in the newest 100, $reposts reposts in the newest 20"
  stop_tidings
  redis-cli -p "$REDIS_PORT" save >/dev/null
  mv "$WORK/dump.rdb" "$WORK/state$b.rdb"
  stop_pid "$REDIS_PID"
  REDIS_PID=""
}

# ---- measuring -------------------------------------------------------------------------

declare -A R # R[round,phase,field]

# wrk_run SECONDS PORT MODE TOKENS [IDS]: one wrk run; its output on stdout, then a line
# "WRK_CPU s" with wrk's CPU seconds (bash's `times` in the subshell sees only wrk).
wrk_run() {
  local d=$1 port=$2
  shift 2
  (
    timeout $((d + WRK_TIMEOUT + 30)) wrk -t1 -c"$CONNECTIONS" -d"$d" --latency \
      --timeout "${WRK_TIMEOUT}s" -s "$BENCH/wrk_rotate.lua" "http://127.0.0.1:$port" -- "$@"
    times >"$WORK/times" # a builtin in a pipeline would run in a fork and see no children
    sed -n 2p "$WORK/times" | awk '{ split($1, u, /[ms]/); split($2, s, /[ms]/);
      print "WRK_CPU", u[1] * 60 + u[2] + s[1] * 60 + s[2] }'
  )
}

# phase ROUND KEY LABEL PORT SERVER-PIDS MODE [IDS]: warm up, wait for calm, measure;
# keeps R[ROUND,KEY,*]. With Redis running (tidings phases), also commands per request and,
# for a POST, the fan-out backlog left, its drain time and commands per request with it.
phase() {
  local round=$1 key=$2 label=$3 port=$4 pids=$5 mode=$6 ids=${7:-}
  local tokens=$WORK/b${CUR_B:-0}.tokens redis=0
  [ -n "${TIDINGS_PID:-}" ] && [ "$port" = "${HTTP_PORT:-}" ] && redis=1
  log "  [$round] $label"
  [ "$WARMUP" -gt 0 ] && wrk_run "$WARMUP" "$port" "$mode" "$tokens" $ids >/dev/null
  [ "$redis" = 1 ] && [ "$mode" = post ] && drain_fanout >/dev/null
  wait_calm
  local s0 r0=0 c0=0 b0 n0 t0 s1 r1=0 c1=0 b1 n1 t1 out line kv wrk_cpu
  s0=$(cpu_ticks $pids); b0=$(busy_ticks); n0=$(nice_ticks); t0=$(now_s)
  if [ "$redis" = 1 ]; then r0=$(cpu_ticks "$REDIS_PID"); c0=$(redis_cmds); fi
  out=$(wrk_run "$DURATION" "$port" "$mode" "$tokens" $ids)
  s1=$(cpu_ticks $pids); b1=$(busy_ticks); n1=$(nice_ticks); t1=$(now_s)
  if [ "$redis" = 1 ]; then r1=$(cpu_ticks "$REDIS_PID"); c1=$(redis_cmds); fi
  printf '%s\n' "$out" | grep -v '^WRK_CPU' | sed 's/^/      /' >&2
  line=$(printf '%s\n' "$out" | grep '^RESULT ' || true)
  [ -n "$line" ] || { log "    wrk gave no result"; line="RESULT requests=0 rps=0 non2xx=0 connect=1"; }
  for kv in ${line#RESULT }; do R[$round,$key,${kv%%=*}]=${kv#*=}; done
  wrk_cpu=$(printf '%s\n' "$out" | sed -n 's/^WRK_CPU //p')
  local f errors=0
  for f in non2xx connect read write timeout; do errors=$((errors + ${R[$round,$key,$f]:-0})); done
  R[$round,$key,errors]=$errors
  local n=${R[$round,$key,requests]}
  [ "$n" -gt 0 ] || n=1
  if [ "$redis" = 1 ]; then
    R[$round,$key,cmds]=$(printf '%.1f' "$(echo "($c1 - $c0) / $n" | bc -l)")
  fi
  local other
  other=$(echo "(($b1 - $b0) - ($s1 - $s0) - ($r1 - $r0) - ${wrk_cpu:-0} * $CLK_TCK) / $CLK_TCK / ($t1 - $t0)" | bc -l)
  [ "$(echo "$other < 0" | bc -l)" = 1 ] && other=0 # tick rounding
  R[$round,$key,other]=$(printf '%.2f' "$other")
  R[$round,$key,nice]=$(printf '%.2f' "$(echo "($n1 - $n0) / $CLK_TCK / ($t1 - $t0)" | bc -l)")
  if [ "$redis" = 1 ] && [ "$mode" = post ]; then
    R[$round,$key,backlog]=$(fanout_backlog)
    R[$round,$key,drain]=$(drain_fanout)
    R[$round,$key,cmds_drain]=$(printf '%.1f' "$(echo "($(redis_cmds) - $c0) / $n" | bc -l)")
    log "    fan-out backlog ${R[$round,$key,backlog]} jobs at the end, drained in ${R[$round,$key,drain]} s;" \
      "Redis commands per POST ${R[$round,$key,cmds]} during the phase, ${R[$round,$key,cmds_drain]} with the drain"
  fi
}

ratio() { if [ "$2" = - ] || [ "$1" = - ]; then echo -; else printf '%.2f' "$(echo "$1 / $2" | bc -l)"; fi; }
ok() { [ "${R[$1,$2,errors]:-1}" = 0 ] && [ "${R[$1,$2,requests]:-0}" -gt 0 ]; }
rate() { if ok "$1" "$2"; then echo "${R[$1,$2,rps]}"; else echo -; fi; }

# at_rate ROUND KEY PORT MODE RATIO: the p99 a target asks for is at the target's rate, not
# at saturation (where wrk's closed loop measures queueing: the ceiling's own p99 there is
# tens of ms). So when the closed-loop phase KEY reached RATIO x nginx in this round, an open
# loop (bench/load.c: latency from each request's due time) runs at exactly that rate;
# keeps R[ROUND,KEY,at_*]. The same open loop then runs against nginx at the same rate, as a
# control (R[ROUND,KEY,ngx_*]): on a machine of two cores shared by server, Redis and client,
# a stall of the machine's own (nginx's closed loop shows max ~100 ms in most phases) lands
# in the p99 of whoever runs, and the control tells such a round from the server's tail.
at_rate() {
  local round=$1 key=$2 port=$3 mode=$4 ratio=$5 n want line kv
  n=$(rate "$round" ngx)
  ok "$round" "$key" && [ "$n" != - ] || return 0
  want=$(printf '%.0f' "$(echo "$n * $ratio" | bc -l)")
  [ "$(echo "${R[$round,$key,rps]} >= $want" | bc -l)" = 1 ] || return 0
  log "  [$round] $(label_of "$key") at $ratio x nginx: $want req/s, open loop"
  wait_calm
  line=$(timeout $((DURATION + WARMUP + 60)) "$LOAD" --port "$port" --tokens "$WORK/b${CUR_B:-0}.tokens" \
    --mode "$mode" --rate "$want" --duration "$DURATION" --warmup "$WARMUP" --quiet | grep '^RESULT ' || true)
  log "    $line"
  [ -n "$line" ] || return 0
  for kv in ${line#RESULT }; do R[$round,$key,at_${kv%%=*}]=${kv#*=}; done
  log "  [$round] control: nginx at the same $want req/s, open loop"
  wait_calm
  line=$(timeout $((DURATION + WARMUP + 60)) "$LOAD" --port "$NGINX_PORT" --tokens "$WORK/b${CUR_B:-0}.tokens" \
    --mode post --rate "$want" --duration "$DURATION" --warmup "$WARMUP" --quiet | grep '^RESULT ' || true)
  log "    $line"
  for kv in ${line#RESULT }; do R[$round,$key,ngx_${kv%%=*}]=${kv#*=}; done
}

# ---- run -------------------------------------------------------------------------------

PHASES=(timeline get post)
declare -A PHASE_LABEL=([ngx]="nginx POST (return 202)" [ceil]="ceiling POST (MHD 202)"
  [timeline]="GET /v1/timeline?limit=20" [get]="GET /v1/posts/{id}" [post]="POST /v1/posts")
label_of() { case $1 in ngx | ceil) echo "${PHASE_LABEL[$1]}" ;; *) local b=${1%%.*}
  echo "${LABELS[${b#b}]} ${PHASE_LABEL[${1#*.}]}" ;; esac; }
SETUP_INFO=()

log "work directory $WORK"
log "setup: full timelines for each build ($USERS users, each following $FOLLOWS, $POSTS posts each)"
for b in "${!BUILD_DIRS[@]}"; do setup "$b"; done
# nginx answers with build 0's POST answer (the same bytes, so the same size).
if grep -q "[\$'\\\\]" "$WORK/b0.answer"; then
  head -c "$(wc -c <"$WORK/b0.answer")" /dev/zero | tr '\0' x >"$WORK/ngx.body"
else
  cp "$WORK/b0.answer" "$WORK/ngx.body"
fi
start_nginx "$WORK/ngx.body"
start_ceiling
log "nginx $("$NGINX" -v 2>&1 | sed 's/.*\///') on 127.0.0.1:$NGINX_PORT (body $(wc -c <"$WORK/ngx.body") bytes)," \
  "ceiling on 127.0.0.1:$CEILING_PORT"

for round in $(seq "$ROUNDS"); do
  log "round $round of $ROUNDS"
  CUR_B=0
  phase "$round" ngx "${PHASE_LABEL[ngx]}" "$NGINX_PORT" "$NGINX_PID $NGINX_WORKER" post
  phase "$round" ceil "${PHASE_LABEL[ceil]}" "$CEILING_PORT" "$CEILING_PID" post
  for b in "${!BUILD_DIRS[@]}"; do
    CUR_B=$b
    restore_redis "$b"
    start_tidings "$b"
    phase "$round" "b$b.timeline" "${LABELS[$b]} ${PHASE_LABEL[timeline]}" "$HTTP_PORT" "$TIDINGS_PID" timeline
    at_rate "$round" "b$b.timeline" "$HTTP_PORT" timeline 0.3
    phase "$round" "b$b.get" "${LABELS[$b]} ${PHASE_LABEL[get]}" "$HTTP_PORT" "$TIDINGS_PID" get "$WORK/b$b.ids"
    phase "$round" "b$b.post" "${LABELS[$b]} ${PHASE_LABEL[post]}" "$HTTP_PORT" "$TIDINGS_PID" post
    at_rate "$round" "b$b.post" "$HTTP_PORT" post 0.5
    stop_tidings
  done
done

# ---- summary ---------------------------------------------------------------------------

# median FORMAT <<<"values": their median printed with FORMAT, "-" when there is none.
median() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk -v f="$1" '{ v[NR] = $1 } END {
  if (NR == 0) print "-"; else printf f "\n", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

KEYS=(ngx ceil)
for b in "${!BUILD_DIRS[@]}"; do for p in "${PHASES[@]}"; do KEYS+=("b$b.$p"); done; done

echo "== ratios: $(nproc) cores, redis $(redis-server --version | awk '{print $3}' | tr -d v=)" \
  "(no persistence), nginx $("$NGINX" -v 2>&1 | sed 's/.*\///') (1 worker), $(wrk -v 2>&1 | head -1 | awk '{print $1, $2}')"
echo "   wrk -t1 -c$CONNECTIONS -d$DURATION --latency (after ${WARMUP}s warm-up), tokens over $USERS users;" \
  "tidings and ceiling --threads $THREADS; $ROUNDS rounds"
for b in "${!BUILD_DIRS[@]}"; do
  src=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "${BUILD_DIRS[$b]}/CMakeCache.txt" 2>/dev/null || true)
  echo "   ${LABELS[$b]} = ${BUILD_DIRS[$b]} (source ${src:-?} at $(git -C "${src:-/}" rev-parse --short HEAD 2>/dev/null || echo ?)):" \
    "timelines ${SETUP_INFO[$b]}"
done
echo
echo "rounds (errors: wrk's non-2xx + socket errors; such a phase gives no rate):"
FMT="%-5s %-40s %9s %8s %8s %8s %7s %8s %9s %6s %5s %5s\n"
printf "$FMT" round phase "req/s" "p50 ms" "p99 ms" "max ms" errors "cmds/req" "drain s" backlog other nice
for round in $(seq "$ROUNDS"); do
  for k in "${KEYS[@]}"; do
    rps=${R[$round,$k,rps]:-0}
    ok "$round" "$k" || rps="ERRORS"
    printf "$FMT" "$round" "$(label_of "$k")" "$rps" "${R[$round,$k,p50_ms]:--}" "${R[$round,$k,p99_ms]:--}" \
      "${R[$round,$k,max_ms]:--}" "${R[$round,$k,errors]:--}" "${R[$round,$k,cmds]:--}" \
      "${R[$round,$k,drain]:--}" "${R[$round,$k,backlog]:--}" "${R[$round,$k,other]:--}" "${R[$round,$k,nice]:--}"
  done
done
echo
echo "summary: median over the error-free rounds; x nginx, x ceiling = median of each round's ratio"
SFMT="%-40s %9s %8s %8s %8s %10s %8s %10s %s\n"
printf "$SFMT" phase "req/s" "p50 ms" "p99 ms" "x nginx" "x ceiling" "cmds/req" "+drain" "rounds ok"
declare -A MED
for k in "${KEYS[@]}"; do
  rs="" p50="" p99="" xn="" xc="" cm="" cd="" good=0
  for round in $(seq "$ROUNDS"); do
    ok "$round" "$k" || continue
    good=$((good + 1))
    rs+=" ${R[$round,$k,rps]}" p50+=" ${R[$round,$k,p50_ms]}" p99+=" ${R[$round,$k,p99_ms]}"
    cm+=" ${R[$round,$k,cmds]:-}" cd+=" ${R[$round,$k,cmds_drain]:-}"
    n=$(rate "$round" ngx) c=$(rate "$round" ceil)
    [ "$n" = - ] || xn+=" $(ratio "${R[$round,$k,rps]}" "$n")"
    [ "$c" = - ] || xc+=" $(ratio "${R[$round,$k,rps]}" "$c")"
  done
  MED[$k,rs]=$(median %.1f <<<"$rs") MED[$k,p50]=$(median %.3f <<<"$p50")
  MED[$k,p99]=$(median %.3f <<<"$p99") MED[$k,xn]=$(median %.2f <<<"$xn")
  MED[$k,xc]=$(median %.2f <<<"$xc") MED[$k,cm]=$(median %.1f <<<"$cm") MED[$k,cd]=$(median %.1f <<<"$cd")
  printf "$SFMT" "$(label_of "$k")" "${MED[$k,rs]}" "${MED[$k,p50]}" "${MED[$k,p99]}" "${MED[$k,xn]}" \
    "${MED[$k,xc]}" "${MED[$k,cm]}" "${MED[$k,cd]}" "$good/$ROUNDS"
done
if [ "${#BUILD_DIRS[@]}" -gt 1 ]; then
  echo
  echo "against ${LABELS[0]}: req/s over ${LABELS[0]}'s in the same round, median over rounds clean for both"
  for b in "${!BUILD_DIRS[@]}"; do
    [ "$b" -gt 0 ] || continue
    line=""
    for p in "${PHASES[@]}"; do
      xs=""
      for round in $(seq "$ROUNDS"); do
        ok "$round" "b$b.$p" && ok "$round" "b0.$p" &&
          xs+=" $(ratio "${R[$round,b$b.$p,rps]}" "${R[$round,b0.$p,rps]}")"
      done
      line+="  ${PHASE_LABEL[$p]} $(median %.2f <<<"$xs")"
    done
    echo "  ${LABELS[$b]}:$line"
  done
fi
echo
echo "targets (DESIGN §7 / issue 17; medians above):"
verdict() { # verdict KEY MIN-RATIO MAX-P99|-: the rate at saturation, the p99 at the target rate
  local k=$1 x=${MED[$1,xn]} p lag ok=MET ps="" ls="" ns="" round
  for round in $(seq "$ROUNDS"); do
    [ -n "${R[$round,$k,at_p99_ms]:-}" ] && ps+=" ${R[$round,$k,at_p99_ms]}" ls+=" ${R[$round,$k,at_lag_p99_ms]:-}" \
      ns+=" ${R[$round,$k,ngx_p99_ms]:-}"
  done
  p=$(median %.3f <<<"$ps") lag=$(median %.3f <<<"$ls") CONTROL=$(median %.3f <<<"$ns")
  if [ "$x" = - ]; then ok="NO ERROR-FREE ROUND"
  elif [ "$(echo "$x < $2" | bc -l)" = 1 ]; then ok=MISSED
  elif [ "$3" != - ] && { [ "$p" = - ] || [ "$(echo "$p >= $3" | bc -l)" = 1 ]; }; then ok=MISSED; fi
  printf '  %-40s %5s x nginx (>= %s)' "$(label_of "$k")" "$x" "$2"
  [ "$3" = - ] || printf ', p99 %s ms at %s x nginx, open loop (< %s; client lag p99 %s ms; nginx at that rate p99 %s ms)' \
    "$p" "$2" "$3" "$lag" "$CONTROL"
  printf '  %s\n' "$ok"
  [ "$3" = - ] || [ -z "$ps" ] || echo "      per round: p99 $ps ms; nginx at the same rate $ns ms"
}
for b in "${!BUILD_DIRS[@]}"; do
  verdict "b$b.post" 0.5 5
  verdict "b$b.timeline" 0.3 5
  verdict "b$b.get" 0.4 -
done
echo "  p99 at the target rate: bench/load.c in an open loop at that ratio of the round's nginx"
echo "  rate, run only where the closed loop reached it (- otherwise; its client's own lag is in"
echo "  the log as lag_p99_ms); then nginx at the same rate in the same way, as the machine's"
echo "  own tail (the verdict stays on the server's p99)."
echo "  cmds/req: Redis commands per request during the phase (INFO stats); +drain: for POST,"
echo "  with the fan-out it queued. other: cores busy outside the server, Redis and wrk; nice: the"
echo "  niced part of the machine's work (background jobs that yield to ours)."
