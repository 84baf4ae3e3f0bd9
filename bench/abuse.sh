#!/usr/bin/env bash
# bench/abuse.sh -- issue 14: a well-behaved client's p99 alone and beside an abuser, one run.
#
# Starts its own redis-server (no persistence) and, with the per-address caps and rate
# limits off, a tidings to register USERS users (each following FOLLOWS others, with
# SEED_POSTS posts each, so timelines have pages to read) and the abuser's account. Then it
# restarts tidings with the caps and rate limits at their defaults (--max-connections-per-
# address 128 --max-streams-per-address 64 --rate-limits on; nothing raised for anyone: the
# well-behaved load stays inside the default limits by spreading over USERS tokens) and
# measures, ROUNDS times:
#   alone       bench/load.c from 127.0.0.1, open loop at RATE req/s over USERS tokens:
#               GET /v1/timeline, every POST_EVERY-th request POST /v1/posts;
#   with abuse  the same while bench/abuse_load.c, from 127.0.0.2, holds idle connections past
#               the per-address cap, drip-feeds requests a byte a second, and floods POST
#               /v1/posts with its own token and POST /v1/users (both 429 soon), started
#               ABUSE_LEAD s before the load and stopped after it.
# Each phase is bounded by WARMUP + DURATION s (the load generator's own bounds, plus its 3 s
# grace), the abuser by its --duration as well; the setup steps by timeouts. The summary
# gives p50/p99/max and counts of each phase, the abuser's answers by status and its closed
# connections (refused at the cap, cut by the request deadline), the server's own counters
# from /metrics, CPU in cores of tidings, Redis and the abuser, the cores busy elsewhere
# ("other": the machine is shared), and p99(with abuse)/p99(alone) against LIMIT: PASS or
# FAIL. Loopback only; everything started here is stopped on exit.
#
# The abuser shares this machine's two cores with the server; a remote abuser would not.
# ABUSE_NICE lists the niceness of each abuse phase of a round (default "0 19": one phase
# competing for CPU on equal terms, whose CPU use counts against the server, and one at the
# lowest priority, the nearest a local run gets to an abuser on another machine); each gets
# its own ratio and verdict.
#
# usage: bench/abuse.sh            (after cmake --build build)
# environment: BUILD (build), DURATION (20), WARMUP (2), ROUNDS (3), USERS (100), FOLLOWS
#              (10), SEED_POSTS (3), RATE (110), POST_EVERY (11), CONNECTIONS (16), THREADS
#              (4, tidings --threads), ABUSE_NICE ("0 19"), ABUSE_LEAD (2), ABUSE_POST (8),
#              ABUSE_REGISTER (4), ABUSE_DRIP (16), ABUSE_IDLE (160), ABUSE_SOURCE
#              (127.0.0.2), LIMIT (2.0), QUIET_WAIT (20), QUIET_CORES (0.15), KEEP (1: keep
#              the work directory)
# R_<phase>_<field> variables are set through printf -v; the table formats are ours.
# shellcheck disable=SC2154,SC2059
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
DURATION=${DURATION:-20}
WARMUP=${WARMUP:-2}
ROUNDS=${ROUNDS:-3}
USERS=${USERS:-100}
FOLLOWS=${FOLLOWS:-10}
SEED_POSTS=${SEED_POSTS:-3}
RATE=${RATE:-110}
POST_EVERY=${POST_EVERY:-11}
CONNECTIONS=${CONNECTIONS:-16}
THREADS=${THREADS:-4}
ABUSE_NICE=${ABUSE_NICE:-0 19}
ABUSE_LEAD=${ABUSE_LEAD:-2}
ABUSE_POST=${ABUSE_POST:-8}
ABUSE_REGISTER=${ABUSE_REGISTER:-4}
ABUSE_DRIP=${ABUSE_DRIP:-16}
ABUSE_IDLE=${ABUSE_IDLE:-160}
ABUSE_SOURCE=${ABUSE_SOURCE:-127.0.0.2}
LIMIT=${LIMIT:-2.0}
QUIET_WAIT=${QUIET_WAIT:-20}
QUIET_CORES=${QUIET_CORES:-0.15}
REG_THREADS=${REG_THREADS:-8}
KEEP=${KEEP:-0}

