"""The restore-test step: restore a snapshot into a scratch dir, start Redis on it, verify everything
against the manifest, measure the phases (restore, start, verify = the RTO), record the outcome.

Runs on the execution host (``--on H2``, else the source host itself); the policy, live paths and
verified-state record belong to the source host. The scratch dir and the throwaway redis-server
are removed in ``finally`` (unless ``--keep``); live data paths are never written (asserted).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from .. import interrupts, output
from ..backup import restic
from ..backup.errors import ResticError
from ..backup.last_backup import read_last_backup
from ..backup.manifest import MANIFEST_NAME
from ..backup.policy import Policy
from ..backup.sources import registry
from ..backup.sources.hooks import HostScripts, TestContext
from ..backup.step import make_tags
from ..config import Host
from ..drill import run as drill_run
from ..errors import ExitCode, RagopsError, VerifyError
from ..report import DEGRADED, FAILED, OK, StepResult, format_bytes
from ..runner import Step
from ..seam import Target, quote
from . import freshness, guard, memory_preflight, plan, progress, record, setup, verify
from .compare import Check, summarize
from .snapshot import load_policy, lookup_snapshot, read_manifest, resolve_snapshot

__all__ = ["Options", "load_policy", "resolve_snapshot", "make_restore_test_step", "run_restore_test"]
Found = tuple[restic.Snapshot, list[restic.Snapshot]]

STEP = "restore-verify"


@dataclass
class Options:
    snapshot: str = "latest"
    keep: bool = False
    scratch_dir: str | None = None
    policy: str | None = None
    min_overlap: float = 1.0  # probe top-k overlap; exact by default (same index)
    selfcheck: int = 50  # stored vectors per collection in the self-retrieval probe (0: off)
    read_data_subset: str | None = field(default="policy")  # "policy": the policy's check.read_data_subset
    progress_every_s: float = 10.0  # a restore progress line (bytes, rate, ETA) this often; 0: none
    drill: bool = False  # --drill: serve the restored data in a throwaway Compose project, compare answers (ragops/drill)


def run_verify_phase(ctx: TestContext, layout: plan.Layout, doc: dict[str, Any], repo_check: Future[Check],
                     timings: dict[str, float]) -> tuple[list[Check], float]:
    """Everything after the restore, in parallel: the files hashed in groups (the run dir, each stable
    copy), every data source's ``start`` then ``verify``, and the repository check (started when the
    restore ended). A source that opens its restored files in place and may write them (ChromaDB applies its
    log and rewrites sqlite on open: ``WRITES_RESTORED_FILES``) waits for the hash of its own group
    only. Returns the checks and the seconds until every source had started (the RTO's start phase)."""
    records = list(registry.records_by_key(doc))
    hash_groups = verify.make_hash_groups(layout, doc)
    stable = len(hash_groups) > 1
    hashed = {name: threading.Event() for name in hash_groups}
    hash_parts: dict[str, dict[str, Any] | str] = {}
    t0 = time.monotonic()
    started: dict[str, float] = {}

    def hasher(name: str) -> Callable[[], list[Check]]:
        def run() -> list[Check]:
            try:
                hash_parts[name] = verify.run_hash_group(ctx.target, hash_groups[name], stable, ctx.scripts)
            finally:
                hashed[name].set()
            return []
        return run

    def source(key: str) -> Callable[[], list[Check]]:
        start_one, verify_one = registry.hook(key, "start"), registry.hook(key, "verify")
        writes = bool(getattr(registry.SOURCES[key], "WRITES_RESTORED_FILES", False))
        own = [hashed[key]] if key in hashed else list(hashed.values())

        def run() -> list[Check]:
            mine = [rec for k, rec in records if k == key]
            out = [c for rec in mine for c in start_one(ctx, rec)]
            started[key] = time.monotonic() - t0
            for event in own if writes else []:
                while not event.wait(0.2):
                    interrupts.check(ctx.target.name)
            return out + [c for rec in mine for c in verify_one(ctx, rec)]
        return run

    groups: dict[str, Callable[[], list[Check]]] = {f"files:{name}": hasher(name) for name in hash_groups}
    groups.update({key: source(key) for key in registry.keys() if any(k == key for k, _ in records)})
    checks = run_parallel(groups, timings)
    timings["files"] = max((timings.pop(f"files:{name}") for name in hash_groups), default=0.0)
    checks.insert(0, verify.make_files_check(layout, doc, [hash_parts.get(name, "not hashed") for name in hash_groups]))
    checks.append(interrupts.result(repo_check))
    return checks, max(started.values(), default=0.0)


def run_parallel(groups: dict[str, Any], timings: dict[str, float]) -> list[Check]:
    def timed(name: str) -> list[Check]:
        t0 = time.monotonic()
        try:
            out: list[Check] = groups[name]()
            return out
        finally:
            timings[name] = round(time.monotonic() - t0, 3)

    with ThreadPoolExecutor(max_workers=len(groups), thread_name_prefix="verify") as pool:
        futures = {name: pool.submit(timed, name) for name in groups}
        return [c for name in groups for c in interrupts.result(futures[name])]


def run_restore(target: Target, repo: restic.Repo, policy: Policy, source: str, wanted: str, layout: plan.Layout,
                snap_future: Future[Found]) -> tuple[restic.Snapshot, Check]:
    """restic restore (of `latest` for the source host and policy tags, or of the wanted id) while
    the snapshot is looked up in parallel: each restic call pays the key derivation, so they overlap.
    The lookup's errors (no such snapshot) win; restic must have restored the snapshot listed."""
    try:
        out = restic.restore(target, repo, wanted, layout.restore_dir, host=source, tags=make_tags(policy))
        failed = None
    except ResticError as exc:
        out, failed = "", exc
    snap = interrupts.result(snap_future)[0]
    if failed is not None:
        return snap, Check("restore", False, str(failed)[-600:])
    restored = restic.parse_restored_snapshot(out)
    if restored is not None and not snap.matches(restored):
        return snap, Check("restore", False, f"restic restored snapshot {restored} but the latest listed is {snap.short_id} "
                           "(a backup finished meanwhile): run the restore test again")
    size = target.run(f"du -sb {quote(layout.restore_dir)} | cut -f1").stdout.strip()
    return snap, Check("restore", True, f"restic restore {snap.short_id} into {layout.restore_dir}: "
                       f"{format_bytes(int(size or 0))}", {"bytes": int(size or 0)})


def run_phases(target: Target, source: Host, live_target: Target, policy: Policy, repo: restic.Repo,
               snap_future: Future[Found], need_future: Future[int], layout: plan.Layout, options: Options,
               phases: dict[str, float], timings: dict[str, float],
               plan_names: list[str]) -> tuple[restic.Snapshot | None, list[Check]]:
    """Remove dead runs' leftovers, create the scratch dir, check its free space, restore, check the
    restored tree (nothing opens it before), start, verify; always clean up. Returns the snapshot
    tested (the lookup's error propagates) and the checks."""
    checks: list[Check] = []
    snap: restic.Snapshot | None = None
    subset = policy.check.read_data_subset if options.read_data_subset == "policy" else options.read_data_subset
    created = False
    ctx = TestContext(target=target, live_target=live_target, policy=policy, layout=layout, options=options,
                      scripts=HostScripts(target))
    setup.run_remove_leftovers(target, os.path.dirname(layout.root), layout.root)
    checker = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"check-{target.name}")
    try:
        target.run(plan.make_create_command(layout), check=True)
        created = True
        try:
            need = interrupts.result(need_future)
        except RagopsError:
            interrupts.result(snap_future)  # no such snapshot: the lookup's error says so best
            raise
        setup.run_space_check(target, layout.root, need)
        memory_preflight.run_memory_preflight(target, repo, snap_future, source.name)  # before anything loads
        for key in registry.keys():  # e.g. ChromaDB's import overlaps the restore
            registry.hook(key, "begin")(ctx)
        t0 = time.monotonic()
        with progress.watch(target, layout.restore_dir, need, every_s=options.progress_every_s):
            snap, restored = run_restore(target, repo, policy, source.name, options.snapshot, layout, snap_future)
        # restic 0.14's check takes an exclusive lock: it cannot run beside the restore (its lock
        # protects the restore from a prune elsewhere); it starts now, beside everything that follows
        repo_check = checker.submit(verify.run_repository_check, target, repo, subset)
        checks += [Check("snapshot", True, f"{snap.short_id} of {snap.hostname} taken {snap.time[:19]}"), restored]
        doc = None
        if restored.ok:
            staging = plan.find_staging_path(snap.paths)
            tree = guard.run_tree_check(target, layout.restore_dir, plan.make_strict_dirs(layout, staging, snap.paths))
            checks.append(tree)
            if tree.ok:
                doc, manifest_check = read_manifest(target, layout, snap)
                checks.append(manifest_check)
        phases["restore"] = time.monotonic() - t0
        t1 = time.monotonic()
        if doc is not None:
            plan.check_scratch_safe(layout.root, plan.collect_live_paths([target.settings, source.settings], policy, doc))
            ctx.manifest_path = f"{layout.restored(doc['staging_dir'])}/{MANIFEST_NAME}"
            plan_names[:] = plan.make_check_plan(doc, read_data_subset=subset, selfcheck=options.selfcheck,
                                                 compat=True)
            verified, start_s = run_verify_phase(ctx, layout, doc, repo_check, timings)
            checks += verified
        else:
            checks.append(interrupts.result(repo_check))
            start_s = 0.0
        phases["start"] = start_s
        phases["verify"] = time.monotonic() - t1 - start_s
        if options.drill:  # while the scratch dir still holds the restored data
            checks += drill_run.run_drill(ctx, layout, doc, phases)
    finally:
        checker.shutdown(wait=False, cancel_futures=True)  # a started check is joined above or ends with us
        for key in registry.keys():
            registry.hook(key, "end")(ctx)
        if created:
            if options.keep:
                output.info(target.name, f"--keep: scratch dir kept for inspection: {layout.root}")
            else:
                target.run(plan.make_remove_command(layout))
    return snap, checks


