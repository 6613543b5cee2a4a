"""Redis source: BGSAVE (or a rewritten AOF), staged with redis-check-rdb and a key-sample digest.

The dump is copied into ``<run_dir>/redis/``. Its per-db key counts and sample digest are taken
from a throwaway ``redis-server`` that loads the STAGED copy (unix socket, no port, no saving), so
the manifest describes exactly the bytes in the snapshot even while clients keep writing. Without
redis-server on the host the live server is probed right after the save (``sample_source: live``:
approximate under writes).

The restore test starts the same kind of throwaway server (:func:`make_server_command`, the one
launcher) on a free loopback port in the scratch dir, on a COPY of the restored dump, and compares
redis-check-rdb, per-db key counts and the sample digest with the record. A real restore prints
the operator's steps (:func:`bring_up`). The verbs are those of every source (see ``registry``).
"""

from __future__ import annotations

import time
from typing import Any

from ... import output
from ...errors import ConfigError, StepError
from ...seam import Target, quote
from ...secrets import read_redis_password
from ..policy_sources import RedisSource
from . import Staged, make_copy_command, parse_json_line, run_or_fail
from .hooks import (
    Check,
    HostScripts,
    TestContext,
    check_staged_path,
    find_missing_tool,
    is_count,
    make_missing_tool_error,
)

KEY = "redis"


def make_probe_args(mode: str, *, host: str | None = None, port: int | None = None, socket: str | None = None,
                    extra: list[str] | None = None) -> list[str]:
    """Arguments of ``ragops/remote/redis_probe.py`` for one server (TCP or unix socket)."""
    where = ["--socket", socket] if socket else ["--host", host or "127.0.0.1", "--port", str(int(port or 6379))]
    return [mode, *where, *(extra or [])]


def make_server_command(server: str, directory: str, *, port: int | None = None, socket: str | None = None,
                        run_dir: str | None = None, dbfilename: str = "dump.rdb", aof_dir: str | None = None) -> str:
    """THE throwaway redis-server: loads ``directory``'s dump (or AOF), saves nothing, daemonized with
    a pidfile and a log in ``run_dir`` (default: ``directory``); on a unix socket (no TCP port) or on
    127.0.0.1:PORT (protected mode)."""
    run_dir = run_dir or directory
    args = [server]
    if socket:
        args += ["--port", "0", "--unixsocket", socket, "--unixsocketperm", "700"]
    else:
        args += ["--port", str(int(port or 0)), "--bind", "127.0.0.1", "--protected-mode", "yes"]
    args += ["--dir", directory, "--dbfilename", dbfilename, "--daemonize", "yes", "--pidfile", f"{run_dir}/redis.pid",
             "--logfile", f"{run_dir}/redis.log"]
    args += ["--appendonly", "yes", "--appenddirname", aof_dir] if aof_dir else ["--appendonly", "no"]
    return " ".join(quote(a) for a in args) + " --save ''"


def make_server_stop_command(run_dir: str) -> str:
    """Stop the throwaway server whose pidfile is in ``run_dir`` (no-op without one)."""
    pid = quote(f"{run_dir}/redis.pid")
    # SIGKILL on purpose: the throwaway server saves nothing. It is gone once it is a zombie: the
    # daemonized server's parent is init, which may reap it only later (kill -0 would still succeed).
    return (f"[ -f {pid} ] || exit 0; p=$(cat {pid}); kill -9 \"$p\" 2>/dev/null || exit 0; "
            "for i in $(seq 250); do case \"$(ps -o stat= -p \"$p\" 2>/dev/null)\" in ''|Z*) exit 0;; esac; "
            "sleep 0.02; done; exit 0")


def run_dump_digest(target: Target, data_dir: str, *, dbfilename: str = "dump.rdb", aof_dir: str | None = None,
                    sample: int = 256, timeout: float = 600) -> dict[str, Any]:
    """Load a dump in a throwaway redis-server on the host and probe it (counts, sample digest).

    Raises StepError if the dump does not load. Always stops the throwaway server."""
    scripts = HostScripts(target)
    scratch = run_or_fail(target, "mktemp -d /tmp/ragops-redis.XXXXXX", "mktemp", write=False).strip()
    sock = f"{scratch}/redis.sock"
    try:
        if aof_dir:  # the server appends to the AOF it loads: load a scratch copy, not the staged files
            run_or_fail(target, f"mkdir {quote(scratch)}/data && " + make_copy_command(f"{data_dir}/{aof_dir}", f"{scratch}/data/{aof_dir}"),
                        "copying the AOF for its load test", write=False)
            data_dir = f"{scratch}/data"
        start = target.run(make_server_command("redis-server", data_dir, socket=sock, run_dir=scratch,
                                               dbfilename=dbfilename, aof_dir=aof_dir))
        wait = scripts.run_script("redis_probe", make_probe_args("wait", socket=sock, extra=["--wait", str(int(timeout))]))
        if not start.ok or not parse_json_line(wait.stdout, "redis load").get("ok"):
            log = target.run(f"tail -n 5 {quote(scratch)}/redis.log 2>/dev/null").stdout.strip()
            raise StepError(f"{target.name}: the staged Redis dump in {data_dir} does not load: {log or start.stderr.strip()}")
        res = scripts.run_script("redis_probe", make_probe_args("probe", socket=sock, extra=["--sample", str(int(sample))]))
        doc = parse_json_line(res.stdout, "redis probe")
        if not doc.get("ok"):
            raise StepError(f"{target.name}: probing the staged Redis dump failed: {doc.get('error')}")
        return doc
    finally:
        scripts.run_script("redis_probe", make_probe_args("shutdown", socket=sock))
        target.run(f"{make_server_stop_command(scratch)}; rm -rf -- {quote(scratch)}")


