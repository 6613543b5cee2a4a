"""The Redis restore test: the restored dump loads in a throwaway server and matches its record.

Loading is the point here (the backup described the dump without loading it). What is compared
depends on the record:

- records with ``keys_read`` (``dump_check``, ragops >= this change): redis-check-rdb on the restored
  file reads exactly as many keys; its size and trailing CRC64 are the recorded ones; the throwaway
  server loaded ``keys_loaded + keys_expired == keys_read`` (Redis >= 7 drops keys already expired
  when a master loads a dump, and counts them in ``rdb_last_load_keys_expired``), and INFO keyspace
  holds between ``keys_read - expires`` and ``keys_read`` keys; per-db counts, if recorded, must
  match exactly only when no key has a TTL (``expires == 0``), since keys expire between backup
  and test.
- older records (per-db ``db_keys`` from a load at backup): per-db counts exactly, as before.
- either: the key-sample digest when the record has one.
"""

from __future__ import annotations

import re
from typing import Any

from ...errors import StepError
from ...redis_client import open_throwaway
from ...resources import wrap_capped
from ...seam import quote
from .hooks import Check, TestContext, check_staged_path, is_count, make_missing_tool_error
from .redis_check import parse_check_rdb
from .redis_commands import RedisCommandError, read_probe
from .redis_server import make_alive_check, make_password, make_server_command, run_write_conf
from .stable import stable_root_of_run_dir

KEY = "redis"
PASSWORD = "redis-password"  # ctx.state: the throwaway server's per-run password (only in its config file)
CONTAINERS = "redis-containers"  # ctx.state: names of the throwaway server containers (removed by ``end``)
COUNTS = ("keys_read", "expires", "already_expired", "bytes", "mtime", "lastsave", "sample_size", "keys", "checked_at")


def is_new_record(record: dict[str, Any]) -> bool:
    return record.get("keys_read") is not None or "dump_check" in record


# -- the untrusted record -----------------------------------------------------------------------

def check_record(where: str, rec: dict[str, Any], staging: str) -> list[str]:
    """Every field of an (untrusted) record that the restore code uses, type-checked."""
    bad = check_staged_path(where, rec, staging)
    path = rec.get("path")
    stable = stable_root_of_run_dir(staging)
    if not bad and isinstance(path, str) and path.startswith(stable + "/") and not path.startswith(f"{stable}/{KEY}/"):
        bad.append(f"{where}.path {path[:80]!r}: a Redis dump in the stable dir must be below {stable}/{KEY}")
    if rec.get("method") not in ("bgsave", "aof"):
        bad.append(f"{where}.method {str(rec.get('method'))[:20]!r}: not bgsave or aof")
    aof = rec.get("aof_dir")
    if rec.get("method") == "aof" and not (isinstance(aof, str) and aof not in ("", ".", "..") and "/" not in aof
                                            and "\0" not in aof):
        bad.append(f"{where}.aof_dir {str(aof)[:40]!r}: not a plain directory name")
    keys = rec.get("db_keys")
    if keys is not None and not (isinstance(keys, dict) and all(str(k).isdigit() and is_count(v) for k, v in keys.items())):
        bad.append(f"{where}.db_keys: not a map of db number to key count")
    for key in COUNTS:
        if rec.get(key) is not None and not is_count(rec[key]):
            bad.append(f"{where}.{key}: not a count (a non-negative integer)")
    if is_count(rec.get("keys_read")) and is_count(rec.get("expires")) and rec["expires"] > rec["keys_read"]:
        bad.append(f"{where}.expires: more keys with a TTL than keys read")
    if is_count(rec.get("expires")) and is_count(rec.get("already_expired")) and rec["already_expired"] > rec["expires"]:
        bad.append(f"{where}.already_expired: more than the keys with a TTL")
    if rec.get("checksum_ok") is not None and not isinstance(rec["checksum_ok"], bool):
        bad.append(f"{where}.checksum_ok: not a boolean")
    crc = rec.get("rdb_crc64")
    if crc is not None and not (isinstance(crc, str) and re.fullmatch(r"[0-9a-f]{16}", crc)):
        bad.append(f"{where}.rdb_crc64: not 16 hex digits")
    if rec.get("dump_check") is not None and rec["dump_check"] not in ("check-rdb", "load"):
        bad.append(f"{where}.dump_check {str(rec['dump_check'])[:20]!r}: not check-rdb or load")
    for key in ("sample_digest", "rdb_redis_ver", "stage", "save"):
        if rec.get(key) is not None and not isinstance(rec[key], str):
            bad.append(f"{where}.{key}: not a string")
    return bad


def plan_checks(record: dict[str, Any], options: dict[str, Any]) -> list[str]:
    if not is_new_record(record):
        return ["redis: dump loads", "redis: redis-check-rdb", "redis: key counts", "redis: sample digest"]
    return ["redis: dump loads", "redis: redis-check-rdb", "redis: rdb checksum", "redis: key counts",
            *(["redis: sample digest"] if record.get("sample_digest") else [])]


