"""`invoke drill.down`: remove restore drills kept with `restore-test --drill --keep` (or left by a
`kill -9`): every container, volume and network labelled with a drill project of the host's live
Compose project (``docker.compose_project``), or the one named with --project. Found by labels
(``ragops.drill=<project>``, Compose's project label), so no Compose file is needed; under --dry
the removal commands are printed. A live project's own containers and volumes carry no drill label
and are never matched.
"""

from __future__ import annotations

from ..report import FAILED, OK, StepResult
from ..seam import Target
from . import engine
from .plan import check_project_name


def run_drill_down(target: Target, project: str | None = None) -> StepResult:
    live = target.settings.docker.compose_project
    projects = [check_project_name(project)] if project else engine.run_list_projects(target, live)
    removed: dict[str, dict[str, list[str]]] = {}
    left: dict[str, dict[str, list[str]]] = {}
    for name in projects:
        removed[name] = engine.run_leftovers(target, name)
        rest = engine.run_remove_project(target, name)
        if rest and not target.dry:
            left[name] = rest
    details = {"projects": projects, "removed": removed, "left": left}
    if left:
        return StepResult("drill.down", FAILED, message=f"still left: {left}", details=details)
    if not projects:
        return StepResult("drill.down", OK, message=f"no drill project of {live or 'any live project'} on this engine",
                          details=details)
    counts = ", ".join(f"{p}: {sum(len(v) for v in removed[p].values())} object(s)" for p in projects)
    verb = "would remove" if target.dry else "removed"
    return StepResult("drill.down", OK, message=f"{verb} {counts}", details=details)
