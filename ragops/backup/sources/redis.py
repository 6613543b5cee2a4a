"""Redis source: the dump staged at a stable path, at the cost of what changed (``docs/backup-redis.md``).

Backup: BGSAVE only when the dump on disk is not current (:mod:`.redis_stage`), the dump hard-linked
(or, across filesystems, copied) to ``<staging_dir>/stable/redis/dump.rdb`` so an unchanged dump is
an unchanged file for restic, and described without loading it (``dump_check: check-rdb``:
:mod:`.redis_check`; ``load``: the throwaway-server counts and sample digest). An AOF-only server with
``aof_fallback: false`` still has its rewritten AOF dir copied into the run dir and loaded.

Restore test (:mod:`.redis_verify`): the restored dump is loaded in THE throwaway server
(:mod:`.redis_server`) and compared with whatever its record holds. A real restore prints the
operator's steps (:func:`bring_up`). The verbs are those of every source (see ``registry``).
"""

from __future__ import annotations

import time
from typing import Any

from ... import output
from ...errors import RagopsError, StepError
from ...seam import Target, quote
from ..policy_sources import RedisSource
from . import Staged, make_copy_command, run_or_fail
from .hooks import TestContext, find_missing_tool, make_missing_tool_error
from .redis_check import describe_dump, run_check_rdb
from .redis_commands import read_info, read_probe, run_bgsave, run_rewrite
from .redis_server import (  # noqa: F401 - re-exported: the restore code and tests use them from here
    make_server_command,
    make_server_stop_command,
    open_live,
    parse_result,
    run_dump_digest,
    run_live,
    run_stat_dump,
)
from .redis_stage import make_save_decision, run_link_will_do, run_stage_dump
from .redis_verify import check_record, compare, plan_checks, start, verify  # noqa: F401 - verbs
from .stable import stable_root

KEY = "redis"


def run_info(target: Target, live: Any) -> dict[str, Any]:
    """The live server's dir, AOF state, LASTSAVE and persistence figures (a read: also under --dry)."""
    return run_live(target, "info", lambda: read_info(live))


def run_host_data_dir(target: Target, source: RedisSource, info: dict[str, Any], record: dict[str, Any] | None = None) -> str:
    """Redis' dir on the host (the policy's ``data_dir``, else CONFIG GET dir; a container's through its volume)."""
    data_dir = source.data_dir or info.get("dir")
    if not data_dir:
        raise StepError(f"{target.name}: Redis' dir is unknown (CONFIG GET disabled or not granted?): "
                        "set sources.redis.data_dir")
    if target.settings.docker.data_tasks == "containers":  # dir is the container's: its volume on the host
        from .redis_containers import describe as describe_container
        from .redis_containers import run_container, run_host_dir

        container = run_container(target)
        if record is not None:
            record["container"] = describe_container(container, str(data_dir))
        data_dir = run_host_dir(target, container, str(data_dir))
    return str(data_dir)


def stage_aof(target: Target, source: RedisSource, info: dict[str, Any], data_dir: str, run_dir: str,
              live: Any, record: dict[str, Any]) -> None:
    """``aof_fallback: false`` on an AOF server: BGREWRITEAOF, copy the AOF dir into the run dir, load it."""
    dest = f"{run_dir}/redis"
    run_or_fail(target, f"mkdir -m 0700 {quote(dest)}", "creating the Redis staging dir")
    if target.dry:
        output.dry_command(target.name, "would BGREWRITEAOF and wait for it")
    else:
        run_live(target, "rewrite", lambda: run_rewrite(live, source.bgsave_timeout_s))
    aof_dir = info.get("appenddirname") or "appendonlydir"
    run_or_fail(target, make_copy_command(f"{data_dir}/{aof_dir}", f"{dest}/{aof_dir}"), "staging the Redis AOF dir")
    record.update(method="aof", path=f"{dest}/{aof_dir}", aof_dir=aof_dir)
    if target.dry:
        output.dry_command(target.name, f"would load {record['path']} and record key counts and a sample digest")
        return
    if source.sample_keys and target.run(f"command -v {quote(target.settings.backup.redis_server)} >/dev/null").ok:
        doc = run_dump_digest(target, dest, aof_dir=aof_dir, sample=source.sample_keys, timeout=source.bgsave_timeout_s,
                              server=target.settings.backup.redis_server)
        record["sample_source"] = "dump"
    else:
        sample = int(source.sample_keys) if getattr(live, "can_sample", True) else 0
        doc = run_live(target, "probe", lambda: read_probe(live, sample))
        record["sample_source"] = "live"
    record.update(db_keys=doc.get("db_keys"), keys=doc.get("keys"), sample_size=source.sample_keys,
                  sample_digest=doc.get("sample_digest"))


