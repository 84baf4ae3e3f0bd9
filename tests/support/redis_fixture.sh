#!/usr/bin/env bash
# tests/support/redis_fixture.sh start|stop DIR -- a throwaway redis-server for the tests.
# start: picks a free loopback port, starts redis-server (no persistence) with DIR as its
# home, waits until it answers, and writes the port to DIR/port. stop: shuts it down.
set -euo pipefail
cmd=$1 dir=$2
case "$cmd" in
start)
  rm -rf "$dir" && mkdir -p "$dir"
  for attempt in 1 2 3 4 5; do
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no --dir "$dir" \
      --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
    for _ in $(seq 100); do
      if redis-cli -p "$port" ping 2>/dev/null | grep -q PONG; then
        echo "$port" > "$dir/port"
        echo "redis-server on 127.0.0.1:$port"
        exit 0
      fi
      sleep 0.05
    done
    [ -f "$dir/redis.pid" ] && kill "$(cat "$dir/redis.pid")" 2>/dev/null || true
  done
  echo "redis-server did not start; see $dir/redis.log" >&2
  exit 1
  ;;
stop)
  if [ -f "$dir/port" ]; then
    redis-cli -p "$(cat "$dir/port")" shutdown nosave >/dev/null 2>&1 || true
  fi
  if [ -f "$dir/redis.pid" ]; then
    pid=$(cat "$dir/redis.pid")
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  ;;
*) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