# -- restore test -------------------------------------------------------------------------------

def start(ctx: TestContext, record: dict[str, Any], *, timeout: float = 600) -> list[Check]:
    """Start the throwaway server on a COPY of the restored dump in its own scratch dir (port in
    ``ctx.state``); the 'redis: dump loads' check. A server that did not start or died (a dump that
    crashes it) is seen at once; a missing redis-server is a setup error naming ``backup.redis_server``."""
    if not record.get("path"):
        return []
    target = ctx.target
    server = target.settings.backup.redis_server
    src = ctx.restored(record["path"])
    d = ctx.scratch(KEY)
    aof_dir = record.get("aof_dir") if record.get("method") == "aof" else None
    dest = f"{d}/{aof_dir}" if aof_dir else f"{d}/dump.rdb"
    res = target.run(f"mkdir -p -m 0700 {quote(d)} && cp -a --reflink=auto -- {quote(src)} {quote(dest)}")
    if not res.ok:
        return [Check("redis: dump loads", False, f"restored dump {src} missing: {res.stderr.strip()[-200:]}")]
    password = make_password()
    conf = run_write_conf(target, d, password)
    if target.settings.docker.data_tasks == "containers":
        return start_in_container(ctx, src, d, aof_dir, timeout, password, conf)
    why = ""
    for _ in range(3):  # a port can be taken between picking and binding: the server exits, pick again
        port = int(ctx.scripts.run_script("free_port", []).stdout.strip())
        started = target.run(wrap_capped(target, make_server_command(server, d, port=port, aof_dir=aof_dir, conf=conf)))
        if started.exited in (126, 127):
            raise make_missing_tool_error(target, server, "backup.redis_server (ragops.yaml)", "loads the restored dump")
        if not started.ok:
            return [Check("redis: dump loads", False, f"throwaway redis-server did not start (exit {started.exited}): "
                          f"{(started.stderr or started.stdout).strip()[-300:]}")]
        ok, why = run_wait(ctx, port, password, timeout, make_alive_check(target, d, f"loading {src}"))
        if ok:
            ctx.state.update({KEY: port, PASSWORD: password})
            return [Check("redis: dump loads", True, f"{src} loaded by a throwaway redis-server on 127.0.0.1:{port}")]
        if "Address already in use" not in why:
            break
        target.run(f"rm -f -- {quote(d)}/redis.pid")
    return [Check("redis: dump loads", False, f"throwaway redis-server did not load {src}: {why}"[:700])]


def run_wait(ctx: TestContext, port: int, password: str, timeout: float, check: Any) -> tuple[bool, str]:
    """Wait until the throwaway server answers PING (redis-py, through the tunnel for a remote host)."""
    try:
        with open_throwaway(ctx.target, port, password, wait_s=timeout, check=check):
            return True, ""
    except StepError as exc:
        return False, str(getattr(exc, "reason", "") or exc)


def start_in_container(ctx: TestContext, src: str, d: str, aof_dir: str | None, timeout: float, password: str,
                       conf: str) -> list[Check]:
    """The throwaway redis-server as a container of the redis service's image (redis_containers)."""
    from .redis_containers import SERVER_PURPOSE, make_container_check, run_start_server
    from .throwaway import make_name

    why = ""
    for _ in range(3):  # a port can be taken between picking and binding: pick again
        port = int(ctx.scripts.run_script("free_port", []).stdout.strip())
        name = make_name(SERVER_PURPOSE)
        ctx.state.setdefault(CONTAINERS, []).append(name)  # before it exists: `end` removes it whatever happens
        started = run_start_server(ctx.target, name, d, port, aof_dir, conf=conf)
        if not started.ok:
            return [Check("redis: dump loads", False, f"throwaway redis-server container did not start (exit "
                          f"{started.exited}): {(started.stderr or started.stdout).strip()[-300:]}")]
        ok, why = run_wait(ctx, port, password, timeout, make_container_check(ctx.target, name))
        if ok:
            ctx.state.update({KEY: port, PASSWORD: password})
            return [Check("redis: dump loads", True, f"{src} loaded by a throwaway redis-server container {name} "
                          f"(image of the redis service) on 127.0.0.1:{port}")]
        if "Address already in use" not in why:
            break
    return [Check("redis: dump loads", False, f"throwaway redis-server did not load {src}: {why}"[:700])]


