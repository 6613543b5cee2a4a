"""restic operations, run on the host through the seam: init, backup, snapshots, forget, prune,
check, restore, copy, stats, unlock. Each parses restic's ``--json`` output where the installed
version has it (0.14 lacks it for check and restore) and raises the errors of ``errors.py``.

The facade other modules use::

    from ragops.backup.restic import Repo, make_repo, run_restic, backup, snapshots, ...
"""

from __future__ import annotations

import json as jsonlib
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from .. import output
from ..errors import ConfigError
from ..seam import Target
from .errors import RepoDamagedError, RepoMissingError, ResticError
from .policy import RetentionSettings
from .repository import (
    Repo,
    check_reachable,
    classify_failure,
    detect_version,
    make_repo,
    make_restic_command,
    make_secrets,
    parse_json_lines,
    run_restic,
    unlock,
    with_stale_lock_retry,
)

__all__ = [
    "Repo", "make_repo", "make_restic_command", "run_restic", "detect_version", "unlock",
    "with_stale_lock_retry", "init", "backup", "snapshots", "forget", "prune", "check", "restore",
    "copy", "verify_present", "stats", "BackupSummary", "Snapshot", "ForgetResult", "CheckResult",
    "make_backup_args", "make_forget_args", "make_copy_command",
]


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


@dataclass
class ForgetResult:
    keep: list[Snapshot]
    remove: list[Snapshot]
    dry: bool


@dataclass
class CheckResult:
    ok: bool
    output: str
    read_data_subset: str | None


def init(target: Target, repo: Repo, *, check_bucket: bool = True) -> bool:
    """Create the repository unless it exists. True if created now; an existing one is left alone
    (its password is verified on the way). For s3: first check/create the bucket from the
    controller and report its versioning state (``check_bucket=False``: the caller just did)."""
    if repo.is_s3 and check_bucket:
        from .s3 import ensure_bucket

        bucket = ensure_bucket(repo, create=repo.create_bucket and not target.dry)
        output.info(target.name, f"{repo.describe()}: {bucket.message}")
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
    cmd = make_restic_command(repo, args, json=True)
    check_reachable(target, repo)

    def once() -> Any:
        res = target.run(cmd, secrets=make_secrets((repo, "")), timeout=timeout, on_line=make_progress(target.name))
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
        output.info(host, f"backup {doc.get('percent_done', 0) * 100:.0f}%: {doc.get('files_done', 0)}/"
                          f"{doc.get('total_files', '?')} files, {doc.get('bytes_done', 0)}/{doc.get('total_bytes', '?')} bytes")

    return show


def snapshots(target: Target, repo: Repo, *, tags: list[str] | None = None, host: str | None = None) -> list[Snapshot]:
    """Snapshots, oldest first; ``tags`` means all of these tags (restic --tag a,b)."""
    args = ["snapshots"]
    if tags:
        args += ["--tag", ",".join(tags)]
    if host:
        args += ["--host", host]
    res = run_restic(target, repo, args)
    return [Snapshot.from_json(s) for s in jsonlib.loads(res.stdout or "[]") or []]


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


def check(target: Target, repo: Repo, read_data_subset: str | None = None, *, raise_on_damage: bool = True) -> CheckResult:
    """`restic check [--read-data-subset X]`; text output (0.14 has no check --json)."""
    args = ["check"] + ([f"--read-data-subset={read_data_subset}"] if read_data_subset else [])
    try:
        res = run_restic(target, repo, args, json=False)
    except ResticError as exc:
        if type(exc) is not ResticError:  # missing, password, lock, unreachable: not damage
            raise
        if raise_on_damage:
            raise RepoDamagedError(f"{target.name}: {repo.describe()}: check found problems: {str(exc)[-800:]}") from None
        return CheckResult(ok=False, output=str(exc), read_data_subset=read_data_subset)
    return CheckResult(ok=True, output=res.stdout, read_data_subset=read_data_subset)


_RESTORING = re.compile(r"restoring <Snapshot ([0-9a-f]{8,64}) of")


def parse_restored_snapshot(text: str) -> str | None:
    """The (short) id restic names in its `restoring <Snapshot 1a2b3c4d of [...]` line, if any."""
    match = _RESTORING.search(text or "")
    return match.group(1) if match else None


def restore(target: Target, repo: Repo, snapshot_id: str, target_dir: str, include: list[str] | None = None, *,
            host: str | None = None, tags: list[str] | None = None) -> str:
    """Restore a snapshot (or `latest`, filtered by ``host`` and ``tags``) into target_dir on the
    host. A write. Returns restic's text output (see ``parse_restored_snapshot``)."""
    if not os.path.isabs(target_dir):
        raise ConfigError(f"restore target {target_dir!r} must be an absolute path")
    args = ["restore", snapshot_id, "--target", target_dir]
    if snapshot_id == "latest":
        args += ["--host", host] if host else []
        args += ["--tag", ",".join(tags)] if tags else []
    for pattern in include or []:
        args += ["--include", pattern]
    if target.dry and detect_version(target, repo) >= (0, 17, 0):
        return run_restic(target, repo, args + ["--dry-run"], json=False).stdout
    return run_restic(target, repo, args, json=False, write=True).stdout


def make_copy_command(src: Repo, dst: Repo, snapshot_ids: list[str]) -> str:
    """`restic -r DST ... copy --from-repo SRC [--from-password-file|--from-password-command] IDS`."""
    src_opts, dst_opts = dict(src.options), dict(dst.options)
    conflicts = {k for k in src_opts.keys() & dst_opts.keys() if src_opts[k] != dst_opts[k]}
    if conflicts:  # one restic process, one value per backend option
        raise ResticError(f"copy: {src.url} and {dst.url} need different values for {', '.join(sorted(conflicts))}")
    merged = replace(dst, options=tuple(sorted({**dict(src.options), **dict(dst.options)}.items())))
    args = ["copy", "--from-repo", src.url]
    if src.password_file:
        args += ["--from-password-file", src.password_file]
    elif src.password_command:
        args += ["--from-password-command", src.password_command]
    return make_restic_command(merged, args + list(snapshot_ids))


def copy(target: Target, src: Repo, dst: Repo, snapshot_ids: list[str]) -> None:
    """Copy snapshots to another repository (the off-site copy). A write."""
    cmd = make_copy_command(src, dst, snapshot_ids)
    secrets = make_secrets((src, "FROM_"), (dst, ""))
    run_restic(target, dst, [], json=False, write=True, what="copy", command=cmd, secrets=secrets)


def verify_present(target: Target, repo: Repo, snapshot_id: str) -> Snapshot | None:
    """The snapshot (or its copy) in repo, else None."""
    return next((s for s in snapshots(target, repo) if s.matches(snapshot_id)), None)


def stats(target: Target, repo: Repo, snapshot_id: str | None = None, mode: str = "restore-size") -> dict[str, Any]:
    """`restic stats --json`: total_size, total_file_count (+ more in raw-data mode)."""
    args = ["stats", "--mode", mode] + ([snapshot_id] if snapshot_id else [])
    data: dict[str, Any] = jsonlib.loads(run_restic(target, repo, args).stdout or "{}")
    return data
