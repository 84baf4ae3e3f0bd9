# bench/lib.sh -- what the benchmark scripts share; sourced, not run.
# shellcheck shell=bash
#
# The servers a script starts are its own: each on a free loopback port, its files in the
# script's $WORK, stopped by cleanup_work from the script's EXIT trap. Progress and details
# go to stderr; stdout carries a script's summary only.

# stop_pid PID: SIGTERM, wait up to 10 s, then SIGKILL (nothing when PID is empty or gone).
stop_pid() {
  local pid=$1
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
}

# Progress and details go to stderr; stdout carries the summary.
log() { printf '%s\n' "$*" >&2; }

# need_built FILE...: exits 2 unless each is an executable (the tree has not been built).
need_built() {
  local bin
  for bin in "$@"; do
    [ -x "$bin" ] || { echo "missing $bin: run cmake -S . -B build && cmake --build build -j2" >&2; exit 2; }
  done
}

# need_tools TOOL...: exits 2 unless each is on PATH.
need_tools() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "$(basename "$0") needs $tool" >&2; exit 2; }
  done
}

# cleanup_work: the EXIT trap of a script that starts servers: stops $CLIENT_PID,
# $TIDINGS_PID, $CEILING_PID and $REDIS_PID (those set), then removes $WORK, or keeps it
# when KEEP=1.
cleanup_work() {
  stop_pid "${CLIENT_PID:-}"
  stop_pid "${TIDINGS_PID:-}"
  stop_pid "${CEILING_PID:-}"
  stop_pid "${REDIS_PID:-}"
  wait 2>/dev/null || true
  if [ "${KEEP:-0}" = 1 ]; then log "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}

now_s() { date +%s.%N; }
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<" $1"; } # field "k=v k2=v2" k2 -> v2

# CPU ticks (CLK_TCK a second): cpu_ticks PID... sums the processes' user + system time over
# all their threads; busy_ticks is the whole machine's busy time.
CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { local p t=0; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo $t; }
busy_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9; exit}' /proc/stat; }

# wait_quiet INDENT: the machine may be shared; waits (at most $QUIET_WAIT s) for a second in
# which fewer than $QUIET_CORES cores are busy, our own processes being idle then. When none
# comes it says so (INDENT, "" or blanks, before the line) and returns all the same.
wait_quiet() {
  local t0 b0 b1
  t0=$SECONDS
  while :; do
    b0=$(busy_ticks); sleep 1; b1=$(busy_ticks)
    [ "$(echo "($b1 - $b0) / $CLK_TCK < $QUIET_CORES" | bc -l)" = 1 ] && return 0
    if [ $((SECONDS - t0)) -ge "$QUIET_WAIT" ]; then
      log "$1the machine is busy ($(echo "scale=2; ($b1 - $b0) / $CLK_TCK" | bc) cores) after $QUIET_WAIT s of waiting; measuring anyway"
      return 0
    fi
  done
}

# start_redis_server: a redis-server without persistence on a free loopback port, its files
# in $WORK; sets REDIS_PORT and REDIS_PID. Tries five ports, then exits 1.
start_redis_server() {
  for _ in 1 2 3 4 5; do
    REDIS_PORT=$(free_port)
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
      --dir "$WORK" --logfile "$WORK/redis.log" &
    REDIS_PID=$!
    for _ in $(seq 100); do
      redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && return 0
      kill -0 "$REDIS_PID" 2>/dev/null || break
      sleep 0.05
    done
    stop_pid "$REDIS_PID"
  done
  log "redis-server did not start; see $WORK/redis.log"
  exit 1
}

