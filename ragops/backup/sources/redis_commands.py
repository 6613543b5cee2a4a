"""What backups and restore tests ask Redis, over one raw client (RESP2 replies as sent).

``client`` is :func:`ragops.redis_client.open_redis` / ``open_throwaway`` with ``raw=True`` (redis-py,
bytes replies, no response callbacks), or a Compose Redis' ``redis-cli`` in its container
(:class:`~.redis_cli.CliClient`, no key sample): only ``client.execute_command(*args)`` is used.

- :func:`read_info`: dir, dbfilename, AOF state, version, per-db keys, LASTSAVE and the persistence
  figures that say whether the dump on disk is current (no save, no scan);
- :func:`run_bgsave`: BGSAVE and wait until it finished AND LASTSAVE advanced (a save already in
  progress is waited for, then a new one started); :func:`run_rewrite`: BGREWRITEAOF, waited for;
- :func:`read_probe`: per-db key counts and expires (INFO keyspace), the last load's figures
  (``rdb_last_load_keys_loaded``/``_expired``, Redis >= 7) and THE key-sample digest
  (:func:`make_sample_digest`, the definition backups and restore tests share: per db, the N keys
  with the smallest sha256(key), found by SCAN; sha256 over ``db\\0key\\0type\\0canonical\\n`` in
  (db, sha256(key)) order; strings raw, lists in order, sets/hashes/zsets sorted, length-prefixed).

The commands sent, for the ACL a backup user needs, are listed in ``docs/backup-redis.md``.
"""

from __future__ import annotations

import hashlib
import heapq
import time
from typing import Any

PERSISTENCE = ("loading", "rdb_changes_since_last_save", "rdb_bgsave_in_progress", "rdb_last_bgsave_status", "rdb_saves",
               "aof_enabled", "aof_rewrite_in_progress")


class RedisCommandError(Exception):
    """Redis answered, but not as a backup needs (a failed or stuck save)."""


def text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def parse_info(reply: Any) -> dict[str, str]:
    """``INFO`` text as {field: value} (strings, as Redis wrote them)."""
    out = {}
    for line in text(reply).splitlines():
        if ":" in line and not line.startswith("#"):
            key, _, value = line.partition(":")
            out[key] = value.strip()
    return out


def info(client: Any, section: str) -> dict[str, str]:
    return parse_info(client.execute_command("INFO", section))


def read_keyspace(client: Any, field: str = "keys") -> dict[int, int]:
    """{db number: key count} from INFO keyspace (``db0:keys=1,expires=0,...``); ``expires``: TTL keys."""
    counts = {}
    for name, value in info(client, "keyspace").items():
        if name.startswith("db") and name[2:].isdigit():
            fields = dict(p.split("=", 1) for p in value.split(",") if "=" in p)
            counts[int(name[2:])] = int(fields.get(field, 0))
    return counts


def read_int(fields: dict[str, str], name: str) -> int | None:
    value = fields.get(name)
    return int(value) if value is not None and value.lstrip("-").isdigit() else None


def read_config(client: Any, name: str) -> str | None:
    """``CONFIG GET name``, or None when CONFIG is renamed, disabled or not granted (ACL)."""
    try:
        reply = client.execute_command("CONFIG", "GET", name)
    except Exception:  # noqa: BLE001 - ResponseError / NoPermissionError: the caller falls back to the policy
        return None
    return text(reply[1]) if reply and len(reply) > 1 else None


def read_lastsave(client: Any) -> int:
    return int(client.execute_command("LASTSAVE"))


def read_info(client: Any) -> dict[str, Any]:
    persistence = info(client, "persistence")
    return {"dir": read_config(client, "dir"), "dbfilename": read_config(client, "dbfilename"),
            "appendonly": persistence.get("aof_enabled") == "1", "appenddirname": read_config(client, "appenddirname"),
            "version": info(client, "server").get("redis_version"),
            "db_keys": {str(k): v for k, v in sorted(read_keyspace(client).items())}, "lastsave": read_lastsave(client),
            "persistence": {k: persistence.get(k) for k in PERSISTENCE}}


def wait_idle(client: Any, flag: str, deadline: float) -> None:
    while info(client, "persistence").get(flag) == "1":
        if time.monotonic() > deadline:
            raise RedisCommandError(f"timed out waiting for {flag} to clear")
        time.sleep(0.05)


def read_saves(client: Any) -> tuple[int, int | None]:
    """(LASTSAVE, rdb_saves or None): rdb_saves (Redis >= 7) counts completed saves exactly."""
    saves = info(client, "persistence").get("rdb_saves")
    return read_lastsave(client), (int(saves) if saves is not None else None)


