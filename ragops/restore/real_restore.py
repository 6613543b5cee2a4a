"""A real restore (``invoke restore``): a snapshot into a target dir on the host, then the exact steps
to bring each data source back on the restored data (each source's ``bring_up``; printed, not run:
switching production data is the operator's call).

Refuses: a non-empty target (unless --force), a target that is, holds or sits inside a live data
path, a snapshot holding anything but regular files and directories (``restic ls``, before writing),
a restored tree with hard links or links (lstat walk, after), a manifest with paths outside its
staging dir or wrong types, and a snapshot a data source refuses (``refuse_restore``: e.g. Chroma
collections that differ from the live ones in dimension, metric or embedding model, which the
running application could not use).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from .. import output
from ..backup import restic
from ..backup.manifest import MANIFEST_NAME
from ..backup.repository import run_restic
from ..backup.sources import registry
from ..errors import SafetyError, StepError, VerifyError
from ..report import OK, StepResult
from ..runner import Step
from ..seam import Target, quote
from . import guard, plan
from .snapshot import check_document, find_staging, load_policy, resolve_snapshot


@dataclass
class RestoreOptions:
    target_dir: str
    snapshot: str = "latest"
    force: bool = False
    policy: str | None = None


def check_target_dir(target_dir: str, live_paths: list[str]) -> str:
    path = os.path.normpath(target_dir)
    if not os.path.isabs(target_dir) or path == "/" or ".." in target_dir.split("/"):
        raise SafetyError(f"--target {target_dir!r}: must be an absolute directory, not '/', without '..'")
    for live in live_paths:
        if plan.is_inside(path, live) or plan.is_inside(live, path):
            raise SafetyError(f"--target {path} overlaps the live data path {live}: restore elsewhere, "
                              "then follow the printed steps to switch over")
    return path


def make_bringup_steps(doc: dict[str, Any], target_dir: str, settings: Any) -> list[str]:
    """The operator's steps to serve from the restored data (each source's ``bring_up``), every path filled in."""
    steps: list[str] = []
    for key, rec in registry.records_by_key(doc):
        steps += registry.hook(key, "bring_up")(rec, target_dir, settings)
    steps.append("Then: invoke health --host <host>; and invoke restore-test --host <host> after the next backup")
    return steps


def run_read_manifest(target: Target, repo: restic.Repo, snap: restic.Snapshot) -> dict[str, Any]:
    staging = find_staging(snap)
    if staging is None:
        raise VerifyError(f"snapshot {snap.short_id} holds no ragops staging dir (paths {snap.paths[:3]}): not a ragops backup")
    res = run_restic(target, repo, ["dump", snap.id, f"{staging}/{MANIFEST_NAME}"], json=False, what="dump manifest")
    try:
        doc: dict[str, Any] = json.loads(res.stdout)
    except ValueError:
        raise VerifyError(f"snapshot {snap.short_id}: {MANIFEST_NAME} is not valid JSON") from None
    problems = check_document(doc, staging)
    if problems:
        raise VerifyError(f"snapshot {snap.short_id}: refusing its manifest: " + "; ".join(problems[:5]))
    return doc


def run_tree_guard(target: Target, root: str, what: str) -> None:
    tree = guard.run_tree_check(target, root)
    if not tree.ok:
        raise VerifyError(f"{target.name}: {what} {root}: {tree.evidence}")


def run_restore(target: Target, options: RestoreOptions) -> StepResult:
    policy = load_policy(target.host, options.policy)
    repo = restic.make_repo(target, policy.repository)
    snap = resolve_snapshot(target, repo, policy, target.name, options.snapshot)
    doc = run_read_manifest(target, repo, snap)
    dest = check_target_dir(options.target_dir, plan.collect_live_paths([target.settings], policy, doc))
    for key, rec in registry.records_by_key(doc):
        why = registry.hook(key, "refuse_restore")(target, registry.settings_of(key, policy), rec)
        if why:
            raise VerifyError(f"{target.name}: refusing to restore snapshot {snap.short_id} {why}")
    listing = target.run(f"[ -d {quote(dest)} ] && ls -A {quote(dest)} | head -3")
    if listing.ok and listing.stdout.strip() and not options.force:
        raise SafetyError(f"{target.name}: --target {dest} is not empty ({', '.join(listing.stdout.split())}...): "
                          "choose an empty dir or pass --force")
    unsafe = guard.run_listing_check(target, repo, snap)
    if unsafe:
        raise VerifyError(f"{target.name}: refusing to restore snapshot {snap.short_id}: it holds {len(unsafe)} entr(ies) "
                          "that are not regular files or directories (nothing was written): " + "; ".join(unsafe[:5]))
    if listing.ok and listing.stdout.strip():  # --force: restic must not write through a link already there
        run_tree_guard(target, dest, "refusing to restore into --target")
    res = target.run(f"mkdir -p -m 0700 {quote(dest)}", write=True)
    if not res.ok and not res.dry:
        raise StepError(f"{target.name}: cannot create {dest}: {res.stderr.strip()[-200:]}")
    restic.restore(target, repo, snap.id, dest)
    if not target.dry:
        run_tree_guard(target, dest, f"snapshot {snap.short_id} restored, but do NOT serve from")
    steps = make_bringup_steps(doc, dest, target.settings)
    verb = "would restore" if target.dry else "restored"
    output.info(target.name, f"{verb} snapshot {snap.short_id} ({snap.time[:19]}) into {dest}; to serve from it:")
    for i, step in enumerate(steps, 1):
        output.info(target.name, f"  {i}. {step}")
    return StepResult("restore", OK, message=f"{verb} snapshot {snap.short_id} into {dest}",
                      details={"snapshot": snap.id, "target": dest, "steps": steps, "compatible": True})


def make_restore_step(options: RestoreOptions) -> Step:
    return Step("restore", lambda target: run_restore(target, options))
