#!/usr/bin/env bash
# bench/job_round_trips.sh -- how many sequential Redis round trips the fan-out engine makes
# for one post job of an author with a few followers (issue 17: "one or two").
#
# Starts its own redis-server and tidings (one process, the engine on), with a counting relay
# between them: every connection tidings makes goes through it, and it notes each time a
# connection sends after Redis answered it (a new round trip; sends with no answer between
# them are one pipeline in flight, however the bytes were split). It registers an author and
# FOLLOWERS followers, then publishes POSTS posts one at a time, each after the last one's
# job is done, and counts the round trips of the connection that acknowledges the job (XACK,
# or a script that does) from the POST to that acknowledgement: the job's own, from its first command to its acknowledgement.
# The blocking XREADGROUP that hands the job out was sent before the POST and is not counted.
#
# usage: bench/job_round_trips.sh            (after cmake --build build)
# environment: BUILD (build), FOLLOWERS (5), POSTS (20), VERBOSE (1: each job's commands, by
#              round trip), KEEP (1: keep $WORK)
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

BUILD=${BUILD:-build}
FOLLOWERS=${FOLLOWERS:-5}
POSTS=${POSTS:-20}
VERBOSE=${VERBOSE:-0}
TIDINGS=$BUILD/api/tidings
need_built "$TIDINGS"
need_tools redis-server redis-cli python3 curl

WORK=$(mktemp -d)
trap 'stop_pid "${RELAY_PID:-}"; cleanup_work' EXIT
start_redis_server
RELAY_PORT=$(free_port)
# The relay: one thread each way per connection; each chunk is a line of $WORK/relay.log,
# "time connection direction command-names", written before the chunk is passed on.
python3 - "$RELAY_PORT" "$REDIS_PORT" "$WORK/relay.log" <<'PY' &
import re, socket, sys, threading, time
listen_port, redis_port, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
out, lock = open(path, "w", buffering=1), threading.Lock()
names = re.compile(rb"\*\d+\r\n\$\d+\r\n([A-Za-z_]+)\r\n")
def pump(src, dst, conn, sign):
    while True:
        try:
            data = src.recv(65536)
        except OSError:
            data = b""
        if not data:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            return
        found = names.findall(data) if sign == ">" else []
        if found and b"'XACK'" in data:
            found.append(b"XACK-in-a-script")  # a job acknowledged by its script
        cmds = b",".join(found).decode()
        with lock:
            out.write("%.6f %d %s %s\n" % (time.time(), conn, sign, cmds or "-"))
        dst.sendall(data)
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", listen_port))
server.listen(128)
n = 0
while True:
    client, _ = server.accept()
    upstream = socket.create_connection(("127.0.0.1", redis_port))
    for s in (client, upstream):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    n += 1
    threading.Thread(target=pump, args=(client, upstream, n, ">"), daemon=True).start()
    threading.Thread(target=pump, args=(upstream, client, n, "<"), daemon=True).start()
PY
RELAY_PID=$!
for _ in $(seq 100); do redis-cli -p "$RELAY_PORT" ping 2>/dev/null | grep -q PONG && break; sleep 0.05; done
start_tidings_at "redis://127.0.0.1:$RELAY_PORT" "$WORK/tidings.log" --threads 2
REG_THREADS=1
register rt $((FOLLOWERS + 1)) "$WORK/users"

timeout 300 python3 - "$HTTP_PORT" "$REDIS_PORT" "$WORK/users" "$POSTS" "$WORK/relay.log" "$VERBOSE" <<'PY'
import http.client, json, socket, statistics, sys, time

http_port, redis_port, users_file, posts, relay_log = (int(sys.argv[1]), int(sys.argv[2]),
                                                      sys.argv[3], int(sys.argv[4]), sys.argv[5])
verbose = int(sys.argv[6])
users = [line.split() for line in open(users_file)]
author, followers = users[0], users[1:]
conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=30)

def call(method, path, token, body=None):
    headers = {"Authorization": "Bearer " + token}
    if body is not None:
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    r = conn.getresponse()
    data = r.read()
    if r.status >= 300:
        sys.exit("%s %s: %d %s" % (method, path, r.status, data[:200]))
    return json.loads(data) if data else None

def redis(*args):
    s = socket.create_connection(("127.0.0.1", redis_port))
    s.sendall(("*%d\r\n" % len(args) + "".join("$%d\r\n%s\r\n" % (len(a), a) for a in args)).encode())
    data = s.recv(65536).decode()
    s.close()
    return data

def backlog():
    total = 0
    for shard in range(64):
        out = redis("XINFO", "GROUPS", "fanout:{%d}" % shard)
        if out.startswith("-"):
            break
        parts = out.split("\r\n")
        for i, p in enumerate(parts):
            if p in ("pending", "lag") and i + 1 < len(parts):
                total += int(parts[i + 1].lstrip(":") or 0)
    return total

def drain(limit=30):
    deadline = time.time() + limit
    while backlog():
        if time.time() > deadline:
            sys.exit("the fan-out backlog did not drain in %d s" % limit)
        time.sleep(0.02)

for uid, token in followers:
    call("PUT", "/v1/users/%s/follow" % author[0], token)
drain()

def relay_events(since):
    events = []
    for line in open(relay_log):
        t, c, sign, cmds = line.split()
        if float(t) >= since:
            events.append((float(t), int(c), sign, cmds.split(",") if cmds != "-" else []))
    return events

def round_trips(events):
    """The sends of the acknowledging connection, each after an answer, up to its XACK."""
    acks = [e for e in events if e[2] == ">" and ("XACK" in e[3] or "XACK-in-a-script" in e[3])]
    if not acks:
        return None
    mine = [e for e in events if e[1] == acks[0][1] and e[0] <= acks[0][0]]
    trips, commands, answered = 0, 0, True
    for t, _, sign, cmds in mine:
        if sign == "<":
            answered = True
            continue
        if cmds == ["XREADGROUP"]:
            continue
        if answered:
            trips += 1
            answered = False
            if verbose:
                print("  round trip %d:" % trips, file=sys.stderr)
        if verbose:
            print("    " + " ".join(cmds), file=sys.stderr)
        commands += len([c for c in cmds if c != "XACK-in-a-script"])
    return trips, commands

counts = []
for i in range(posts):
    drain()
    time.sleep(0.2)  # the engine's blocking read is waiting again
    t_asked = time.time()
    call("POST", "/v1/posts", author[1], {"text": "round trip %d" % i})
    drain()
    time.sleep(0.05)
    r = round_trips(relay_events(t_asked))
    if r:
        counts.append(r)
        print("post %2d: %d round trips, %d commands sent" % (i + 1, r[0], r[1]), file=sys.stderr)
if not counts:
    sys.exit("no job's XACK was seen")
trips = [c[0] for c in counts]
print("post job, %d followers: median %g round trips (min %d, max %d over %d posts), %g commands"
      % (len(followers), statistics.median(trips), min(trips), max(trips), len(trips),
         statistics.median(c[1] for c in counts)))
PY
