"""maintain and its single steps: cleanup, logrotate, health."""

from __future__ import annotations

from invoke import task

from ..config import Host
from ..runner import Step
from ..steps import make_step
from .common import SHARED, execute, helps


def make_maintain_plan(host: Host) -> list[Step]:
    return [make_step(name) for name in host.settings.steps]


@task(help=helps(*SHARED))
def maintain(c, host=None, config=None, dry=False, json_=False, parallel=None, fail_percent=None):
    """Run the host's configured steps in order (cleanup, logrotate, health, ...), on one host or a fleet."""
    execute(c, "maintain", make_maintain_plan, host=host, config=config, dry=dry, json_out=json_,
            parallel=parallel, fail_percent=fail_percent)


def _single(name: str):  # noqa: ANN202
    def plan(host: Host) -> list[Step]:
        return [make_step(name)]

    return plan


@task(help=helps(*SHARED))
def cleanup(c, host=None, config=None, dry=False, json_=False, parallel=None, fail_percent=None):
    """Delete old logs and temp files under the configured roots (find -mtime +N), reporting files and bytes."""
    execute(c, "cleanup", _single("cleanup"), host=host, config=config, dry=dry, json_out=json_,
            parallel=parallel, fail_percent=fail_percent)


@task(help=helps(*SHARED))
def logrotate(c, host=None, config=None, dry=False, json_=False, parallel=None, fail_percent=None):
    """Install or refresh the logrotate policy for the log roots (idempotent; --dry shows the diff)."""
    execute(c, "logrotate", _single("logrotate"), host=host, config=config, dry=dry, json_out=json_,
            parallel=parallel, fail_percent=fail_percent)


@task(help={**helps(*SHARED), "dry": "Accepted for symmetry: health only reads (it changes nothing, takes no lock)."})
def health(c, host=None, config=None, dry=False, json_=False, parallel=None, fail_percent=None):
    """Check the API (/health, /status), Redis, Chroma and disk; non-zero exit unless healthy."""
    execute(c, "health", _single("health"), host=host, config=config, dry=dry, json_out=json_,
            parallel=parallel, fail_percent=fail_percent, lock=False, strict=True)
