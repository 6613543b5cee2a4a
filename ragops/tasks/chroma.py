"""chroma tasks: chroma.vacuum."""

from __future__ import annotations

from invoke import task

from ..config import Host
from ..runner import Step
from .common import SHARED, execute, helps
from .policies import require_policy


@task(help={**helps(*SHARED),
            "policy": "Backup policy whose chroma strategy (stop/pause) holds the writer; default: the host's backup.policy.",
            "no_backup_check": "Vacuum even without a snapshot younger than 26 h."})
def vacuum(c, host=None, config=None, policy=None, dry=False, no_backup_check=False, json_=False, parallel=None,
           fail_percent=None):
    """Optimize the Chroma store (chroma vacuum, else sqlite VACUUM) with the writer held; size before/after."""
    from ..backup.vacuum import run_vacuum

    def plan(h: Host) -> list[Step]:
        require_policy(h, policy, optional=True)
        return [Step("chroma.vacuum", lambda t: run_vacuum(t, policy_name=policy, backup_check=not no_backup_check))]

    execute(c, "chroma.vacuum", plan, host=host, config=config, dry=dry, json_out=json_, parallel=parallel,
            fail_percent=fail_percent)
