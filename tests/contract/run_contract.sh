#!/usr/bin/env bash
# tests/contract/run_contract.sh TIDINGS_BIN SOURCE_DIR -- the contract test.
#
# Starts the built server on a free loopback port against the test redis (its port is in the
# file named by TIDINGS_TEST_REDIS_PORT_FILE) and waits for /readyz; starts a second one against
# a port where no Redis listens (to check the documented 503 answers) and waits for /healthz;
# runs contract.test.mjs with TIDINGS_URL and TIDINGS_URL_NO_REDIS set; stops both servers with
# SIGTERM whatever happens. Exits with node's status (or 1 when a server log has a sanitizer
# report).
set -euo pipefail
bin=${1:?usage: run_contract.sh TIDINGS_BIN SOURCE_DIR}
src=${2:?usage: run_contract.sh TIDINGS_BIN SOURCE_DIR}

if [ ! -d "$src/tools/node_modules/ajv" ] || [ ! -d "$src/tools/node_modules/yaml" ]; then
  echo "contract: tools/node_modules is missing: run 'npm ci --prefix tools'" >&2
  exit 1
fi
port_file=${TIDINGS_TEST_REDIS_PORT_FILE:?TIDINGS_TEST_REDIS_PORT_FILE is not set (the redis fixture writes it)}
[ -s "$port_file" ] || { echo "contract: no redis port in $port_file (did redis_start run?)" >&2; exit 1; }
redis_port=$(cat "$port_file")

work=$(mktemp -d "${TMPDIR:-/tmp}/tidings-contract.XXXXXX")
pids=()

stop_pid() { # pid
  local pid=$1
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "contract: server $pid ignored SIGTERM for 15 s; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}
stop_all() {
  for pid in "${pids[@]}"; do stop_pid "$pid"; done
  pids=()
}
cleanup() {
  stop_all
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

answers_200() { # url
  node -e 'fetch(process.argv[1]).then(r => process.exit(r.status === 200 ? 0 : 1), () => process.exit(1))' "$1"
}

# Rate limits stay on, so every answer carries the RateLimit headers the spec describes, but
# so high that a test client far faster than a person never meets them.
rate_limits=(--rate-limits on)
for class in publish interact follow register read stream; do
  rate_limits+=("--rate-$class" 100000/m)
done

# start NAME REDIS_URL PROBE_PATH: starts a server, waits until PROBE_PATH answers 200, and
# sets $url (and appends to pids). Three attempts, in case another process takes the port.
start() {
  local name=$1 redis=$2 probe=$3 log=$work/$1.log port pid
  url=
  for attempt in 1 2 3; do
    port=$(free_port)
    "$bin" --listen "127.0.0.1:$port" --redis "$redis" --data-dir "$work/data-$name" \
      "${rate_limits[@]}" >"$log" 2>&1 &
    pid=$!
    pids+=("$pid")
    for _ in $(seq 200); do
      kill -0 "$pid" 2>/dev/null || break
      if answers_200 "http://127.0.0.1:$port$probe"; then url=http://127.0.0.1:$port; break; fi
      sleep 0.05
    done
    [ -n "$url" ] && { echo "contract: $name server (pid $pid) at $url"; return 0; }
    echo "contract: the $name server did not answer $probe (attempt $attempt); its log:" >&2
    cat "$log" >&2
    stop_pid "$pid"
  done
  echo "contract: giving up: the $name server never came up" >&2
  exit 1
}

start main "redis://127.0.0.1:$redis_port" /readyz
main_url=$url
start no-redis "redis://127.0.0.1:$(free_port)" /healthz
no_redis_url=$url

status=0
TIDINGS_URL=$main_url TIDINGS_URL_NO_REDIS=$no_redis_url \
  node --test "$src/tests/contract/contract.test.mjs" || status=$?
if [ "$status" -ne 0 ]; then
  echo "contract: FAILED (node exited $status); the main server's log (last 80 lines):" >&2
  tail -n 80 "$work/main.log" >&2
fi
stop_all
# A sanitizer build's server reports at exit; such a report fails the test.
for log in "$work"/*.log; do
  if grep -Eq 'ERROR: (Address|Leak|Thread)Sanitizer|runtime error:' "$log"; then
    echo "contract: $(basename "$log") has a sanitizer report:" >&2
    grep -E -A30 'ERROR: (Address|Leak|Thread)Sanitizer|runtime error:' "$log" | head -n 120 >&2
    [ "$status" -ne 0 ] || status=1
  fi
done
exit "$status"
