"""docker.prune and docker.audit-logs."""

from __future__ import annotations

from invoke import task

from ..config import Host
from ..runner import Step
from .common import execute, helps


def make_prune_steps(until: str | None, volumes: bool):  # noqa: ANN201
    def plan(host: Host) -> list[Step]:
        from ..docker.prune import run_prune

        chosen = until or host.settings.docker.prune_until
        return [Step("docker", lambda t: run_prune(t, until=chosen, volumes=volumes))]

    return plan


@task(help={**helps("host", "config", "dry", "json", "parallel"),
            "until": "Only unused images / build cache older than this (e.g. 168h, 7d; default: docker.prune_until).",
            "volumes": "Also remove unused volumes (never protected ones, never one any container references)."})
def prune(c, host=None, config=None, until=None, volumes=False, dry=False, json_=False, parallel=None):
    """Remove stopped containers, dangling and old unused images, build cache, unused networks (and volumes)."""
    execute(c, "docker.prune", make_prune_steps(until, volumes), host=host, config=config, dry=dry, json_out=json_,
            parallel=int(parallel) if parallel else None)


def _audit_plan(host: Host) -> list[Step]:
    from ..docker.audit import run_audit_logs

    return [Step("audit-logs", run_audit_logs)]


@task(name="audit-logs", help=helps("host", "config", "json", "parallel"))
def audit_logs(c, host=None, config=None, json_=False, parallel=None):
    """List containers and Compose services whose logs have no size limit, with the fix; non-zero exit if any."""
    execute(c, "docker.audit-logs", _audit_plan, host=host, config=config, dry=False, json_out=json_,
            parallel=int(parallel) if parallel else None, lock=False)