def stage(target: Target, source: RedisSource, run_dir: str) -> Staged | None:
    """The dump (BGSAVE only if needed) at the stable path, described by redis-check-rdb (or a load).
    One conversation with the live Redis (one SSH tunnel for a remote host), closed at the end."""
    r = target.settings.redis
    if not (source.enabled and r.enabled):
        return None
    started = time.monotonic()
    with open_live(target) as live:
        staged = stage_with(target, source, run_dir, live)
    staged.duration_s = time.monotonic() - started
    return staged


def stage_with(target: Target, source: RedisSource, run_dir: str, live: Any) -> Staged:
    r = target.settings.redis
    info = run_info(target, live)
    record: dict[str, Any] = {"kind": "redis", "name": "redis", "version": info.get("version"),
                              "server": f"{r.host}:{r.port}", "live_db_keys": info.get("db_keys")}
    data_dir = run_host_data_dir(target, source, info, record)
    if info.get("appendonly") and not source.aof_fallback:
        stage_aof(target, source, info, data_dir, run_dir, live, record)
        return Staged("redis", record)
    info["dump"] = run_stat_dump(target, f"{data_dir}/{info.get('dbfilename') or 'dump.rdb'}")
    reuse, why = make_save_decision(info)
    if reuse:
        record.update(save="existing", save_reason=why, lastsave=info.get("lastsave"))
        output.info(target.name, f"redis: using the dump on disk ({why}): no BGSAVE")
    elif target.dry:  # BGSAVE is a write: printed, not sent
        output.dry_command(target.name, f"redis at {r.host}:{r.port}: would run bgsave and wait for LASTSAVE to advance")
        record.update(save="bgsave", save_reason=why, lastsave=None, waited_for_running_save=None)
    else:
        saved = run_live(target, "bgsave", lambda: run_bgsave(live, source.bgsave_timeout_s))
        record.update(save="bgsave", save_reason=why, lastsave=saved.get("lastsave"),
                      waited_for_running_save=saved.get("waited_for_running_save"))
    if info.get("appendonly"):
        record["note"] = "AOF enabled: an RDB was taken with BGSAVE (aof_fallback: true)"
    dump = run_stage_dump(target, f"{data_dir}/{info.get('dbfilename') or 'dump.rdb'}")
    record.update(method="bgsave", path=dump.path, stage=dump.how)
    # no hash_paths: the dump carries its own CRC64 (recorded, and checked with the size by the restore
    # test's "redis: rdb checksum" and redis-check-rdb), so a changed dump is not read once more to sha256 it
    staged = Staged("redis", record, backup_paths=[dump.stable_dir])
    if target.dry:
        output.dry_command(target.name, f"would describe {dump.path} ({source.dump_check})")
        return staged
    if dump.why_copied:
        record["copy_reason"] = dump.why_copied[-200:]
    record.update(bytes=dump.size, mtime=dump.mtime, rdb_crc64=dump.crc64)
    record.update(describe_dump(target, source, dump, live=live))
    return staged


# -- backup: staging size, report summary -------------------------------------------------------

