#!/usr/bin/env bash
# tools/test.sh -- installs what is missing, checks that every C file is formatted
# (tools/format.sh --check), builds, and runs the whole test suite twice: a normal build
# (warnings as errors) and an AddressSanitizer + UBSan build (both without the chaos tests;
# the second runs on a Redis Cluster only the suites about the cluster client); then the
# chaos suite on the normal build (tools/chaos.sh), every libFuzzer target of tests/fuzz for
# 10 s (two at a time, one per core), every suite that starts the server once more against a
# ThreadSanitizer build of it, and the hub's stress run (tests/notify) under ThreadSanitizer.
# The tests start their own redis-server on a free loopback port and stop it afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh --with-node
echo "== formatting (clang-format, .clang-format) =="
tools/format.sh --check

run_suite() { # build-dir build-type ctest-jobs [ctest-args…]
  local dir=$1 type=$2 jobs=$3
  shift 3
  [ $# -gt 0 ] || set -- -LE chaos
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE="$type" -DTIDINGS_WERROR=ON >/dev/null
  cmake --build "$dir" -j"$(nproc)"
  (cd "$dir" && ctest --output-on-failure -j"$jobs" --timeout 900 "$@")
}

echo "== release build =="
# Three suites at once on two cores: the release suites spend much of their time waiting
# (private clusters forming, polls, streams). Two at a time took 452 s, three 354 s with
# the cores then busy; the sanitizer builds, several times slower, stay at two.
run_suite build RelWithDebInfo 3
echo "== chaos: faults injected under load (tests/chaos) =="
tools/chaos.sh build
echo "== AddressSanitizer + UndefinedBehaviorSanitizer build =="
# Every suite against one Redis, and against a Redis Cluster only the suites whose point is
# the cluster client (redirects, failover, resubscribing, erasure's SCAN of every master): the
# other cluster runs repeat the same server code and would take the run past 30 minutes.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1
# One ctest run, so the cluster suites overlap the others instead of running after them:
# every other cluster rerun is excluded by name.
asan_cluster='^(test_failover|test_faults_cluster|test_sse_resubscribe_cluster|test_erasure_cluster|redis_.*)$'
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Asan -DTIDINGS_WERROR=ON >/dev/null
asan_skip=$(cd build-asan && ctest -N -L cluster | sed -n 's/^ *Test *#[0-9]*: //p' |
  grep -Ev "$asan_cluster" | paste -sd'|' -)
asan_args=(-LE chaos)
[ -z "$asan_skip" ] || asan_args+=(-E "^($asan_skip)\$")
run_suite build-asan Asan 2 "${asan_args[@]}"
unset ASAN_OPTIONS UBSAN_OPTIONS
echo "== coverage-guided fuzzing: every parser of outside input, 10 s each (tools/fuzz.sh) =="
FUZZ_BUILD_DIR=build-fuzz FUZZ_JOBS=2 tools/fuzz.sh all 10
echo "== every suite that starts the server, against a ThreadSanitizer build of it =="
tools/tsan_suites.sh build build-tsan
echo "== the hub's two-thread stress run under ThreadSanitizer =="
tools/tsan_notify.sh build-tsan
echo "tools/test.sh: all suites passed"
