"""release across hosts: batches of ``--batch`` hosts, one batch at a time (each host runs the
runbook of ``release.py``); stop after the first batch with a failure, mark the rest not started,
optionally roll back the hosts already released (``rollback_released_hosts``), and write the
release record (markdown + JSON) on the controller."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from .. import output
from ..config import Host
from ..errors import ExitCode
from ..report import HostResult, RunResult, Step
from ..runner import run_fleet, run_host
from ..seam import Target
from .history import make_who
from .record import write_release_record
from .release import ReleaseOptions, run_release_host
from .rollback import run_history_rollback


def make_release_id(version: str) -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + re.sub(r"[^A-Za-z0-9._-]", "_", version)


def make_batches(targets: list[Target], size: int) -> list[list[Target]]:
    return [targets[i:i + size] for i in range(0, len(targets), size)]


def make_rollback_steps(services: list[str] | None) -> Callable[[Host], list[Step]]:
    """The release.rollback plan: one ``rollback:<service>`` step per service (default: every
    configured docker.services entry), last configured first."""
    def plan(host: Host) -> list[Step]:
        names = services or [s.name for s in host.settings.docker.services]

        def one(name: str) -> Step:
            return Step(f"rollback:{name}", lambda t: run_history_rollback(t, [name])[0])

        return [one(n) for n in reversed(names)]

    return plan


def run_release(targets: list[Target], opts: ReleaseOptions, *, batch_size: int, record_dir: str) -> RunResult:
    """Release ``opts.version`` on the targets batch by batch and write the release record (under
    --dry the record is only announced)."""
    first = targets[0].settings.docker.release
    started, t0 = time.time(), time.monotonic()
    results: list[HostResult] = []
    meta: dict[str, Any] = {
        "release_id": opts.release_id, "version": opts.version, "hosts": [t.name for t in targets],
        "batch_size": batch_size, "started": datetime.fromtimestamp(started, UTC).isoformat(timespec="seconds"),
        "options": {"skip_backup": opts.skip_backup, "restore_on_failure": opts.restore_on_failure, "dry": targets[0].dry}}
    meta["who"] = make_who()
    batches = make_batches(targets, batch_size)
    for number, chunk in enumerate(batches, start=1):
        output.info("", f"release {opts.version}: batch {number}/{len(batches)}: {', '.join(t.name for t in chunk)}")
        done = run_fleet(chunk, lambda t: run_release_host(t, opts), parallel=len(chunk), fail_percent=100)
        results += done
        bad = [h.host for h in done if h.exit_code != ExitCode.OK]
        if bad:
            meta["stopped_after_batch"], meta["stop_reason"] = number, f"failed on {', '.join(bad)}"
            rest = [t for b in batches[number:] for t in b]
            results += [HostResult(host=t.name, status="not started", exit_code=ExitCode.STEP_FAILED,
                                   error=f"not started: batch {number} failed") for t in rest]
            if first.rollback_released_hosts:
                results += run_rollback_released(batches[:number - 1], [h.host for h in done if h.exit_code == ExitCode.OK],
                                                 chunk, opts.release_id)
            break
    run = RunResult(task="release", dry=targets[0].dry, hosts=results, started_at=started, duration_s=time.monotonic() - t0)
    if not run.dry:
        md, js = write_release_record(record_dir, run, meta)
        output.info("", f"release record: {md} and {js}")
    else:
        output.dry_command("", f"write the release record to {record_dir}/{opts.release_id}.md/.json")
    return run


def run_rollback_released(earlier: list[list[Target]], ok_in_failed_batch: list[str], failed_batch: list[Target],
                          release_id: str) -> list[HostResult]:
    """rollback_released_hosts: undo the release on hosts that completed it (earlier batches and
    the successful hosts of the failed batch), newest batch first."""
    hosts = [t for t in failed_batch if t.name in ok_in_failed_batch] + [t for b in reversed(earlier) for t in b]
    if not hosts:
        return []
    output.warn("", f"rolling back the release on {', '.join(t.name for t in hosts)} (rollback_released_hosts)")
    undone = []
    for t in hosts:
        t2 = Target(host=t.host, dry=t.dry, ssh_config_file=t.ssh_config_file)
        services = [s.name for s in t.settings.docker.services if s.image]
        res = run_host(t2, "release.rollback", make_rollback_steps(services)(t.host))
        res.host = f"{t.name} (rollback)"
        undone.append(res)
    return undone