def run_bgsave(client: Any, wait_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + wait_s
    waited_for_running = False
    while True:
        before, saves_before = read_saves(client)
        if saves_before is None:  # LASTSAVE has 1 s resolution: start in a later second so "advanced" is provable
            while int(client.execute_command("TIME")[0]) <= before:
                time.sleep(0.05)
        try:
            client.execute_command("BGSAVE")
            break
        except Exception as exc:  # a ResponseError: "Background save already in progress"
            if "in progress" not in str(exc).lower() or time.monotonic() > deadline:
                raise
            waited_for_running = True  # a save (or AOF rewrite) is running: let it finish, then save anew
            wait_idle(client, "rdb_bgsave_in_progress", deadline)
            wait_idle(client, "aof_rewrite_in_progress", deadline)
    while True:
        persistence = info(client, "persistence")
        last, saves = read_saves(client)
        done = persistence.get("rdb_bgsave_in_progress") == "0"
        advanced = last > before if saves_before is None else (saves is not None and saves > saves_before and last >= before)
        if done and (advanced or persistence.get("rdb_last_bgsave_status") != "ok"):
            break
        if time.monotonic() > deadline:
            raise RedisCommandError(f"BGSAVE did not finish within {wait_s:g}s")
        time.sleep(0.02)
    if persistence.get("rdb_last_bgsave_status") != "ok":
        raise RedisCommandError(f"BGSAVE failed (rdb_last_bgsave_status={persistence.get('rdb_last_bgsave_status')}); "
                                "see the Redis log")
    return {"lastsave": last, "previous_lastsave": before, "rdb_saves": saves, "waited_for_running_save": waited_for_running}


def run_rewrite(client: Any, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    wait_idle(client, "aof_rewrite_in_progress", deadline)
    client.execute_command("BGREWRITEAOF")
    time.sleep(0.05)
    wait_idle(client, "aof_rewrite_in_progress", deadline)
    while info(client, "persistence").get("aof_rewrite_scheduled") == "1":
        if time.monotonic() > deadline:
            raise RedisCommandError("BGREWRITEAOF stayed scheduled")
        time.sleep(0.05)
        wait_idle(client, "aof_rewrite_in_progress", deadline)
    status = info(client, "persistence").get("aof_last_bgrewrite_status")
    if status != "ok":
        raise RedisCommandError(f"BGREWRITEAOF failed (aof_last_bgrewrite_status={status})")


def _lp(items: Any) -> bytes:
    return b"".join(b"%d:" % len(i) + i for i in items)


def read_canonical(client: Any, key: bytes) -> tuple[str, bytes]:
    """(type, canonical bytes) of one key: strings raw, list in order, set/hash/zset sorted."""
    call = client.execute_command
    kind = text(call("TYPE", key))
    if kind == "string":
        value = call("GET", key) or b""
    elif kind == "list":
        value = _lp(call("LRANGE", key, 0, -1) or [])
    elif kind == "set":
        value = _lp(sorted(call("SMEMBERS", key) or []))
    elif kind == "hash":
        flat = call("HGETALL", key) or []
        value = _lp(b for pair in sorted(zip(flat[::2], flat[1::2], strict=True)) for b in pair)
    elif kind == "zset":
        flat = call("ZRANGE", key, 0, -1, "WITHSCORES") or []
        pairs = sorted((m, repr(float(s)).encode()) for m, s in zip(flat[::2], flat[1::2], strict=True))
        value = _lp(b for pair in pairs for b in pair)
    elif kind == "stream":
        value = b"%d" % int(call("XLEN", key))
    else:  # "none" (expired meanwhile) or a module type
        value = b""
    return kind, value


def sample_keys(client: Any, n: int) -> list[bytes]:
    """The n keys of the selected db with the smallest sha256(key), sorted by that hash."""
    heap: list[tuple[int, bytes]] = []  # max-heap of (-hash, key)
    cursor: Any = b"0"
    while True:
        cursor, keys = client.execute_command("SCAN", cursor, "COUNT", 1000)
        for key in keys:
            h = int.from_bytes(hashlib.sha256(key).digest(), "big")
            if len(heap) < n:
                heapq.heappush(heap, (-h, key))
            elif -heap[0][0] > h:
                heapq.heapreplace(heap, (-h, key))
        if text(cursor) == "0":
            break
    return [k for _, k in sorted(heap, key=lambda item: -item[0])]


def make_sample_digest(client: Any, n: int = 256) -> tuple[str, int]:
    """THE deterministic key-sample digest (see the module doc): (hex digest, sampled keys)."""
    digest = hashlib.sha256()
    total = 0
    for db in sorted(read_keyspace(client)):
        client.execute_command("SELECT", db)
        for key in sample_keys(client, n):
            kind, value = read_canonical(client, key)
            digest.update(b"%d\0" % db + key + b"\0" + kind.encode() + b"\0" + value + b"\n")
            total += 1
    client.execute_command("SELECT", 0)
    return digest.hexdigest(), total


def read_probe(client: Any, sample: int) -> dict[str, Any]:
    """Counts, the last load's figures and (``sample`` > 0) the key-sample digest."""
    persistence = info(client, "persistence")
    counts = read_keyspace(client)
    digest, sampled = make_sample_digest(client, sample) if sample > 0 else (None, 0)
    return {"version": info(client, "server").get("redis_version"),
            "db_keys": {str(k): v for k, v in sorted(counts.items())}, "keys": sum(counts.values()),
            "db_expires": {str(k): v for k, v in sorted(read_keyspace(client, "expires").items())},
            "load": {"keys_loaded": read_int(persistence, "rdb_last_load_keys_loaded"),
                     "keys_expired": read_int(persistence, "rdb_last_load_keys_expired")},
            "sample_size": sample, "sampled": sampled, "sample_digest": digest}
