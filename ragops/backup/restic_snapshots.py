"""restic `snapshots`, `forget`, `prune` and `stats`: the snapshot list, retention applied to it,
and the repository's sizes."""

from __future__ import annotations

import json as jsonlib
from dataclasses import dataclass, field
from typing import Any

from ..seam import Target
from .policy import RetentionSettings
from .repository import Repo, run_restic


@dataclass
class Snapshot:
    id: str
    short_id: str
    time: str
    hostname: str
    paths: list[str]
    tags: list[str] = field(default_factory=list)
    original: str | None = None  # the source snapshot's id for a snapshot made by `restic copy`
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Snapshot:
        return cls(id=data["id"], short_id=data.get("short_id", data["id"][:8]), time=data.get("time", ""),
                   hostname=data.get("hostname", ""), paths=list(data.get("paths") or []),
                   tags=list(data.get("tags") or []), original=data.get("original"), raw=data)

    def matches(self, snapshot_id: str) -> bool:
        """Same snapshot by (short) id, or a copy of it (its `original`)."""
        return any(x and x.startswith(snapshot_id) for x in (self.id, self.original))


@dataclass
class ForgetResult:
    keep: list[Snapshot]
    remove: list[Snapshot]
    dry: bool


def snapshots(target: Target, repo: Repo, *, tags: list[str] | None = None, host: str | None = None) -> list[Snapshot]:
    """Snapshots, oldest first; ``tags`` means all of these tags (restic --tag a,b)."""
    args = ["snapshots"]
    if tags:
        args += ["--tag", ",".join(tags)]
    if host:
        args += ["--host", host]
    res = run_restic(target, repo, args)
    return [Snapshot.from_json(s) for s in jsonlib.loads(res.stdout or "[]") or []]


def verify_present(target: Target, repo: Repo, snapshot_id: str) -> Snapshot | None:
    """The snapshot (or its copy) in repo, else None."""
    return next((s for s in snapshots(target, repo) if s.matches(snapshot_id)), None)


def make_forget_args(retention: RetentionSettings, *, tags: list[str], host: str | None, dry: bool) -> list[str]:
    args = ["forget", "-q", "--group-by", retention.group_by]
    for name in ("last", "hourly", "daily", "weekly", "monthly", "yearly"):
        value = getattr(retention, f"keep_{name}")
        if value is not None:
            args += [f"--keep-{name}", str(value)]
    if retention.keep_within:
        args += ["--keep-within", retention.keep_within]
    for tag in retention.keep_tags:
        args += ["--keep-tag", tag]
    if tags:
        args += ["--tag", ",".join(tags)]
    if host:
        args += ["--host", host]
    if dry:
        args.append("--dry-run")
    return args


def forget(target: Target, repo: Repo, retention: RetentionSettings, *, tags: list[str],
           host: str | None = None, dry: bool | None = None) -> ForgetResult:
    """Apply retention to the snapshots with these tags (and host). Dry (default: target.dry) runs
    restic's own `forget --dry-run`, a read that lists what would go. Prune is separate."""
    dry = target.dry if dry is None else dry
    res = run_restic(target, repo, make_forget_args(retention, tags=tags, host=host, dry=dry), write=not dry)
    keep: list[Snapshot] = []
    remove: list[Snapshot] = []
    for group in jsonlib.loads(res.stdout or "[]") or []:
        keep += [Snapshot.from_json(s) for s in group.get("keep") or []]
        remove += [Snapshot.from_json(s) for s in group.get("remove") or []]
    return ForgetResult(keep=keep, remove=remove, dry=dry)


def prune(target: Target, repo: Repo) -> str:
    """Remove data no snapshot references. Under --dry: `prune --dry-run` (a read)."""
    args = ["prune"] + (["--dry-run"] if target.dry else [])
    return run_restic(target, repo, args, json=False).stdout


def stats(target: Target, repo: Repo, snapshot_id: str | None = None, mode: str = "restore-size") -> dict[str, Any]:
    """`restic stats --json`: total_size, total_file_count (+ more in raw-data mode)."""
    args = ["stats", "--mode", mode] + ([snapshot_id] if snapshot_id else [])
    data: dict[str, Any] = jsonlib.loads(run_restic(target, repo, args).stdout or "{}")
    return data
