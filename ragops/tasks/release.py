"""upgrade, release (the release-day runbook, in batches of hosts) and release.rollback."""

from __future__ import annotations

from invoke import task

from ..config import Host
from ..errors import ConfigError
from ..runner import Step
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


@task(name="rollback", help={**helps(*SHARED),
                             "service": "Only this service (default: every configured docker.services entry)."})
def rollback(c, host=None, config=None, service=None, dry=False, json_=False, parallel=None, fail_percent=None):
    """Back to the previous recorded version of each service (from the history file on the host)."""
    from ..docker.release_batches import make_rollback_steps

    with usage_errors("release.rollback", json_, dry=dry):
        parse_text_flag("service", service)
    execute(c, "release.rollback", make_rollback_steps([service] if service else None), host=host, config=config,
            dry=dry, json_out=json_, parallel=parallel, fail_percent=fail_percent)


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
    from ..docker.release import ReleaseOptions, make_release_images
    from ..docker.release_batches import make_release_id, run_release

    with usage_errors("release", json_, dry=dry):
        parse_text_flag("version", version, required=True)
        parse_fleet_flags(parallel, fail_percent)
        batch_flag = parse_int_flag("batch", batch, min=1)
        parse_text_flag("record_dir", record_dir)
        loaded, targets = make_run_targets(c, config, host, dry)
        for t in targets:
            make_release_images(t.settings, version)
    first = targets[0].settings.docker.release
    opts = ReleaseOptions(version=version, release_id=make_release_id(version), skip_backup=skip_backup,
                          restore_on_failure=restore_on_failure)
    finish(run_release(targets, opts, batch_size=batch_flag or first.batch_size, record_dir=record_dir or first.record_dir),
           json_)
