"""The Compose project on a host: its files, the image override ragops writes, its containers.

Image pinning: ragops never edits the operator's compose file. It writes a small override,
``compose.ragops.yaml`` next to it (``docker.override_file``), holding only
``services.<name>.image``, and passes ``-f compose.yaml -f compose.ragops.yaml`` to every Compose
command. Operators running `docker compose` by hand add ``COMPOSE_FILE=compose.yaml:compose.ragops.yaml``
to the project's ``.env`` so they see the same images.
"""

from __future__ import annotations

import json
import os
from typing import Any

import yaml

from ..config import DockerSettings
from ..errors import ConfigError, StepError
from ..seam import Target
from .cli import run_docker, run_inspect

HEADER = "# Written by ragops (upgrade / release / release.rollback): the pinned image of each service.\n"


def make_override_path(settings: DockerSettings) -> str:
    if settings.override_file:
        return settings.override_file
    if not settings.compose_file:
        raise ConfigError("docker.compose_file is not set: upgrade, release and audit of services need the Compose file on the host")
    return os.path.join(os.path.dirname(settings.compose_file) or ".", "compose.ragops.yaml")


def make_compose_args(settings: DockerSettings, *, override: bool) -> list[str]:
    if not settings.compose_file:
        raise ConfigError("docker.compose_file is not set: upgrade, release and audit of services need the Compose file on the host")
    args = ["compose"]
    if settings.compose_project:
        args += ["-p", settings.compose_project]
    args += ["-f", settings.compose_file]
    if override:
        args += ["-f", make_override_path(settings)]
    return args


def make_override_text(images: dict[str, str]) -> str:
    return HEADER + yaml.safe_dump({"services": {svc: {"image": img} for svc, img in sorted(images.items())}},
                                   sort_keys=True)


def parse_override(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    data = yaml.safe_load(text) or {}
    return {svc: str(spec["image"]) for svc, spec in (data.get("services") or {}).items() if spec and "image" in spec}


def read_override(target: Target) -> dict[str, str]:
    return parse_override(target.read_text(make_override_path(target.settings.docker)))


def write_override(target: Target, images: dict[str, str]) -> None:
    target.put_text(make_override_text(images), make_override_path(target.settings.docker))


def run_compose_config(target: Target, *, override: bool) -> dict[str, Any]:
    """The resolved project (`docker compose config --format json`): name, services, volumes."""
    args = make_compose_args(target.settings.docker, override=override) + ["config", "--format", "json"]
    res = run_docker(target, args)
    try:
        return dict(json.loads(res.stdout))
    except ValueError:
        raise StepError(f"{target.name}: `docker compose config` printed no JSON (Compose v2 needed): {res.stdout[:200]}") from None


def list_service_containers(target: Target, project: str, service: str, *, all_states: bool = True) -> list[dict[str, Any]]:
    """Inspected containers of one service, oldest container number first."""
    args = ["ps", "-q", "--no-trunc", "--filter", f"label=com.docker.compose.project={project}",
            "--filter", f"label=com.docker.compose.service={service}"]
    if all_states:
        args.insert(1, "-a")
    ids = run_docker(target, args).stdout.split()
    infos = run_inspect(target, "container", ids)
    infos.sort(key=lambda i: int((i["Config"].get("Labels") or {}).get("com.docker.compose.container-number", 0)))
    return infos


def describe_health(info: dict[str, Any]) -> str:
    """healthy / unhealthy / starting / none (no HEALTHCHECK) / exited ..."""
    state = info.get("State") or {}
    if state.get("Status") != "running":
        return str(state.get("Status", "unknown"))
    return str((state.get("Health") or {}).get("Status", "none"))
