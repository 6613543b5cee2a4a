"""release: the release-day runbook as code, for one host (batches across hosts: release_batches.py).

Steps, each timed and logged: preflight (the health step: API, Redis, Chroma, disk; the host lock
is held for the whole run), backup (the backup step when a policy is configured, unless
--skip-backup), upgrade:<service> for every configured service in order, verify (health again,
/status and Chroma document counts unchanged, canned queries). On a failure every service already
upgraded in this release is rolled back (a failing service rolls itself back), and with
--restore-on-failure the pre-release snapshot is restored beside the live data (``<staging_dir>-release-restore/<id>``)
and the exact switch-over steps are printed: ragops never overwrites live data by itself.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import output
from ..config import HostSettings
from ..errors import ConfigError, ExitCode, LockHeldError, RagopsError, UnreachableError
from ..lock import HostLock
from ..report import FAILED, OK, SKIPPED, HostResult, Step, StepResult, summarize_status
from ..runner import run_step
from ..seam import Target
from ..steps.health import make_curl_command, parse_curl, run_health
from .upgrade import find_service, make_outcome_result, run_upgrade_service


@dataclass
class ReleaseOptions:
    version: str
    release_id: str
    skip_backup: bool = False
    restore_on_failure: bool = False


@dataclass
class ReleaseState:
    documents: dict[str, Any] | None = None
    upgraded: list[tuple[str, str, str]] = field(default_factory=list)  # (service, from image, record id)


def make_release_images(settings: HostSettings, version: str) -> list[tuple[str, str]]:
    """(service, image) in the configured order; services without an image template are left alone."""
    pairs = [(s.name, s.image.format(version=version)) for s in settings.docker.services if s.image]
    if not pairs:
        raise ConfigError("docker.services: no service has an `image` template (e.g. registry.local/rag-api:{version}); nothing to release")
    return pairs


def make_document_counts(health: StepResult) -> dict[str, Any]:
    """Document counts from the health step's details: /status total and per-collection Chroma counts."""
    counts: dict[str, Any] = {}
    for check in health.details.get("checks", []):
        figures = check.get("figures") or {}
        if check.get("name") == "api_status" and figures.get("total_documents") is not None:
            counts["api_total_documents"] = figures["total_documents"]
        if figures.get("collections"):
            counts["chroma_collections"] = figures["collections"]
    return counts


def run_preflight(target: Target, state: ReleaseState) -> StepResult:
    health = run_health(target)
    state.documents = make_document_counts(health)
    result = StepResult("preflight", FAILED if health.failed else OK, details={"health": health.details, "documents": state.documents})
    result.message = ("health failed: " if health.failed else "") + health.message
    return result


def run_backup(target: Target, opts: ReleaseOptions) -> StepResult:
    if opts.skip_backup:
        return StepResult("backup", SKIPPED, message="--skip-backup")
    backup = getattr(target.settings, "backup", None)
    if backup is None or not getattr(backup, "policy", None):
        return StepResult("backup", SKIPPED, message="no backup policy configured for this host (backup.policy)")
    from ..backup.step import run_backup_step  # lazy: the release plan is built without the backup code

    return run_backup_step(target)


def run_canned_queries(target: Target) -> list[str]:
    """Problems found by the configured canned queries against the live API."""
    api = target.settings.api
    problems = []
    for q in target.settings.docker.release.queries:
        if not api.url:
            return ["release.queries need api.url"]
        url = api.url.rstrip("/") + q.path
        res = target.run(make_curl_command(url, api.timeout_s))
        code, body = parse_curl(res.stdout)
        if code != q.expect_status:
            problems.append(f"{q.path}: HTTP {code or res.stderr.strip()[:100]} (expected {q.expect_status})")
        elif q.expect_body and q.expect_body not in body:
            problems.append(f"{q.path}: body lacks {q.expect_body!r}")
    return problems


def run_verify(target: Target, state: ReleaseState) -> StepResult:
    if target.dry:
        return StepResult("verify", SKIPPED, message="dry run: would re-run health, compare document counts, run canned queries")
    health = run_health(target)
    after = make_document_counts(health)
    problems = [f"health failed: {health.message}"] if health.failed else []
    if target.settings.docker.release.check_document_counts and state.documents and after != state.documents:
        problems.append(f"document counts changed: before {json.dumps(state.documents)}, after {json.dumps(after)}")
    problems += run_canned_queries(target)
    result = StepResult("verify", FAILED if problems else OK, details={"documents": after, "problems": problems})
    result.message = "; ".join(problems) if problems else f"healthy, document counts unchanged {json.dumps(after) if after else ''}".strip()
    return result


