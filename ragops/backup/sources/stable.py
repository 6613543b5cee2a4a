"""Stable staging paths: where a source keeps what it stages between runs, at the same path every run.

restic recognises an unchanged file by its path in the parent snapshot (and its size, mtime, ctime
and inode). The per-run dir ``<staging_dir>/run-<utc>-<rand>`` gets a new name every run, so a copy
staged there is re-read in full every night. What is large therefore lives under
``<staging_dir>/stable/<key>`` (a Chroma mirror, reflink copy or btrfs snapshot; the Redis dump's
hard link), kept from run to run and updated in place, and is backed up as one more path.

The stable root is created 0700 and never followed through a symlink; a record's ``path`` may point
into it (``hooks.check_staged_path``), and the restore test treats the restored stable root as
strictly as the run dir (no symlinks below it).
"""

from __future__ import annotations

import os

from ...errors import SafetyError, StepError
from ...seam import Target, quote

STABLE_NAME = "stable"


def stable_root(staging_dir: str) -> str:
    """``<staging_dir>/stable`` (the staging dir normalized; absolute, not '/', no '..')."""
    base = os.path.normpath(staging_dir)
    if not os.path.isabs(base) or base == "/" or ".." in staging_dir.split("/"):
        raise SafetyError(f"backup.staging_dir {staging_dir!r}: must be an absolute directory, not '/', without '..'")
    return f"{base}/{STABLE_NAME}"


def stable_root_of_run_dir(run_dir: str) -> str:
    """The stable root beside a run dir (``<staging_dir>/run-...`` -> ``<staging_dir>/stable``)."""
    return f"{os.path.dirname(os.path.normpath(run_dir))}/{STABLE_NAME}"


def stable_dir(target: Target, key: str) -> str:
    if not key or "/" in key or key in (".", ".."):
        raise SafetyError(f"stable staging dir for {key!r}: not a plain name")
    return f"{stable_root(target.settings.backup.staging_dir)}/{key}"


def make_prepare_command(root: str, key: str) -> str:
    """mkdir the stable root and ``root/key`` (0700); refuse either if it is a symlink or not a dir."""
    path = f"{root}/{key}"
    checks = " && ".join(f"[ ! -L {quote(p)} ] && [ -d {quote(p)} ]" for p in (os.path.dirname(root), root, path))
    # `mkdir -p`, not `[ -d ] || mkdir`: the sources stage in parallel and prepare their dirs at the same
    # moment (the check-then-mkdir lost that race: "File exists"); the symlink checks follow each mkdir
    return (f"mkdir -p -m 0700 {quote(os.path.dirname(root))} && [ ! -L {quote(os.path.dirname(root))} ] && "
            f"mkdir -p -m 0700 {quote(root)} && [ ! -L {quote(root)} ] && "
            f"mkdir -p -m 0700 {quote(path)} && {checks}")


def run_prepare(target: Target, key: str) -> str:
    """Create (if needed) and return ``<staging_dir>/stable/<key>``; a write (obeys --dry)."""
    path = stable_dir(target, key)
    res = target.run(make_prepare_command(os.path.dirname(path), key), write=True)
    if not res.ok:
        why = "no space left on device (staging disk full)" if "No space left" in res.stderr \
            else "a symlink or not a directory?"
        raise StepError(f"{target.name}: cannot prepare the stable staging dir {path} ({why}): {res.stderr.strip()[-300:]}")
    return path
