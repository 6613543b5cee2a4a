"""ragops-manifest.json: what a snapshot holds, written INTO the staging dir so it is in the snapshot.

Format (``format: 1``; every path absolute, as restic stores and restores it)::

    {
      "format": 1, "tool": "ragops", "tool_version": "0.1.0", "restic_version": "0.14.0",
      "host": "prod1", "created": "2026-11-28T21:00:00Z", "created_ts": 1795900000.0,
      "policy": {"name": "default", "tags": [...], "repository": "s3:...", "retention": {...}},
      "staging_dir": "/var/lib/ragops/staging/run-20261128T210000Z-abc123",
      "backup_paths": ["/var/lib/ragops/staging/run-...", "/etc/rag"],   # what restic was given
      "sources": [                                                        # one record per source
        {"kind": "redis", "name": "redis", "method": "bgsave"|"aof", "path": ".../redis/dump.rdb",
         "sha256": "...", "bytes": 3400000, "db_keys": {"0": 100000}, "keys": 100000,
         "sample_size": 1000, "sample_digest": "...", "sample_source": "dump"|"live", ...},
        {"kind": "chroma", "name": "chroma", "strategy": "stop"|"pause"|"live", "data_dir": "/srv/chroma",
         "path": ".../chroma", "integrity_check": "ok",
         "collections": [{"name", "id", "count", "dimension", "metric", "embedding_model",
                          "ids_digest", "k", "probes": [{"id", "top_k": [...], "distances": [...]}]}]},
        {"kind": "paths", "name": "paths", "entries": [{"path", "exists", "files", "bytes", "exclude"}]}
      ],
      "files": {"<absolute staged file>": {"sha256": "...", "bytes": N}, ...}
    }

Each record is written by its data source's ``stage`` (``kind`` is the source's registry key) and
checked after a restore by the same source's ``verify`` (``ragops.backup.sources.registry``). The
restore test reads the manifest from the restored tree (``<restore root><staging_dir>/ragops-manifest.json``).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from .. import __version__ as tool_version
from ..errors import StepError
from ..seam import Target
from ..seam_runners import CmdResult
from .sources import OWNER_NAME, parse_json_line
from .sources.hooks import HostScripts, Scripts

FORMAT_VERSION = 1
MANIFEST_NAME = "ragops-manifest.json"
REQUIRED = ("format", "tool_version", "restic_version", "host", "created", "policy", "staging_dir", "sources", "files")



def make_hash_args(root: str) -> list[str]:
    """``ragops/remote/hash_files.py`` arguments: every file below ``root`` except the manifest and
    the run's owner marker (not in the snapshot)."""
    return [root, MANIFEST_NAME, OWNER_NAME]


def run_hash(target: Target, root: str, scripts: Scripts | None = None) -> CmdResult:
    """Hash the staged files below ``root`` on the host (one pass); the backup and the restore test share it."""
    return (scripts or HostScripts(target)).run_script("hash_files", make_hash_args(root))


def make_cached_hash_args(run_dir: str, stable_paths: list[str], cache: str) -> list[str]:
    """Arguments hashing the run dir (the manifest and owner marker aside) and the stable paths, with
    the cache keyed by path, size, mtime and inode (an unchanged stable file is not read again)."""
    return ["--roots", run_dir, *stable_paths, "--skip", MANIFEST_NAME, "--skip", OWNER_NAME, "--cache", cache]


def run_hash_files(target: Target, run_dir: str, stable_paths: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """sha256 and size of every staged file (on the host, one pass); stable paths through the cache."""
    if target.dry:
        return {}
    if stable_paths:
        from .sources.stable import stable_root

        cache = f"{stable_root(target.settings.backup.staging_dir)}/.hash-cache.json"
        res = HostScripts(target).run_script("hash_files", make_cached_hash_args(run_dir, stable_paths, cache), write=True)
    else:
        res = run_hash(target, run_dir)
    if not res.ok:
        raise StepError(f"{target.name}: hashing the staged files in {run_dir} failed: {res.stderr.strip()[-300:]}")
    return parse_json_line(res.stdout, "hash staged files")["files"]


def check_absolute(doc: dict[str, Any]) -> list[str]:
    """Every path in the manifest must be absolute (restic stores relative ones under '/')."""
    bad = [p for p in [doc["staging_dir"], *doc.get("backup_paths", []), *doc["files"]] if not os.path.isabs(p)]
    for rec in doc["sources"]:
        bad += [rec[k] for k in ("path", "data_dir") if isinstance(rec.get(k), str) and not os.path.isabs(rec[k])]
    return bad


def make_manifest(*, host: str, policy_name: str, policy: Any, run_dir: str, records: list[dict[str, Any]],
                  files: dict[str, dict[str, Any]], restic_version: str | None, backup_paths: list[str],
                  now: float | None = None) -> dict[str, Any]:
    """The manifest document (pure). Fills each record's sha256/bytes for a staged single file."""
    now = time.time() if now is None else now
    records = [dict(r) for r in records]
    for rec in records:
        if isinstance(rec.get("path"), str) and rec["path"] in files:
            rec.update(sha256=files[rec["path"]]["sha256"], bytes=files[rec["path"]]["bytes"])
        elif isinstance(rec.get("path"), str):
            below = [v["bytes"] for p, v in files.items() if p.startswith(rec["path"].rstrip("/") + "/")]
            if below:
                rec.update(files=len(below), bytes=sum(below))
    doc = {
        "format": FORMAT_VERSION,
        "tool": "ragops",
        "tool_version": tool_version,
        "restic_version": restic_version,
        "host": host,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "created_ts": round(now, 3),
        "policy": {"name": policy_name, "tags": list(policy.tags), "repository": policy.repository.url,
                   "retention": policy.retention.model_dump(exclude_none=True)},
        "staging_dir": run_dir,
        "backup_paths": list(backup_paths),
        "sources": records,
        "files": dict(sorted(files.items())),
    }
    bad = check_absolute(doc)
    if bad:
        raise StepError(f"manifest: relative path(s) {bad[:3]}: every path must be absolute")
    return doc


def validate_manifest(doc: Any) -> list[str]:
    """Problems of a manifest read back from a snapshot (empty list: usable by a restore test)."""
    if not isinstance(doc, dict):
        return ["manifest: not a JSON object"]
    problems = [f"manifest: missing {key}" for key in REQUIRED if key not in doc]
    if problems:
        return problems
    if doc["format"] != FORMAT_VERSION:
        problems.append(f"manifest: format {doc['format']} is not {FORMAT_VERSION}")
    problems += [f"manifest: relative path {p}" for p in check_absolute(doc)]
    return problems


def run_write_manifest(target: Target, run_dir: str, doc: dict[str, Any]) -> str:
    path = f"{run_dir}/{MANIFEST_NAME}"
    target.put_text(json.dumps(doc, indent=1, sort_keys=False) + "\n", path, mode="0600")
    return path

