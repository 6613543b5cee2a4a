"""Redis facts for backups and restore tests, over plain RESP (stdlib only, runs ON the host).

Usage: ``python3 - MODE [--host H] [--port P] [--socket PATH] [--sample N] [--wait S] [--dump-dir DIR]`` with this
script on stdin; the password (if any) comes from the environment variable ``REDISCLI_AUTH``.

Modes (each prints one JSON object on the last stdout line):
- ``probe``    version, per-db key counts and expires (INFO keyspace), the last load's figures (INFO
               persistence ``rdb_last_load_keys_loaded``/``_expired``, Redis >= 7) and the
               deterministic key-sample digest (``--sample 0``: no SCAN, no digest).
- ``bgsave``   trigger BGSAVE and wait until it finished AND LASTSAVE advanced (a save already in
               progress is waited for, then a new one is started); prints dir, dbfilename, AOF state.
- ``rewrite``  trigger BGREWRITEAOF and wait until it finished (AOF-only setups).
- ``info``     dir, dbfilename, AOF state, version, LASTSAVE and the persistence figures that say
               whether the dump on disk is current, plus ``os.lstat`` of the dump (in ``--dump-dir``,
               default CONFIG GET dir; file name from CONFIG GET dbfilename) (no save, no scan).
- ``wait``     wait until the server answers PING (a throwaway server loading a dump).
- ``shutdown`` SHUTDOWN NOSAVE (a throwaway server).

The sample digest (:func:`make_sample_digest`) is THE definition shared by backup and restore:
per db, the N keys with the smallest sha256(key) (found by SCAN over all keys); the digest is
sha256 over, for each sampled key in (db, sha256(key)) order, ``db\\0key\\0type\\0canonical``.
"""

import hashlib
import heapq
import json
import os
import socket
import sys
import time


class RedisError(Exception):
    pass


