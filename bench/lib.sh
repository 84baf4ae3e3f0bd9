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

# register PREFIX COUNT OUT: registers COUNT users through POST /v1/users on $HTTP_PORT
# ($REG_THREADS connections at once) and writes their "id token" lines to OUT, in order.
register() {
  timeout 300 python3 - "$HTTP_PORT" "$1" "$2" "$3" "$REG_THREADS" <<'PY'
import http.client, json, sys, threading
port, prefix, count, out, nthreads = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
res = [None] * count
local = threading.local()
def work(lo, hi):
    for i in range(lo, hi):
        body = json.dumps({"handle": "%s%d" % (prefix, i)})
        for attempt in range(3):
            try:
                if not hasattr(local, "c"):
                    local.c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                local.c.request("POST", "/v1/users", body=body, headers={"Content-Type": "application/json"})
                r = local.c.getresponse()
                data = r.read()
                if r.status != 201:
                    raise RuntimeError("status %d: %s" % (r.status, data[:200]))
                d = json.loads(data)
                res[i] = "%s %s" % (d["user"]["id"], d["token"])
                break
            except (OSError, http.client.HTTPException):
                if hasattr(local, "c"):
                    local.c.close(); del local.c
                if attempt == 2:
                    raise
step = max(1, (count + nthreads - 1) // nthreads)
ts = [threading.Thread(target=work, args=(k, min(count, k + step))) for k in range(0, count, step)]
for t in ts: t.start()
for t in ts: t.join()
if any(r is None for r in res):
    sys.exit("registration failed")
with open(out, "w") as f:
    f.write("".join(r + "\n" for r in res))
PY
}