def run_remote_probe(target: Target, mode: str, password: str | None, *, write: bool = False,
                     extra: list[str] | None = None) -> dict[str, Any]:
    r = target.settings.redis
    res = HostScripts(target).run_script("redis_probe", make_probe_args(mode, host=r.host, port=r.port, extra=extra),
                                         write=write, secrets={"REDISCLI_AUTH": password} if password else None)
    if res.dry:
        return {"ok": True, "dry": True}
    doc = parse_json_line(res.stdout, f"redis {mode}")
    if not doc.get("ok"):
        raise StepError(f"{target.name}: redis {mode} on {r.host}:{r.port} failed: {doc.get('error')}")
    return doc


def stage(target: Target, source: RedisSource, run_dir: str) -> Staged | None:
    """BGSAVE (or AOF rewrite), copy into the staging dir, verify, record counts and digest."""
    r = target.settings.redis
    if not (source.enabled and r.enabled):
        return None
    started = time.monotonic()
    password = read_redis_password(r)
    info = run_remote_probe(target, "info", password)
    data_dir = source.data_dir or info.get("dir")
    if not data_dir:
        raise StepError(f"{target.name}: Redis' dir is unknown (CONFIG GET disabled?): set sources.redis.data_dir")
    dest = f"{run_dir}/redis"
    use_aof = bool(info.get("appendonly")) and not source.aof_fallback
    record: dict[str, Any] = {"kind": "redis", "name": "redis", "version": info.get("version"),
                              "server": f"{r.host}:{r.port}", "live_db_keys": info.get("db_keys")}
    run_or_fail(target, f"mkdir -m 0700 {quote(dest)}", "creating the Redis staging dir")
    if use_aof:
        run_remote_probe(target, "rewrite", password, write=True, extra=["--wait", str(int(source.bgsave_timeout_s))])
        aof_dir = info.get("appenddirname") or "appendonlydir"
        run_or_fail(target, make_copy_command(f"{data_dir}/{aof_dir}", f"{dest}/{aof_dir}"), "staging the Redis AOF dir")
        record.update(method="aof", path=f"{dest}/{aof_dir}", aof_dir=aof_dir)
    else:
        saved = run_remote_probe(target, "bgsave", password, write=True, extra=["--wait", str(int(source.bgsave_timeout_s))])
        dbfilename = info.get("dbfilename") or "dump.rdb"
        run_or_fail(target, make_copy_command(f"{data_dir}/{dbfilename}", f"{dest}/dump.rdb"), "staging the Redis dump")
        record.update(method="bgsave", path=f"{dest}/dump.rdb", lastsave=saved.get("lastsave"),
                      waited_for_running_save=saved.get("waited_for_running_save"))
        if info.get("appendonly"):
            record["note"] = "AOF enabled: an RDB was taken with BGSAVE (aof_fallback: true)"
    if target.dry:
        output.dry_command(target.name, f"would verify {record['path']} and record key counts and a sample digest")
        return Staged("redis", record, duration_s=time.monotonic() - started)
    if source.verify and record["method"] == "bgsave":
        res = target.run(f"{quote(source.check_rdb)} {quote(record['path'])}")
        if res.exited in (126, 127):  # the shell's "not found" / "not executable": a setup error, not a bad dump
            raise ConfigError(f"{target.name}: {source.check_rdb!r} is not installed or not executable on the host: "
                              "install redis-tools or point the policy setting sources.redis.check_rdb at it")
        if not res.ok:
            raise StepError(f"{target.name}: {source.check_rdb} rejected the staged dump: {(res.stdout + res.stderr).strip()[-300:]}")
        record["check"] = f"{source.check_rdb}: ok"
    if source.sample_keys and target.run("command -v redis-server >/dev/null").ok:
        if record["method"] == "aof":
            doc = run_dump_digest(target, dest, aof_dir=record["aof_dir"], sample=source.sample_keys, timeout=source.bgsave_timeout_s)
        else:
            doc = run_dump_digest(target, dest, sample=source.sample_keys, timeout=source.bgsave_timeout_s)
        record["sample_source"] = "dump"
    else:
        doc = run_remote_probe(target, "probe", password, extra=["--sample", str(int(source.sample_keys))])
        record["sample_source"] = "live"
    record.update(db_keys=doc.get("db_keys"), keys=doc.get("keys"), sample_size=source.sample_keys,
                  sample_digest=doc.get("sample_digest"))
    return Staged("redis", record, duration_s=time.monotonic() - started)


