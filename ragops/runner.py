"""Apply a plan of steps to one host, and to a fleet of hosts in parallel."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from . import interrupts, output
from .errors import (
    ConfigError,
    ExitCode,
    Interrupted,
    LockHeldError,
    RagopsError,
    UnreachableError,
    VerifyError,
)
from .lock import HostLock
from .report import (  # Step, StepFn and summarize_status are re-exported (they live in report)
    DEGRADED,
    FAILED,
    OK,
    HostResult,
    Step,
    StepFn,
    StepResult,
    make_metrics_text,
    metrics_file_name,
    summarize_status,
)
from .seam import Target

__all__ = ["INTERRUPTED", "Step", "StepFn", "StepResult", "run_fleet", "run_host", "run_step", "summarize_status"]

INTERRUPTED = "interrupted"  # HostResult.status of a host a signal cut short
# A step's explicit exit code wins over the status-derived STEP_FAILED; first listed wins among them.
EXPLICIT_EXIT_CODES = (ExitCode.CONFIG_ERROR, ExitCode.VERIFY_FAILED)


def run_step(target: Target, step: Step) -> StepResult:
    """Run one step, turning every error into a failed StepResult with a clear message."""
    started = time.monotonic()
    try:
        result = step.run(target)
    except UnreachableError:
        raise
    except RagopsError as exc:
        # a usage/config error found by the step (exit 2) or damage found by a check (exit 5)
        # keeps its exit code; any other error is a failed step (exit 1)
        explicit = exc.exit_code if isinstance(exc, ConfigError | VerifyError) else None
        result = StepResult(step.name, FAILED, message=str(exc), exit_code=explicit)
    except Exception as exc:  # noqa: BLE001 - a bug must not take the other hosts down
        output.error(target.name, "".join(traceback.format_exception(exc)[-3:]).strip())
        result = StepResult(step.name, FAILED, message=f"unexpected error: {type(exc).__name__}: {exc}")
    result.step = step.name
    result.duration_s = time.monotonic() - started
    result.dry = target.dry
    return result


def write_metrics(target: Target, result: StepResult, file_name: str) -> None:
    """Atomically write the node_exporter textfile for one step; a failure only warns."""
    directory = target.settings.metrics_dir
    if not directory or target.dry:
        return
    path = f"{directory.rstrip('/')}/{file_name}"
    try:
        with interrupts.shielded():  # the failed-run metrics of an interrupted run must be written
            previous = target.read_text(path)
            target.put_text(make_metrics_text(target.name, result, time.time(), previous), path)
    except RagopsError as exc:
        output.warn(target.name, f"metrics not written to {path}: {exc}")


def send_ping(target: Target, kind: str) -> None:
    """healthchecks-style ping: URL/start, URL (success), URL/fail. Never fails the run."""
    url = target.settings.pings.url
    if not url:
        return
    full = url.rstrip("/") + {"start": "/start", "success": "", "fail": "/fail"}[kind]
    target.http_get(full, timeout=target.settings.pings.timeout_s, what=f"ping {kind}")


def host_exit_code(steps: list[StepResult], status: str, *, strict: bool = False) -> ExitCode:
    """The worst explicit exit code of the steps (CONFIG_ERROR, then VERIFY_FAILED), else the one
    derived from the host's status (STEP_FAILED for failed, or degraded when ``strict``)."""
    explicit = {s.exit_code for s in steps if s.exit_code is not None}
    for code in EXPLICIT_EXIT_CODES:
        if code in explicit:
            return code
    bad = (FAILED, DEGRADED) if strict else (FAILED,)
    return ExitCode.STEP_FAILED if status in bad else ExitCode.OK


def mark_interrupted(result: HostResult, not_run: list[str]) -> None:
    result.status, result.exit_code = INTERRUPTED, ExitCode.INTERRUPTED
    result.error = interrupts.describe() + (f"; not run: {', '.join(not_run)}" if not_run else "")


