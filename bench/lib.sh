# bench/lib.sh -- what the benchmark scripts share; sourced, not run.
# shellcheck shell=bash

# stop_pid PID: SIGTERM, wait up to 10 s, then SIGKILL (nothing when PID is empty or gone).
stop_pid() {
  local pid=$1
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
}

# Progress and details go to stderr; stdout carries the summary.
log() { printf '%s\n' "$*" >&2; }

# A loopback TCP port that is free now.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
