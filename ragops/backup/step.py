"""The backup step: hooks, stage the sources, restic backup, verify, off-site copy, retention.

``run_backup_step(target)`` is what ``maintain`` runs (policy from ``backup.policy``);
``run_backup(target, policy_name)`` is what ``invoke backup --policy X`` runs. The host lock is
taken by the runner. Order: (S3) ensure the bucket; hooks.before; stage every registered data
source (``sources.registry``: redis, chroma, paths) in ``<staging_dir>/run-*``; write ragops-manifest.json there; ``restic backup`` of the staging
dir plus the in-place paths; check the snapshot exists; copy it to the secondary and check it there;
``forget`` with the policy's retention (prune only when something went); hooks.after, or
hooks.on_failure with the error. The staging dir is removed before the snapshot is verified.
"""

from __future__ import annotations

import re
import time
from typing import Any

from .. import interrupts, output
from ..errors import RagopsError, StepError
from ..report import SKIPPED, StepResult, format_bytes
from ..resources import wrap_nice
from ..seam import Target, quote
from ..space import run_size_of, run_space_preflight
from . import leftovers, restic
from .last_backup import run_record_backup  # restore-test compares its snapshot with this record
from .manifest import make_manifest, run_hash_files, run_write_manifest
from .policy import Policy, load_host_policy
from .retention import make_forget_skip_reason
from .sources import OWNER_NAME, Staged, registry, run_staging
from .sources.stable import stable_root_of_run_dir


def make_tags(policy: Policy) -> list[str]:
    return list(dict.fromkeys([*policy.tags, "ragops"]))


def make_hook_command(command: str, env: dict[str, str]) -> str:
    exports = " ".join(f"{k}={quote(v)}" for k, v in sorted(env.items()))
    return f"export {exports}; {command}"


def run_hooks(target: Target, commands: list[str], env: dict[str, str], timeout: float, *, what: str, strict: bool) -> None:
    for command in commands:
        res = target.run(make_hook_command(command, env), write=True, timeout=timeout)
        if not res.ok:
            text = f"{what} hook `{command}` failed (exit {res.exited}): {res.stderr.strip()[-300:]}"
            if strict:
                raise StepError(f"{target.name}: {text}")
            output.warn(target.name, text)


def run_sources(target: Target, policy: Policy, run_dir: str) -> list[Staged]:
    """Stage every registered source; they are independent stores, so they run in parallel.
    All of them have finished (or failed) when this returns; the first error is raised."""
    from concurrent.futures import ThreadPoolExecutor

    keys = registry.keys()
    with ThreadPoolExecutor(max_workers=len(keys), thread_name_prefix=f"stage-{target.name}") as pool:
        futures = [pool.submit(registry.hook(key, "stage"), target, registry.settings_of(key, policy), run_dir)
                   for key in keys]
    errors = [f.exception() for f in futures if f.exception() is not None]
    if errors:
        run_cleanups([f.result() for f in futures if f.exception() is None])  # e.g. a snapshot already taken
        raise errors[0]  # type: ignore[misc]
    staged: list[Staged] = []
    for future in futures:
        item = interrupts.result(future)
        if item is not None:
            output.info(target.name, f"source {item.name}: staged in {item.duration_s:.1f}s")
            staged.append(item)
    return staged


def run_cleanups(staged: list[Staged | None]) -> None:
    """Each source's after-backup cleanup (drop a filesystem snapshot), shielded from signals."""
    with interrupts.shielded():
        for item in staged:
            if item is not None and item.cleanup is not None:
                item.cleanup()


def run_staged_paths(target: Target, policy: Policy) -> dict[str, list[str]]:
    """source name -> the path on the host whose copy the run stages (each source's
    ``staging_paths``: e.g. the Chroma dir, the Redis dump or AOF dir; ``paths`` need none)."""
    out = {key: registry.hook(key, "staging_paths")(target, registry.settings_of(key, policy)) for key in registry.keys()}
    return {key: found for key, found in out.items() if found}


def run_staging_preflight(target: Target, policy: Policy, staging_dir: str) -> dict[str, Any]:
    """Measure what the run stages (:func:`ragops.space.run_size_of`: conservative for sparse files and
    reflinks) and refuse (SpaceError) before staging if it would cross the floor. Returns the figures."""
    paths = run_staged_paths(target, policy)
    sizes = {name: run_size_of(target, found) for name, found in paths.items()}
    need = sum(sizes.values())
    what = "backup staging (" + (", ".join(f"{n} {' '.join(paths[n])}" for n in sizes) or "nothing to stage") + ")"
    run_space_preflight(target, staging_dir, need, what=what)
    return {"need_bytes": need, "sources": sizes}


