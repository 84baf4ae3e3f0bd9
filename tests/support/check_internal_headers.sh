#!/usr/bin/env bash
# Fails when a folder includes another folder's *_internal.h (STYLE §1).
set -euo pipefail
cd "$1"
bad=0
for dir in api fanout notify storage; do
  [ -d "$dir" ] || continue
  while IFS= read -r line; do
    echo "outside $dir/: $line"; bad=1
  done < <(grep -rn --include='*.[ch]' "#include \"$dir/[a-z_]*_internal.h\"" . | grep -v "^\./$dir/" | grep -v "^\./tests/$dir/" || true)
done
# storage/redis/ is a layer of its own: its internal header stays in it, and it includes
# nothing of the data model above it.
while IFS= read -r line; do
  echo "outside storage/redis/: $line"; bad=1
done < <(grep -rn --include='*.[ch]' '#include "storage/redis/[a-z_]*_internal.h"' . |
           grep -v '^\./storage/redis/' | grep -v '^\./tests/storage/redis/' || true)
while IFS= read -r line; do
  echo "storage/redis/ includes the data model: $line"; bad=1
done < <(grep -rn --include='*.[ch]' '#include "storage/[a-z_]*\.h"' storage/redis 2>/dev/null || true)
[ $bad -eq 0 ] && echo "internal headers stay in their folders"
exit $bad
