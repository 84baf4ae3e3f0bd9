# tests/support/serve.sh -- sourced by the scripts that run node tests against the built server
# (tests/contract/run_contract.sh, tests/clients/run_clients.sh); not run by itself.
#
# The sourcing script sets bin (the tidings binary), work (a directory for logs and data) and
# tag (its name in messages). serve_redis starts a redis-server of the script's own and sets
# redis_port; serve_start starts servers on free loopback ports and records their pids;
# serve_stop_all stops every one with SIGTERM (SIGKILL after 15 s), Redis last, and runs on
# exit.
#
# A Redis of its own, not the suites' shared fixture: every server on one Redis takes jobs
# from the same fan-out queue, so a job of this script's users could be taken by another
# suite's server (one with its clock weeks ahead, or stopped while holding it: then the job
# waits out --claim-idle-ms, 30 s), and rate-limit buckets per address are shared too.
pids=()
redis_pid=

serve_stop() { # pid
  local pid=$1
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "$tag: server $pid ignored SIGTERM for 15 s; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}
serve_stop_all() {
  for pid in "${pids[@]}"; do serve_stop "$pid"; done
  pids=()
  if [ -n "$redis_pid" ]; then
    kill -TERM "$redis_pid" 2>/dev/null || true
    wait "$redis_pid" 2>/dev/null || true
    redis_pid=
  fi
}
trap serve_stop_all EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# serve_redis: a redis-server (no persistence) on a free loopback port, its files in
# $work/redis; sets redis_port once it answers PING (10 s at most).
serve_redis() {
  local server=${TIDINGS_REDIS_SERVER:-redis-server}
  mkdir -p "$work/redis"
  for attempt in 1 2 3; do
    redis_port=$(free_port)
    "$server" --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no \
      --dir "$work/redis" --logfile "$work/redis/redis.log" &
    redis_pid=$!
    for _ in $(seq 200); do
      kill -0 "$redis_pid" 2>/dev/null || break
      if redis-cli -p "$redis_port" ping 2>/dev/null | grep -q PONG; then return 0; fi
      sleep 0.05
    done
    echo "$tag: redis-server did not start on port $redis_port (attempt $attempt)" >&2
    kill -KILL "$redis_pid" 2>/dev/null || true
    wait "$redis_pid" 2>/dev/null || true
    redis_pid=
  done
  echo "$tag: giving up: no redis-server" >&2
  exit 1
}

answers_200() { # url
  node -e 'fetch(process.argv[1]).then(r => process.exit(r.status === 200 ? 0 : 1), () => process.exit(1))' "$1"
}

# The array serve_flags (may be unset) holds flags every server gets.
# serve_start NAME REDIS_URL PROBE_PATH: starts a server logging to $work/NAME.log, waits
# (10 s at most) until PROBE_PATH answers 200, and sets $url. Three attempts, in case another
# process takes the port in between.
serve_start() {
  local name=$1 redis=$2 probe=$3 log=$work/$1.log port pid
  url=
  for attempt in 1 2 3; do
    port=$(free_port)
    "$bin" --listen "127.0.0.1:$port" --redis "$redis" --data-dir "$work/data-$name" \
      "${serve_flags[@]}" >"$log" 2>&1 &
    pid=$!
    pids+=("$pid")
    for _ in $(seq 200); do
      kill -0 "$pid" 2>/dev/null || break
      if answers_200 "http://127.0.0.1:$port$probe"; then url=http://127.0.0.1:$port; break; fi
      sleep 0.05
    done
    [ -n "$url" ] && { echo "$tag: $name server (pid $pid) at $url"; return 0; }
    echo "$tag: the $name server did not answer $probe (attempt $attempt); its log:" >&2
    cat "$log" >&2
    serve_stop "$pid"
  done
  echo "$tag: giving up: the $name server never came up" >&2
  exit 1
}

# serve_finish STATUS: stops the servers; a sanitizer build's server reports at exit, and
# such a report in any log fails the test. Exits with STATUS (1 for a report).
serve_finish() {
  local status=$1 log
  serve_stop_all
  for log in "$work"/*.log; do
    if grep -Eq 'ERROR: (Address|Leak|Thread)Sanitizer|runtime error:' "$log"; then
      echo "$tag: $(basename "$log") has a sanitizer report:" >&2
      grep -E -A30 'ERROR: (Address|Leak|Thread)Sanitizer|runtime error:' "$log" | head -n 120 >&2
      [ "$status" -ne 0 ] || status=1
    fi
  done
  exit "$status"
}