TIDINGS=$BUILD/api/tidings
LOAD=$BUILD/bench/tidings-load
ABUSE=$BUILD/bench/tidings-abuse
need_built "$TIDINGS" "$LOAD" "$ABUSE"
need_tools redis-server redis-cli curl python3 bc timeout nice

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tidings-abuse.XXXXXX")
REDIS_PID="" TIDINGS_PID="" CLIENT_PID=""
trap cleanup_work EXIT
trap 'exit 130' INT TERM

# The caps and limits under test, at their defaults, said explicitly (start_tidings_at turns
# them off for the other benchmarks' single-address load).
CAPS=(--max-connections-per-address 128 --max-streams-per-address 64 --rate-limits on)

# ---- setup: accounts, follows, seed posts (limits off: setup is not the test) -----------

start_redis_server
REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
start_tidings_at "$REDIS_URL" "$WORK/tidings.log" --threads "$THREADS" --log-level warn
log "registering $USERS users and the abuser on :$HTTP_PORT"
register u "$USERS" "$WORK/users.txt"
register abuser 1 "$WORK/abuser.txt"
cut -d' ' -f2 "$WORK/users.txt" >"$WORK/tokens.txt"
cut -d' ' -f2 "$WORK/abuser.txt" >"$WORK/abuser_token.txt"

log "each user follows $FOLLOWS others and posts $SEED_POSTS times"
timeout 300 python3 - "$HTTP_PORT" "$WORK/users.txt" "$FOLLOWS" "$SEED_POSTS" "$REG_THREADS" <<'PY'
import http.client, json, sys, threading
port, users_path, follows, posts, nthreads = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
users = [l.split() for l in open(users_path) if l.strip()]
n = len(users)
calls = [("PUT", "/v1/users/%s/follow" % users[(i + k) % n][0], None, users[i][1], 204)
         for i in range(n) for k in range(1, min(follows, n - 1) + 1)]
calls += [("POST", "/v1/posts", json.dumps({"text": "seed %d of u%d" % (k, i)}), users[i][1], 202)
          for k in range(posts) for i in range(n)]
failed = []
def work(part):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for method, path, body, token, want in part:
        h = {"Authorization": "Bearer " + token}
        if body:
            h["Content-Type"] = "application/json"
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        if r.status != want:
            failed.append("%s %s: %d %s" % (method, path, r.status, data[:200]))
ts = [threading.Thread(target=work, args=(calls[k::nthreads],)) for k in range(nthreads)]
for t in ts: t.start()
for t in ts: t.join()
if failed:
    sys.exit("setup: %d calls failed, first: %s" % (len(failed), failed[0]))
PY
stop_pid "$TIDINGS_PID"
wait "$TIDINGS_PID" 2>/dev/null || true
TIDINGS_PID=""

log "restarting tidings with ${CAPS[*]}"
start_tidings_at "$REDIS_URL" "$WORK/tidings.log" --threads "$THREADS" --log-level warn "${CAPS[@]}"

# ---- measuring ----------------------------------------------------------------------------

# metric NAME-AND-LABELS: one counter from /metrics (0 when absent).
metric() {
  curl -fs "http://127.0.0.1:$HTTP_PORT/metrics" | awk -v m="$1" '$1 == m {print $2 + 0; f = 1} END {if (!f) print 0}'
}
M_REFUSED='tidings_http_connections_refused_total{reason="per_address"}'
M_CUT='tidings_http_connections_cut_total{reason="request_deadline"}'
M_RL_PUBLISH='tidings_http_rate_limited_total{class="publish"}'
M_RL_REGISTER='tidings_http_rate_limited_total{class="register"}'
metrics_snapshot() { # metrics_snapshot PREFIX: sets <PREFIX>_refused, _cut, _rl_publish, _rl_register
  printf -v "$1_refused" '%s' "$(metric "$M_REFUSED")"
  printf -v "$1_cut" '%s' "$(metric "$M_CUT")"
  printf -v "$1_rl_publish" '%s' "$(metric "$M_RL_PUBLISH")"
  printf -v "$1_rl_register" '%s' "$(metric "$M_RL_REGISTER")"
}
get() { local v="R_$1_$2"; printf '%s' "${!v:--}"; }
cores() { printf '%.2f' "$(echo "$1 / $CLK_TCK / $2" | bc -l)"; } # cores TICKS SECONDS

