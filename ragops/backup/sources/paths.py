"""Paths source: configuration, models and custom data, backed up IN PLACE (not copied to staging).

Each path is absolute (the schema enforces it); its restic ``--exclude`` patterns go with it. The
manifest records per path whether it exists, its file count and bytes (counted with ``find``
before restic runs; excluded names are not counted when the pattern is a plain name glob). A restore
test has nothing to start for them (their files are restic's to check); a real restore prints one
copy-back step per path.
"""

from __future__ import annotations

import time
from typing import Any

from ... import output
from ...seam import Target, quote
from ..policy_sources import PathSource
from . import Staged
from .hooks import Check, TestContext, is_safe_path

KEY = "paths"


def make_count_command(source: PathSource) -> str:
    """Print ``MISSING`` or ``<files> <bytes>`` for a path (regular files, not following links)."""
    prune = ""
    for pattern in source.exclude:
        test = "-path" if "/" in pattern else "-name"
        prune += f"{test} {quote(pattern)} -prune -o "
    return (f"P={quote(source.path)}; [ -e \"$P\" ] || {{ echo MISSING; exit 0; }}; "
            f"find -P \"$P\" {prune}-type f -printf '%s\\n' | awk '{{n++; b+=$1}} END {{printf \"%d %d\\n\", n, b}}'")


def make_excludes(source: PathSource) -> list[str]:
    """restic --exclude patterns anchored below the source's path, so that a name glob like
    ``*.bin`` never excludes files of another path (e.g. the staged Chroma segments)."""
    base = source.path.rstrip("/")
    out: list[str] = []
    for pattern in source.exclude:
        if pattern.startswith("/"):
            out.append(pattern)
        else:
            out += [f"{base}/{pattern}", f"{base}/**/{pattern}"]
    return out


def parse_count(stdout: str) -> tuple[bool, int, int]:
    line = stdout.strip().splitlines()[-1] if stdout.strip() else "MISSING"
    if line == "MISSING":
        return False, 0, 0
    files, size = line.split()
    return True, int(files), int(size)


def stage(target: Target, sources: list[PathSource], run_dir: str) -> Staged | None:
    """Record the paths (counted in place); nothing is copied into ``run_dir``."""
    if not sources:
        return None
    started = time.monotonic()
    entries: list[dict[str, Any]] = []
    paths: list[str] = []
    excludes: list[str] = []
    for source in sources:
        exists, files, size = parse_count(target.run(make_count_command(source)).stdout)
        entries.append({"path": source.path, "exists": exists, "files": files, "bytes": size, "exclude": list(source.exclude)})
        if not exists:
            output.warn(target.name, f"backup path {source.path} does not exist: skipped")
            continue
        paths.append(source.path)
        excludes += make_excludes(source)
    record = {"kind": "paths", "name": "paths", "entries": entries,
              "files": sum(int(e["files"]) for e in entries), "bytes": sum(int(e["bytes"]) for e in entries)}
    return Staged("paths", record, backup_paths=paths, excludes=excludes, duration_s=time.monotonic() - started)


def staging_paths(target: Target, sources: list[PathSource]) -> list[str]:
    return []  # backed up in place: no staging space


def describe(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != "entries"}


def check_record(where: str, rec: dict[str, Any], staging: str) -> list[str]:
    entries = rec.get("entries", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) and is_safe_path(e.get("path")) for e in entries):
        return [f"{where}.entries: not a list of objects with a normalized absolute path"]
    return []


def live_paths(sources: list[PathSource] | None, hosts: list[Any], records: list[dict[str, Any]]) -> list[str | None]:
    out: list[str | None] = [p.path for p in sources or []]
    for rec in records:
        out.append(rec.get("data_dir"))
        out += [e.get("path") for e in rec.get("entries", []) if isinstance(e, dict)]
    return out


def plan_checks(record: dict[str, Any], options: dict[str, Any]) -> list[str]:
    return []  # their files are covered by the repository check


def verify(ctx: TestContext, record: dict[str, Any]) -> list[Check]:
    return []


def bring_up(record: dict[str, Any], target_dir: str, settings: Any) -> list[str]:
    return [f"Files: review, then copy back: rsync -a {quote(target_dir + entry['path'])} {quote(entry['path'])}"
            for entry in record.get("entries", [])]
