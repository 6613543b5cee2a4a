"""Pure planning for restore tests and restores: scratch layout, live-path safety, commands, checks.

A restore test works only in ``<scratch base>/restore-test-<utc>-<rand>/`` on the host:
``restore/`` (restic restores absolute paths below it) and one dir per data source that needs one,
named by its key (``redis/``: the throwaway redis-server's copy of the restored dump, its pid, log). The scratch dir may
neither be nor contain nor sit inside any live data path: that is asserted before anything runs,
and the removal command refuses anything that is not such a dir.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from ..backup.sources import RUN_DIR, registry
from ..errors import SafetyError
from ..seam import quote

SCRATCH_NAME = re.compile(r"^restore-test-[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}$")


@dataclass(frozen=True)
class Layout:
    root: str  # the scratch dir of this run

    @property
    def restore_dir(self) -> str:
        return f"{self.root}/restore"

    def restored(self, path: str) -> str:
        """Where restic put an absolute snapshot path below the restore dir."""
        if not isinstance(path, str) or not path.startswith("/") or os.path.normpath(path) != path \
                or ".." in path.split("/") or "\0" in path:
            raise SafetyError(f"snapshot path {str(path)[:120]!r} is not a normalized absolute path: refused")
        return self.restore_dir + path


def make_scratch_base(staging_dir: str, override: str | None = None) -> str:
    """``--scratch-dir`` or ``<backup.staging_dir>-restore-test`` (same filesystem as staging)."""
    base = os.path.normpath(override or staging_dir.rstrip("/") + "-restore-test")
    if not os.path.isabs(base) or base == "/" or ".." in (override or staging_dir).split("/"):
        raise SafetyError(f"scratch dir {base!r}: must be an absolute directory, not '/', without '..'")
    return base


def make_layout(base: str, now: float | None = None, rand: str | None = None) -> Layout:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
    return Layout(f"{os.path.normpath(base)}/restore-test-{stamp}-{rand or secrets.token_hex(3)}")


def is_inside(path: str, parent: str) -> bool:
    path, parent = os.path.normpath(path), os.path.normpath(parent)
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def collect_live_paths(settings_list: list[Any], policy: Any = None, manifest: dict[str, Any] | None = None) -> list[str]:
    """Every live data path known from host settings, the policy and the manifest (deduplicated)."""
    paths: list[str | None] = []
    for settings in settings_list:
        paths += [settings.chroma.data_dir, settings.metrics_dir, settings.lock_path]
        paths += [r.root for r in settings.logs]
    if policy is not None and policy.repository.url.startswith("/"):
        paths.append(policy.repository.url)
    records = list(registry.records_by_key(manifest))
    for key in registry.keys():
        settings = registry.settings_of(key, policy)
        paths += registry.hook(key, "live_paths")(settings, settings_list, [r for k, r in records if k == key])
    out: list[str] = []
    for p in paths:
        if p and os.path.isabs(p) and os.path.normpath(p) not in out:
            out.append(os.path.normpath(p))
    return out


def check_scratch_safe(scratch: str, live_paths: list[str]) -> None:
    """Refuse a scratch dir equal to, inside, or containing a live path (it is removed afterwards)."""
    if not SCRATCH_NAME.match(os.path.basename(scratch)) or not os.path.isabs(scratch):
        raise SafetyError(f"refusing scratch dir {scratch!r}: not a ragops restore-test dir")
    for live in live_paths:
        if is_inside(scratch, live) or is_inside(live, scratch):
            raise SafetyError(f"refusing scratch dir {scratch}: it overlaps the live data path {live} "
                              "(use --scratch-dir elsewhere); a restore test never writes live data")


def make_create_command(layout: Layout) -> str:
    parent = os.path.dirname(layout.root)
    return (f"mkdir -p -m 0700 {quote(parent)} && [ ! -L {quote(parent)} ] && mkdir -m 0700 {quote(layout.root)} "
            f"{quote(layout.restore_dir)}")


def make_remove_command(layout: Layout) -> str:
    if not SCRATCH_NAME.match(os.path.basename(layout.root)):
        raise SafetyError(f"refusing to remove {layout.root!r}: not a ragops restore-test dir")
    return f"[ ! -L {quote(layout.root)} ] && rm -rf --one-file-system -- {quote(layout.root)}"


def find_staging_path(paths: list[str]) -> str | None:
    """The staging run dir among a snapshot's paths (it holds the manifest)."""
    return next((p for p in paths if RUN_DIR.match(os.path.basename(p.rstrip("/")))), None)


def make_strict_dirs(layout: Layout, staging: str | None, paths: list[str]) -> list[str]:
    """The restored dirs ragops opens (no symlink allowed below them): the run dir and, when the
    snapshot has it, the stable root beside it (``<staging_dir>/stable``: mirrors, snapshots, dumps)."""
    from ..backup.sources.hooks import is_safe_path
    from ..backup.sources.stable import stable_root_of_run_dir

    if not staging or not is_safe_path(staging):
        return []
    stable = stable_root_of_run_dir(staging)
    listed = [os.path.normpath(p) for p in paths]
    inside = any(p == stable or p.startswith(stable + "/") for p in listed)
    return [layout.restored(staging)] + ([layout.restored(stable)] if inside else [])


def make_check_plan(manifest: dict[str, Any], *, read_data_subset: str | None, selfcheck: int, compat: bool) -> list[str]:
    """The checks a restore test will run for this manifest, in order (shown by --json and docs)."""
    plan = ["snapshot", "restore", "manifest", "files: sha256"]
    options = {"read_data_subset": read_data_subset, "selfcheck": selfcheck, "compat": compat}
    for key, rec in registry.records_by_key(manifest):
        plan += [name for name in registry.hook(key, "plan_checks")(rec, options) if name not in plan]
    plan.append(f"repository: restic check{' --read-data-subset=' + read_data_subset if read_data_subset else ''}")
    return plan
