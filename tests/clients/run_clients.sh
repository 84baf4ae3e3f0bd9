#!/usr/bin/env bash
# tests/clients/run_clients.sh MODE TIDINGS_BIN SOURCE_DIR WORK_DIR -- the client tests.
#
# MODE typescript: generates a TypeScript client's types from openapi.yaml with
#   openapi-typescript (every run, so the client always follows the spec), type-checks
#   scenario.test.mts against them with tsc, and runs the compiled scenario with node --test.
# MODE browser: drives the demo page at / in headless Chromium (demo.test.mjs); the
#   screenshots go to WORK_DIR.
#
# Either way, starts the built server on a free loopback port against the test redis (its port
# is in the file named by TIDINGS_TEST_REDIS_PORT_FILE) and waits for /readyz first, and stops
# it with SIGTERM whatever happens. WORK_DIR is emptied first and kept afterwards for a look.
# Exits with node's status (or 1 when the server's log has a sanitizer report).
set -euo pipefail
usage='usage: run_clients.sh typescript|browser TIDINGS_BIN SOURCE_DIR WORK_DIR'
mode=${1:?$usage}
bin=${2:?$usage}
src=${3:?$usage}
work=${4:?$usage}
case "$mode" in typescript|browser) ;; *) echo "$usage" >&2; exit 2 ;; esac

nm=$src/tools/node_modules
for pkg in openapi-typescript openapi-fetch typescript eventsource playwright-core pngjs @types/node; do
  if [ ! -d "$nm/$pkg" ]; then
    echo "clients: tools/node_modules/$pkg is missing: run 'npm ci --prefix tools' (tools/setup.sh --with-node)" >&2
    exit 1
  fi
done
port_file=${TIDINGS_TEST_REDIS_PORT_FILE:?TIDINGS_TEST_REDIS_PORT_FILE is not set (the redis fixture writes it)}
[ -s "$port_file" ] || { echo "clients: no redis port in $port_file (did redis_start run?)" >&2; exit 1; }
redis_port=$(cat "$port_file")

rm -rf "$work"
mkdir -p "$work"
log=$work/server.log
pid=

stop_server() {
  [ -n "$pid" ] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "clients: server $pid ignored SIGTERM for 15 s; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  wait "$pid" 2>/dev/null || true
  pid=
}
trap stop_server EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
answers_200() { # url
  node -e 'fetch(process.argv[1]).then(r => process.exit(r.status === 200 ? 0 : 1), () => process.exit(1))' "$1"
}

# Starts the server and waits (10 s at most) for /readyz; three attempts, in case another
# process takes the port in between.
url=
for attempt in 1 2 3; do
  port=$(free_port)
  "$bin" --listen "127.0.0.1:$port" --redis "redis://127.0.0.1:$redis_port" --data-dir "$work/data" >"$log" 2>&1 &
  pid=$!
  for _ in $(seq 200); do
    kill -0 "$pid" 2>/dev/null || break
    if answers_200 "http://127.0.0.1:$port/readyz"; then url=http://127.0.0.1:$port; break; fi
    sleep 0.05
  done
  [ -n "$url" ] && break
  echo "clients: the server did not answer /readyz (attempt $attempt); its log:" >&2
  cat "$log" >&2
  stop_server
done
[ -n "$url" ] || { echo "clients: giving up: the server never came up" >&2; exit 1; }
echo "clients: server (pid $pid) at $url"

status=0
case "$mode" in
  typescript)
    # The client is generated from the spec on every run, then type-checked: a spec change
    # that breaks the scenario's use of the client fails here, before anything runs.
    ts=$work/ts
    mkdir -p "$ts"
    cp "$src/tests/clients/scenario.test.mts" "$src/tests/clients/tsconfig.json" "$ts/"
    ln -s "$nm" "$ts/node_modules"
    echo "clients: openapi-typescript openapi.yaml -> $ts/tidings-api.d.ts"
    node "$nm/openapi-typescript/bin/cli.js" "$src/openapi.yaml" -o "$ts/tidings-api.d.ts" || status=$?
    if [ "$status" -eq 0 ]; then
      echo "clients: tsc -p $ts/tsconfig.json"
      node "$nm/typescript/bin/tsc" -p "$ts/tsconfig.json" || status=$?
      [ "$status" -eq 0 ] || echo "clients: FAILED: the scenario does not type-check against the client generated from openapi.yaml" >&2
    fi
    if [ "$status" -eq 0 ]; then
      TIDINGS_URL=$url node --test --test-timeout=120000 "$ts/out/scenario.test.mjs" || status=$?
    fi
    ;;
  browser)
    TIDINGS_URL=$url TIDINGS_DEMO_OUT=$work \
      node --test --test-timeout=180000 "$src/tests/clients/demo.test.mjs" || status=$?
    [ ! -f "$work/demo-bob.png" ] || echo "clients: screenshots: $work/demo-ana.png $work/demo-bob.png"
    ;;
esac
if [ "$status" -ne 0 ]; then
  echo "clients: FAILED ($mode, status $status); the server's log (last 80 lines):" >&2
  tail -n 80 "$log" >&2
fi
stop_server
# A sanitizer build's server reports at exit; such a report fails the test.
if grep -Eq 'ERROR: (Address|Leak|Thread)Sanitizer|runtime error:' "$log"; then
  echo "clients: the server's log has a sanitizer report:" >&2
  grep -E -A30 'ERROR: (Address|Leak|Thread)Sanitizer|runtime error:' "$log" | head -n 120 >&2
  [ "$status" -ne 0 ] || status=1
fi
exit "$status"
