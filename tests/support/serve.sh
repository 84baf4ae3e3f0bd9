# tests/support/serve.sh -- sourced by the scripts that run node tests against the built server
# (tests/contract/run_contract.sh, tests/clients/run_clients.sh); not run by itself.
#
# The sourcing script sets bin (the tidings binary), work (a directory for logs and data) and
# tag (its name in messages). serve_start starts servers on free loopback ports and records
# their pids; serve_stop_all stops every one with SIGTERM (SIGKILL after 15 s), and runs on
# exit. redis_port is the test Redis's port, from TIDINGS_TEST_REDIS_PORT_FILE.
port_file=${TIDINGS_TEST_REDIS_PORT_FILE:?TIDINGS_TEST_REDIS_PORT_FILE is not set (the redis fixture writes it)}
[ -s "$port_file" ] || { echo "$tag: no redis port in $port_file (did redis_start run?)" >&2; exit 1; }
redis_port=$(cat "$port_file")
pids=()

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
}
trap serve_stop_all EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
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
