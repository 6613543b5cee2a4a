"""The restore-test checks that belong to no data source, executed on the host through the seam.

- files: sha256 of every restored staged file against the manifest (``ragops/remote/hash_files.py``,
  the same helper the backup hashed them with);
- repository: ``restic check`` with the policy's ``read_data_subset``.

Each data source checks its own record (``verify`` in ``ragops/backup/sources/<key>.py``: Redis
loads a throwaway server on a copy of the dump, Chroma opens the restored copy, ...); ``run``
dispatches to them through ``ragops.backup.sources.registry``.
"""

from __future__ import annotations

from typing import Any

from ..backup import restic
from ..backup.errors import ResticError
from ..backup.manifest import run_hash
from ..backup.sources import parse_json_line
from ..backup.sources.hooks import Scripts
from ..seam import Target
from .compare import Check, compare_files
from .plan import Layout


def find_stable_paths(manifest: dict[str, Any]) -> list[str]:
    """The manifest's backup paths inside the stable root beside its run dir (mirrors, snapshots)."""
    from ..backup.sources.hooks import is_inside, is_safe_path
    from ..backup.sources.stable import stable_root_of_run_dir

    root = stable_root_of_run_dir(manifest["staging_dir"])
    files = [f for f in manifest.get("files", {}) if isinstance(f, str)]
    return [p for p in manifest.get("backup_paths", []) if is_safe_path(p) and is_inside(p, root) and p != root
            and any(is_inside(f, p) for f in files)]  # only the copies whose files the manifest hashed


def make_hash_groups(layout: Layout, manifest: dict[str, Any]) -> dict[str, list[str]]:
    """Restored roots hashed as separate (parallel) passes: ``run`` = the run dir, and one group per
    stable copy named by its dir (the source key: ``chroma``, ``redis``), so a source waits only for
    its own files."""
    groups = {"run": [layout.restored(manifest["staging_dir"])]}
    for path in find_stable_paths(manifest):
        groups.setdefault(path.rstrip("/").rsplit("/", 1)[-1], []).append(layout.restored(path))
    return groups


def run_hash_group(target: Target, roots: list[str], stable: bool, scripts: Scripts | None = None) -> dict[str, Any] | str:
    """sha256 of every file below ``roots`` (one helper run): the ``files`` map, or why it failed."""
    if stable:
        from ..backup.manifest import MANIFEST_NAME
        from ..backup.sources import OWNER_NAME
        from ..backup.sources.hooks import HostScripts

        args = ["--roots", *roots, "--skip", MANIFEST_NAME, "--skip", OWNER_NAME]
        res = (scripts or HostScripts(target)).run_script("hash_files", args)
    else:
        res = run_hash(target, roots[0], scripts)
    if not res.ok:
        return f"hashing {' '.join(roots)} failed: {res.stderr.strip()[-300:]}"
    files: dict[str, Any] = parse_json_line(res.stdout, "hash restored files").get("files", {})
    return files


def make_files_check(layout: Layout, manifest: dict[str, Any], parts: list[dict[str, Any] | str]) -> Check:
    """The ``files: sha256`` check from every hash group's result."""
    failed = [p for p in parts if isinstance(p, str)]
    if failed:
        return Check("files: sha256", False, "; ".join(failed))
    hashes = {k: v for part in parts if isinstance(part, dict) for k, v in part.items()}
    return compare_files(manifest.get("files", {}), hashes, layout.restore_dir)


def run_repository_check(target: Target, repo: restic.Repo, subset: str | None) -> Check:
    name = "repository: restic check" + (f" --read-data-subset={subset}" if subset else "")
    try:
        res = restic.check(target, repo, subset, raise_on_damage=False)
    except ResticError as exc:
        return Check(name, False, str(exc)[-500:])
    lines = [x for x in res.output.strip().splitlines() if x.strip()]
    return Check(name, res.ok, (lines[-1] if lines else "no output")[-500:], {"read_data_subset": subset})
