#!/usr/bin/env python3
"""bench/redis_route.py -- Redis commands for the bench scripts, on one Redis or a Cluster.

The benchmarks write follow edges straight into Redis and poll it; against a Redis Cluster
each command must go to the master that owns its key's slot. This module learns the slot
map once (CLUSTER SLOTS; a server without cluster support owns every slot) and routes each
command by its key (the second argument) with the cluster's CRC16 and hash-tag rule, so the
same code serves both. Commands without a key (FLUSHALL, PUBSUB, INFO, SCAN) go to every
master. Loopback benchmarks only: no auth, no TLS, no replicas, and a MOVED reply (the map
changed under us) is an error, not followed.

As a module:  r = Router("redis://127.0.0.1:7000,127.0.0.1:7001"); r.call("ZCARD", "k");
              r.pipeline(iter_of_arg_tuples) -> (sent, errors, first_error)
As a command: redis_route.py URL call ARG...     one command, routed by ARG[1]; prints the reply
              redis_route.py URL each ARG...     the command on every master, one reply a line
              redis_route.py URL masters         host:port of every master
              redis_route.py URL pids            each master's process id (INFO server)
              redis_route.py URL count PATTERN   keys matching PATTERN, summed over the masters
              redis_route.py URL pipe            stdin: one command a line, arguments separated
                                                 by tabs; prints "sent N errors E", exit 1 on E > 0
"""
import socket
import sys

SLOTS = 16384
BATCH = 2000  # commands written per node before reading their replies


def _crc16_table():
    table = []
    for i in range(256):
        crc = i << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
        table.append(crc & 0xFFFF)
    return table


_CRC = _crc16_table()


def key_slot(key):
    """The cluster slot of key (str or bytes): CRC16-XMODEM of its hash tag, or of all of it."""
    k = key.encode() if isinstance(key, str) else key
    s = k.find(b"{")
    if s >= 0:
        e = k.find(b"}", s + 1)
        if e > s + 1:
            k = k[s + 1:e]
    crc = 0
    for b in k:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC[((crc >> 8) ^ b) & 0xFF]
    return crc % SLOTS


class ReplyError(Exception):
    pass


def encode(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Conn:
    def __init__(self, host, port, timeout=60):
        self.addr = (host, int(port))
        self.sock = socket.create_connection(self.addr, timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.f = self.sock.makefile("rb")

    def send(self, data):
        self.sock.sendall(data)

    def reply(self):
        """One reply: str/bytes/int/None/list, or a ReplyError instance (returned, not raised)."""
        line = self.f.readline()
        if not line:
            raise ConnectionError("redis %s:%d closed the connection" % self.addr)
        t, rest = line[:1], line[1:-2]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            return ReplyError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self.f.read(n + 2)[:-2]
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise ConnectionError("redis %s:%d: unexpected reply %r" % (self.addr + (line,)))

    def call(self, *args):
        self.send(encode(args))
        r = self.reply()
        if isinstance(r, ReplyError):
            raise r
        return r

    def close(self):
        self.sock.close()


def parse_url(url):
    """redis://h:p,h:p,... or h:p,... -> [(host, port)]"""
    if url.startswith("redis://"):
        url = url[len("redis://"):]
    seeds = []
    for part in url.split(","):
        part = part.split("/")[0]
        host, _, port = part.rpartition(":")
        seeds.append((host or "127.0.0.1", int(port or 6379)))
    return seeds


class Router:
    def __init__(self, url):
        self.conns = {}
        self.cluster = False
        err = None
        for host, port in parse_url(url):
            try:
                c = self._conn((host, port))
            except OSError as e:
                err = e
                continue
            try:
                slots = c.call("CLUSTER", "SLOTS")
            except ReplyError:  # "ERR This instance has cluster support disabled"
                self.slot_node = [(host, port)] * SLOTS
                return
            self.cluster = True
            self.slot_node = [None] * SLOTS
            for lo, hi, master, *_ in slots:
                node = (master[0].decode(), int(master[1]))
                for s in range(lo, hi + 1):
                    self.slot_node[s] = node
            if None in self.slot_node:
                raise RuntimeError("cluster at %s:%d does not cover every slot" % (host, port))
            return
        raise RuntimeError("no Redis reachable at %s: %s" % (url, err))

    def _conn(self, node):
        if node not in self.conns:
            self.conns[node] = Conn(*node)
        return self.conns[node]

    def masters(self):
        return sorted(set(self.slot_node))

    def node_of(self, key):
        return self._conn(self.slot_node[key_slot(key)])

    def call(self, *args):
        """One command, on the master owning args[1]; raises ReplyError on an error reply."""
        return self.node_of(args[1]).call(*args)

    def each(self, *args):
        """The command on every master; the list of replies, masters in order."""
        return [self._conn(n).call(*args) for n in self.masters()]

    def pipeline(self, commands):
        """Sends every command (a tuple of arguments, key second) to its master, BATCH at a
        time per node; returns (sent, errors, first error message or None)."""
        pending = {}
        sent = errors = 0
        first = None

        def flush(node):
            nonlocal errors, first
            cmds = pending.pop(node)
            c = self._conn(node)
            c.send(b"".join(cmds))
            for _ in cmds:
                r = c.reply()
                if isinstance(r, ReplyError):
                    errors += 1
                    first = first or str(r)

        for args in commands:
            node = self.slot_node[key_slot(args[1])]
            pending.setdefault(node, []).append(encode(args))
            sent += 1
            if len(pending[node]) >= BATCH:
                flush(node)
        for node in list(pending):
            flush(node)
        return sent, errors, first

    def count(self, pattern):
        """Keys matching pattern over all masters (SCAN: no blocking KEYS on a big keyspace)."""
        total = 0
        for node in self.masters():
            c = self._conn(node)
            cursor = b"0"
            for _ in range(1000000):  # bounded: a SCAN ends in far fewer steps
                cursor, keys = c.call("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)
                total += len(keys)
                if cursor == b"0":
                    break
        return total

    def pids(self):
        out = []
        for info in self.each("INFO", "server"):
            for line in info.decode().splitlines():
                if line.startswith("process_id:"):
                    out.append(int(line.split(":")[1]))
        return out


def show(r):
    if isinstance(r, list):
        return "\n".join(show(x) for x in r)
    if isinstance(r, bytes):
        return r.decode(errors="replace")
    return "" if r is None else str(r)


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    router, what, rest = Router(argv[1]), argv[2], argv[3:]
    if what == "call":
        print(show(router.call(*rest)))
    elif what == "each":
        for r in router.each(*rest):
            print(show(r))
    elif what == "masters":
        for host, port in router.masters():
            print("%s:%d" % (host, port))
    elif what == "pids":
        print(" ".join(map(str, router.pids())))
    elif what == "count":
        print(router.count(rest[0]))
    elif what == "pipe":
        cmds = (tuple(line.rstrip("\n").split("\t")) for line in sys.stdin if line.strip())
        sent, errors, first = router.pipeline(cmds)
        print("sent %d errors %d%s" % (sent, errors, " (first: %s)" % first if first else ""))
        sys.exit(1 if errors else 0)
    else:
        sys.exit("unknown: %s\n%s" % (what, __doc__))


if __name__ == "__main__":
    main(sys.argv)
