"""drill.down: remove restore drills kept with `invoke restore-test --drill --keep` (docs/drill.md)."""

from __future__ import annotations

from invoke import task

from ..config import Host
from ..runner import Step
from .common import SHARED, execute, helps, parse_text_flag


def make_down_plan(project: str | None):  # noqa: ANN201
    def plan(host: Host) -> list[Step]:  # called inside execute's usage_errors: a bad --project exits 2
        from ..drill.engine import run_drill_down
        from ..drill.plan import check_project_name

        name = parse_text_flag("project", project)
        if name is not None:
            check_project_name(name)
        return [Step("drill.down", lambda t: run_drill_down(t, name))]

    return plan


@task(help={**helps(*SHARED),
            "project": "The drill project to remove (<live>-drill-<hex>, as the restore-test report names it); "
                       "default: every drill of the host's docker.compose_project."})
def down(c, host=None, project=None, config=None, dry=False, json_=False, parallel=None, fail_percent=None):
    """Remove kept restore drills: their containers, volumes and networks (never anything of the live project)."""
    execute(c, "drill.down", make_down_plan(project), host=host, config=config, dry=dry, json_out=json_,
            parallel=parallel, fail_percent=fail_percent)
