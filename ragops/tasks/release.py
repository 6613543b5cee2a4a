"""upgrade, release (the release-day runbook, in batches of hosts) and release.rollback."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

from invoke import task

from .. import output
from ..config import Host
from ..errors import ConfigError, ExitCode
from ..report import HostResult, RunResult
from ..runner import Step, run_fleet, run_host
from ..seam import Target
from .common import (
    SHARED,
    execute,
    finish,
    helps,
    make_run_targets,
    parse_fleet_flags,
    parse_int_flag,
    parse_text_flag,
    usage_errors,
)


def make_upgrade_steps(service: str, image: str):  # noqa: ANN201
    def plan(host: Host) -> list[Step]:
        from ..docker.upgrade import run_upgrade_step

        return [Step(f"upgrade:{service}", lambda t: run_upgrade_step(t, service, image))]

    return plan


@task(help={**helps(*SHARED),
            "service": "Compose service to upgrade (e.g. api).",
            "image": "Image to run (pulled if possible, else it must exist on the host).",
            "k8s": "Upgrade a Kubernetes Deployment instead (deployment/NAME), like `invoke k8s.upgrade`.",
            "namespace": "With --k8s: the Deployment's namespace (default rag-engine).",
            "timeout": "With --k8s: seconds the rollout may take before it is undone (default 300)."})
def upgrade(c, service=None, image=None, host=None, config=None, dry=False, json_=False, parallel=None,
            fail_percent=None, k8s=None, namespace=None, timeout=None):
    """Rolling, health-gated upgrade of one Compose service; rolls back and exits non-zero on a failed gate."""
    if k8s is not None:  # Kubernetes: set image, rollout status, undo on failure (ragops/k8s/rollout.py)
        from .k8s import run_upgrade_task

        run_upgrade_task(c, k8s, image, namespace=namespace, timeout=timeout, dry=dry, config=config, json_=json_)
        return
    with usage_errors("upgrade", json_, dry=dry):
        if not service or not image:
            raise ConfigError("--service and --image are required (or --k8s deployment/NAME --image IMAGE)")
        parse_text_flag("service", service)
        parse_text_flag("image", image)
    execute(c, "upgrade", make_upgrade_steps(service, image), host=host, config=config, dry=dry, json_out=json_,
            parallel=parallel, fail_percent=fail_percent)


def make_rollback_steps(services: list[str] | None):  # noqa: ANN201
    def plan(host: Host) -> list[Step]:
        names = services or [s.name for s in host.settings.docker.services]

        def one(name: str) -> Step:
            from ..docker.rollback import run_history_rollback

            return Step(f"rollback:{name}", lambda t: run_history_rollback(t, [name])[0])

        return [one(n) for n in reversed(names)]

    return plan


@task(name="rollback", help={**helps(*SHARED),
                             "service": "Only this service (default: every configured docker.services entry)."})
def rollback(c, host=None, config=None, service=None, dry=False, json_=False, parallel=None, fail_percent=None):
    """Back to the previous recorded version of each service (from the history file on the host)."""
    with usage_errors("release.rollback", json_, dry=dry):
        parse_text_flag("service", service)
    execute(c, "release.rollback", make_rollback_steps([service] if service else None), host=host, config=config,
            dry=dry, json_out=json_, parallel=parallel, fail_percent=fail_percent)


def make_release_id(version: str) -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + re.sub(r"[^A-Za-z0-9._-]", "_", version)


@task(name="release", default=True,
      help={**helps(*SHARED),
            "parallel": "Ignored: a release runs one batch (--batch hosts) at a time.",
            "fail_percent": "Ignored: a release stops after the first batch with a failure.",
            "version": "Version to release: fills the {version} of each docker.services[].image template.",
            "batch": "Hosts per batch (default: docker.release.batch_size); stop after the first failed batch.",
            "skip_backup": "Do not run the pre-release backup.",
            "restore_on_failure": "After a rollback, also restore the pre-release snapshot beside the live data and print the switch-over steps.",
            "record_dir": "Where the markdown + JSON release record goes (default: docker.release.record_dir)."})
def release(c, version, host=None, config=None, batch=None, skip_backup=False, restore_on_failure=False,
            record_dir=None, dry=False, json_=False, parallel=None, fail_percent=None):
    """The release-day runbook: preflight, backup, upgrade every service, verify; roll back on failure."""
    from ..docker.record import write_release_record
    from ..docker.release import ReleaseOptions, make_release_images, run_release_host

    with usage_errors("release", json_, dry=dry):
        parse_text_flag("version", version, required=True)
        parse_fleet_flags(parallel, fail_percent)
        batch_flag = parse_int_flag("batch", batch, min=1)
        parse_text_flag("record_dir", record_dir)
        loaded, targets = make_run_targets(c, config, host, dry)
        for t in targets:
            make_release_images(t.settings, version)
    first = targets[0].settings.docker.release
    size = batch_flag or first.batch_size
    opts = ReleaseOptions(version=version, release_id=make_release_id(version), skip_backup=skip_backup,
                          restore_on_failure=restore_on_failure)
    started, t0 = time.time(), time.monotonic()
    results: list[HostResult] = []
    meta: dict = {"release_id": opts.release_id, "version": version, "hosts": [t.name for t in targets],
                  "batch_size": size, "started": datetime.fromtimestamp(started, UTC).isoformat(timespec="seconds"),
                  "options": {"skip_backup": skip_backup, "restore_on_failure": restore_on_failure, "dry": targets[0].dry}}
    from ..docker.history import make_who

    meta["who"] = make_who()
    batches = [targets[i:i + size] for i in range(0, len(targets), size)]
    for number, chunk in enumerate(batches, start=1):
        output.info("", f"release {version}: batch {number}/{len(batches)}: {', '.join(t.name for t in chunk)}")
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
        md, js = write_release_record(record_dir or first.record_dir, run, meta)
        output.info("", f"release record: {md} and {js}")
    else:
        output.dry_command("", f"write the release record to {record_dir or first.record_dir}/{opts.release_id}.md/.json")
    finish(run, json_)


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


