#!/usr/bin/env bash
# tests/clients/run_clients.sh MODE TIDINGS_BIN SOURCE_DIR WORK_DIR -- the client tests.
#
# MODE typescript: generates a TypeScript client's types from openapi.yaml with
#   openapi-typescript (every run, so the client always follows the spec), type-checks
#   scenario.test.mts against them with tsc, and runs the compiled scenario with node --test.
# MODE browser: drives the demo page at / in headless Chromium (demo.test.mjs); the
#   screenshots go to WORK_DIR.
#
# Either way, starts the built server on a free loopback port against a redis-server of its
# own (tests/support/serve.sh says why) and waits for /readyz first, and stops
# it with SIGTERM whatever happens. WORK_DIR is emptied first and kept afterwards for a look.
# Exits with node's status (or 1 when the server's log has a sanitizer report).
set -euo pipefail
usage='usage: run_clients.sh typescript|browser TIDINGS_BIN SOURCE_DIR WORK_DIR'
mode=${1:?$usage}
bin=${TIDINGS_TEST_SERVER_BIN:-${2:?$usage}}
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
rm -rf "$work"
mkdir -p "$work"
log=$work/main.log
tag=clients
# shellcheck source=../support/serve.sh
. "$src/tests/support/serve.sh"
serve_redis
serve_start main "redis://127.0.0.1:$redis_port" /readyz

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
serve_finish "$status"