# phase NAME NICE ROUND: one measured phase, with the abuser at niceness NICE unless NICE is
# "-"; results in R_<NAME>_*.
phase() {
  local name=$1 niceness=$2 round=$3 abuse=1 out aout="" t0 secs s0 s1 r0 r1 a0=0 a1=0 b0 b1 other kv
  [ "$niceness" != - ] || abuse=0
  wait_quiet "  "
  metrics_snapshot M0
  if [ "$abuse" = 1 ]; then
    nice -n "$niceness" "$ABUSE" --port "$HTTP_PORT" --token "$WORK/abuser_token.txt" \
      --source "$ABUSE_SOURCE" --post "$ABUSE_POST" --register "$ABUSE_REGISTER" \
      --drip "$ABUSE_DRIP" --idle "$ABUSE_IDLE" \
      --duration "$(echo "$ABUSE_LEAD + $WARMUP + $DURATION + 10" | bc)" \
      >"$WORK/abuse.$name.out" 2>&1 &
    CLIENT_PID=$!
    sleep "$ABUSE_LEAD"
    kill -0 "$CLIENT_PID" 2>/dev/null || { log "the abuser died: $(cat "$WORK/abuse.$name.out")"; exit 1; }
    a0=$(cpu_ticks "$CLIENT_PID")
  fi
  t0=$(now_s)
  s0=$(cpu_ticks "$TIDINGS_PID"); r0=$(cpu_ticks "$REDIS_PID"); b0=$(busy_ticks)
  out=$("$LOAD" --port "$HTTP_PORT" --tokens "$WORK/tokens.txt" --mode timeline \
    --post-every "$POST_EVERY" --rate "$RATE" --connections "$CONNECTIONS" \
    --duration "$DURATION" --warmup "$WARMUP" --text "well-behaved $name round $round")
  s1=$(cpu_ticks "$TIDINGS_PID"); r1=$(cpu_ticks "$REDIS_PID"); b1=$(busy_ticks)
  secs=$(echo "$(now_s) - $t0" | bc -l)
  if [ "$abuse" = 1 ]; then
    a1=$(cpu_ticks "$CLIENT_PID")
    kill -TERM "$CLIENT_PID" 2>/dev/null || true
    wait "$CLIENT_PID" 2>/dev/null || true
    CLIENT_PID=""
    aout=$(cat "$WORK/abuse.$name.out")
  fi
  metrics_snapshot M1
  printf '%s\n' "$out" | sed "s/^/  [$name] /" >&2
  [ -z "$aout" ] || printf '%s\n' "$aout" | sed "s/^/  [$name abuser] /" >&2
  for kv in $(printf '%s\n' "$out" | grep '^RESULT ' | cut -d' ' -f2-); do
    printf -v "R_${name}_${kv%%=*}" '%s' "${kv#*=}"
  done
  # load.c's CPU is in its RESULT; the rest of the machine's busy time is other work.
  other=$(echo "($b1 - $b0 - ($s1 - $s0) - ($r1 - $r0) - ($a1 - $a0)) / $CLK_TCK / $secs - $(get "$name" client_cpu_s) / $secs" | bc -l)
  printf -v "R_${name}_srv" '%s' "$(cores $((s1 - s0)) "$secs")"
  printf -v "R_${name}_rds" '%s' "$(cores $((r1 - r0)) "$secs")"
  printf -v "R_${name}_abuser" '%s' "$( [ "$abuse" = 1 ] && cores $((a1 - a0)) "$secs" || echo -)"
  printf -v "R_${name}_other" '%.2f' "$other"
  printf -v "R_${name}_refused" '%s' $((M1_refused - M0_refused))
  printf -v "R_${name}_cut" '%s' $((M1_cut - M0_cut))
  printf -v "R_${name}_rl_publish" '%s' $((M1_rl_publish - M0_rl_publish))
  printf -v "R_${name}_rl_register" '%s' $((M1_rl_register - M0_rl_register))
  printf -v "R_${name}_aout" '%s' "$aout"
}

for round in $(seq "$ROUNDS"); do
  log "round $round: well-behaved client alone"
  phase "alone$round" - "$round"
  for n in $ABUSE_NICE; do
    log "round $round: with the abuser at nice $n"
    phase "abuse${round}n$n" "$n" "$round"
  done
done

# ---- summary --------------------------------------------------------------------------------

printf '== abuse benchmark: %s cores, %s, tidings --threads %s %s\n' "$(nproc)" \
  "$(redis-server --version | awk '{print $1, $3}' | tr -d 'v=')" "$THREADS" "${CAPS[*]}"
printf '   well-behaved (127.0.0.1): %s users, open loop %s req/s (GET /v1/timeline, every %sth POST /v1/posts),\n' \
  "$USERS" "$RATE" "$POST_EVERY"
