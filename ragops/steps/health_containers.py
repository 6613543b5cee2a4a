"""health's container states on a ``deployment: compose`` host: one check per Compose service.

Which project: ``docker.compose_project`` (the ``com.docker.compose.project`` label), else the
project whose working directory is ``docker.compose_file``'s (the
``com.docker.compose.project.working_dir`` label, so no ``docker compose`` call is needed);
neither set: no container checks. One read through the seam, ``docker ps -aq`` of the project's
containers then ``docker inspect`` of them (name, service, state, HEALTHCHECK status, restarts),
with the host's ``docker.cli`` / ``docker_host`` / ``docker_config``. One-off containers
(``docker compose run``) are left out. Judged per service (:func:`judge_service`):

- ok: a running container that is ``healthy``, or has no HEALTHCHECK (``none``);
- degraded: ``starting`` (its HEALTHCHECK has not passed yet), or only paused containers;
- failed: an ``unhealthy`` running container, or none running (exited, restarting, dead, created).

Stopped extra containers beside a running one (an old replica) are shown in the figures only.
"""

from __future__ import annotations

import os
from typing import Any

from ..config import DockerSettings, HostSettings
from ..errors import ToolNotFoundError
from ..report import DEGRADED, FAILED, OK
from ..seam import Target, Tool, quote
from .health_check import Check, worst

PROJECT_LABEL = "com.docker.compose.project"
WORKDIR_LABEL = "com.docker.compose.project.working_dir"
SERVICE_LABEL = "com.docker.compose.service"
ONEOFF_LABEL = "com.docker.compose.oneoff"
INSPECT_FORMAT = "\t".join([
    "{{.Name}}", f'{{{{index .Config.Labels "{SERVICE_LABEL}"}}}}', "{{.State.Status}}",
    "{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}", "{{.RestartCount}}",
    f'{{{{index .Config.Labels "{ONEOFF_LABEL}"}}}}',
])
HEALTH_STATUS = {"healthy": OK, "none": OK, "starting": DEGRADED, "unhealthy": FAILED}


def make_project_filter(settings: DockerSettings) -> str | None:
    """The ``docker ps --filter`` naming the host's Compose project, or None when none is configured."""
    if settings.compose_project:
        return f"label={PROJECT_LABEL}={settings.compose_project}"
    if settings.compose_file:
        return f"label={WORKDIR_LABEL}={os.path.dirname(settings.compose_file) or '.'}"
    return None


def make_containers_command(settings: HostSettings) -> str | None:
    d = settings.docker
    project = make_project_filter(d)
    if settings.deployment != "compose" or project is None:
        return None
    env = [f"DOCKER_HOST={quote(d.docker_host)}"] if d.docker_host else []
    env += [f"DOCKER_CONFIG={quote(d.docker_config)}"] if d.docker_config else []
    docker = " ".join([*env, quote(d.cli)])
    return (f"ids=$({docker} ps -aq --no-trunc --filter {quote(project)}) && "
            f"{{ [ -z \"$ids\" ] || {docker} inspect --format {quote(INSPECT_FORMAT)} $ids; }}")


def parse_containers(stdout: str) -> list[dict[str, str]]:
    keys = ("name", "service", "state", "health", "restarts", "oneoff")
    rows = [dict(zip(keys, (line.split("\t") + [""] * 6)[:6], strict=True)) for line in stdout.splitlines() if line.strip()]
    for row in rows:
        row["name"] = row["name"].lstrip("/")
    return [r for r in rows if r["oneoff"].lower() != "true"]


def judge_service(service: str, rows: list[dict[str, str]]) -> Check:
    """One service's check from its containers' rows (pure)."""
    shown: list[dict[str, Any]] = [{"name": r["name"], "state": r["state"], "health": r["health"], "restarts": int(r["restarts"] or 0)}
             for r in sorted(rows, key=lambda r: r["name"])]
    check = Check(f"container:{service}", figures={"service": service, "containers": shown})
    running = [r for r in shown if r["state"] == "running"]
    if running:
        check.status = worst([HEALTH_STATUS.get(str(r["health"]), DEGRADED) for r in running])
        check.message = ", ".join(f"{r['name']} {r['health'] if r['health'] != 'none' else 'running (no healthcheck)'}"
                                  for r in running)
    elif any(r["state"] == "paused" for r in shown):
        check.status, check.message = DEGRADED, "paused: " + ", ".join(r["name"] for r in shown if r["state"] == "paused")
    else:
        check.status = FAILED
        check.message = "not running: " + ", ".join(f"{r['name']} {r['state']} (restarts {r['restarts']})" for r in shown)
    return check


def judge_containers(rows: list[dict[str, str]], project: str) -> list[Check]:
    if not rows:
        return [Check("containers", FAILED, f"no containers of the Compose project ({project}) on this engine: is the stack up?",
                      figures={"project": project})]
    services: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        services.setdefault(row["service"] or row["name"], []).append(row)
    return [judge_service(name, group) for name, group in sorted(services.items())]


def check_containers(target: Target) -> list[Check]:
    command = make_containers_command(target.settings)
    if command is None:
        return []
    d = target.settings.docker
    project = str(make_project_filter(d)).removeprefix("label=")
    try:
        res = target.run(command, timeout=60, requires=Tool("docker", d.cli, "docker.cli"))
    except ToolNotFoundError as exc:
        return [Check("containers", FAILED, exc.reason, figures={"project": project})]
    if not res.ok and not res.stdout.strip():  # a container removed between ps and inspect still lets the rest through
        return [Check("containers", FAILED, f"docker ps/inspect failed (exit {res.exited}): {res.stderr.strip()[-300:]}",
                      figures={"project": project})]
    return judge_containers(parse_containers(res.stdout), project)
