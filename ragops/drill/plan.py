"""Pure planning of a restore drill: its project name, fresh volumes and Compose document.

The document starts from the live project's ``docker compose config --format json`` and keeps each
service's command, environment, healthcheck and dependencies, with:

- ``image``: the live container's image **id** (``pull_policy: never``): the very bytes live runs;
- every named volume replaced by a fresh drill volume (``external``, created and labelled by
  ragops: ``ragops.drill=<project>``); the role data mounts (Chroma's ``docker.roles.chroma_path``,
  Redis' dump dir) are filled from the restored snapshot, the others start empty; bind mounts stay,
  read-only;
- ``network_mode: host`` services get new free loopback ports through their environment
  (``restore_test.drill.services``: ``port_env`` / ``url_env``), published ``ports:`` new free ports on
  127.0.0.1; ``networks:`` are dropped (the drill's services share only the drill project's own
  default network), ``container_name``, ``build``, ``restart`` and ``deploy`` too.

A live volume name, a ``container:`` network mode or ``volumes_from`` in the result is refused
(SafetyError): a drill never shares anything with live.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..backup.policy_drill import DrillSettings
from ..errors import ConfigError, SafetyError

LABEL = "ragops.drill"  # the drill project's name, on every container and volume of a drill
LIVE_LABEL = "ragops.drill.live"  # the live project it was made from
ROLES = ("chroma", "redis", "api")
PROJECT = re.compile(r"^[a-z0-9][a-z0-9_-]*-drill-[0-9a-f]{6}$")
DROPPED = ("container_name", "build", "ports", "networks", "volumes", "restart", "labels", "image", "pull_policy",
           "deploy", "scale", "links", "external_links", "extends", "profiles", "volumes_from", "develop")


@dataclass(frozen=True)
class DrillVolume:
    name: str  # engine-level volume name (<project>_<key>)
    service: str
    target: str  # mount path in the service's container
    image: str  # the service's image id (the fill container runs it)
    source: str | None = None  # host path of the restored data (dir: its content; file: copied as `file_name`)
    file_name: str | None = None


@dataclass
class DrillPlan:
    project: str
    live_project: str
    compose: dict[str, Any]
    volumes: list[DrillVolume]
    api_url: str | None
    ports: dict[str, int] = field(default_factory=dict)  # "<service>" (host mode) or "<service>:<target>" -> port


def make_project_name(live_project: str, rand: str | None = None) -> str:
    base = re.sub(r"[^a-z0-9_-]", "", live_project.lower())[:40] or "ragops"
    return f"{base}-drill-{rand or secrets.token_hex(3)}"


def check_project_name(name: str) -> str:
    if not PROJECT.match(name):
        raise ConfigError(f"--project {name!r}: not a ragops drill project name (<live>-drill-<6 hex>)")
    return name


def count_ports(live: dict[str, Any], roles: dict[str, str], settings: DrillSettings) -> int:
    """How many free loopback ports make_drill_plan needs."""
    n = 0
    for name, spec in (live.get("services") or {}).items():
        role = next((r for r, s in roles.items() if s == name), None)
        if spec.get("network_mode") == "host" and role and getattr(settings.services, role).port_env:
            n += 1
        n += len(spec.get("ports") or [])
    return n


def make_url(url: str, port: int) -> str:
    parts = urlsplit(url)
    if not parts.hostname:
        return url
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    auth = parts.netloc.rpartition("@")[0]
    return urlunsplit(parts._replace(netloc=(auth + "@" if auth else "") + f"{host}:{port}"))


def _volume_key(mount: dict[str, Any], service: str, index: int) -> str:
    key = str(mount.get("source") or "") if mount.get("type") == "volume" else ""
    return re.sub(r"[^a-zA-Z0-9_.-]", "_", key) or f"{service}_{index}"


def make_drill_plan(live: dict[str, Any], *, project: str, images: dict[str, str], roles: dict[str, str],
                    data: dict[str, dict[str, tuple[str, str | None]]], ports: list[int],
                    settings: DrillSettings, live_volumes: set[str]) -> DrillPlan:
    """The drill project. ``data``: service -> {mount target: (restored host path, file name or None)};
    ``ports``: count_ports(...) free loopback ports; ``live_volumes``: every live volume name (refused)."""
    live_project = str(live.get("name") or "")
    if project == live_project or not PROJECT.match(project):
        raise SafetyError(f"drill project {project!r}: must be a <live>-drill-<hex> name, not the live project's")
    free = iter(ports)
    unknown = sorted(set(settings.environment) - set(live.get("services") or {}))
    if unknown:
        raise ConfigError(f"restore_test.drill.environment: no service {', '.join(unknown)} in the live project")
    role_of = {s: r for r, s in roles.items()}
    role_ports: dict[str, int] = {}
    services, volumes, plan_ports = {}, [], {}
    for name, spec in (live.get("services") or {}).items():
        role = role_of.get(name)
        mode = str(spec.get("network_mode") or "")
        if mode.startswith("container:") or spec.get("volumes_from"):
            raise SafetyError(f"drill: service {name} shares a container (network_mode {mode or '-'}, volumes_from): refused")
        if mode == "host" and role and getattr(settings.services, role).port_env:
            role_ports[role] = plan_ports[name] = next(free)
        if name not in images:
            raise ConfigError(f"drill: service {name} of {live_project!r} has no container: its image id is unknown "
                              "(start it, or remove it from the Compose project)")
    for name, spec in (live.get("services") or {}).items():
        role = role_of.get(name)
        out = {k: v for k, v in spec.items() if k not in DROPPED}
        env = {k: ("" if v is None else str(v)) for k, v in (spec.get("environment") or {}).items()}
        if role in role_ports:
            env[str(getattr(settings.services, role).port_env)] = str(role_ports[role])
        for other, port in role_ports.items():
            if other != role:
                for var in getattr(settings.services, other).url_env:
                    if env.get(var):
                        env[var] = make_url(env[var], port)
        env.update(settings.environment.get(name, {}))
        out["environment"] = env
        mounts: list[dict[str, Any]] = []
        for i, m in enumerate(spec.get("volumes") or []):
            target = str(m.get("target") or "")
            if m.get("type") == "volume" or target in data.get(name, {}):
                key = _volume_key(m, name, i)
                src, file_name = data.get(name, {}).get(target, (None, None))
                vol = DrillVolume(f"{project}_{key}", name, target, images[name], src, file_name)
                volumes.append(vol)
                mounts.append({"type": "volume", "source": key, "target": target})
            elif m.get("type") == "bind":
                mounts.append({**m, "read_only": True})
            else:
                mounts.append(m)
        out["volumes"] = mounts
        new_ports = []
        for p in spec.get("ports") or []:
            port = next(free)
            plan_ports[f"{name}:{p.get('target')}"] = port
            new_ports.append({"target": p.get("target"), "published": str(port), "host_ip": "127.0.0.1",
                              "protocol": p.get("protocol") or "tcp"})
        if new_ports:
            out["ports"] = new_ports
        out.update(image=images[name], pull_policy="never", restart="no",
                   labels={**(spec.get("labels") or {}), LABEL: project, LIVE_LABEL: live_project})
        services[name] = out
    missing = [f"{svc}:{t}" for svc, targets in data.items() for t in targets
               if not any(v.service == svc and v.target == t for v in volumes)]
    if missing:
        raise ConfigError(f"drill: no mount at {', '.join(missing)} in the live project (docker.roles.chroma_path?)")
    clash = sorted({v.name for v in volumes} & live_volumes)
    if clash:
        raise SafetyError(f"drill volume(s) {', '.join(clash)} would be live volumes: refused")
    compose = {"name": project, "services": services,
               "volumes": {v.name[len(project) + 1:]: {"external": True, "name": v.name} for v in volumes}}
    return DrillPlan(project, live_project, compose, volumes, make_api_url(services, roles, plan_ports), plan_ports)


def make_api_url(services: dict[str, Any], roles: dict[str, str], ports: dict[str, int]) -> str | None:
    api = roles.get("api")
    if not api or api not in services:
        return None
    if api in ports:
        return f"http://127.0.0.1:{ports[api]}"
    mine = sorted((k, v) for k, v in ports.items() if k.startswith(api + ":"))
    return f"http://127.0.0.1:{mine[0][1]}" if mine else None