def run_host(target: Target, task: str, steps: list[Step], *, lock: bool = True, strict: bool = False) -> HostResult:
    """Connect, lock, run the steps in order (stop at the first failure unless continue_on_error).

    ``strict``: a degraded result also makes the exit code non-zero (the health task). Once the
    run is cancelled (SIGTERM/SIGINT/SIGHUP) no further step starts; a host whose steps did not
    all run and succeed is ``interrupted`` (exit code 130), its failed-run metrics and fail ping
    are still sent.
    """
    started = time.monotonic()
    result = HostResult(host=target.name)
    pinged = False
    try:
        target.open()
        host_lock = HostLock(target, task) if lock else None
        if host_lock:  # before the start ping: a held or misconfigured lock records nothing
            host_lock.acquire()
        send_ping(target, "start")
        pinged = True
        try:
            for step in steps:
                if interrupts.cancelled():
                    break
                step_result = run_step(target, step)
                result.steps.append(step_result)
                style = output.error if step_result.failed else output.info
                style(target.name, f"{step.name}: {step_result.status} ({step_result.duration_s:.1f}s) {step_result.message}")
                write_metrics(target, step_result, metrics_file_name(step.name))
                if step_result.failed and step.name not in target.settings.continue_on_error:
                    remaining = [s.name for s in steps[len(result.steps):]]
                    if remaining:
                        result.error = f"stopped after failed step {step.name}; not run: {', '.join(remaining)}"
                    break
            cut_short = interrupts.cancelled() and (len(result.steps) < len(steps) or any(s.failed for s in result.steps))
        finally:
            if host_lock:
                with interrupts.shielded():
                    host_lock.release()
        result.status = summarize_status(result.steps)
        result.exit_code = host_exit_code(result.steps, result.status, strict=strict)
        if cut_short:
            mark_interrupted(result, [s.name for s in steps[len(result.steps):]])
    except UnreachableError as exc:
        result.status, result.error, result.exit_code = "unreachable", str(exc), ExitCode.UNREACHABLE
        output.error(target.name, str(exc))
    except Interrupted as exc:  # while connecting or locking
        mark_interrupted(result, [s.name for s in steps[len(result.steps):]])
        output.error(target.name, str(exc))
    except LockHeldError as exc:
        result.status, result.error, result.exit_code = "locked", str(exc), ExitCode.LOCK_HELD
        output.error(target.name, str(exc))
    except RagopsError as exc:
        result.status, result.error, result.exit_code = FAILED, str(exc), exc.exit_code
        output.error(target.name, str(exc))
    finally:
        result.duration_s = time.monotonic() - started
        # The task's own series (step="<task>"), unless a step of the same name already wrote
        # them (`invoke cleanup`): two files with the same series break node_exporter. A config
        # error before any step (the lock path) records nothing: nothing ran.
        config_error = result.exit_code == ExitCode.CONFIG_ERROR and not result.steps
        if result.status != "unreachable" and not config_error and task not in {s.name for s in steps}:
            try:
                whole = StepResult(task, result.status if result.status in (OK, DEGRADED) else FAILED,
                                   duration_s=result.duration_s, bytes_freed=result.bytes_freed)
                write_metrics(target, whole, f"ragops_task_{task.replace('.', '_').replace('-', '_')}.prom")
            except UnreachableError:
                pass
        if pinged:
            send_ping(target, "success" if result.exit_code == ExitCode.OK else "fail")
        target.close()
    return result


def run_fleet(targets: list[Target], work: Callable[[Target], HostResult], *, parallel: int, fail_percent: int) -> list[HostResult]:
    """Run ``work`` on every target, ``parallel`` at a time; stop starting hosts past fail_percent."""
    results: dict[str, HostResult] = {}
    pending = list(targets)
    running: dict[Future[HostResult], Target] = {}
    failed = 0
    stopped = False
    with ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="host") as pool:
        while pending or running:
            while pending and not stopped and not interrupts.cancelled() and len(running) < parallel:
                target = pending.pop(0)
                running[pool.submit(work, target)] = target
            if not running:
                break
            # a timeout, so a signal the kernel gave a worker thread is handled here within 0.2 s:
            # an untimed wait blocks the main thread in sem_wait, which only a signal to it interrupts
            done, _ = wait(running, timeout=0.2, return_when=FIRST_COMPLETED)
            for future in done:
                target = running.pop(future)
                results[target.name] = future.result()
                if results[target.name].exit_code != ExitCode.OK:
                    failed += 1
            if not stopped and failed and fail_percent < 100 and failed * 100 >= fail_percent * len(targets):
                stopped = True
                if pending:
                    output.error("", f"{failed} of {len(targets)} host(s) failed (>= {fail_percent}%): not starting {len(pending)} more")
        for target in pending:
            if interrupts.cancelled():
                results[target.name] = HostResult(host=target.name, status="not started", exit_code=ExitCode.INTERRUPTED,
                                                  error=f"not started: {interrupts.describe()}")
            else:
                results[target.name] = HostResult(host=target.name, status="not started", exit_code=ExitCode.STEP_FAILED,
                                                  error=f"not started: --fail-percent {fail_percent} reached")
    return [results[t.name] for t in targets]
