"""restic operations, run on the host through the seam: init, backup, snapshots, forget, prune,
check, restore, copy, stats, unlock. Each parses restic's ``--json`` output where the installed
version has it (0.14 lacks it for check and restore) and raises the errors of ``errors.py``.

One module per group of subcommands owns their arguments, parsing and execution (like borgmatic's
``borg/``): ``restic_backup`` (init, backup, progress), ``restic_snapshots`` (snapshots, forget,
prune, stats), ``restic_restore`` (check, restore, copy); ``repository`` builds and runs every
restic command and maps its failures. This module is the facade other modules use::

    from ragops.backup.restic import Repo, make_repo, run_restic, backup, snapshots, ...
"""

from __future__ import annotations

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
from .restic_backup import (
    BackupSummary,
    backup,
    init,
    make_backup_args,
    make_progress,
    parse_backup_output,
    run_check_bucket,
)
from .restic_restore import CheckResult, check, copy, make_copy_command, parse_restored_snapshot, restore
from .restic_snapshots import (
    ForgetResult,
    Snapshot,
    forget,
    make_forget_args,
    prune,
    snapshots,
    stats,
    verify_present,
)

__all__ = [
    "Repo", "make_repo", "make_restic_command", "run_restic", "detect_version", "unlock",
    "with_stale_lock_retry", "init", "run_check_bucket", "backup", "snapshots", "forget", "prune", "check", "restore",
    "copy", "verify_present", "stats", "BackupSummary", "Snapshot", "ForgetResult", "CheckResult",
    "make_backup_args", "make_forget_args", "make_copy_command", "parse_backup_output", "make_progress",
    "parse_restored_snapshot", "check_reachable", "classify_failure", "make_secrets", "parse_json_lines",
]