printf '     %s connections, %s s after %s s warmup; each user follows %s, %s seed posts each; no limit raised\n' \
  "$CONNECTIONS" "$DURATION" "$WARMUP" "$FOLLOWS" "$SEED_POSTS"
printf '   abuser (%s, nice %s in turn): %s POST /v1/posts + %s POST /v1/users flood connections (closed loop),\n' \
  "$ABUSE_SOURCE" "$ABUSE_NICE" "$ABUSE_POST" "$ABUSE_REGISTER"
printf '     %s drip-fed (1 byte/s), %s idle; floods reconnect at once, the rest after 100 ms; from %s s before the load\n\n' \
  "$ABUSE_DRIP" "$ABUSE_IDLE" "$ABUSE_LEAD"
FMT='%-12s %7s %6s %8s %8s %8s %8s %6s %5s %5s %6s %5s\n'
printf "$FMT" phase "req/s" answers "p50 ms" "p90 ms" "p99 ms" "max ms" errors srv rds abuser other
for round in $(seq "$ROUNDS"); do
  for name in "alone$round" $(for n in $ABUSE_NICE; do echo "abuse${round}n$n"; done); do
    printf "$FMT" "$name" "$(get "$name" rps)" "$(get "$name" n)" "$(get "$name" p50_ms)" \
      "$(get "$name" p90_ms)" "$(get "$name" p99_ms)" "$(get "$name" max_ms)" \
      "$(get "$name" errors)" "$(get "$name" srv)" "$(get "$name" rds)" \
      "$(get "$name" abuser)" "$(get "$name" other)"
  done
done
printf '  srv, rds, abuser: cores used by tidings, redis-server and the abuser during the load;\n'
printf '  other: cores busy elsewhere on the machine (other sessions: noise). Latency runs from\n'
printf '  each request'"'"'s scheduled time (open loop); errors: non-2xx, cut, timeouts.\n'

for round in $(seq "$ROUNDS"); do for n in $ABUSE_NICE; do
  name="abuse${round}n$n"
  printf '\n%s, the abuser at nice %s (from %s s before the load to its end):\n' "$name" "$n" "$ABUSE_LEAD"
  get "$name" aout | grep -v '^RESULT' | sed 's/^/  /'
  printf '  the server'"'"'s books over the phase: refused at the per-address cap %s, cut by the request\n' \
    "$(get "$name" refused)"
  printf '  deadline %s, answered 429 publish %s, register %s (alone: %s, %s, %s, %s)\n' \
    "$(get "$name" cut)" "$(get "$name" rl_publish)" "$(get "$name" rl_register)" \
    "$(get "alone$round" refused)" "$(get "alone$round" cut)" "$(get "alone$round" rl_publish)" \
    "$(get "alone$round" rl_register)"
done; done

printf '\n'
# Per round: the ratio of the abuse phase's p99 to the alone phase's just before it. The
# verdict per niceness takes the median over rounds (a shared machine's noise hits single
# phases); any well-behaved error fails it.
verdict=PASS
for n in $ABUSE_NICE; do
  ratios="" errs_all=0
  for round in $(seq "$ROUNDS"); do
    name="abuse${round}n$n"
    a=$(get "alone$round" p99_ms) b=$(get "$name" p99_ms) errs=$(get "$name" errors)
    ratio=$(printf '%.2f' "$(echo "$b / $a" | bc -l)")
    ratios="$ratios $ratio" errs_all=$((errs_all + errs))
    printf 'round %s, abuser at nice %2s: p99 with abuse / p99 alone = %s / %s ms = %s%s\n' \
      "$round" "$n" "$b" "$a" "$ratio" "$( [ "$errs" = 0 ] || echo ", well-behaved errors $errs")"
  done
  median=$(tr ' ' '\n' <<<"$ratios" | grep . | sort -g |
    awk '{v[NR] = $1} END {printf "%.2f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}')
  this=PASS
  if [ "$(echo "$median > $LIMIT" | bc -l)" = 1 ] || [ "$errs_all" != 0 ]; then this=FAIL verdict=FAIL; fi
  printf 'abuser at nice %2s: median ratio over %s round(s) %s (limit %s), well-behaved errors %s: %s\n' \
    "$n" "$ROUNDS" "$median" "$LIMIT" "$errs_all" "$this"
done
printf 'verdict: %s\n' "$verdict"
