#!/usr/bin/env bash
# tests/contract/run_contract.sh TIDINGS_BIN SOURCE_DIR -- the contract test.
#
# Starts the built server on a free loopback port against a redis-server of its own
# (tests/support/serve.sh says why) and waits for /readyz; starts a second one against
# a port where no Redis listens (to check the documented 503 answers) and waits for /healthz;
# runs contract.test.mjs with TIDINGS_URL and TIDINGS_URL_NO_REDIS set; stops both servers with
# SIGTERM whatever happens. Exits with node's status (or 1 when a server log has a sanitizer
# report).
set -euo pipefail
bin=${TIDINGS_TEST_SERVER_BIN:-${1:?usage: run_contract.sh TIDINGS_BIN SOURCE_DIR}}
src=${2:?usage: run_contract.sh TIDINGS_BIN SOURCE_DIR}

if [ ! -d "$src/tools/node_modules/ajv" ] || [ ! -d "$src/tools/node_modules/yaml" ]; then
  echo "contract: tools/node_modules is missing: run 'npm ci --prefix tools'" >&2
  exit 1
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/tidings-contract.XXXXXX")
tag=contract
# shellcheck source=../support/serve.sh
. "$src/tests/support/serve.sh"
trap 'serve_stop_all; rm -rf "$work"' EXIT

# Rate limits stay on, so every answer carries the RateLimit headers the spec describes, but
# so high that a test client far faster than a person never meets them.
serve_flags=(--rate-limits on)
for class in publish interact follow register read stream; do
  serve_flags+=("--rate-$class" 100000/m)
done

serve_redis
serve_start main "redis://127.0.0.1:$redis_port" /readyz
main_url=$url
serve_start no-redis "redis://127.0.0.1:$(free_port)" /healthz
no_redis_url=$url

status=0
TIDINGS_URL=$main_url TIDINGS_URL_NO_REDIS=$no_redis_url \
  node --test "$src/tests/contract/contract.test.mjs" || status=$?
if [ "$status" -ne 0 ]; then
  echo "contract: FAILED (node exited $status); the main server's log (last 80 lines):" >&2
  tail -n 80 "$work/main.log" >&2
fi
serve_finish "$status"
