"""health's Redis check, through redis-py (:mod:`ragops.redis_client`): PING, persistence, memory.

From the controller, directly for ``local`` and through an SSH tunnel for a remote host; TLS and
an ACL user as configured (``redis:``). Commands sent: PING, INFO (server, persistence, memory)
and TIME, so a health-only ACL user needs ``+ping +info +time`` and no key access. Judged by
:func:`judge_redis` (pure):

- failed: no answer / refused / auth or TLS failure; ``rdb_last_bgsave_status`` or (AOF on)
  ``aof_last_write_status`` not ok;
- degraded: the last save older than ``redis.max_save_age_s`` with unsaved changes; an AOF
  rewrite failing; the dataset still loading; under ``maxmemory-policy noeviction`` memory at or
  above ``redis.memory_warn_percent`` of ``maxmemory`` (a full Redis then refuses writes);
- ok otherwise. The age is measured with Redis' own clock (TIME), not the controller's.
"""

from __future__ import annotations

from typing import Any

from ..config import RedisSettings
from ..redis_client import RedisClientError, open_redis
from ..report import DEGRADED, FAILED, SKIPPED, format_bytes
from ..seam import Target
from ..tunnel import TunnelError
from .health_check import Check

INFO_SECTIONS = ("server", "persistence", "memory")


def read_redis_info(client: Any) -> tuple[dict[str, Any], int]:
    """INFO server + persistence + memory merged, and the server's clock (seconds)."""
    info: dict[str, Any] = {}
    for section in INFO_SECTIONS:
        info.update(client.info(section))
    seconds, _micro = client.time()
    return info, int(seconds)


def _int(info: dict[str, Any], key: str) -> int:
    try:
        return int(info.get(key) or 0)
    except (TypeError, ValueError):
        return 0


def judge_redis(info: dict[str, Any], now: int, r: RedisSettings) -> Check:
    """The Redis check from a PONG-ing server's INFO and clock (pure)."""
    last = _int(info, "rdb_last_save_time")
    used, limit = _int(info, "used_memory"), _int(info, "maxmemory")
    policy = str(info.get("maxmemory_policy", ""))
    aof = _int(info, "aof_enabled") == 1
    percent = round(100.0 * used / limit, 1) if limit else None
    check = Check("redis", figures={
        "redis_version": info.get("redis_version"), "rdb_last_save_time": last, "last_save_age_s": now - last,
        "rdb_last_bgsave_status": info.get("rdb_last_bgsave_status"),
        "rdb_changes_since_last_save": _int(info, "rdb_changes_since_last_save"),
        "aof_enabled": aof, "aof_last_write_status": info.get("aof_last_write_status"),
        "aof_last_bgrewrite_status": info.get("aof_last_bgrewrite_status"),
        "used_memory": used, "maxmemory": limit, "maxmemory_policy": policy, "memory_used_percent": percent,
        "loading": _int(info, "loading") == 1,
    })
    memory = f"{format_bytes(used)} used" + (f" of {format_bytes(limit)} ({percent:g}%, {policy})" if limit else " (no maxmemory)")
    check.message = f"PONG, last save {now - last}s ago ({info.get('rdb_last_bgsave_status')}), {memory}"
    bgsave, aof_write = info.get("rdb_last_bgsave_status"), info.get("aof_last_write_status")
    if bgsave not in (None, "ok") or (aof and aof_write not in (None, "ok")):
        check.worsen(FAILED, f"persistence failing: bgsave {bgsave}, aof write {aof_write if aof else 'off'}")
    if aof and info.get("aof_last_bgrewrite_status") not in (None, "ok"):
        check.worsen(DEGRADED, f"AOF rewrite failing ({info.get('aof_last_bgrewrite_status')})")
    if check.figures["loading"]:
        check.worsen(DEGRADED, "still loading its dataset")
    if now - last > r.max_save_age_s and check.figures["rdb_changes_since_last_save"] > 0:
        check.worsen(DEGRADED, f"last save older than {r.max_save_age_s}s with unsaved changes")
    if percent is not None and policy == "noeviction" and percent >= r.memory_warn_percent:
        check.worsen(DEGRADED, f"memory at {percent:g}% of maxmemory under noeviction (>= {r.memory_warn_percent}%): "
                               "writes fail when full")
    return check


def check_redis(target: Target) -> Check:
    r = target.settings.redis
    if not r.enabled:
        return Check("redis", SKIPPED, "redis checks disabled")
    try:
        with open_redis(target) as client:
            info, now = read_redis_info(client)
    except (RedisClientError, TunnelError) as exc:
        return Check("redis", FAILED, f"PING failed: {exc.reason}", figures={"host": r.host, "port": r.port, "tls": r.tls})
    return judge_redis(info, now, r)
