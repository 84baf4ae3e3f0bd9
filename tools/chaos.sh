#!/usr/bin/env bash
# tools/chaos.sh [BUILD_DIR] [LABEL] -- the chaos suite (tests/chaos): two tidings processes
# under steady load (20 authors to 2,000 followers each, 500 open streams, likes and follows)
# while one fault at a time is injected -- a process killed, Redis restarted from its AOF,
# Redis paused 5 s, Redis at maxmemory, a cluster master killed -- then checks that nothing
# accepted was lost or doubled, nothing refused shows up, no stream stalled silently and
# /readyz told the truth. Builds BUILD_DIR (default build, RelWithDebInfo unless it is
# configured already), runs the ctest entries labelled LABEL (default chaos; chaos_failing
# holds the tests that still find a server bug) one at a time, and prints what each test
# measured. Each test starts its own Redis; nothing else is needed.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build} label=${2:-chaos}
if [[ ! -f $build/CMakeCache.txt ]]; then
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTIDINGS_WERROR=ON >/dev/null
fi
cmake --build "$build" -j"$(nproc)" --target tidings test_chaos
start=$(date +%s)
rc=0
# Every test has its own deadline (ctest TIMEOUT 180, every wait inside bounded); this one
# bounds the stage as a whole.
(cd "$build" && timeout 900 ctest --output-on-failure -L "^$label\$" --timeout 900) || rc=$?
log=$build/Testing/Temporary/LastTest.log
if [[ -f $log ]]; then
  echo "== what the chaos tests measured =="
  grep -E '^chaos ' "$log" | grep -v 'BROKEN' || true
fi
echo "tools/chaos.sh: label $label took $(($(date +%s) - start)) s (rc $rc)"
exit $rc
