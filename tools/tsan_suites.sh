#!/usr/bin/env bash
# tools/tsan_suites.sh RELEASE_BUILD TSAN_BUILD [CTEST_ARGS...] -- every suite that starts the
# server runs once more against a ThreadSanitizer build of it: the test binaries are the
# release ones (Criterion's runner cannot start under ThreadSanitizer: its inheritable arena
# collides with the sanitizer's memory map), the server they start is $TSAN_BUILD/api/tidings
# (TIDINGS_TEST_SERVER_BIN; TIDINGS_TEST_SERVER_TSAN=1 tells a test that measures the
# server's memory that each byte costs four more of shadow). Any report a server writes fails
# the run. The in-process suites (label "unit") are left out here; the hub's threads run under ThreadSanitizer in
# tools/tsan_notify.sh. Extra arguments go to ctest (e.g. -R test_sse).
# The chaos suite is left out too (its timings are set for the release server), and so are
# the second runs against a Redis Cluster (label "cluster"): the server's threads are the same,
# and the stage must keep tools/test.sh under 30 minutes. For that too the generated
# TypeScript client and the demo page in Chromium are left out: they call the routes the C
# suites and the contract test call, and spent 40 s of the stage in Node and the browser.
set -euo pipefail
cd "$(dirname "$0")/.."
release=${1:?usage: tsan_suites.sh RELEASE_BUILD TSAN_BUILD [CTEST_ARGS...]}
tsan=${2:?usage: tsan_suites.sh RELEASE_BUILD TSAN_BUILD [CTEST_ARGS...]}
shift 2
cmake -S . -B "$tsan" -DCMAKE_BUILD_TYPE=Tsan -DTIDINGS_WERROR=ON >/dev/null
cmake --build "$tsan" -j"$(nproc)" --target tidings
release=$(cd "$release" && pwd) tsan=$(cd "$tsan" && pwd)
reports=$(mktemp -d)
trap 'rm -rf "$reports"' EXIT
# second_deadlock_stack: a lock-order report names both acquisitions.
status=0
(cd "$release" &&
  TIDINGS_TEST_SERVER_BIN="$tsan/api/tidings" TIDINGS_TEST_SERVER_TSAN=1 \
  TSAN_OPTIONS="log_path=$reports/tidings halt_on_error=0 second_deadlock_stack=1" \
  ctest --output-on-failure -j2 --timeout 900 -LE 'unit|lint|chaos|cluster' \
    -E '^(client_typescript|demo_browser)$' "$@") || status=$?
if compgen -G "$reports/*" >/dev/null; then
  cat "$reports"/* >&2
  echo "tools/tsan_suites.sh: ThreadSanitizer reported the server (above)" >&2
  exit 1
fi
[ "$status" -eq 0 ] || { echo "tools/tsan_suites.sh: a suite failed against the ThreadSanitizer server" >&2; exit "$status"; }
echo "tools/tsan_suites.sh: every server suite passed, no ThreadSanitizer report"
