"""docker.prune and docker.audit-logs."""

from __future__ import annotations

import re

from invoke import task

from ..config import Host
from ..errors import ConfigError
from ..runner import Step
from .common import SHARED, execute, helps, parse_text_flag


def parse_until(value: str | None) -> str | None:
    """--until like docker.prune_until: 168h, 7d, 90m, 1h30m."""
    text = parse_text_flag("until", value)
    if text is not None and not re.fullmatch(r"([0-9]+[dhms])+", text):
        raise ConfigError(f"--until: must look like 168h, 7d or 90m (got {text!r})")
    return text


def make_prune_steps(until: str | None, volumes: bool):  # noqa: ANN201
    def plan(host: Host) -> list[Step]:
        from ..docker.prune import run_prune

        chosen = parse_until(until) or host.settings.docker.prune_until
        return [Step("docker", lambda t: run_prune(t, until=chosen, volumes=volumes))]

    return plan


@task(help={**helps(*SHARED),
            "until": "Only unused images / build cache older than this (e.g. 168h, 7d; default: docker.prune_until).",
            "volumes": "Also remove unused volumes (never protected ones, never one any container references)."})
def prune(c, host=None, config=None, until=None, volumes=False, dry=False, json_=False, parallel=None, fail_percent=None):
    """Remove stopped containers, dangling and old unused images, build cache, unused networks (and volumes)."""
    execute(c, "docker.prune", make_prune_steps(until, volumes), host=host, config=config, dry=dry, json_out=json_,
            parallel=parallel, fail_percent=fail_percent)


def _audit_plan(host: Host) -> list[Step]:
    from ..docker.audit import run_audit_logs

    return [Step("audit-logs", run_audit_logs)]


@task(name="audit-logs", help={**helps(*SHARED), "dry": "Accepted for symmetry: the audit only reads."})
def audit_logs(c, host=None, config=None, dry=False, json_=False, parallel=None, fail_percent=None):
    """List containers and Compose services whose logs have no size limit, with the fix; non-zero exit if any."""
    execute(c, "docker.audit-logs", _audit_plan, host=host, config=config, dry=dry, json_out=json_,
            parallel=parallel, fail_percent=fail_percent, lock=False)