def compare_counts(record: dict[str, Any], probe: dict[str, Any]) -> Check:
    """The restored server's key counts against the record (see the module doc for which figures)."""
    want = {str(k): int(v) for k, v in (record.get("db_keys") or {}).items()}
    got = {str(k): int(v) for k, v in (probe.get("db_keys") or {}).items()}
    diffs = [f"db{db}: manifest {want.get(db, 0)}, restored {got.get(db, 0)}"
             for db in sorted(set(want) | set(got), key=int) if want.get(db, 0) != got.get(db, 0)]
    total = sum(got.values())
    if record.get("keys_read") is None:  # an older record: per-db counts from a load at backup
        return Check("redis: key counts", not diffs, "; ".join(diffs) or f"{total} keys in {len(got)} db(s), as recorded",
                     {"manifest": want, "restored": got})
    read, expires = int(record["keys_read"]), int(record.get("expires") or 0)
    load = probe.get("load") or {}
    loaded, expired = load.get("keys_loaded"), load.get("keys_expired")
    problems = []
    if isinstance(loaded, int) and isinstance(expired, int) and loaded + expired != read:
        problems.append(f"the restored dump loaded {loaded} key(s) + {expired} expired on load, manifest: {read} keys read")
    if not read - expires <= total <= read:
        problems.append(f"{total} key(s) restored, manifest: {read} keys read of which {expires} with a TTL")
    if want and expires == 0:
        problems += diffs
    how = f"{loaded} loaded + {expired} expired on load = " if isinstance(loaded, int) else ""
    return Check("redis: key counts", not problems,
                 "; ".join(problems) or f"{how}{read} keys read at backup; {total} keys in {len(got)} db(s)",
                 {"keys_read": read, "expires": expires, "loaded": loaded, "expired_on_load": expired, "restored": got,
                  **({"manifest": want} if want else {})})


def compare(record: dict[str, Any], probe: dict[str, Any]) -> list[Check]:
    """Key counts and the key-sample digest (if recorded) of the restored dump against the manifest."""
    out = [compare_counts(record, probe)]
    if record.get("sample_digest"):
        same = probe.get("sample_digest") == record["sample_digest"]
        out.append(Check("redis: sample digest", same,
                         f"{probe.get('sampled', '?')} sampled key(s): manifest {str(record['sample_digest'])[:16]}, "
                         f"restored {str(probe.get('sample_digest'))[:16]}",
                         {"sample_size": record.get("sample_size"), "sampled": probe.get("sampled")}))
    return out


def check_file(ctx: TestContext, record: dict[str, Any], src: str) -> Check:
    """The restored file's size and trailing CRC64 are the recorded ones (redis-check-rdb proves the
    CRC64 covers the content, so this ties the restored bytes to the backed-up dump)."""
    res = ctx.target.run(f"stat -c %s -- {quote(src)} && tail -c 8 -- {quote(src)} | od -An -tx1 | tr -d ' \\n'")
    lines = res.stdout.split()
    size, crc = (int(lines[0]), lines[1] if len(lines) > 1 else "") if res.ok and lines else (None, "")
    want_crc = record.get("rdb_crc64")
    ok = size == record.get("bytes") and (want_crc is None or crc == want_crc)
    return Check("redis: rdb checksum", ok, f"{size} bytes, CRC64 {crc or '?'}; manifest {record.get('bytes')} bytes, "
                 f"CRC64 {want_crc or 'not recorded (rdbchecksum no)'}", {"bytes": size, "crc64": crc})


def verify(ctx: TestContext, record: dict[str, Any]) -> list[Check]:
    """redis-check-rdb (and size + CRC64) on the restored dump; counts and digest from the throwaway server."""
    if not record.get("path"):
        return []
    target = ctx.target
    check_rdb = ctx.policy.sources.redis.check_rdb
    checks = []
    if record.get("method") != "aof":
        src = ctx.restored(record["path"])
        if target.settings.docker.data_tasks == "containers":  # in a throwaway container of the redis image
            from .redis_containers import run_check_rdb

            res = run_check_rdb(target, check_rdb, src)
        else:
            res = target.run(f"{quote(check_rdb)} {quote(src)}")
        if res.exited in (126, 127):
            raise make_missing_tool_error(target, check_rdb, "sources.redis.check_rdb (backup policy)", "validates the restored dump")
        tail = (res.stdout + res.stderr).strip().splitlines()
        evidence, ok = (tail[-1] if tail else f"exit {res.exited}")[:300], res.ok
        if record.get("keys_read") is not None:
            read = parse_check_rdb(res.stdout + res.stderr)["keys_read"]
            ok = ok and read == record["keys_read"]
            evidence = f"{read} keys read (manifest {record['keys_read']}); {evidence}"
        checks.append(Check("redis: redis-check-rdb", ok, evidence))
        if is_new_record(record):
            checks.append(check_file(ctx, record, src))
    port = ctx.state.get(KEY)
    if port is None:
        return checks + [Check("redis: key counts", False, "not compared: the dump did not load")]
    sample = int(record.get("sample_size") or 256) if record.get("sample_digest") or not is_new_record(record) else 0
    try:
        with open_throwaway(target, port, ctx.state[PASSWORD]) as client:
            probe = read_probe(client, sample)
    except (StepError, RedisCommandError) as exc:
        return checks + [Check("redis: key counts", False, f"probe failed: {getattr(exc, 'reason', '') or exc}"[:700])]
    return checks + compare(record, probe)
