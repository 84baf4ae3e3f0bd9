#!/usr/bin/env bash
# tests/support/redis_cluster_fixture.sh start|stop DIR [MASTERS] [REPLICAS_PER_MASTER]
# A throwaway Redis Cluster on free loopback ports (default 3 masters, 1 replica each).
# start: one redis-server per node under DIR/<port>/ (no persistence, cluster-node-timeout
# 1000 ms so a failover takes about two seconds), `redis-cli --cluster create` (or, with no
# replicas, the same by hand: create_masters), waits until
# every node reports cluster_state:ok, then writes DIR/ports (one per line, masters first)
# and DIR/url (redis://127.0.0.1:<p1>,127.0.0.1:<p2>,… a seed list for --redis).
# stop: shuts every node down.
set -euo pipefail
cmd=$1 dir=$2 masters=${3:-3} replicas=${4:-1}

# Redis listens on port+10000 for the cluster bus, so both must be free. Both stay below the
# kernel's ephemeral range (32768 and up), where every test's outgoing connection and
# ts_free_port() take theirs: a port free when checked is then still free when Redis binds.
free_ports() {
  python3 - "$1" <<'EOF'
import random, socket, sys
socks, ports = [], []
while len(ports) < int(sys.argv[1]):
    port = random.randint(20000, 22767)
    pair = []
    try:
        for p in (port, port + 10000):
            s = socket.socket(); s.bind(("127.0.0.1", p)); pair.append(s)
    except OSError:
        for s in pair: s.close()
        continue
    socks += pair; ports.append(port)
print(" ".join(map(str, ports)))
EOF
}

stop_all() {
  [ -d "$dir" ] || return 0
  for pidfile in "$dir"/*/redis.pid; do
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    port=$(basename "$(dirname "$pidfile")")
    redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
    # A node that exited may linger as a zombie until its parent reaps it: gone is gone.
    for _ in $(seq 100); do
      state=$(awk '/^State:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
      [ -z "$state" ] || [ "$state" = Z ] && break
      sleep 0.05
    done
    kill -9 "$pid" 2>/dev/null || true
  done
}

# Masters only, made by hand: what `redis-cli --cluster create` does, without its waits of
# a second each (it took 2.1 s of a private cluster's 4). Each node gets its share of the
# slots and its own config epoch (as create sets them), then meets the first. The nodes
# then agree by gossip; the wait for cluster_state:ok below covers that.
create_masters() {
  local i=0 n=${#ports[@]} first=0 last
  for port in "${ports[@]}"; do
    # redis-cli's split: the last slot of master i rounds (i + 1) * 16384 / n - 1.
    last=$(awk -v i="$i" -v n="$n" 'BEGIN { x = (i + 1) * 16384 / n - 1; print (i == n - 1) ? 16383 : int(x + 0.5) }')
    redis-cli -p "$port" cluster addslotsrange "$first" "$last" | grep -qx OK
    redis-cli -p "$port" cluster set-config-epoch $((i + 1)) | grep -qx OK
    i=$((i + 1)) first=$((last + 1))
  done
  for port in "${ports[@]:1}"; do
    redis-cli -p "${ports[0]}" cluster meet 127.0.0.1 "$port" | grep -qx OK
  done
}

# One try on fresh random ports; 1 when a node did not start or the cluster did not form.
start_once() {
  stop_all
  rm -rf "$dir" && mkdir -p "$dir"
  total=$((masters * (1 + replicas)))
  read -r -a ports <<< "$(free_ports "$total")"
  for port in "${ports[@]}"; do
    mkdir -p "$dir/$port"
    redis-server --bind 127.0.0.1 --port "$port" --cluster-enabled yes \
      --cluster-config-file nodes.conf --cluster-node-timeout 1000 \
      --save "" --appendonly no --dir "$dir/$port" \
      --daemonize yes --pidfile "$dir/$port/redis.pid" --logfile "$dir/$port/redis.log"
  done
  for port in "${ports[@]}"; do
    up=0
    for _ in $(seq 100); do
      redis-cli -p "$port" ping 2>/dev/null | grep -q PONG && { up=1; break; }
      sleep 0.05
    done
    if [ "$up" != 1 ]; then
      echo "redis-server on port $port did not start:" >&2
      tail -5 "$dir/$port/redis.log" >&2 || true
      stop_all
      return 1
    fi
  done
  addrs=()
  for port in "${ports[@]}"; do addrs+=("127.0.0.1:$port"); done
  if [ "$replicas" = 0 ]; then
    create_masters >"$dir/create.log" 2>&1 || { cat "$dir/create.log" >&2; stop_all; return 1; }
  elif ! redis-cli --cluster create "${addrs[@]}" --cluster-replicas "$replicas" --cluster-yes \
       > "$dir/create.log" 2>&1; then
    cat "$dir/create.log" >&2
    stop_all
    return 1
  fi
  for _ in $(seq 200); do
    ok=1
    for port in "${ports[@]}"; do
      redis-cli -p "$port" cluster info 2>/dev/null | grep -q 'cluster_state:ok' || ok=0
    done
    [ "$ok" = 1 ] && break
    sleep 0.1
  done
  if [ "$ok" != 1 ]; then
    echo "the cluster did not reach cluster_state:ok; see $dir/*/redis.log" >&2
    stop_all
    return 1
  fi
  # Replicas must have synced before a failover test kills their master.
  for port in "${ports[@]}"; do
    for _ in $(seq 200); do
      info=$(redis-cli -p "$port" info replication 2>/dev/null)
      if grep -q 'role:master' <<< "$info" || grep -q 'master_link_status:up' <<< "$info"; then
        break
      fi
      sleep 0.1
    done
  done
  printf '%s\n' "${ports[@]}" > "$dir/ports"
  url="redis://$(IFS=,; echo "${addrs[*]}")"
  echo "$url" > "$dir/url"
  echo "${ports[0]}" > "$dir/port"
  echo "redis cluster: $url"
}

case "$cmd" in
start)
  for attempt in 1 2 3; do
    start_once && exit 0
    echo "cluster start, attempt $attempt failed" >&2
  done
  exit 1
  ;;
stop)
  stop_all
  ;;
*) echo "usage: $0 start|stop DIR [MASTERS] [REPLICAS_PER_MASTER]" >&2; exit 2 ;;
esac
