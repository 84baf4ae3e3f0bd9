#!/usr/bin/env bash
# tools/tsan_sse.sh RELEASE_BUILD TSAN_BUILD -- the SSE suite against a ThreadSanitizer
# build of the server: the stream writers, the subscriber thread and libmicrohttpd's
# threads share every stream. The test binary is the release one (Criterion's runner
# itself does not run under ThreadSanitizer); any report the server writes fails the run.
# Rate limits are off, as tests/CMakeLists.txt sets them off for every suite ctest runs.
set -euo pipefail
cd "$(dirname "$0")/.."
release=$1 tsan=$2
cmake -S . -B "$tsan" -DCMAKE_BUILD_TYPE=Tsan -DTIDINGS_WERROR=ON >/dev/null
cmake --build "$tsan" -j"$(nproc)" --target tidings
src=$PWD release=$(cd "$release" && pwd) tsan=$(cd "$tsan" && pwd)
work=$(mktemp -d)
trap 'tests/support/redis_fixture.sh stop "$work/redis" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
tests/support/redis_fixture.sh start "$work/redis" >/dev/null
mkdir -p "$work/reports"
(cd "$release/tests/sse" &&
  TIDINGS_BIN="$tsan/api/tidings" TIDINGS_SOURCE_DIR="$src" TIDINGS_RATE_LIMITS=off \
  TIDINGS_REDIS_SERVER=redis-server TIDINGS_TEST_REDIS_PORT_FILE="$work/redis/port" \
  TSAN_OPTIONS="log_path=$work/reports/tidings halt_on_error=0" \
  timeout 900 ./test_sse --jobs 2 --timeout 600)
if compgen -G "$work/reports/*" >/dev/null; then
  cat "$work"/reports/* >&2
  echo "tools/tsan_sse.sh: ThreadSanitizer reported the server (above)" >&2
  exit 1
fi
echo "tools/tsan_sse.sh: no ThreadSanitizer report from the server"
