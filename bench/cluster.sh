#!/usr/bin/env bash
# bench/cluster.sh -- one Redis against a Redis Cluster, side by side (issue 7).
#
# In one run, on loopback:
#   1. starts a Redis Cluster of MASTERS masters (3) and no replicas with
#      tests/support/redis_cluster_fixture.sh (no persistence, free ports);
#   2. fan-out throughput: bench/fanout.sh FANOUT_SIZES (10000 100000), REPEAT (3) fan-outs per
#      size, each one post to N new followers, timed until every follower's timeline holds it
#      and the job is acknowledged; first against its own redis-server, then against the
#      cluster (REDIS_URL = the seed list). redis-benchmark's pipelined ZADD on each setup is
#      printed as the Redis-only reference;
#   3. live delivery: bench/sse.sh SSE_SIZES (1000 5000), POSTS (3) posts per size to N
#      connected followers, latency from just before the POST is sent to the event's arrival
#      at each stream's socket; again its own redis-server, then the cluster;
#   4. prints the figures side by side with cluster/single.
# The setups alternate per benchmark (fan-out single, fan-out cluster, SSE single, SSE
# cluster) so that drift on a shared machine hits both alike. Both Redis setups run without
# persistence. The sub-benchmarks' reports go to stderr, the table to stdout. Every step is
# bounded by a timeout; the cluster (and everything the sub-scripts start) is stopped by an
# EXIT trap.
#
# On a 2-core machine the cluster cannot be faster: its three redis-servers, tidings and the
# load client share the same two cores, and tidings has one event loop either way. The run
# shows that the cluster path works under load and what the routing costs, not a speed-up.
#
# usage: bench/cluster.sh              (after cmake --build build; about 5 minutes)
# environment: BUILD (build dir, $ROOT/build), FANOUT_SIZES ("10000 100000"), SSE_SIZES
#   ("1000 5000"), MASTERS (3), REPEAT (3 fan-outs per size), POSTS (3 posts per SSE size),
#   QUIET_WAIT (20 s at most waiting for a quiet machine before each measurement),
#   STEP_TIMEOUT (900 s per sub-benchmark), KEEP (1: keep the work directory and its logs)
# shellcheck disable=SC2086,SC2317 # size lists are word lists; cleanup runs from the trap
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
FANOUT_SIZES=${FANOUT_SIZES:-10000 100000}
SSE_SIZES=${SSE_SIZES:-1000 5000}
MASTERS=${MASTERS:-3}
REPEAT=${REPEAT:-3}
POSTS=${POSTS:-3}
QUIET_WAIT=${QUIET_WAIT:-20}
STEP_TIMEOUT=${STEP_TIMEOUT:-900}
KEEP=${KEEP:-0}
FIXTURE=$ROOT/tests/support/redis_cluster_fixture.sh

