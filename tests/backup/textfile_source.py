"""A test-only data source in ONE module: one plain text file, staged by copy, proven after restore.

Registered by tests/backup/test_registry.py with one line (the entry ``"textfile"`` in
``registry.SOURCES``, set with monkeypatch so it is undone after the test); nothing else in ragops
knows it. Its settings are not in the policy schema, so it brings its own
(:data:`SETTINGS`, set by the test) through the optional ``settings`` verb.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

from ragops.backup.sources import Staged, make_copy_command, run_or_fail
from ragops.backup.sources.hooks import Check, TestContext

KEY = "textfile"


@dataclass
class Settings:
    path: str | None = None  # the live file (absolute); None: nothing to back up


SETTINGS = Settings()


def settings(policy: Any) -> Settings:
    return SETTINGS


def stage(target: Any, source: Settings, run_dir: str) -> Staged | None:
    if not source.path:
        return None
    started = time.monotonic()
    dest = f"{run_dir}/{KEY}/file.txt"
    run_or_fail(target, f"mkdir -m 0700 {run_dir}/{KEY} && " + make_copy_command(source.path, dest), "staging the text file")
    text = target.read_text(dest) or ""
    record = {"kind": KEY, "name": KEY, "path": dest, "live": source.path, "lines": len(text.splitlines()),
              "digest": hashlib.sha256(text.encode()).hexdigest()}
    return Staged(KEY, record, duration_s=time.monotonic() - started)


def staging_paths(target: Any, source: Settings) -> list[str]:
    return [source.path] if source.path else []


def live_paths(source: Settings | None, hosts: list[Any], records: list[dict[str, Any]]) -> list[str | None]:
    return [source.path if source else None, *[r.get("live") for r in records]]


def plan_checks(record: dict[str, Any], options: dict[str, Any]) -> list[str]:
    return ["textfile: content"]


def verify(ctx: TestContext, record: dict[str, Any]) -> list[Check]:
    restored = ctx.restored(record["path"])
    text = ctx.target.read_text(restored)
    digest = hashlib.sha256((text or "").encode()).hexdigest() if text is not None else None
    return [Check("textfile: content", digest == record["digest"],
                  f"{restored}: {len((text or '').splitlines())} line(s), digest {str(digest)[:12]} "
                  f"(manifest {record['digest'][:12]})")]


def bring_up(record: dict[str, Any], target_dir: str, settings: Any) -> list[str]:
    return [f"Text file: cp {target_dir}{record['path']} {record['live']}"]
