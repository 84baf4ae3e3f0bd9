#!/usr/bin/env bash
# tests/contract/run_lint.sh SOURCE_DIR -- lints openapi.yaml with Redocly CLI (tools/redocly.yaml:
# the recommended ruleset, warnings raised to errors). Needs `npm ci --prefix tools` first.
set -euo pipefail
src=${1:?usage: run_lint.sh SOURCE_DIR}
cd "$src"
if [ ! -x tools/node_modules/.bin/redocly ]; then
  echo "openapi_lint: tools/node_modules is missing (or has no redocly): run 'npm ci --prefix tools'" >&2
  exit 1
fi
# No telemetry or update checks: the lint must not need the network.
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true NO_UPDATE_NOTIFIER=1
out=$(npx --prefix tools --no redocly lint openapi.yaml --config tools/redocly.yaml 2>&1) && rc=0 || rc=$?
printf '%s\n' "$out"
# recommended-strict already turns warnings into errors; this catches a config that does not.
if [ "$rc" -eq 0 ] && printf '%s\n' "$out" | grep -Eq '[0-9]+ warnings?\b'; then
  echo "openapi_lint: the lint reported warnings" >&2
  exit 1
fi
exit "$rc"
