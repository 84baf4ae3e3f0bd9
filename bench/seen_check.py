#!/usr/bin/env python3
"""bench/seen_check.py REDIS_URL -- what the inactive-follower check costs Redis per follower.

Runs the fan-out's timeline-write script on chunks of 1,000 timelines on one Redis node (a
redis-server; FLUSH it yourself), sequentially from one client, in rounds that alternate the
variants, and prints the median time of one chunk: the script before the check ("old"), the
check as storage/timeline_write.c first had it (a GET per follower), and as it has it now (one
MGET per chunk), with followers that have no seen key, are active, or are inactive (skipped).
The scripts here mirror storage/timeline_write.c's add_script; keep them in step.
"""
import os, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from redis_route import Router, encode
NODE = '''local KEYS = {unpack(ARGV, 2, tonumber(ARGV[1]) + 1)}
local ARGV = {unpack(ARGV, tonumber(ARGV[1]) + 2)}
'''
OLD = NODE + '''for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, ARGV[1], ARGV[1])
  if ARGV[3] == '1' then trim_timeline(key, 'rb:' .. string.sub(key, 4), ARGV[2]) end
end
return #KEYS
'''
NEW = NODE + '''local cutoff = tonumber(ARGV[4])
for _, key in ipairs(KEYS) do
  local tag = string.sub(key, 4)
  local seen = cutoff > 0 and redis.call('GET', 'seen:' .. tag)
  if not seen or tonumber(seen) >= cutoff then
    redis.call('ZADD', key, ARGV[1], ARGV[1])
    if ARGV[3] == '1' then trim_timeline(key, 'rb:' .. tag, ARGV[2]) end
  end
end
return #KEYS
'''
MG = NODE + '''local cutoff = tonumber(ARGV[4])
local seen = {}
if cutoff > 0 then
  local names = {}
  for i, key in ipairs(KEYS) do names[i] = 'seen:' .. string.sub(key, 4) end
  seen = redis.call('MGET', unpack(names))
end
for i, key in ipairs(KEYS) do
  local s = seen[i]
  if not s or tonumber(s) >= cutoff then
    redis.call('ZADD', key, ARGV[1], ARGV[1])
    if ARGV[3] == '1' then trim_timeline(key, 'rb:' .. string.sub(key, 4), ARGV[2]) end
  end
end
return #KEYS
'''
url = sys.argv[1]
r = Router(url)
N = 1000
now = int(time.time() * 1000)
groups = {'nokey': 10**12, 'active': 2 * 10**12, 'inactive': 3 * 10**12}
for name, base in groups.items():
    if name == 'nokey':
        continue
    at = now if name == 'active' else now - 60 * 86400000
    r.pipeline(("SET", "seen:{%d}" % (base + i), at) for i in range(N))
cutoff = str(now - 30 * 86400000)
variants = [('old script, users with seen keys', OLD, 'active', '0'),
            ('GET each, --inactive-days 0', NEW, 'active', '0'),
            ('GET each, no seen keys', NEW, 'nokey', cutoff),
            ('GET each, active (seen now)', NEW, 'active', cutoff),
            ('GET each, inactive (skipped)', NEW, 'inactive', cutoff),
            ('MGET, active (seen now)', MG, 'active', cutoff),
            ('MGET, --inactive-days 0', MG, 'active', '0'),
            ('MGET, inactive (skipped)', MG, 'inactive', cutoff)]
node = r.node_of("tl:{1}")
results = {v[0]: [] for v in variants}
post = 10**14
for rnd in range(6):
    for label, script, grp, cut in variants:
        base = groups[grp]
        keys = ["tl:{%d}" % (base + i) for i in range(N)]
        t0 = time.perf_counter()
        for _ in range(40):
            post += 1
            node.send(encode(("EVAL", script, 0, N, *keys, post, 800, 0, cut)))
            rep = node.reply()
        dt = (time.perf_counter() - t0) / 40
        results[label].append(dt)
for label, xs in results.items():
    xs = sorted(xs[1:])  # first round warms up
    med = xs[len(xs) // 2]
    print("%-34s median %.3f ms per 1,000-follower chunk  (%.2f us per follower)" % (label, med * 1000, med * 1000))
