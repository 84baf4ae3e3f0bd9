#!/usr/bin/env bash
# tools/format.sh [--check] -- formats every C file of ours with clang-format and the
# repository's .clang-format (the house style, STYLE §7). --check changes nothing and fails,
# naming the files, when any file is not formatted; tools/test.sh runs it first.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null || { echo "tools/format.sh: clang-format is missing" >&2; exit 2; }
mapfile -t files < <(git ls-files -co --exclude-standard -- '*.c' '*.h')
if [[ ${1:-} != --check ]]; then
  clang-format -style=file -i "${files[@]}"
  exit 0
fi
bad=()
for f in "${files[@]}"; do
  [[ -f $f ]] || continue
  clang-format -style=file "$f" | cmp -s - "$f" || bad+=("$f")
done
if ((${#bad[@]})); then
  printf 'tools/format.sh: not formatted (run tools/format.sh): %s\n' "${bad[@]}" >&2
  exit 1
fi
echo "tools/format.sh: ${#files[@]} C files formatted"
