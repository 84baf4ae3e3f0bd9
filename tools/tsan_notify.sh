#!/usr/bin/env bash
# tools/tsan_notify.sh TSAN_BUILD -- the hub's two-thread stress run under ThreadSanitizer.
# Criterion 2.4.1's runner aborts under TSan before any test starts ("Could not initialize
# inheritable arena", Snaipe/Criterion#274), so the Tsan build runs notify_stress, the
# stress suite's body as a plain program (tests/notify/stress_main.c). Any report fails.
set -euo pipefail
cd "$(dirname "$0")/.."
tsan=$1
cmake -S . -B "$tsan" -DCMAKE_BUILD_TYPE=Tsan -DTIDINGS_WERROR=ON >/dev/null
cmake --build "$tsan" -j"$(nproc)" --target notify_stress
reports=$(mktemp -d)
trap 'rm -rf "$reports"' EXIT
rc=0
TSAN_OPTIONS="log_path=$reports/notify halt_on_error=0 exitcode=66" \
  timeout 300 "$tsan/tests/notify/notify_stress" || rc=$?
if compgen -G "$reports/*" >/dev/null; then
  cat "$reports"/* >&2
  echo "tools/tsan_notify.sh: ThreadSanitizer reported the hub (above)" >&2
  exit 1
fi
if [ "$rc" -ne 0 ]; then
  echo "tools/tsan_notify.sh: notify_stress failed (exit $rc)" >&2
  exit 1
fi
echo "tools/tsan_notify.sh: no ThreadSanitizer report from the hub"
