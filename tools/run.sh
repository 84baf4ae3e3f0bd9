#!/usr/bin/env bash
# tools/run.sh [tidings options] -- installs what is missing, builds, and runs the server.
# With no --redis (or TIDINGS_REDIS) it starts its own redis-server, data in ./tidings-data.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"
exec build/api/tidings "$@"
