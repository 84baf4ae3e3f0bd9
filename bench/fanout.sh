#!/usr/bin/env bash
# bench/fanout.sh [N ...] -- end-to-end fan-out throughput against redis-benchmark.
#
# For each N (default 1000 10000 100000), builds an author with N followers (pipelined
# straight into Redis), publishes one post through the HTTP API and measures the time
# until every follower's timeline holds it: timeline writes per second. In the same run,
# on the same Redis, redis-benchmark's pipelined ZADD (-c 50 -P 16, random keys) is the
# baseline; the ratio is printed. Then, while a 100,000-follower fan-out runs, it
# measures POST /v1/posts latency (the write path must not stall behind the engine).
# Loopback only; every loop is bounded. Needs a built tree (cmake --build build).
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(1000 10000 100000)
BIN=${TIDINGS_BIN:-build/api/tidings}
WORK=$(mktemp -d /tmp/tidings-fanout-bench.XXXXXX)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
RPORT=$(free_port) HPORT=$(free_port)
H=http://127.0.0.1:$HPORT
cleanup() {
  [ -n "${TPID:-}" ] && kill "$TPID" 2>/dev/null && wait "$TPID" 2>/dev/null
  redis-cli -p "$RPORT" shutdown nosave >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
R() { redis-cli -p "$RPORT" "$@"; }

redis-server --port "$RPORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
  --dir "$WORK" --logfile "$WORK/redis.log" >/dev/null
for _ in $(seq 100); do R ping 2>/dev/null | grep -q PONG && break; sleep 0.05; done

echo "== baseline: redis-benchmark pipelined ZADD on the same Redis =="
base=$(redis-benchmark -p "$RPORT" -c 50 -P 16 -n 2000000 -r 1000000 -q \
         zadd 'bench:{__rand_int__}' 1 member 2>/dev/null | tr '\r' '\n' | grep -o '[0-9.]* requests per second' | tail -1 | cut -d' ' -f1)
echo "redis-benchmark ZADD (-c 50 -P 16, 1M keys): ${base} writes/s"
R flushall >/dev/null

"$BIN" --redis "redis://127.0.0.1:$RPORT" --listen "127.0.0.1:$HPORT" --log-level warn \
  --celebrity-threshold 2000000 --timeline-max 800 2>"$WORK/tidings.log" &
TPID=$!
for _ in $(seq 200); do curl -sf "$H/readyz" >/dev/null && break; sleep 0.05; done

register() { # handle -> "id token"
  curl -sf -X POST "$H/v1/users" -H 'Content-Type: application/json' -d "{\"handle\":\"$1\"}" |
    python3 -c 'import sys,json; d=json.load(sys.stdin); print(d["user"]["id"], d["token"])'
}
add_followers() { # author n first-follower-id
  python3 - "$1" "$2" "$3" <<'PY' | redis-cli -p "$RPORT" --pipe >/dev/null
import sys
author, n, first = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
key = "followers:{%s}" % author
out = sys.stdout
for i in range(n):
    score, member = str(i + 1), str(first + i)
    out.write("*4\r\n$4\r\nZADD\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n"
              % (len(key), key, len(score), score, len(member), member))
PY
}
post() { # token text -> post id
  curl -sf -X POST "$H/v1/posts" -H "Authorization: Bearer $1" -H 'Content-Type: application/json' \
       -d "{\"text\":\"$2\"}" | python3 -c 'import sys,json; print(json.load(sys.stdin)["id"])'
}
# Publishes through HTTP and polls Redis on one kept-open connection until the last
# follower's timeline holds the post and the queue is empty; prints the seconds.
measure() { # token last-follower
  python3 - "$HPORT" "$RPORT" "$1" "$2" <<'PY'
import http.client, json, socket, sys, time
hport, rport, token, last = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
r = socket.create_connection(("127.0.0.1", rport))
def cmd(*args):
    return "*%d\r\n" % len(args) + "".join("$%d\r\n%s\r\n" % (len(a), a) for a in args)
f = r.makefile("rb")
def reply():
    line = f.readline()
    if line[:1] == b"$":
        n = int(line[1:])
        return None if n < 0 else f.read(n + 2)[:-2]
    return int(line[1:])
def ask(pid):
    r.sendall((cmd("ZSCORE", "tl:{%s}" % last, pid) + cmd("XLEN", "fanout:{0}")).encode())
    present, queued = reply() is not None, reply()
    return present and queued == 0
c = http.client.HTTPConnection("127.0.0.1", hport)
t0 = time.time()
c.request("POST", "/v1/posts", body='{"text":"fan-out"}',
          headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
pid = json.loads(c.getresponse().read())["id"]
deadline = t0 + 300
while not ask(pid):
    if time.time() > deadline:
        sys.exit("timed out")
    time.sleep(0.0005)
print("%.4f" % (time.time() - t0))
PY
}

printf '\n== end-to-end fan-out: POST, then every follower timeline holds the post ==\n'
printf '%10s %12s %14s %8s\n' followers seconds writes/s ratio
first=1000000000000
for n in "${SIZES[@]}"; do
  read -r aid atok < <(register "bench_$n")
  add_followers "$aid" "$n" "$first"
  secs=$(measure "$atok" $((first + n - 1)))
  python3 -c "n=$n; t=$secs; b=float('${base:-0}' or 0); print('%10d %12.3f %14.0f %8s' % (n, t, n/t, ('%.2f' % (n/t/b)) if b else '-'))"
  first=$((first + n))
done

printf '\n== POST /v1/posts latency while a 100,000-follower fan-out runs ==\n'
read -r bid btok < <(register bench_busy)
read -r _ wtok < <(register bench_writer)
add_followers "$bid" 100000 "$first"
lat() { for _ in $(seq "$1"); do
  curl -s -o /dev/null -w '%{time_total}\n' -X POST "$H/v1/posts" -H "Authorization: Bearer $wtok" \
       -H 'Content-Type: application/json' -d '{"text":"while busy"}'; done; }
lat 200 > "$WORK/idle.txt"
post "$btok" "big one" >/dev/null
lat 200 > "$WORK/busy.txt"
python3 - "$WORK/idle.txt" "$WORK/busy.txt" <<'PY'
import sys
def pct(xs, p): xs = sorted(xs); return xs[min(len(xs) - 1, int(p * len(xs)))] * 1000
for label, path in (("idle engine", sys.argv[1]), ("during fan-out", sys.argv[2])):
    xs = [float(l) for l in open(path) if l.strip()]
    print("%-16s n=%d p50 %.2f ms  p99 %.2f ms  max %.2f ms" % (label, len(xs), pct(xs, .5), pct(xs, .99), max(xs) * 1000))
PY
echo "(curl sequential requests: each includes curl's own connect; compare the two lines)"