def staging_paths(target: Target, source: RedisSource) -> list[str]:
    """What the run will copy: nothing when the dump can be hard-linked at the stable path; else the
    dump on disk (its last dump: a BGSAVE now may be larger by what was written since) or the AOF dir."""
    r = target.settings.redis
    if not (source.enabled and r.enabled):
        return []
    with open_live(target) as live:
        info = run_info(target, live)
    if not (source.data_dir or info.get("dir")):
        return []
    data_dir = run_host_data_dir(target, source, info)
    if info.get("appendonly") and not source.aof_fallback:
        return [f"{data_dir}/{info.get('appenddirname') or 'appendonlydir'}"]
    live = f"{data_dir}/{info.get('dbfilename') or 'dump.rdb'}"
    return [] if run_link_will_do(target, live) else [live]


def describe(record: dict[str, Any]) -> dict[str, Any]:
    return dict(record)


def live_paths(source: RedisSource | None, hosts: list[Any], records: list[dict[str, Any]]) -> list[str | None]:
    """Redis' data dir, and the stable dump dir: its dump.rdb is a hard link to the live dump."""
    stable = []
    for settings in hosts:
        try:
            stable.append(f"{stable_root(settings.backup.staging_dir)}/{KEY}")
        except (AttributeError, RagopsError):
            continue
    return [source.data_dir if source is not None else None, *stable, *[r.get("data_dir") for r in records]]


# -- restore test: tools (the checks are in redis_verify) ---------------------------------------

def make_tools(target: Target, source: RedisSource) -> list[tuple[str, str, str]]:
    return [(target.settings.backup.redis_server, "backup.redis_server (ragops.yaml)", "loads the restored dump"),
            (source.check_rdb, "sources.redis.check_rdb (backup policy)", "validates the restored dump")]


def preflight(target: Target, source_host: Any, source: RedisSource) -> None:
    """redis-server and redis-check-rdb must exist on the verifying host: else a setup error (exit 2)."""
    if not (source.enabled and source_host.settings.redis.enabled):
        return
    if target.settings.docker.data_tasks == "containers":  # the tools are the redis image's
        from .compose_roles import run_discover

        run_discover(target).container("redis", target.name)
        return
    missing = find_missing_tool(target, make_tools(target, source))
    if missing is not None:
        raise make_missing_tool_error(target, *missing)


def end(ctx: TestContext) -> None:
    """Always: stop the throwaway server (no-op if none started), or remove its containers."""
    from .redis_containers import run_remove_server
    from .redis_verify import CONTAINERS

    for name in ctx.state.pop(CONTAINERS, []):
        run_remove_server(ctx.target, name)
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
        src = f"{restored}  (RDB, {record.get('keys', record.get('keys_read', '?'))} keys)"
    expect = (f"counts {record.get('db_keys')}" if record.get("db_keys") else
              f"{record.get('keys_read', '?')} keys read at backup, minus those expired since")
    return [f"Redis: restored dump: {src}",
            f"Redis: DIR=$(redis-cli -h {r.host} -p {r.port} CONFIG GET dir | tail -1); "
            f"FILE=$(redis-cli -h {r.host} -p {r.port} CONFIG GET dbfilename | tail -1)",
            "Redis: stop the server (systemctl stop redis-server / docker compose stop redis) — NOT SHUTDOWN SAVE",
            f"Redis: mv \"$DIR/$FILE\" \"$DIR/$FILE.before-restore\" && cp {quote(restored)} \"$DIR/$FILE\" "
            "&& chown redis:redis \"$DIR/$FILE\"",
            f"Redis: start the server, then check: redis-cli INFO keyspace (expect the manifest's {expect})"]


__all__ = ["KEY", "bring_up", "check_record", "compare", "describe", "end", "live_paths", "make_server_command",
           "make_server_stop_command", "open_live", "plan_checks", "preflight", "run_check_rdb", "run_dump_digest",
           "stage", "staging_paths", "start", "verify"]
