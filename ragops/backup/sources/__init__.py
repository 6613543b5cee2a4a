"""Data sources: each kind stages what goes into the snapshot and proves it after a restore.

One module per kind (``redis``, ``chroma``, ``paths``), all exporting the same verbs, listed and
dispatched by :mod:`.registry` (keyed by the policy's ``sources.<key>``); :mod:`.hooks` is what
they work with (checks, the restore-test context, where helper scripts run). This module holds
the staging run dir: dumps are staged ON the host in ``<staging_dir>/run-<utc>-<rand>`` that
:func:`run_staging` always removes, also on failure; ``paths`` are backed up in place and only recorded.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ... import interrupts
from ...errors import SafetyError, StepError
from ...seam import Target, quote

# The name of a staging run dir (the restore side finds the run dir among a snapshot's paths with it). ``\Z``, not
# ``$``: ``$`` also matches before a trailing newline.
RUN_DIR = re.compile(r"^run-[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}\Z")
OWNER_NAME = ".ragops-owner.json"  # written into each run dir at creation; kept out of the snapshot


@dataclass
class Staged:
    """What one source contributed: its manifest record, staged files and in-place paths."""

    name: str
    record: dict[str, Any]
    backup_paths: list[str] = field(default_factory=list)  # absolute paths restic reads in place
    excludes: list[str] = field(default_factory=list)
    duration_s: float = 0.0
    hash_paths: list[str] = field(default_factory=list)  # stable paths whose files go into the manifest's hashes
    cleanup: Callable[[], None] | None = None  # after restic (always, also on failure): e.g. drop a snapshot


def make_run_dir(staging_dir: str, now: float | None = None, rand: str | None = None) -> str:
    """``<staging_dir>/run-<utc>-<rand>``; the staging dir must be absolute and not '/'."""
    base = os.path.normpath(staging_dir)
    if not os.path.isabs(base) or base == "/" or ".." in staging_dir.split("/"):
        raise SafetyError(f"backup.staging_dir {staging_dir!r}: must be an absolute directory, not '/', without '..'")
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now if now is not None else time.time()))
    return f"{base}/run-{stamp}-{rand or secrets.token_hex(3)}"


def make_remove_command(run_dir: str) -> str:
    """rm -rf of one run dir, refusing anything that is not a ``run-*`` dir (never a symlink)."""
    if not RUN_DIR.match(os.path.basename(run_dir)) or not os.path.isabs(run_dir):
        raise SafetyError(f"refusing to remove {run_dir!r}: not a ragops staging run directory")
    return f"[ ! -L {quote(run_dir)} ] && rm -rf --one-file-system -- {quote(run_dir)}"


def make_create_command(run_dir: str, owner: dict[str, Any] | None = None) -> str:
    """mkdir the run dir (0700, never an existing one) and write its owner marker in the same command."""
    cmd = f"mkdir -p -m 0700 {quote(os.path.dirname(run_dir))} && mkdir -m 0700 {quote(run_dir)}"
    if owner is not None:
        cmd += f" && printf '%s\\n' {quote(json.dumps(owner, sort_keys=True))} > {quote(run_dir + '/' + OWNER_NAME)}"
    return cmd


@contextmanager
def run_staging(target: Target, staging_dir: str, owner: dict[str, Any] | None = None) -> Iterator[str]:
    """Create the per-run staging dir (0700) with its owner marker (see ``backup.leftovers``), yield it,
    remove it afterwards, also on failure."""
    run_dir = make_run_dir(staging_dir)
    res = target.run(make_create_command(run_dir, owner), write=True)
    if not res.ok:
        raise StepError(f"{target.name}: cannot create staging dir {run_dir}: {res.stderr.strip()[-300:]}")
    try:
        yield run_dir
    finally:
        with interrupts.shielded():  # also after SIGTERM, and while one arrives
            target.run(make_remove_command(run_dir), write=True, quiet_dry=True)


def parse_json_line(stdout: str, what: str) -> dict[str, Any]:
    """The last stdout line of a remote script as a JSON object (scripts print one)."""
    lines = [line for line in stdout.strip().splitlines() if line.strip()]
    try:
        doc = json.loads(lines[-1])
    except (IndexError, ValueError):
        raise StepError(f"{what}: no JSON result (output: {stdout.strip()[-300:] or 'none'})") from None
    if not isinstance(doc, dict):
        raise StepError(f"{what}: unexpected result {lines[-1][:200]}")
    return doc


def run_or_fail(target: Target, command: str, what: str, *, write: bool = True, timeout: float | None = None,
                secrets: dict[str, str] | None = None) -> str:
    """Run a command; raise one StepError naming ``what`` and the command's stderr if it fails."""
    res = target.run(command, write=write, timeout=timeout, secrets=secrets)
    if not res.ok:
        detail = (res.stderr.strip() or res.stdout.strip())[-500:]
        if "No space left on device" in detail:
            detail = "no space left on device (staging disk full); " + detail[-200:]
        raise StepError(f"{target.name}: {what} failed (exit {res.exited}): {detail}")
    return res.stdout


def make_copy_command(src: str, dst: str) -> str:
    """Copy a file or a directory tree preserving attributes (reflinks where the fs has them)."""
    return f"cp -a --reflink=auto -- {quote(src)} {quote(dst)}"
