"""`invoke restore-test --dry --drill`: the drill's plan and the commands it would run, from reads
only (the live project's containers and ``docker compose config``, free loopback ports); nothing is
restored, created or started.

The restored paths are not known before the restore (they are below the run's scratch dir, from the
snapshot's manifest): the plan shows them as ``<scratch>/restore/<staged path>``.
"""

from __future__ import annotations

import json
from typing import Any

from .. import output
from ..backup.policy import Policy
from ..backup.sources.compose_roles import run_discover
from ..report import OK, StepResult
from ..seam import Target, quote
from . import engine
from .engine import PROJECT_LABEL
from .plan import LABEL, DrillPlan, count_ports, make_drill_plan, make_project_name

RESTORED = "<scratch>/restore/<staged path>"
COMPOSE_FILE = "<scratch>/drill/compose.json"


def make_placeholder_data(target: Target, roles: dict[str, str]) -> dict[str, dict[str, tuple[str, str | None]]]:
    data: dict[str, dict[str, tuple[str, str | None]]] = {}
    if "chroma" in roles:
        data[roles["chroma"]] = {target.settings.docker.roles.chroma_path: (f"{RESTORED}/chroma", None)}
    if "redis" in roles:
        data[roles["redis"]] = {"/data": (f"{RESTORED}/dump.rdb", "dump.rdb")}
    return data


def make_dry_commands(prefix: str, plan: DrillPlan, compose_file: str = COMPOSE_FILE) -> list[str]:
    """What the drill runs, in order (the fill containers' names are random at run time)."""
    out = []
    for vol in plan.volumes:
        out.append(f"{prefix} volume create --label {quote(f'{LABEL}={plan.project}')} "
                   f"--label {quote(f'ragops.drill.live={plan.live_project}')} {quote(vol.name)}")
        if vol.source:
            out.append(engine.make_fill_command(prefix, plan, vol, "ragops-drill-fill-<hex>"))
    out.append(f"write {compose_file} (the drill's Compose document, mode 0600)")
    out.append(f"{prefix} compose -p {quote(plan.project)} -f {quote(compose_file)} up -d")
    by_project = quote(f"label={PROJECT_LABEL}={plan.project}")
    out.append(f"{prefix} rm -f -v $({prefix} ps -aq --filter {by_project})")
    out.append(f"{prefix} network rm $({prefix} network ls -q --filter {by_project})")
    out.append(f"{prefix} volume rm -f $({prefix} volume ls -q --filter {quote(f'label={LABEL}={plan.project}')})")
    return out


def make_summary(plan: DrillPlan, questions: list[str]) -> dict[str, Any]:
    return {"project": plan.project, "live_project": plan.live_project,
            "images": {name: spec["image"] for name, spec in plan.compose["services"].items()},
            "volumes": [v.name for v in plan.volumes], "ports": plan.ports, "api_url": plan.api_url,
            "questions": questions}


def run_drill_dry(target: Target, policy: Policy) -> StepResult:
    """Plan the drill from reads and print it (``output.dry_command``); returns it in the details."""
    settings = policy.restore_test.drill
    stack = run_discover(target)
    live = engine.run_live_config(target, stack.project, stack.containers[0].id)
    ports = engine.run_free_ports(target, count_ports(live, stack.roles, settings))
    plan = make_drill_plan(live, project=make_project_name(stack.project),
                           images={c.service: c.image_id for c in stack.containers}, roles=stack.roles,
                           data=make_placeholder_data(target, stack.roles), ports=ports, settings=settings,
                           live_volumes=engine.run_live_volumes(target))
    queries = settings.queries or target.settings.docker.release.queries
    questions = [q.path for q in queries] or ["the manifest's Chroma probes, by their stored vectors (no queries configured)"]
    summary = make_summary(plan, questions)
    commands = make_dry_commands(engine.docker(target), plan)
    for key in ("project", "images", "volumes", "ports", "questions"):
        output.dry_command(target.name, f"drill {key}: {json.dumps(summary[key], sort_keys=True)}")
    for cmd in commands:
        output.dry_command(target.name, cmd)
    return StepResult("restore-test.drill", OK, message=f"would drill project {plan.project} ({len(plan.volumes)} fresh "
                      f"volume(s), {len(plan.ports)} port(s), {len(questions)} question(s)); nothing started",
                      details={"drill_plan": summary, "commands": commands})