# -- backup: staging size, report summary, manifest record checks -------------------------------

def staging_paths(target: Target, source: RedisSource) -> list[str]:
    """The Redis dump on disk (its last dump: a BGSAVE now may be larger by what was written since)
    or the AOF dir, whose copy the run stages."""
    r = target.settings.redis
    if not (source.enabled and r.enabled):
        return []
    info = run_remote_probe(target, "info", read_redis_password(r))
    data_dir = source.data_dir or info.get("dir")
    if not data_dir:
        return []
    if info.get("appendonly") and not source.aof_fallback:
        return [f"{data_dir}/{info.get('appenddirname') or 'appendonlydir'}"]
    return [f"{data_dir}/{info.get('dbfilename') or 'dump.rdb'}"]


def describe(record: dict[str, Any]) -> dict[str, Any]:
    return dict(record)


def check_record(where: str, rec: dict[str, Any], staging: str) -> list[str]:
    """Every field of an (untrusted) record that the restore code uses, type-checked."""
    bad = check_staged_path(where, rec, staging)
    if rec.get("method") not in ("bgsave", "aof"):
        bad.append(f"{where}.method {str(rec.get('method'))[:20]!r}: not bgsave or aof")
    aof = rec.get("aof_dir")
    if rec.get("method") == "aof" and not (isinstance(aof, str) and aof not in ("", ".", "..") and "/" not in aof
                                            and "\0" not in aof):
        bad.append(f"{where}.aof_dir {str(aof)[:40]!r}: not a plain directory name")
    keys = rec.get("db_keys")
    if keys is not None and not (isinstance(keys, dict) and all(str(k).isdigit() and is_count(v) for k, v in keys.items())):
        bad.append(f"{where}.db_keys: not a map of db number to key count")
    for key in ("sample_size", "keys"):
        if rec.get(key) is not None and not is_count(rec[key]):
            bad.append(f"{where}.{key}: not a count")
    if rec.get("sample_digest") is not None and not isinstance(rec["sample_digest"], str):
        bad.append(f"{where}.sample_digest: not a string")
    return bad


def live_paths(source: RedisSource | None, hosts: list[Any], records: list[dict[str, Any]]) -> list[str | None]:
    return [source.data_dir if source is not None else None, *[r.get("data_dir") for r in records]]


# -- restore test -------------------------------------------------------------------------------

def plan_checks(record: dict[str, Any], options: dict[str, Any]) -> list[str]:
    return ["redis: dump loads", "redis: redis-check-rdb", "redis: key counts", "redis: sample digest"]


def make_tools(target: Target, source: RedisSource) -> list[tuple[str, str, str]]:
    return [(target.settings.backup.redis_server, "backup.redis_server (ragops.yaml)", "loads the restored dump"),
            (source.check_rdb, "sources.redis.check_rdb (backup policy)", "validates the restored dump")]


def preflight(target: Target, source_host: Any, source: RedisSource) -> None:
    """redis-server and redis-check-rdb must exist on the verifying host: else a setup error (exit 2)."""
    if not (source.enabled and source_host.settings.redis.enabled):
        return
    missing = find_missing_tool(target, make_tools(target, source))
    if missing is not None:
        raise make_missing_tool_error(target, *missing)


def parse_result(res: Any, what: str) -> dict[str, Any]:
    try:
        return parse_json_line(res.stdout, what)
    except StepError:
        return {"ok": False, "error": f"{what}: no result (exit {res.exited}): {(res.stderr or res.stdout).strip()[-300:]}"}


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
    port = 0
    started = None
    for _ in range(3):  # a port can be taken between picking and binding: pick again
        port = int(ctx.scripts.run_script("free_port", []).stdout.strip())
        started = target.run(make_server_command(server, d, port=port, aof_dir=aof_dir))
        if started.exited in (126, 127):
            raise make_missing_tool_error(target, server, "backup.redis_server (ragops.yaml)", "loads the restored dump")
        if started.ok:
            break
    assert started is not None
    if not started.ok:
        return [Check("redis: dump loads", False, f"throwaway redis-server did not start (exit {started.exited}): "
                      f"{(started.stderr or started.stdout).strip()[-300:]}")]
    waited = parse_result(ctx.scripts.run_script("restore_guard", ["wait-redis", d, str(port), str(int(timeout))],
                                                 timeout=timeout + 30), "redis load")
    if not waited.get("ok"):
        return [Check("redis: dump loads", False, f"throwaway redis-server did not load {src}: {waited.get('error')}"[:700])]
    ctx.state[KEY] = port
    return [Check("redis: dump loads", True, f"{src} loaded by a throwaway redis-server on 127.0.0.1:{port}")]


