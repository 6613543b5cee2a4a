"""restic `init` and `backup`: their arguments, restic's --json summary and progress lines, and
running them on the host through the seam."""

from __future__ import annotations

import json as jsonlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import output
from ..errors import ConfigError
from ..resources import wrap_nice
from ..seam import Target
from .errors import RepoMissingError, ResticError
from .repository import (
    Repo,
    check_reachable,
    classify_failure,
    make_restic_command,
    make_secrets,
    parse_json_lines,
    run_restic,
    with_stale_lock_retry,
)

if TYPE_CHECKING:
    from .s3 import BucketInfo


@dataclass
class BackupSummary:
    snapshot_id: str | None
    files_new: int = 0
    files_changed: int = 0
    files_unmodified: int = 0
    data_added: int = 0
    total_files_processed: int = 0
    total_bytes_processed: int = 0
    duration_s: float = 0.0  # restic's own total_duration (after opening the repository)
    wall_s: float = 0.0  # the whole restic command, key derivation included
    errors: list[str] = field(default_factory=list)  # files restic could not read (exit 3)
    dry: bool = False


def run_check_bucket(target: Target, repo: Repo) -> BucketInfo | None:
    """For an s3 repository: check the bucket from the controller (create it if the policy allows;
    under --dry the creation is printed, not made) and report its versioning state. None otherwise."""
    if not repo.is_s3:
        return None
    from .s3 import ensure_bucket

    bucket = ensure_bucket(repo, create=repo.create_bucket, dry=target.dry, who=target.name)
    output.info(target.name, f"{repo.describe()}: {bucket.message}")
    return bucket


def init(target: Target, repo: Repo, *, check_bucket: bool = True) -> bool:
    """Create the repository unless it exists. True if created now; an existing one is left alone
    (its password is verified on the way). For s3: first ``run_check_bucket`` (``check_bucket=False``:
    the caller just did)."""
    if check_bucket:
        run_check_bucket(target, repo)
    try:
        run_restic(target, repo, ["cat", "config"], json=False, what="init (existence check)")
        output.info(target.name, f"{repo.describe()} already initialized")
        return False
    except RepoMissingError:
        pass
    res = run_restic(target, repo, ["init"], json=False, write=True, what="init")
    if not res.dry:
        output.info(target.name, f"{repo.describe()} created")
    return not res.dry


def make_backup_args(paths: list[str], *, tags: list[str], host_tag: str | None = None,
                     exclude: list[str] | None = None, dry: bool = False, parent: str | None = None) -> list[str]:
    """`backup` arguments; refuses relative paths (restic would store them under / and a later
    --include would silently match nothing)."""
    bad = [p for p in paths if not os.path.isabs(p)]
    if bad or not paths:
        raise ConfigError(f"backup paths must be absolute: {', '.join(bad) or '(none given)'}")
    args = ["backup"]
    for tag in tags:
        args += ["--tag", tag]
    if host_tag:
        args += ["--host", host_tag]
    for pattern in exclude or []:
        args += ["--exclude", pattern]
    if parent:  # the staging dir differs per run, so restic would not find the parent by path
        args += ["--parent", parent]
    if dry:
        args.append("--dry-run")
    return args + list(paths)


def parse_backup_output(stdout: str, dry: bool) -> BackupSummary:
    summary = BackupSummary(snapshot_id=None, dry=dry)
    for msg in parse_json_lines(stdout):
        kind = msg.get("message_type")
        if kind == "error":
            err = msg.get("error")
            text = err.get("message") if isinstance(err, dict) else err
            summary.errors.append(f"{msg.get('item', '')}: {text or msg.get('during', 'error')}")
        elif kind == "summary":
            summary.snapshot_id = None if dry else msg.get("snapshot_id")  # --dry-run saves nothing
            for name in ("files_new", "files_changed", "files_unmodified", "data_added",
                         "total_files_processed", "total_bytes_processed"):
                setattr(summary, name, int(msg.get(name) or 0))
            summary.duration_s = float(msg.get("total_duration") or 0.0)
    return summary


def backup(target: Target, repo: Repo, paths: list[str], *, tags: list[str], host_tag: str | None = None,
           exclude: list[str] | None = None, timeout: float | None = None, parent: str | None = None) -> BackupSummary:
    """Snapshot absolute paths. Under --dry: `backup --dry-run` (a read) reports what would be sent."""
    args = make_backup_args(paths, tags=tags, host_tag=host_tag, exclude=exclude, dry=target.dry, parent=parent)
    cmd = wrap_nice(target, make_restic_command(repo, args, json=True))  # resources.nice/ionice
    check_reachable(target, repo)

    def once() -> Any:
        res = target.run(cmd, secrets=make_secrets((repo, "")), timeout=timeout, on_line=make_progress(target.name),
                         requires=repo.tool)
        if not res.ok and res.exited != 3:  # 3: snapshot made, some files unreadable
            raise classify_failure(repo, target.name, res, "backup")
        return res

    started = time.monotonic()
    res = with_stale_lock_retry(target, repo, once)
    summary = parse_backup_output(res.stdout, target.dry)
    summary.wall_s = time.monotonic() - started
    if not summary.dry and not summary.snapshot_id:
        raise ResticError(f"{target.name}: {repo.describe()}: backup finished without a snapshot id: {res.stderr.strip()[-400:]}")
    verb = "would add" if summary.dry else f"snapshot {summary.snapshot_id}: added"
    output.info(target.name, f"backup {verb} {summary.data_added} bytes ({summary.files_new} new, "
                f"{summary.files_changed} changed files of {summary.total_files_processed})")
    return summary


def make_progress_line(doc: dict[str, Any]) -> str:
    """One progress line from a restic ``--json`` status message: percent, files, bytes, ETA."""
    from ..report import format_bytes

    eta = doc.get("seconds_remaining")
    eta_text = f", ETA {int(eta) // 60}m{int(eta) % 60:02d}s" if isinstance(eta, (int, float)) and eta > 0 else ""
    total = doc.get("total_bytes")
    return (f"backup {float(doc.get('percent_done') or 0) * 100:.0f}%: {doc.get('files_done', 0)}/{doc.get('total_files', '?')} "
            f"files, {format_bytes(int(doc.get('bytes_done') or 0))}/{format_bytes(int(total)) if isinstance(total, int) else '?'}"
            f"{eta_text}")


def make_progress(host: str, every_s: float = 2.0) -> Callable[[str], None]:
    """Show restic's --json status lines as a progress line every few seconds."""
    last = [0.0]

    def show(line: str) -> None:
        if '"status"' not in line or time.monotonic() - last[0] < every_s:
            return
        try:
            doc = jsonlib.loads(line)
        except ValueError:
            return
        last[0] = time.monotonic()
        output.info(host, make_progress_line(doc))

    return show
