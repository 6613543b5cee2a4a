"""Which snapshot a restore (test) uses, and its manifest read back from the restored tree.

The manifest is untrusted: it is read only after the restored tree passed the lstat walk
(``guard.run_tree_check``), and checked field by field (``guard.check_manifest``) before any of
its paths is used.
"""

from __future__ import annotations

import json
from typing import Any

from ..backup import restic
from ..backup.manifest import MANIFEST_NAME, validate_manifest
from ..backup.policy import Policy, load_host_policy
from ..backup.step import make_tags
from ..config import Host
from ..errors import ConfigError, VerifyError
from ..seam import Target
from . import guard, plan
from .compare import Check


def load_policy(source: Host, name: str | None) -> Policy:
    policy = load_host_policy(source, name)
    if policy is None:
        raise ConfigError(f"{source.name}: no backup policy configured (set backup.policy or pass --policy)")
    return policy


def lookup_snapshot(target: Target, repo: restic.Repo, policy: Policy, source: str,
                    wanted: str) -> tuple[restic.Snapshot, list[restic.Snapshot]]:
    """(the snapshot, the snapshots it was chosen from): `latest` of the source host (policy tags),
    or the one snapshot whose id starts with ``wanted``."""
    if wanted == "latest":
        snaps = restic.snapshots(target, repo, tags=make_tags(policy), host=source)
        if not snaps:
            raise VerifyError(f"{source}: no snapshot of this host in {repo.describe()}: run `invoke backup --host {source}` first")
        return snaps[-1], snaps
    listed = restic.snapshots(target, repo)
    snaps = [s for s in listed if s.matches(wanted)]
    if len(snaps) != 1:
        what = "no snapshot" if not snaps else f"{len(snaps)} snapshots ({', '.join(s.short_id for s in snaps[:5])})"
        raise VerifyError(f"{source}: {what} with id {wanted!r} in {repo.describe()}; "
                          f"`invoke backup.snapshots --host {source}` lists them")
    return snaps[0], listed


def resolve_snapshot(target: Target, repo: restic.Repo, policy: Policy, source: str, wanted: str) -> restic.Snapshot:
    return lookup_snapshot(target, repo, policy, source, wanted)[0]


def find_staging(snap: restic.Snapshot) -> str | None:
    """The snapshot's staging run dir, if it is a normalized absolute path."""
    staging = plan.find_staging_path(snap.paths)
    return staging if staging is not None and guard.is_safe_path(staging) else None


def check_document(doc: Any, staging: str) -> list[str]:
    problems = guard.check_manifest(doc, staging)
    return problems or validate_manifest(doc)


def read_manifest(target: Target, layout: plan.Layout, snap: restic.Snapshot) -> tuple[dict[str, Any] | None, Check]:
    staging = find_staging(snap)
    if staging is None:
        return None, Check("manifest", False, f"snapshot {snap.short_id} has no ragops staging dir among {snap.paths[:3]}")
    path = f"{layout.restored(staging)}/{MANIFEST_NAME}"
    text = target.read_text(path)
    try:
        doc = json.loads(text) if text else None
    except ValueError:
        doc = None
    problems = check_document(doc, staging) if doc is not None else [f"{path}: missing or not JSON"]
    if problems:
        return None, Check("manifest", False, "; ".join(problems[:5]))
    assert doc is not None
    return doc, Check("manifest", True, f"{path}: written {doc['created']} by ragops {doc['tool_version']}, "
                      f"{len(doc['files'])} staged file(s), sources {[r.get('kind') for r in doc['sources']]}")