def run_restore_test(target: Target, source: Host, options: Options) -> StepResult:
    live_target = target if source.name == target.name else Target(host=source, dry=target.dry,
                                                                     ssh_config_file=target.ssh_config_file)
    policy = load_policy(source, options.policy)
    repo = restic.make_repo(target, policy.repository)
    layout = plan.make_layout(plan.make_scratch_base(target.settings.backup.staging_dir, options.scratch_dir))
    plan.check_scratch_safe(layout.root, plan.collect_live_paths([target.settings, source.settings], policy))
    setup.run_tool_preflight(target, source, policy)
    recorded = read_last_backup(live_target, policy.repository.url, make_tags(policy))
    lookup = ThreadPoolExecutor(max_workers=2, thread_name_prefix=f"snapshot-{target.name}")
    snap_future = lookup.submit(lookup_snapshot, target, repo, policy, source.name, options.snapshot)
    need_future = lookup.submit(setup.run_need_bytes, target, repo, source.name, make_tags(policy), options.snapshot)
    lookup.shutdown(wait=False)
    phases: dict[str, float] = {}
    timings: dict[str, float] = {}
    plan_names: list[str] = []
    found, checks = run_phases(target, source, live_target, policy, repo, snap_future, need_future, layout, options,
                               phases, timings, plan_names)
    assert found is not None  # run_phases raises the lookup's error otherwise
    snap = found
    checks.insert(1, freshness.check_recorded(recorded, interrupts.result(snap_future)[1], snap, repo.describe()))
    stale = freshness.find_stale(snap, policy.schedule) if options.snapshot == "latest" else None
    rto = sum(phases.values())
    budget = policy.restore_test.rto_budget_s
    if budget:
        checks.append(Check("rto within budget", rto <= budget, f"RTO {rto:.1f}s, budget {budget:.0f}s", {"rto_s": rto}))
    ok, message = summarize(checks)
    for c in checks:
        (output.info if c.ok else output.error)(target.name, f"{'PASS' if c.ok else 'FAIL'} {c.check}: {c.evidence}")
    if stale:
        output.warn(target.name, f"DEGRADED: {stale}")
    verified = float(sum(c.figures.get("verified_bytes", 0) for c in checks))
    failed = [c.check for c in checks if not c.ok]
    try:
        record.run_add_record(live_target, record.make_record(
            snapshot_id=snap.id, repository=repo.url, host=source.name, verified_on=target.name, ok=ok, rto_s=rto,
            phases=phases, failed_checks=failed))
    except RagopsError as exc:
        output.warn(target.name, f"verified-state not recorded on {source.name}: {exc}")
    result = StepResult(STEP, (DEGRADED if stale else OK) if ok else FAILED,
                        message=f"snapshot {snap.short_id}: {message}; RTO {rto:.1f}s ("
                        + ", ".join(f"{k} {v:.1f}s" for k, v in phases.items()) + ")" + (f"; {stale}" if stale else ""))
    result.details = {"snapshot": snap.id, "snapshot_time": snap.time, "source": source.name, "verified_on": target.name,
                      "repository": repo.url, "ok": ok, "rto_s": round(rto, 3),
                      "phases": {k: round(v, 3) for k, v in phases.items()}, "verify_timings": timings,
                      "plan": plan_names,
                      "verified_bytes": verified,
                      "scratch_dir": layout.root if options.keep else None, "checks": [c.to_dict() for c in checks],
                      "verify_failed": not ok, "stale": stale}
    result.metrics = record.make_metrics(ok, rto, phases, verified, budget, record.read_previous_success(target), source.name)
    drill_run.attach(result, checks, target, source.name)  # --drill: its report and metrics (no-op otherwise)
    return result


def make_restore_test_step(source: Host, options: Options) -> Step:
    def run(target: Target) -> StepResult:
        try:
            return run_restore_test(target, source, options)
        except RagopsError as exc:  # no policy, no snapshot, unsafe scratch dir, missing tool: failed, metrics kept
            verify_failed = isinstance(exc, VerifyError)
            setup_error = exc.exit_code == ExitCode.CONFIG_ERROR
            previous = record.read_previous_success(target)
            metrics = [("ragops_restore_test_success", {"source": source.name}, 0.0)]
            if previous is not None:
                metrics.append(("ragops_restore_test_last_success_timestamp_seconds", {"source": source.name}, previous))
            checks = [Check("snapshot" if verify_failed else "setup", False, str(exc)).to_dict()]
            return StepResult(STEP, FAILED, message=str(exc), metrics=metrics,
                              details={"verify_failed": verify_failed, "setup_error": setup_error, "source": source.name,
                                       "checks": checks})

    return Step(STEP, run)
