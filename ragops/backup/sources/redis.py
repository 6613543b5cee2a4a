"""Redis source: BGSAVE (or a rewritten AOF), staged with redis-check-rdb and a key-sample digest.

The dump is copied into ``<run_dir>/redis/``. Its per-db key counts and sample digest are taken
from a throwaway ``redis-server`` that loads the STAGED copy (unix socket, no port, no saving), so
the manifest describes exactly the bytes in the snapshot even while clients keep writing; the same
:func:`run_dump_digest` serves the restore test. Without redis-server on the host the live server
is probed right after the save (``sample_source: live``: approximate under writes).
"""

from __future__ import annotations

import time
from typing import Any

from ... import output
from ...errors import ConfigError, StepError
from ...remote import script
from ...seam import Target, quote
from ...steps.secrets import read_redis_password
from ..policy_sources import RedisSource
from . import Staged, make_copy_command, parse_json_line, run_or_fail


def make_probe_command(mode: str, *, host: str | None = None, port: int | None = None, socket: str | None = None,
                       extra: str = "", python: str = "python3") -> str:
    where = f"--socket {quote(socket)}" if socket else f"--host {quote(host or '127.0.0.1')} --port {int(port or 6379)}"
    return f"{python} - {mode} {where} {extra}".strip()


def make_throwaway_start(data_dir: str, scratch: str, *, dbfilename: str = "dump.rdb", aof_dir: str | None = None) -> str:
    """Start a private redis-server on a unix socket that loads ``data_dir``'s dump (or AOF), saves nothing."""
    args = [
        "redis-server", "--port", "0", "--unixsocket", f"{scratch}/redis.sock", "--unixsocketperm", "700",
        "--dir", data_dir, "--dbfilename", dbfilename, "--save", "''", "--daemonize", "yes",
        "--pidfile", f"{scratch}/redis.pid", "--logfile", f"{scratch}/redis.log",
    ]
    args += ["--appendonly", "yes", "--appenddirname", aof_dir] if aof_dir else ["--appendonly", "no"]
    return " ".join(a if a == "''" else quote(a) for a in args)


def run_dump_digest(target: Target, data_dir: str, *, dbfilename: str = "dump.rdb", aof_dir: str | None = None,
                    sample: int = 256, timeout: float = 600) -> dict[str, Any]:
    """Load a dump in a throwaway redis-server on the host and probe it (counts, sample digest).

    Raises StepError if the dump does not load. Always stops the throwaway server."""
    scratch = run_or_fail(target, "mktemp -d /tmp/ragops-redis.XXXXXX", "mktemp", write=False).strip()
    sock = f"{scratch}/redis.sock"
    try:
        if aof_dir:  # the server appends to the AOF it loads: load a scratch copy, not the staged files
            run_or_fail(target, f"mkdir {quote(scratch)}/data && " + make_copy_command(f"{data_dir}/{aof_dir}", f"{scratch}/data/{aof_dir}"),
                        "copying the AOF for its load test", write=False)
            data_dir = f"{scratch}/data"
        start = target.run(make_throwaway_start(data_dir, scratch, dbfilename=dbfilename, aof_dir=aof_dir))
        wait = target.run(make_probe_command("wait", socket=sock, extra=f"--wait {int(timeout)}", python=target.python), stdin=script("redis_probe"))
        if not start.ok or not parse_json_line(wait.stdout, "redis load").get("ok"):
            log = target.run(f"tail -n 5 {quote(scratch)}/redis.log 2>/dev/null").stdout.strip()
            raise StepError(f"{target.name}: the staged Redis dump in {data_dir} does not load: {log or start.stderr.strip()}")
        res = target.run(make_probe_command("probe", socket=sock, extra=f"--sample {int(sample)}", python=target.python), stdin=script("redis_probe"))
        doc = parse_json_line(res.stdout, "redis probe")
        if not doc.get("ok"):
            raise StepError(f"{target.name}: probing the staged Redis dump failed: {doc.get('error')}")
        return doc
    finally:
        target.run(make_probe_command("shutdown", socket=sock, python=target.python), stdin=script("redis_probe"))
        target.run(f"[ -f {quote(scratch)}/redis.pid ] && kill $(cat {quote(scratch)}/redis.pid) 2>/dev/null; "
                   f"sleep 0.05; rm -rf -- {quote(scratch)}")


def run_remote_probe(target: Target, mode: str, password: str | None, *, write: bool = False, extra: str = "") -> dict[str, Any]:
    r = target.settings.redis
    res = target.run(make_probe_command(mode, host=r.host, port=r.port, extra=extra, python=target.python), write=write,
                     stdin=script("redis_probe"), secrets={"REDISCLI_AUTH": password} if password else None)
    if res.dry:
        return {"ok": True, "dry": True}
    doc = parse_json_line(res.stdout, f"redis {mode}")
    if not doc.get("ok"):
        raise StepError(f"{target.name}: redis {mode} on {r.host}:{r.port} failed: {doc.get('error')}")
    return doc


def run_stage(target: Target, source: RedisSource, run_dir: str) -> Staged | None:
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
        run_remote_probe(target, "rewrite", password, write=True, extra=f"--wait {int(source.bgsave_timeout_s)}")
        aof_dir = info.get("appenddirname") or "appendonlydir"
        run_or_fail(target, make_copy_command(f"{data_dir}/{aof_dir}", f"{dest}/{aof_dir}"), "staging the Redis AOF dir")
        record.update(method="aof", path=f"{dest}/{aof_dir}", aof_dir=aof_dir)
    else:
        saved = run_remote_probe(target, "bgsave", password, write=True, extra=f"--wait {int(source.bgsave_timeout_s)}")
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
        doc = run_remote_probe(target, "probe", password, extra=f"--sample {int(source.sample_keys)}")
        record["sample_source"] = "live"
    record.update(db_keys=doc.get("db_keys"), keys=doc.get("keys"), sample_size=source.sample_keys,
                  sample_digest=doc.get("sample_digest"))
    return Staged("redis", record, duration_s=time.monotonic() - started)