def make_upgrade_fn(service: str, image: str, state: ReleaseState, opts: ReleaseOptions) -> Callable[[Target], StepResult]:
    def run(target: Target) -> StepResult:
        _, health_command = find_service(target, service)
        out = run_upgrade_service(target, service, image, kind="release", health_command=health_command,
                                  release_id=opts.release_id, version=opts.version)
        if out.result == "ok":
            state.upgraded.append((service, out.from_ref["image"], out.record_id))
        return make_outcome_result(out, f"upgrade:{service}")

    return run


def make_rollback_fn(service: str, image: str, record_id: str, opts: ReleaseOptions) -> Callable[[Target], StepResult]:
    def run(target: Target) -> StepResult:
        _, health_command = find_service(target, service)
        out = run_upgrade_service(target, service, image, kind="rollback", health_command=health_command,
                                  undoes=record_id, release_id=opts.release_id)
        return make_outcome_result(out, f"rollback:{service}")

    return run


def run_release_steps(target: Target, opts: ReleaseOptions, result: HostResult) -> None:
    state = ReleaseState()
    steps = [Step("preflight", lambda t: run_preflight(t, state)), Step("backup", lambda t: run_backup(t, opts))]
    steps += [Step(f"upgrade:{svc}", make_upgrade_fn(svc, img, state, opts)) for svc, img in make_release_images(target.settings, opts.version)]
    steps.append(Step("verify", lambda t: run_verify(t, state)))
    failed = False
    for step in steps:
        res = run_step(target, step)
        result.steps.append(res)
        (output.error if res.failed else output.info)(target.name, f"{step.name}: {res.status} ({res.duration_s:.1f}s) {res.message}")
        if res.failed:
            failed = True
            result.error = f"release stopped at {step.name}"
            break
    if not failed:
        return
    for service, image, record_id in reversed(state.upgraded):
        res = run_step(target, Step(f"rollback:{service}", make_rollback_fn(service, image, record_id, opts)))
        result.steps.append(res)
        (output.error if res.failed else output.warn)(target.name, f"rollback:{service}: {res.status} ({res.duration_s:.1f}s) {res.message}")
    if opts.restore_on_failure:
        snapshot = next((s.details.get("snapshot_id") for s in result.steps if s.step == "backup" and s.status == "ok"), None)
        res = run_step(target, Step("restore", lambda t: run_pre_release_restore(t, opts, snapshot)))
        result.steps.append(res)
        (output.error if res.failed else output.warn)(target.name, f"restore: {res.status} {res.message}")


def make_restore_dir(target: Target, opts: ReleaseOptions) -> str:
    """Where the pre-release snapshot is restored: beside the staging dir, never over live data."""
    return f"{target.settings.backup.staging_dir.rstrip('/')}-release-restore/{opts.release_id}"


def run_pre_release_restore(target: Target, opts: ReleaseOptions, snapshot: str | None) -> StepResult:
    """Restore the snapshot this release's backup step took into a fresh dir and print the exact
    switch-over steps (ragops never overwrites live Redis/Chroma data by itself)."""
    if not snapshot:
        return StepResult("restore", SKIPPED, message="no pre-release snapshot was taken in this release (backup skipped or failed)")
    from ..restore.apply import RestoreOptions, run_restore

    return run_restore(target, RestoreOptions(target_dir=make_restore_dir(target, opts), snapshot=snapshot))


def run_release_host(target: Target, opts: ReleaseOptions, task: str = "release") -> HostResult:
    """Connect, take the host lock, run the release steps; never raises."""
    started = time.monotonic()
    result = HostResult(host=target.name)
    try:
        target.open()
        lock = HostLock(target, task)
        lock.acquire()
        try:
            run_release_steps(target, opts, result)
        finally:
            lock.release()
        result.status = FAILED if result.error else summarize_status(result.steps)
        result.exit_code = ExitCode.STEP_FAILED if result.status == FAILED else ExitCode.OK
    except UnreachableError as exc:
        result.status, result.error, result.exit_code = "unreachable", str(exc), ExitCode.UNREACHABLE
    except LockHeldError as exc:
        result.status, result.error, result.exit_code = "locked", str(exc), ExitCode.LOCK_HELD
    except RagopsError as exc:
        result.status, result.error, result.exit_code = FAILED, str(exc), exc.exit_code
    finally:
        result.duration_s = time.monotonic() - started
        target.close()
    if result.error and result.status != FAILED:
        output.error(target.name, result.error)
    return result
