"""The last backup ragops took, per repository and tag set, recorded ON THE HOST whose data it is
(``<metrics_dir or backup.staging_dir>/ragops-last-backup.json``, next to the restore test's
verified-state). restore-test reads it to notice a snapshot that vanished from the repository."""

from __future__ import annotations

import json
import time
from typing import Any

from ..seam import Target

# The last backup ragops made, per repository and tag set: written by the backup step (on the host
# whose data it is, next to the verified-state), read by restore-test to notice a vanished snapshot.
BACKUP_FILE = "ragops-last-backup.json"


def make_backup_key(repository: str, tags: list[str]) -> str:
    return f"{repository} tags={','.join(sorted(set(tags)))}"


def make_backup_record_path(settings: Any) -> str:
    base = settings.metrics_dir or settings.backup.staging_dir
    return f"{base.rstrip('/')}/{BACKUP_FILE}"


def parse_backups(text: str | None) -> dict[str, dict[str, Any]]:
    try:
        doc = json.loads(text) if text else {}
    except ValueError:
        return {}
    backups = doc.get("backups") if isinstance(doc, dict) else None
    return {k: v for k, v in (backups or {}).items() if isinstance(v, dict) and isinstance(v.get("snapshot_id"), str)}


def read_last_backup(target: Target, repository: str, tags: list[str]) -> dict[str, Any] | None:
    """The last backup recorded on the host for this repository and tag set (a read), or None."""
    return parse_backups(target.read_text(make_backup_record_path(target.settings))).get(make_backup_key(repository, tags))


def run_record_backup(target: Target, repository: str, tags: list[str], policy: str, snapshot_id: str | None,
                      now: float | None = None) -> None:
    """Record a finished backup (never under --dry, never failing the backup: a problem only warns)."""
    if target.dry or not snapshot_id:
        return
    from .. import output
    from ..errors import RagopsError

    now = time.time() if now is None else now
    path = make_backup_record_path(target.settings)
    try:
        backups = parse_backups(target.read_text(path))
        backups[make_backup_key(repository, tags)] = {
            "snapshot_id": snapshot_id, "host": target.name, "policy": policy, "repository": repository,
            "tags": sorted(set(tags)), "ts": round(now, 3), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))}
        target.put_text(json.dumps({"format": 1, "backups": backups}, indent=1) + "\n", path)
    except RagopsError as exc:
        output.warn(target.name, f"last backup not recorded in {path}: {exc}")