def make_details(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Short per-source summary for the report (the full record is in the snapshot's manifest)."""
    return [registry.hook(str(rec.get("kind")), "describe")(rec) if rec.get("kind") in registry.SOURCES else dict(rec)
            for rec in doc["sources"]]


def run_snapshot(target: Target, policy: Policy, policy_name: str, repo: restic.Repo,
                 result: StepResult) -> tuple[restic.BackupSummary, list[restic.Snapshot] | None]:
    """Stage, write the manifest, run restic backup; the staging dir is gone when this returns.
    Also returns the snapshots that existed before (host and tags as forget filters), or None
    under --dry."""
    from concurrent.futures import ThreadPoolExecutor

    lookup = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"parent-{target.name}")
    # The previous snapshot (restic's --parent) is looked up while the sources are staged.
    previous_future = lookup.submit(restic.snapshots, target, repo, tags=make_tags(policy), host=target.name) \
        if not target.dry else None
    lookup.shutdown(wait=False)
    staging = target.settings.backup.staging_dir
    # Leftovers of dead runs go first (their space counts), then the free-space floor, then staging.
    holder = leftovers.read_lock_holder(target)
    result.details["leftovers"] = leftovers.run_remove_leftovers(target, staging, holder)
    result.details["space"] = run_staging_preflight(target, policy, staging)
    owner = leftovers.make_owner(target, str(holder.get("run_id")) if holder and leftovers.holds_lock(holder) else None)
    with run_staging(target, staging, owner=owner) as run_dir:
        staged = run_sources(target, policy, run_dir)
        try:
            return run_staged_snapshot(target, policy, policy_name, repo, result, run_dir, staged, previous_future)
        finally:
            run_cleanups(list(staged))


def run_staged_snapshot(target: Target, policy: Policy, policy_name: str, repo: restic.Repo, result: StepResult,
                        run_dir: str, staged: list[Staged], previous_future: Any,
                        ) -> tuple[restic.BackupSummary, list[restic.Snapshot] | None]:
    """Manifest and restic backup of what the sources staged (their cleanups run after, always)."""
    for item in staged:
        result.metrics.append(("ragops_backup_source_duration_seconds", {"source": item.name}, round(item.duration_s, 3)))
    extra = [p for s in staged for p in s.backup_paths]
    excludes = [e for s in staged for e in s.excludes] + [f"{run_dir}/{OWNER_NAME}"]
    files = run_hash_files(target, run_dir, [p for s in staged for p in s.hash_paths])
    version = restic.detect_version(target, repo)
    doc = make_manifest(host=target.name, policy_name=policy_name, policy=policy, run_dir=run_dir,
                        records=[s.record for s in staged], files=files,
                        restic_version=".".join(map(str, version)), backup_paths=[run_dir, *extra])
    run_write_manifest(target, run_dir, doc)
    result.details["sources"] = make_details(doc)
    result.details["staging_dir"] = run_dir
    # under --dry nothing was staged: the stable copies may not exist (restic --dry-run reads in-place paths only)
    stable = stable_root_of_run_dir(run_dir)
    paths = [run_dir, *extra] if not target.dry else [p for p in extra if not p.startswith(stable + "/")]
    if target.dry:
        args = restic.make_backup_args([run_dir, *extra], tags=make_tags(policy), host_tag=target.name, exclude=excludes)
        output.dry_command(target.name, wrap_nice(target, restic.make_restic_command(repo, args, json=True)))
        if not paths:
            return restic.BackupSummary(snapshot_id=None, dry=True), None
    # Unchanged in-place files are only re-read if restic knows the previous snapshot: name it.
    previous = interrupts.result(previous_future) if previous_future is not None else []
    parent = previous[-1].id if previous else None
    interrupts.check(target.name)  # a signal between staging and restic: stop before the snapshot
    summary = restic.backup(target, repo, paths, tags=make_tags(policy), host_tag=target.name, exclude=excludes,
                            parent=parent)
    if previous_future is None or summary.snapshot_id is None:
        return summary, None
    new = restic.Snapshot(id=summary.snapshot_id, short_id=summary.snapshot_id[:8], time="", hostname=target.name,
                          paths=sorted(paths), tags=make_tags(policy))
    return summary, [*previous, new]


def check_new_snapshot_kept(target: Target, repo: restic.Repo, gone: restic.ForgetResult, snapshot_id: str) -> None:
    """The new snapshot must be listed by the repository and kept by retention. forget's own listing
    (which runs anyway) proves it; only if it is missing there is the repository asked again."""
    if any(s.matches(snapshot_id) for s in gone.remove):
        raise StepError(f"{target.name}: the retention policy removed snapshot {snapshot_id} just taken: fix its keep_* rules")
    if not any(s.matches(snapshot_id) for s in gone.keep) and restic.verify_present(target, repo, snapshot_id) is None:
        raise StepError(f"{target.name}: snapshot {snapshot_id} is not listed in {repo.describe()} after backup")


def check_snapshot_written(target: Target, repo: restic.Repo, snapshot_id: str) -> None:
    """Without forget's listing: a local repository shows the snapshot file directly (no key
    derivation); any other backend is asked with `restic snapshots`."""
    if repo.local_path is not None and re.fullmatch(r"[0-9a-f]{8,64}", snapshot_id):  # restic 0.14 reports a short id
        if target.run(f"for f in {quote(repo.local_path + '/snapshots')}/{snapshot_id}*; do [ -f \"$f\" ] && exit 0; done; exit 1").ok:
            return
    if restic.verify_present(target, repo, snapshot_id) is None:
        raise StepError(f"{target.name}: snapshot {snapshot_id} is not listed in {repo.describe()} after backup")


def run_backup(target: Target, policy_name: str | None = None) -> StepResult:
    name = policy_name or target.settings.backup.policy
    policy = load_host_policy(target.host, policy_name)
    if policy is None or not name:
        return StepResult("backup", SKIPPED, message="no backup policy configured (set backup.policy or pass --policy)")
    result = StepResult("backup", details={"policy": name})
    repo = restic.make_repo(target, policy.repository)
    env = {"RAGOPS_POLICY": name, "RAGOPS_HOST": target.name, "RAGOPS_SNAPSHOT_ID": ""}
    hooks = policy.hooks
    if repo.is_s3 and policy.repository.s3 is not None and not target.dry:
        from .s3 import ensure_bucket

        bucket = ensure_bucket(repo, create=policy.repository.s3.create_bucket)
        result.details["bucket"] = {"bucket": bucket.bucket, "versioning": bucket.versioning, "created": bucket.created}
    started = time.monotonic()
    try:
        run_hooks(target, hooks.before, env, hooks.timeout_s, what="before", strict=True)
        summary, listed = run_snapshot(target, policy, name, repo, result)
        snapshot_id = summary.snapshot_id or ""
        env["RAGOPS_SNAPSHOT_ID"] = snapshot_id
        interrupts.check(target.name)
        if not target.dry and policy.secondary is not None:
            second = restic.make_repo(target, policy.secondary, role="secondary")
            restic.copy(target, repo, second, [snapshot_id])  # reads the new snapshot from the primary
            if restic.verify_present(target, second, snapshot_id) is None:
                raise StepError(f"{target.name}: snapshot {snapshot_id} was copied but is not in {second.describe()}")
            result.details["secondary"] = second.url
        skip = make_forget_skip_reason(policy.retention, listed) if listed is not None else None
        if skip is not None:
            output.info(target.name, skip)
            result.details["forget_skipped"] = skip
            gone = restic.ForgetResult(keep=list(listed or []), remove=[], dry=False)
            check_snapshot_written(target, repo, snapshot_id)
        else:
            gone = restic.forget(target, repo, policy.retention, tags=make_tags(policy), host=target.name)
            if not target.dry:
                check_new_snapshot_kept(target, repo, gone, snapshot_id)
        result.details["forget"] = {"keep": [s.short_id for s in gone.keep], "remove": [s.short_id for s in gone.remove]}
        if target.dry:
            for snap in gone.remove:
                output.dry_command(target.name, f"forget snapshot {snap.short_id} ({snap.time[:19]})")
        elif gone.remove:
            restic.prune(target, repo)
        run_hooks(target, hooks.after, env, hooks.timeout_s, what="after", strict=True)
    except RagopsError as exc:
        if not target.dry:
            run_hooks(target, hooks.on_failure, {**env, "RAGOPS_ERROR": str(exc)[:500]}, hooks.timeout_s,
                      what="on_failure", strict=False)
        raise
    result.details.update(snapshot_id=summary.snapshot_id, data_added=summary.data_added,
                          files=summary.total_files_processed, bytes=summary.total_bytes_processed,
                          restic_backup_s=round(summary.wall_s, 3), files_new=summary.files_new,
                          files_changed=summary.files_changed, files_unmodified=summary.files_unmodified)
    result.files = summary.total_files_processed
    result.metrics += [("ragops_backup_bytes_added", {}, float(summary.data_added)),
                       ("ragops_backup_snapshot_bytes", {}, float(summary.total_bytes_processed)),
                       ("ragops_backup_files", {}, float(summary.total_files_processed))]
    verb = "would back up" if target.dry else f"snapshot {summary.snapshot_id[:8] if summary.snapshot_id else '?'}:"
    result.message = (f"{verb} {summary.total_files_processed} file(s), {format_bytes(summary.total_bytes_processed)}, "
                      f"added {format_bytes(summary.data_added)} in {time.monotonic() - started:.1f}s; "
                      f"forgot {len(gone.remove)}")
    cleared = leftovers.make_summary(result.details.get("leftovers") or {}, target.dry)
    if cleared:
        result.message += f"; {cleared}"
    run_record_backup(target, policy.repository.url, make_tags(policy), name, summary.snapshot_id)
    return result


def run_backup_step(target: Target) -> StepResult:
    """The `backup` step of maintain: the host's configured policy, or skipped without one."""
    return run_backup(target)