class Conn:
    def __init__(self, host="127.0.0.1", port=6379, unix_socket=None, timeout=30.0):
        if unix_socket:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(unix_socket)
        else:
            self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise RedisError("connection closed by server")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(max(1 << 16, n + 2 - len(self.buf)))
            if not chunk:
                raise RedisError("connection closed by server")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def _reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest
        if kind == b"-":
            raise RedisError(rest.decode(errors="replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise RedisError("unexpected reply %r" % line[:50])

    def call(self, *args):
        parts = [a if isinstance(a, bytes) else str(a).encode() for a in args]
        self.sock.sendall(b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts))
        return self._reply()

    def info(self, section):
        text = self.call("INFO", section).decode(errors="replace")
        out = {}
        for line in text.splitlines():
            if ":" in line and not line.startswith("#"):
                k, _, v = line.partition(":")
                out[k] = v
        return out


def connect(args):
    conn = Conn(args.get("host", "127.0.0.1"), int(args.get("port", 6379)), args.get("socket"))
    password = os.environ.get("REDISCLI_AUTH")
    if password:
        conn.call("AUTH", password)
    return conn


def read_keyspace(conn, field="keys"):
    """{db number: key count} from INFO keyspace (db0:keys=1,expires=0,...); ``field="expires"``: TTL keys."""
    counts = {}
    for name, value in conn.info("keyspace").items():
        if name.startswith("db"):
            fields = dict(p.split("=", 1) for p in value.split(",") if "=" in p)
            counts[int(name[2:])] = int(fields.get(field, 0))
    return counts


def read_int(fields, name):
    value = fields.get(name)
    return int(value) if value is not None and value.lstrip("-").isdigit() else None


def _lp(items):
    return b"".join(b"%d:" % len(i) + i for i in items)


def read_canonical(conn, key):
    """(type, canonical bytes) of one key: strings raw, list in order, set/hash/zset sorted."""
    kind = conn.call("TYPE", key).decode()
    if kind == "string":
        value = conn.call("GET", key) or b""
    elif kind == "list":
        value = _lp(conn.call("LRANGE", key, 0, -1) or [])
    elif kind == "set":
        value = _lp(sorted(conn.call("SMEMBERS", key) or []))
    elif kind == "hash":
        flat = conn.call("HGETALL", key) or []
        value = _lp(b for pair in sorted(zip(flat[::2], flat[1::2])) for b in pair)
    elif kind == "zset":
        flat = conn.call("ZRANGE", key, 0, -1, "WITHSCORES") or []
        pairs = sorted((m, repr(float(s)).encode()) for m, s in zip(flat[::2], flat[1::2]))
        value = _lp(b for pair in pairs for b in pair)
    elif kind == "stream":
        value = b"%d" % conn.call("XLEN", key)
    else:  # "none" (expired meanwhile) or a module type
        value = b""
    return kind, value


def sample_keys(conn, n):
    """The n keys of the selected db with the smallest sha256(key), sorted by that hash."""
    heap = []  # type: list  # max-heap of (-hash, key) via negated ints
    cursor = b"0"
    while True:
        cursor, keys = conn.call("SCAN", cursor, "COUNT", 1000)
        for key in keys:
            h = int.from_bytes(hashlib.sha256(key).digest(), "big")
            if len(heap) < n:
                heapq.heappush(heap, (-h, key))
            elif -heap[0][0] > h:
                heapq.heapreplace(heap, (-h, key))
        if cursor == b"0":
            break
    return [k for _, k in sorted(heap, key=lambda item: -item[0])]


def make_sample_digest(conn, n=256):
    """THE deterministic key-sample digest (see module doc). Returns (hex digest, sampled keys)."""
    digest = hashlib.sha256()
    total = 0
    for db in sorted(read_keyspace(conn)):
        conn.call("SELECT", db)
        for key in sample_keys(conn, n):
            kind, value = read_canonical(conn, key)
            digest.update(b"%d\0" % db + key + b"\0" + kind.encode() + b"\0" + value + b"\n")
            total += 1
    conn.call("SELECT", 0)
    return digest.hexdigest(), total


def run_probe(conn, args):
    server = conn.info("server")
    persistence = conn.info("persistence")
    counts = read_keyspace(conn)
    n = int(args.get("sample", 256))
    digest, sampled = make_sample_digest(conn, n) if n > 0 else (None, 0)
    return {"ok": True, "version": server.get("redis_version"), "db_keys": {str(k): v for k, v in sorted(counts.items())},
            "keys": sum(counts.values()), "db_expires": {str(k): v for k, v in sorted(read_keyspace(conn, "expires").items())},
            "load": {"keys_loaded": read_int(persistence, "rdb_last_load_keys_loaded"),
                     "keys_expired": read_int(persistence, "rdb_last_load_keys_expired")},
            "sample_size": n, "sampled": sampled, "sample_digest": digest}


def stat_dump(path):
    """dev, inode, size, mtime/ctime (ns) of the dump file (not followed if a symlink); None if absent."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return {"path": path, "dev": st.st_dev, "ino": st.st_ino, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "ctime_ns": st.st_ctime_ns, "regular": (st.st_mode & 0o170000) == 0o100000}


PERSISTENCE = ("loading", "rdb_changes_since_last_save", "rdb_bgsave_in_progress", "rdb_last_bgsave_status", "rdb_saves",
               "aof_enabled", "aof_rewrite_in_progress")


def run_info(conn, args):
    persistence = conn.info("persistence")
    directory, dbfilename = read_config(conn, "dir"), read_config(conn, "dbfilename")
    where = args.get("dump-dir") or directory
    dump = os.path.join(where, dbfilename or "dump.rdb") if where else None
    return {"ok": True, "dir": directory, "dbfilename": dbfilename, "appendonly": persistence.get("aof_enabled") == "1",
            "appenddirname": read_config(conn, "appenddirname"), "version": conn.info("server").get("redis_version"),
            "db_keys": {str(k): v for k, v in read_keyspace(conn).items()}, "lastsave": int(conn.call("LASTSAVE")),
            "persistence": {k: persistence.get(k) for k in PERSISTENCE}, "dump": stat_dump(dump) if dump else None}


def read_config(conn, name):
    try:
        reply = conn.call("CONFIG", "GET", name)
    except RedisError:  # CONFIG renamed or disabled
        return None
    return reply[1].decode() if reply and len(reply) > 1 else None


def wait_idle(conn, flag, deadline):
    while conn.info("persistence").get(flag) == "1":
        if time.monotonic() > deadline:
            raise RedisError("timed out waiting for %s to clear" % flag)
        time.sleep(0.05)


def read_saves(conn):
    """(LASTSAVE, rdb_saves or None): rdb_saves (Redis >= 7) counts completed saves exactly."""
    saves = conn.info("persistence").get("rdb_saves")
    return int(conn.call("LASTSAVE")), (int(saves) if saves is not None else None)


def run_bgsave(conn, args):
    deadline = time.monotonic() + float(args.get("wait", 600))
    waited_for_running = False
    while True:
        before, saves_before = read_saves(conn)
        if saves_before is None:
            # LASTSAVE has 1 s resolution: start in a later second so that "advanced" is provable.
            while int(conn.call("TIME")[0]) <= before:
                time.sleep(0.05)
        try:
            conn.call("BGSAVE")
            break
        except RedisError as exc:
            if "in progress" not in str(exc).lower() or time.monotonic() > deadline:
                raise
            waited_for_running = True  # a save (or AOF rewrite) is running: let it finish, then save anew
            wait_idle(conn, "rdb_bgsave_in_progress", deadline)
            wait_idle(conn, "aof_rewrite_in_progress", deadline)
    while True:
        persistence = conn.info("persistence")
        last, saves = read_saves(conn)
        done = persistence.get("rdb_bgsave_in_progress") == "0"
        advanced = last > before if saves_before is None else (saves > saves_before and last >= before)
        if done and (advanced or persistence.get("rdb_last_bgsave_status") != "ok"):
            break
        if time.monotonic() > deadline:
            raise RedisError("BGSAVE did not finish within %ss" % args.get("wait", 600))
        time.sleep(0.02)
    if persistence.get("rdb_last_bgsave_status") != "ok":
        raise RedisError("BGSAVE failed (rdb_last_bgsave_status=%s); see the Redis log" % persistence.get("rdb_last_bgsave_status"))
    return {"ok": True, "lastsave": last, "previous_lastsave": before, "rdb_saves": saves,
            "waited_for_running_save": waited_for_running,
            "dir": read_config(conn, "dir"), "dbfilename": read_config(conn, "dbfilename"),
            "appendonly": persistence.get("aof_enabled") == "1", "appenddirname": read_config(conn, "appenddirname"),
            "version": conn.info("server").get("redis_version")}


def run_rewrite(conn, args):
    deadline = time.monotonic() + float(args.get("wait", 600))
    wait_idle(conn, "aof_rewrite_in_progress", deadline)
    conn.call("BGREWRITEAOF")
    time.sleep(0.05)
    wait_idle(conn, "aof_rewrite_in_progress", deadline)
    while conn.info("persistence").get("aof_rewrite_scheduled") == "1":
        if time.monotonic() > deadline:
            raise RedisError("BGREWRITEAOF stayed scheduled")
        time.sleep(0.05)
        wait_idle(conn, "aof_rewrite_in_progress", deadline)
    persistence = conn.info("persistence")
    if persistence.get("aof_last_bgrewrite_status") != "ok":
        raise RedisError("BGREWRITEAOF failed (aof_last_bgrewrite_status=%s)" % persistence.get("aof_last_bgrewrite_status"))
    return {"ok": True, "dir": read_config(conn, "dir"), "appenddirname": read_config(conn, "appenddirname"),
            "appendonly": persistence.get("aof_enabled") == "1"}


def parse_args(argv):
    args = {"mode": argv[0] if argv else "probe"}
    rest = argv[1:]
    for i in range(0, len(rest) - 1, 2):
        args[rest[i].lstrip("-")] = rest[i + 1]
    return args


def main(argv):
    args = parse_args(argv)
    deadline = time.monotonic() + float(args.get("wait", 30))
    while True:
        try:
            conn = connect(args)
            if args["mode"] in ("wait", "probe"):
                conn.call("PING")  # raises LOADING while a dump is being loaded
            break
        except (OSError, RedisError):
            if args["mode"] != "wait" or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    if args["mode"] == "probe":
        return run_probe(conn, args)
    if args["mode"] == "bgsave":
        return run_bgsave(conn, args)
    if args["mode"] == "rewrite":
        return run_rewrite(conn, args)
    if args["mode"] == "wait":
        return {"ok": True}
    if args["mode"] == "info":
        return run_info(conn, args)
    if args["mode"] == "shutdown":
        try:
            conn.call("SHUTDOWN", "NOSAVE")
        except (RedisError, OSError):
            pass  # the server closes the connection as it exits
        return {"ok": True}
    raise RedisError("unknown mode %r" % args["mode"])


if __name__ == "__main__":
    try:
        result = main(sys.argv[1:])
    except (OSError, RedisError) as exc:
        result = {"ok": False, "error": "%s: %s" % (type(exc).__name__, exc)}
    print(json.dumps(result))
