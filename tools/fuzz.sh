#!/usr/bin/env bash
# tools/fuzz.sh TARGET|all [SECONDS] -- builds the libFuzzer targets of tests/fuzz (clang,
# ASan + UBSan, in their own build dir) and runs one target, or every one, for SECONDS each
# (default 60). Fails on any crash, broken invariant, leak, timeout or sanitizer report,
# and says where the input that did it was saved.
#
# The seeds in tests/fuzz/corpus/TARGET are only read; the corpus the run grows is kept in
# the build dir (BUILD/fuzz/corpus/TARGET), so a next run starts where this one stopped and
# the repository is never written. Prints libFuzzer's final figures per target: executions,
# exec/s, coverage (cov: edges, ft: features) and corpus size.
#
# Environment: FUZZ_BUILD_DIR (default build-fuzz), FUZZ_JOBS (targets run at once with
# "all", default 1; tools/test.sh runs two, one per core).
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: tools/fuzz.sh TARGET|all [SECONDS]}
seconds=${2:-60}
build=${FUZZ_BUILD_DIR:-build-fuzz}
jobs=${FUZZ_JOBS:-1}

command -v clang >/dev/null || { echo "tools/fuzz.sh: clang is missing (tools/setup.sh)" >&2; exit 2; }
if [ ! -f "$build/CMakeCache.txt" ]; then
  CC=clang cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Fuzz -DTIDINGS_FUZZ=ON -DBUILD_TESTING=OFF \
    -DTIDINGS_WERROR=ON >/dev/null
fi
if [ "$target" = all ]; then
  cmake --build "$build" -j2 --target fuzz_all >/dev/null
  mapfile -t targets < <(cd tests/fuzz && ls fuzz_*.c | sed 's/\.c$//')
else
  [ -f "tests/fuzz/$target.c" ] || { echo "tools/fuzz.sh: no target tests/fuzz/$target.c" >&2; exit 2; }
  cmake --build "$build" -j2 --target "$target" >/dev/null
  targets=("$target")
fi
build=$(cd "$build" && pwd)
mkdir -p "$build/fuzz/logs"

# The dictionary a target's inputs share words with, if any.
dict_of() {
  case $1 in
    fuzz_body_*) echo tests/fuzz/dict/json.dict ;;
    fuzz_command | fuzz_cluster_slots | fuzz_reply | fuzz_redirect) echo tests/fuzz/dict/resp.dict ;;
    fuzz_route | fuzz_query) echo tests/fuzz/dict/http.dict ;;
    fuzz_forwarded_for) echo tests/fuzz/dict/address.dict ;;
    *) ;;
  esac
}

# run_one TARGET: writes BUILD/fuzz/logs/TARGET.log and .status (0: no finding).
run_one() {
  local t=$1 dict corpus="$build/fuzz/corpus/$1" findings="$build/fuzz/findings/$1/"
  local log="$build/fuzz/logs/$1.log" args=()
  rm -rf "$findings" # what an earlier run found is in its log; this run's own findings count
  mkdir -p "$corpus" "$findings"
  dict=$(dict_of "$t")
  [ -n "$dict" ] && args+=("-dict=$dict")
  args+=("$corpus") # the first directory is the one libFuzzer writes new inputs to
  [ -d "tests/fuzz/corpus/$t" ] && args+=("tests/fuzz/corpus/$t")
  local rc=0
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$build/tests/fuzz/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$findings" "${args[@]}" \
    >"$log" 2>&1 || rc=$?
  # A report that did not stop the run (none should) fails it all the same.
  if [ $rc -eq 0 ] && grep -Eq 'ERROR: (Address|Leak|libFuzzer)|runtime error:|SUMMARY: ' "$log"; then
    rc=1
  fi
  echo $rc >"$build/fuzz/logs/$t.status"
}

running=0
for t in "${targets[@]}"; do
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
  run_one "$t" &
  running=$((running + 1))
done
wait

failed=()
printf '%-22s %12s %9s %7s %7s %7s\n' target execs exec/s cov ft corpus
for t in "${targets[@]}"; do
  log="$build/fuzz/logs/$t.log"
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")
  printf '%-22s %12s %9s %7s %7s %7s\n' "$t" "${execs:--}" "${rate:--}" "${cov:--}" "${ft:--}" \
    "${corp:--}"
  [ "$(cat "$build/fuzz/logs/$t.status")" = 0 ] || failed+=("$t")
done
if ((${#failed[@]})); then
  for t in "${failed[@]}"; do
    echo "== $t: finding (log $build/fuzz/logs/$t.log; input in $build/fuzz/findings/$t/) ==" >&2
    grep -E -A40 'ERROR: |runtime error:|invariant broken' "$build/fuzz/logs/$t.log" | head -60 >&2 || true
  done
  echo "tools/fuzz.sh: findings in ${failed[*]}" >&2
  exit 1
fi
echo "tools/fuzz.sh: no finding in ${#targets[@]} target(s), ${seconds} s each"