def compare(record: dict[str, Any], probe: dict[str, Any]) -> list[Check]:
    """Per-db key counts and the key-sample digest of the restored dump against the manifest."""
    want = {str(k): int(v) for k, v in (record.get("db_keys") or {}).items()}
    got = {str(k): int(v) for k, v in (probe.get("db_keys") or {}).items()}
    diffs = [f"db{db}: manifest {want.get(db, 0)}, restored {got.get(db, 0)}"
             for db in sorted(set(want) | set(got), key=int) if want.get(db, 0) != got.get(db, 0)]
    counts = Check("redis: key counts", not diffs,
                   "; ".join(diffs) or f"{sum(got.values())} keys in {len(got)} db(s), as recorded",
                   {"manifest": want, "restored": got})
    out = [counts]
    if record.get("sample_digest"):
        same = probe.get("sample_digest") == record["sample_digest"]
        out.append(Check("redis: sample digest", same,
                         f"{probe.get('sampled', '?')} sampled key(s): manifest {str(record['sample_digest'])[:16]}, "
                         f"restored {str(probe.get('sample_digest'))[:16]}",
                         {"sample_size": record.get("sample_size"), "sampled": probe.get("sampled")}))
    return out


def verify(ctx: TestContext, record: dict[str, Any]) -> list[Check]:
    """redis-check-rdb on the restored dump; key counts and sample digest from the throwaway server."""
    if not record.get("path"):
        return []
    target = ctx.target
    check_rdb = ctx.policy.sources.redis.check_rdb
    checks = []
    if record.get("method") != "aof":
        src = ctx.restored(record["path"])
        res = target.run(f"{quote(check_rdb)} {quote(src)}")
        if res.exited in (126, 127):
            raise make_missing_tool_error(target, check_rdb, "sources.redis.check_rdb (backup policy)", "validates the restored dump")
        tail = (res.stdout + res.stderr).strip().splitlines()
        checks.append(Check("redis: redis-check-rdb", res.ok, (tail[-1] if tail else f"exit {res.exited}")[:300]))
    port = ctx.state.get(KEY)
    if port is None:
        return checks + [Check("redis: key counts", False, "not compared: the dump did not load")]
    sample = int(record.get("sample_size") or 256)
    probe = parse_result(ctx.scripts.run_script("redis_probe", make_probe_args("probe", port=port,
                                                                               extra=["--sample", str(sample)])), "redis probe")
    if not probe.get("ok"):
        return checks + [Check("redis: key counts", False, f"probe failed: {probe.get('error')}")]
    return checks + compare(record, probe)


def end(ctx: TestContext) -> None:
    """Always: stop the throwaway server (no-op if none started)."""
    ctx.target.run(make_server_stop_command(ctx.scratch(KEY)))


# -- real restore -------------------------------------------------------------------------------

def bring_up(record: dict[str, Any], target_dir: str, settings: Any) -> list[str]:
    """The operator's steps to serve Redis from the restored dump, every path filled in."""
    if not record.get("path"):
        return []
    restored = target_dir + record["path"]
    r = settings.redis
    if record.get("method") == "aof":
        src = f"{restored}  (an AOF dir: copy it as <redis dir>/{record.get('aof_dir')}, appendonly yes)"
    else:
        src = f"{restored}  (RDB, {record.get('keys', '?')} keys)"
    return [f"Redis: restored dump: {src}",
            f"Redis: DIR=$(redis-cli -h {r.host} -p {r.port} CONFIG GET dir | tail -1); "
            f"FILE=$(redis-cli -h {r.host} -p {r.port} CONFIG GET dbfilename | tail -1)",
            "Redis: stop the server (systemctl stop redis-server / docker compose stop redis) — NOT SHUTDOWN SAVE",
            f"Redis: mv \"$DIR/$FILE\" \"$DIR/$FILE.before-restore\" && cp {quote(restored)} \"$DIR/$FILE\" "
            "&& chown redis:redis \"$DIR/$FILE\"",
            "Redis: start the server, then check: redis-cli INFO keyspace (expect the manifest's "
            f"counts {record.get('db_keys')})"]
