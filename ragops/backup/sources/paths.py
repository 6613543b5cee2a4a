"""Paths source: configuration, models and custom data, backed up IN PLACE (not copied to staging).

Each path is absolute (the schema enforces it); its restic ``--exclude`` patterns go with it. The
manifest records per path whether it exists, its file count and bytes (counted with ``find``
before restic runs; excluded names are not counted when the pattern is a plain name glob).
"""

from __future__ import annotations

import time
from typing import Any

from ... import output
from ...seam import Target, quote
from ..policy_sources import PathSource
from . import Staged


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


def run_stage(target: Target, sources: list[PathSource]) -> Staged | None:
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
