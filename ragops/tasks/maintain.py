"""maintain and its single steps: cleanup, logrotate, health."""

from __future__ import annotations

from invoke import task

from ..config import Host
from ..runner import Step
from ..steps import make_step
from .common import execute, helps


def make_maintain_plan(host: Host) -> list[Step]:
    return [make_step(name) for name in host.settings.steps]


@task(help=helps("host", "config", "dry", "json", "parallel", "fail_percent"))
def maintain(c, host=None, config=None, dry=False, json_=False, parallel=None, fail_percent=None):
    """Run the host's configured steps in order (cleanup, logrotate, health, ...), on one host or a fleet."""
    execute(c, "maintain", make_maintain_plan, host=host, config=config, dry=dry, json_out=json_,
            parallel=int(parallel) if parallel else None,
            fail_percent=int(fail_percent) if fail_percent is not None else None)


def _single(name: str):  # noqa: ANN202
    def plan(host: Host) -> list[Step]:
        return [make_step(name)]

    return plan


@task(help=helps("host", "config", "dry", "json", "parallel"))
def cleanup(c, host=None, config=None, dry=False, json_=False, parallel=None):
    """Delete old logs and temp files under the configured roots (find -mtime +N), reporting files and bytes."""
    execute(c, "cleanup", _single("cleanup"), host=host, config=config, dry=dry, json_out=json_,
            parallel=int(parallel) if parallel else None)


@task(help=helps("host", "config", "dry", "json", "parallel"))
def logrotate(c, host=None, config=None, dry=False, json_=False, parallel=None):
    """Install or refresh the logrotate policy for the log roots (idempotent; --dry shows the diff)."""
    execute(c, "logrotate", _single("logrotate"), host=host, config=config, dry=dry, json_out=json_,
            parallel=int(parallel) if parallel else None)


@task(help=helps("host", "config", "json", "parallel"))
def health(c, host=None, config=None, json_=False, parallel=None):
    """Check the API (/health, /status), Redis, Chroma and disk; non-zero exit unless healthy."""
    execute(c, "health", _single("health"), host=host, config=config, dry=False, json_out=json_,
            parallel=int(parallel) if parallel else None, lock=False, strict=True)
