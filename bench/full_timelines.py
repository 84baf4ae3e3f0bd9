#!/usr/bin/env python3
"""bench/full_timelines.py -- fill every home timeline through the API, the same way each time.

bench/ratios.sh reads GET /v1/timeline?limit=20 over "full timelines". This builds them from
users already registered (lines "id token", as lib.sh's register writes them):

- user i follows the FOLLOWS users after it on a ring (i+1 .. i+FOLLOWS, mod the count), so
  each user has FOLLOWS followers and follows FOLLOWS authors;
- then POSTS rounds: in each, every user publishes one post, and one user in REPOST_EVERY
  (turning with the round) also reposts a post of user i+FOLLOWS+1, an author none of its
  followers follows (a follower who already has a post gets no repost entry);
- the rounds go one after the other, so a timeline's newest page mixes posts and reposts
  the way every older page does.

A timeline then holds FOLLOWS x POSTS posts plus about FOLLOWS x POSTS / REPOST_EVERY
reposts. Only the graph's shape is fixed, not the ids: those come from the server. Every
answer must be the documented 2xx; anything else stops the script (exit 1).

usage: full_timelines.py PORT USERS-FILE FOLLOWS POSTS REPOST_EVERY THREADS POST-IDS-OUT
Writes the ids of the posts (not the reposts), one a line, to POST-IDS-OUT.
"""
import http.client
import json
import sys
import threading


def main():
    port = int(sys.argv[1])
    users = [line.split() for line in open(sys.argv[2]) if line.strip()]
    follows, rounds, repost_every, nthreads = (int(a) for a in sys.argv[3:7])
    out = sys.argv[7]
    n = len(users)
    if not 0 < follows < n - 1:
        sys.exit("FOLLOWS must be 1..%d for %d users" % (n - 2, n))
    local = threading.local()

    def call(method, path, token, body, want):
        for attempt in range(3):
            try:
                if not hasattr(local, "c"):
                    local.c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                headers = {"Authorization": "Bearer " + token}
                if body is not None:
                    headers["Content-Type"] = "application/json"
                local.c.request(method, path, body=body, headers=headers)
                r = local.c.getresponse()
                data = r.read()
                break
            except (OSError, http.client.HTTPException):
                local.c.close()
                del local.c
                if attempt == 2:
                    raise
        if r.status != want:
            raise RuntimeError("%s %s: status %d: %s" % (method, path, r.status, data[:200]))
        return data

    def parallel(count, work):
        errors = []

        def run(lo):
            try:
                for i in range(lo, count, nthreads):
                    work(i)
            except Exception as e:  # reported once the others stop
                errors.append(e)

        ts = [threading.Thread(target=run, args=(k,)) for k in range(nthreads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        if errors:
            sys.exit("full_timelines: %s" % errors[0])

    def follow(i):
        for k in range(1, follows + 1):
            call("PUT", "/v1/users/%s/follow" % users[(i + k) % n][0], users[i][1], None, 204)

    parallel(n, follow)

    ids = [[None] * n for _ in range(rounds)]
    for r in range(rounds):

        def post(i):
            data = call("POST", "/v1/posts", users[i][1],
                        json.dumps({"text": "round %d post of user %d" % (r, i)}), 202)
            ids[r][i] = json.loads(data)["id"]

        parallel(n, post)

        def repost(i):
            if (i + r) % repost_every == 0:
                author = (i + follows + 1) % n
                call("POST", "/v1/posts/%s/repost" % ids[r][author], users[i][1], None, 202)

        parallel(n, repost)

    with open(out, "w") as f:
        f.write("".join("%s\n" % ids[r][i] for r in range(rounds) for i in range(n)))


if __name__ == "__main__":
    main()
