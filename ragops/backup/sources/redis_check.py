"""Describing the staged Redis dump without loading it (``sources.redis.dump_check``).

``check-rdb`` (default): ``redis-check-rdb`` streams the staged file (little RAM, no server) and its
output gives the record's figures: checksum OK, keys read, expires, already expired, redis-ver.
``load``: also today's description from a throwaway ``redis-server`` loading the staged file
(per-db key counts and the key-sample digest; RAM in proportion to the dump).

Either is skipped when the staged file is the one described last time: same dev:inode, size,
mtime and ctime (a small JSON cache, ``<staging_dir>/stable/.redis-check.json``, beside the stable
dir, so not in the snapshot); an unchanged dump costs one ``stat``.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from ... import output
from ...errors import ConfigError, StepError
from ...seam import Target, quote
from ..policy_sources import RedisSource
from .redis_commands import read_probe
from .redis_containers import run_dump_digest_in_container
from .redis_server import open_live, run_dump_digest, run_live
from .redis_stage import CACHE_NAME, StagedDump, private_path

CACHE_FORMAT = 1
_INFO = {name: re.compile(rf"^\[info\] (\d+) {name.replace('_', ' ')}\s*$", re.M)
         for name in ("keys_read", "expires", "already_expired")}
_VERSION = re.compile(r"AUX FIELD redis-ver = '([^']{1,40})'")
LOAD_FIELDS = ("db_keys", "keys", "sample_digest", "sampled")


def parse_check_rdb(text: str) -> dict[str, Any]:
    """redis-check-rdb's figures: checksum_ok (False when saved with ``rdbchecksum no``), looks_ok,
    keys_read, expires, already_expired (None when not printed), redis_ver of the writer."""
    figures: dict[str, Any] = {"checksum_ok": "Checksum OK" in text, "looks_ok": "RDB looks OK" in text}
    for name, pattern in _INFO.items():
        found = pattern.search(text)
        figures[name] = int(found.group(1)) if found else None
    version = _VERSION.search(text)
    figures["rdb_redis_ver"] = version.group(1) if version else None
    return figures


def run_check_rdb(target: Target, check_rdb: str, path: str, *, what: str = "staged dump") -> dict[str, Any]:
    """redis-check-rdb on ``path``: its figures; ConfigError when the tool is missing (exit 2), StepError
    when it rejects the file."""
    if target.settings.docker.data_tasks == "containers":  # in a throwaway container of the redis image
        from .redis_containers import run_check_rdb as run_in_container

        res = run_in_container(target, check_rdb, path)
    else:
        res = target.run(f"{quote(check_rdb)} {quote(path)}")
    if res.exited in (126, 127):  # the shell's "not found" / "not executable": a setup error, not a bad dump
        raise ConfigError(f"{target.name}: {check_rdb!r} is not installed or not executable on the host: "
                          "install redis-tools or point the policy setting sources.redis.check_rdb at it")
    text = res.stdout + res.stderr
    figures = parse_check_rdb(text)
    if not res.ok or not figures["looks_ok"] or figures["keys_read"] is None:
        raise StepError(f"{target.name}: {check_rdb} rejected the {what}: {text.strip()[-300:]}")
    return figures


def read_cache(text: str) -> dict[str, Any]:
    """The cache document, or {} when absent or not ours (never trusted beyond its own format)."""
    try:
        doc = json.loads(text) if text.strip() else {}
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) and doc.get("format") == CACHE_FORMAT else {}


def _cached(cache: dict[str, Any], identity: str, part: str, key: dict[str, Any]) -> dict[str, Any] | None:
    entry = cache.get(part)
    if cache.get("identity") == identity and isinstance(entry, dict) and entry.get("key") == key \
            and isinstance(entry.get("result"), dict):
        return entry["result"]
    return None


def describe_dump(target: Target, source: RedisSource, dump: StagedDump, *, live: Any = None) -> dict[str, Any]:
    """The record's description of the staged dump (redis-check-rdb and, with ``dump_check: load``,
    the throwaway-load counts and digest), re-computed only when the staged file changed. ``live``:
    the open client of the live Redis (else one is opened when its sample is needed)."""
    cache = read_cache(dump.cache_text)
    fresh: dict[str, Any] = {"format": CACHE_FORMAT, "identity": dump.identity}
    fields: dict[str, Any] = {"dump_check": source.dump_check}
    if source.verify:
        key: dict[str, Any] = {"check_rdb": source.check_rdb}
        result = _cached(cache, dump.identity, "check", key)
        fields["check_cached"] = result is not None
        if result is None:
            result = {**run_check_rdb(target, source.check_rdb, dump.path), "checked_at": int(time.time())}
        fresh["check"] = {"key": key, "result": result}
        fields.update(check=f"{source.check_rdb}: ok", checksum_ok=result["checksum_ok"], keys_read=result["keys_read"],
                      expires=result["expires"], already_expired=result["already_expired"],
                      rdb_redis_ver=result["rdb_redis_ver"], checked_at=result["checked_at"])
    else:
        fields["check"] = "skipped (sources.redis.verify: false)"
    if source.dump_check == "load":
        server = target.settings.backup.redis_server
        in_containers = target.settings.docker.data_tasks == "containers"  # the redis service's image
        if source.sample_keys and (in_containers or target.run(f"command -v {quote(server)} >/dev/null").ok):
            key = {"server": "redis image" if in_containers else server, "sample": str(source.sample_keys)}
            loaded = _cached(cache, dump.identity, "load", key)
            fields["load_cached"] = loaded is not None
            if loaded is None:
                doc = run_dump_digest_in_container(target, dump.stable_dir, sample=source.sample_keys,
                                                   timeout=source.bgsave_timeout_s) if in_containers else \
                    run_dump_digest(target, dump.stable_dir, sample=source.sample_keys,
                                    timeout=source.bgsave_timeout_s, server=server)
                loaded = {k: doc.get(k) for k in LOAD_FIELDS}
            fresh["load"] = {"key": key, "result": loaded}
            fields["sample_source"] = "dump"
        else:  # no redis-server on the host: the live server, right after the save (approximate under writes)
            loaded = run_live_probe(target, int(source.sample_keys), live)
            fields["sample_source"] = "live"
        fields.update(db_keys=loaded.get("db_keys"), keys=loaded.get("keys"), sample_size=source.sample_keys,
                      sample_digest=loaded.get("sample_digest"))
    if fresh != cache:
        run_write_cache(target, private_path(dump.stable_dir, CACHE_NAME), json.dumps(fresh, sort_keys=True) + "\n")
    return fields


def run_live_probe(target: Target, sample: int, live: Any = None) -> dict[str, Any]:
    """Counts and (where the client can) the sample digest of the live server, right after the save."""
    if live is None:
        with open_live(target) as client:
            return run_live_probe(target, sample, client)
    n = sample if getattr(live, "can_sample", True) else 0  # redis-cli in a container: counts only
    return run_live(target, "probe", lambda: read_probe(live, n))


def run_write_cache(target: Target, path: str, text: str) -> None:
    """Write the cache atomically (temp + rename); a full disk is the staging disk's one clear error,
    any other failure only costs a re-check next time (a warning)."""
    tmp = f"{path}.tmp"
    res = target.run(f"umask 077 && cat > {quote(tmp)} && mv -f -- {quote(tmp)} {quote(path)}", stdin=text, write=True)
    if res.ok or res.dry:
        return
    detail = (res.stderr.strip() or res.stdout.strip())[-300:]
    target.run(f"rm -f -- {quote(tmp)}", write=True)
    if "No space left on device" in detail:
        raise StepError(f"{target.name}: writing {path} failed: no space left on device (staging disk full); {detail[-200:]}")
    output.warn(target.name, f"redis: could not write the description cache {path} (re-checked next time): {detail}")