# start_tidings_at REDIS-URL LOG-FILE [FLAG...]: $TIDINGS against REDIS-URL on a free
# loopback port with the flags, its stderr appended to LOG-FILE, once /readyz answers; sets
# HTTP_PORT and TIDINGS_PID. Tries five ports, then exits 1. Every simulated client
# connects from 127.0.0.1 and far faster than a person, so the per-address caps and the rate
# limits are off (flags may set them again).
start_tidings_at() {
  local url=$1 logf=$2
  shift 2
  for _ in 1 2 3 4 5; do
    HTTP_PORT=$(free_port)
    "$TIDINGS" --redis "$url" --listen "127.0.0.1:$HTTP_PORT" --max-connections-per-address 0 \
      --max-streams-per-address 0 --rate-limits off "$@" 2>>"$logf" &
    TIDINGS_PID=$!
    for _ in $(seq 200); do
      curl -fs "http://127.0.0.1:$HTTP_PORT/readyz" >/dev/null 2>&1 && return 0
      kill -0 "$TIDINGS_PID" 2>/dev/null || break
      sleep 0.05
    done
    stop_pid "$TIDINGS_PID"
  done
  log "tidings did not become ready; see $logf"
  exit 1
}

# wait_streams CLIENT-ERR-FILE: waits (at most 200 s) until the bench/sse_load.c client
# started as $CLIENT_PID wrote its --ready-file $WORK/ready; exits 1 when it died or timed out.
wait_streams() {
  local deadline=$((SECONDS + 200))
  while [ ! -f "$WORK/ready" ]; do
    kill -0 "$CLIENT_PID" 2>/dev/null || { log "the stream client died: $(cat "$1")"; exit 1; }
    [ $SECONDS -lt $deadline ] || { log "the streams did not open in 200 s"; exit 1; }
    sleep 0.1
  done
}

# ---- the fan-out backlog of the Redis on $REDIS_PORT (publish.sh, ratios.sh) ----

# The fan-out streams (there are few: one per shard); SCAN's TYPE filter skips the many
# other fanout:* keys in one call per 10,000 keys.
fanout_streams() {
  local cur=0 out
  while :; do
    out=$(redis-cli -p "$REDIS_PORT" scan "$cur" match 'fanout:*' type stream count 10000)
    cur=${out%%$'\n'*}
    [ "$out" = "$cur" ] || printf '%s\n' "${out#*$'\n'}"
    [ "$cur" = 0 ] && break
  done | sed '/^$/d'
}
# Jobs not yet done: lag (not yet read) plus pending (read, not acknowledged) of every group.
fanout_backlog() {
  local key total=0 n
  for key in $(fanout_streams); do
    n=$(redis-cli -p "$REDIS_PORT" xinfo groups "$key" |
      awk 'want { total += $1 + 0; want = 0 } /^(lag|pending)$/ { want = 1 } END { print total + 0 }')
    total=$((total + n))
  done
  echo "$total"
}

# A loopback TCP port that is free now.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# register PREFIX COUNT OUT: registers COUNT users through POST /v1/users on $HTTP_PORT
# ($REG_THREADS connections at once) and writes their "id token" lines to OUT, in order.
register() {
  timeout 300 python3 - "$HTTP_PORT" "$1" "$2" "$3" "$REG_THREADS" <<'PY'
import http.client, json, sys, threading
port, prefix, count, out, nthreads = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
res = [None] * count
local = threading.local()
def work(lo, hi):
    for i in range(lo, hi):
        body = json.dumps({"handle": "%s%d" % (prefix, i)})
        for attempt in range(3):
            try:
                if not hasattr(local, "c"):
                    local.c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                local.c.request("POST", "/v1/users", body=body, headers={"Content-Type": "application/json"})
                r = local.c.getresponse()
                data = r.read()
                if r.status != 201:
                    raise RuntimeError("status %d: %s" % (r.status, data[:200]))
                d = json.loads(data)
                res[i] = "%s %s" % (d["user"]["id"], d["token"])
                break
            except (OSError, http.client.HTTPException):
                if hasattr(local, "c"):
                    local.c.close(); del local.c
                if attempt == 2:
                    raise
step = max(1, (count + nthreads - 1) // nthreads)
ts = [threading.Thread(target=work, args=(k, min(count, k + step))) for k in range(0, count, step)]
for t in ts: t.start()
for t in ts: t.join()
if any(r is None for r in res):
    sys.exit("registration failed")
with open(out, "w") as f:
    f.write("".join(r + "\n" for r in res))
PY
}
