"""release.rollback: put every configured service back to the version before its last recorded
successful upgrade (read from the history file on the host), with the same health-gated rolling
replacement as an upgrade. Repeating it walks further back through the history."""

from __future__ import annotations

from .. import output
from ..errors import StepError
from ..report import FAILED, OK, SKIPPED, StepResult
from ..seam import Target
from .compose import read_override, run_compose_config
from .history import append_record, find_rollback_targets, make_record, read_history
from .upgrade import find_service, make_outcome_result, run_upgrade_service


def run_history_rollback(target: Target, services: list[str] | None = None, **extra: object) -> list[StepResult]:
    """One StepResult per service rolled back (reverse of the configured order)."""
    settings = target.settings.docker
    names = services or [s.name for s in settings.services]
    if not names:
        raise StepError(f"{target.name}: no services to roll back: configure docker.services or pass --service")
    project = settings.compose_project or str(run_compose_config(target, override=bool(read_override(target))).get("name", ""))
    targets = find_rollback_targets(read_history(target), project, names)
    results = []
    for name in reversed(names):
        rec = targets.get(name)
        step = f"rollback:{name}"
        if rec is None:
            results.append(StepResult(step, SKIPPED, message=f"no successful upgrade of {name} recorded in {settings.history_file}"))
            continue
        image = rec["from"]["image"]
        output.info(target.name, f"{name}: rolling back {rec['to'].get('image')} -> {image} (upgrade {rec['id']} of {rec['ts']} by {rec['who']})")
        _, health_command = find_service(target, name)
        out = run_upgrade_service(target, name, image, kind="rollback", health_command=health_command, undoes=rec["id"], **extra)
        res = make_outcome_result(out, step)
        if out.result == "unchanged":  # already on the old image: still mark the upgrade as undone
            append_record(target, make_record(kind="rollback", host=target.name, project=project, service=name,
                                              from_ref=out.from_ref, to_ref=out.to_ref, result="ok", undoes=rec["id"],
                                              message="already on the previous image", **extra))
        res.status = OK if out.result in ("ok", "unchanged", "planned") else FAILED
        results.append(res)
    return results