need_built "$BUILD/api/tidings" "$BUILD/bench/tidings-sse-load"
need_tools redis-server redis-cli redis-benchmark curl python3 bc timeout

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tidings-cluster-bench.XXXXXX")
CLUSTER_DIR=$WORK/cluster
cleanup() {
  "$FIXTURE" stop "$CLUSTER_DIR" >/dev/null 2>&1 || true
  if [ "$KEEP" = 1 ]; then echo "work directory kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "== starting a Redis Cluster: $MASTERS masters, no replicas =="
timeout 120 "$FIXTURE" start "$CLUSTER_DIR" "$MASTERS" 0 >&2
CLUSTER_URL=$(cat "$CLUSTER_DIR/url")

# step NAME SETUP SCRIPT SIZES...: one sub-benchmark against SETUP (single or cluster); its
# result lines go to $WORK/SETUP.txt, tidings' log to $WORK/SETUP.tidings.log.
FAILED=()
step() {
  local name=$1 setup=$2 script=$3 url="" rc=0
  shift 3
  [ "$setup" = cluster ] && url=$CLUSTER_URL
  log ""
  log "==== $name, $setup Redis ===="
  REDIS_URL=$url BUILD=$BUILD RESULTS=$WORK/$setup.txt TIDINGS_LOG=$WORK/$setup.tidings.log \
    REPEAT=$REPEAT LATENCY=0 POSTS=$POSTS QUIET_WAIT=$QUIET_WAIT \
    timeout --signal=TERM "$STEP_TIMEOUT" "$ROOT/bench/$script" "$@" >&2 || rc=$?
  if [ "$rc" != 0 ]; then
    FAILED+=("$name against the $setup Redis exited $rc")
    log "!! $name against the $setup Redis exited $rc"
  fi
}
: >"$WORK/single.txt"
: >"$WORK/cluster.txt"
step fanout single fanout.sh $FANOUT_SIZES
step fanout cluster fanout.sh $FANOUT_SIZES
step sse single sse.sh $SSE_SIZES
step sse cluster sse.sh $SSE_SIZES

# Is the cluster still whole after the runs?
state=$(redis-cli -p "$(head -1 "$CLUSTER_DIR/ports")" cluster info 2>/dev/null |
          tr -d '\r' | sed -n 's/^cluster_state://p')

# ---- summary -------------------------------------------------------------------------------
printf '\n== one Redis vs a %s-master Redis Cluster (no replicas): %s cores, %s ==\n' \
  "$MASTERS" "$(nproc)" "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
python3 - "$WORK/single.txt" "$WORK/cluster.txt" "$FANOUT_SIZES" "$SSE_SIZES" <<'PY'
import statistics, sys

def load(path):
    fan, sse, base = {}, {}, None
    for line in open(path):
        kind, *kv = line.split()
        d = dict(x.split("=", 1) for x in kv if "=" in x)
        if kind == "fanout":
            fan.setdefault(int(d["followers"]), []).append(float(d["writes_per_s"]))
            if d.get("baseline", "-") not in ("-", ""):
                base = float(d["baseline"])
        elif kind == "sse":
            sse[int(d["n"])] = d
    return fan, sse, base

(sf, ss, sb), (cf, cs, cb) = load(sys.argv[1]), load(sys.argv[2])
rows = []
def row(label, a, b, fmt="%.0f"):
    ratio = "%.2f" % (b / a) if a and b is not None and a is not None else "-"
    f = lambda v: "-" if v is None else (fmt % v)
    rows.append((label, f(a), f(b), ratio))
def num(d, k):
    try:
        return float(d[k])
    except (KeyError, TypeError, ValueError):
        return None

row("redis-benchmark ZADD -c50 -P16, writes/s", sb, cb)
for n in map(int, sys.argv[3].split()):
    a, b = sf.get(n), cf.get(n)
    row("fan-out to %s followers, writes/s (median of %d)" % (format(n, ","), len(a or b or [])),
        statistics.median(a) if a else None, statistics.median(b) if b else None)
for n in map(int, sys.argv[4].split()):
    a, b = ss.get(n), cs.get(n)
    for key, what, fmt in (("p50_ms", "p50 ms", "%.1f"), ("p99_ms", "p99 ms", "%.1f"),
                           ("max_ms", "max ms", "%.1f"), ("events_per_s", "events/s", "%.0f"),
                           ("tidings_cpu_s", "tidings CPU s/post", "%.3f"),
                           ("redis_cpu_s", "Redis CPU s/post (all nodes)", "%.3f")):
        row("SSE %s streams: %s" % (format(n, ","), what), num(a, key), num(b, key), fmt)
    dl = lambda d: "%s/%s" % (d.get("delivered", "?"), d.get("expected", "?")) if d else "-"
    rows.append(("SSE %s streams: delivered" % format(n, ","), dl(a), dl(b), ""))
    oth = lambda d: d.get("other", "?") if d else "-"
    rows.append(("SSE %s streams: other cores busy" % format(n, ","), oth(a), oth(b), ""))
w = max(len(r[0]) for r in rows)
print("%-*s %12s %12s %15s" % (w, "", "single", "cluster", "cluster/single"))
for r in rows:
    print("%-*s %12s %12s %15s" % (w, *r))
print("\nall fan-outs, writes/s:")
for n in map(int, sys.argv[3].split()):
    print("  %7d followers: single %s; cluster %s" % (n, " ".join("%.0f" % x for x in sf.get(n, [])),
          " ".join("%.0f" % x for x in cf.get(n, []))))
PY
cat <<EOF
(cluster/single above 1 is the cluster ahead on throughput, behind on latency and CPU.
 fan-out: POST -> every follower's timeline holds the post and the job is acknowledged;
 SSE: POST sent -> event at each stream's socket, over all $POSTS posts' deliveries;
 other: cores busy outside tidings, Redis and the client during the posts.
 On $(nproc) cores the cluster's $MASTERS redis-servers, tidings and the load client share the
 same cores, so the cluster cannot show a speed-up here: these figures show that it works
 under load and what its routing costs; a speed-up needs a core (or a host) per master.)
EOF
echo "cluster state after the runs: ${state:-unknown}"
for setup in single cluster; do
  f=$WORK/$setup.tidings.log
  [ -s "$f" ] || { echo "tidings log ($setup): empty (no warnings or errors)"; continue; }
  echo "tidings log ($setup): $(wc -l <"$f") lines; first ones:"
  head -5 "$f" | sed 's/^/  /'
done
if [ ${#FAILED[@]} -gt 0 ]; then
  printf 'FAILED: %s\n' "${FAILED[@]}"
  exit 1
fi
exit 0
