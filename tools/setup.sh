#!/usr/bin/env bash
# tools/setup.sh -- installs what building, running and testing Tidings need, if missing.
# Debian packages through apt-get (as root), npm tooling into tools/node_modules.
# Usage: tools/setup.sh [--with-node]
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake pkg-config libmicrohttpd-dev libuv1-dev libhiredis-dev
          libjansson-dev libcriterion-dev libssl-dev libboost-context1.74-dev redis-server redis-tools python3 curl
          clang-format clang libfuzzer-14-dev)
if [ "${1:-}" = "--with-node" ]; then
  command -v node >/dev/null && command -v npm >/dev/null || packages+=(nodejs npm)
  # wrk and nginx-light for bench/; Debian's chromium (/usr/bin/chromium) for the demo page's browser test,
  # which playwright-core drives: no browser is ever downloaded.
  packages+=(wrk nginx-light chromium)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}"
fi

if [ "${1:-}" = "--with-node" ]; then
  stamp=tools/node_modules/.lock-stamp
  if [ ! -f "$stamp" ] || ! cmp -s tools/package-lock.json "$stamp"; then
    echo "setup: npm ci in tools/"
    npm ci --prefix tools --no-audit --no-fund
    cp tools/package-lock.json "$stamp"
  fi
fi
