"""Finding the RAG stack of a Compose host (``docker.data_tasks: containers``): which service is Chroma,
Redis and the API, their containers, image ids, volumes and the volumes' host mount points.

Everything comes from two reads through the seam (they also run under --dry): ``docker ps -a`` of the
project's containers (by the ``com.docker.compose.project`` label) and one ``docker inspect`` of
them. A user names the project (``docker.compose_project``, or ``docker.compose_file``: the project
whose containers carry that file in their ``com.docker.compose.project.config_files`` label) and, if
the defaults do not fit, the services (``docker.roles``); never a ``/var/lib/docker/volumes/...`` path.

Role defaults: the service named like the role (``chroma``, ``redis``, ``api``/``rag-api``), else the
only service whose image name contains it (``chroma``, ``redis``, ``rag-api``). A role that cannot be
told is a ConfigError (exit 2) naming ``docker.roles.<role>`` and the candidates.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from ...errors import ConfigError, StepError
from ...seam import Target, quote
from .container_scripts import PROJECT_LABEL, SERVICE_LABEL, make_docker_prefix

FILES_LABEL = "com.docker.compose.project.config_files"
DIR_LABEL = "com.docker.compose.project.working_dir"
NAMES = {"chroma": ("chroma",), "redis": ("redis",), "api": ("api", "rag-api")}
IMAGE_HINTS = {"chroma": "chroma", "redis": "redis", "api": "rag-api"}


@dataclass(frozen=True)
class ServiceContainer:
    """One container of a Compose service, as ``docker inspect`` describes it."""

    service: str
    name: str
    id: str
    state: str
    health: str
    image_id: str
    image: str
    mounts: tuple[dict[str, Any], ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    ports: dict[str, Any] = field(default_factory=dict)
    network_mode: str = ""

    @property
    def running(self) -> bool:
        return self.state == "running"

    def mount_at(self, container_path: str) -> dict[str, Any] | None:
        """The mount whose destination contains ``container_path`` (the deepest one)."""
        best: dict[str, Any] | None = None
        for m in self.mounts:
            dest = str(m.get("Destination") or "").rstrip("/") or "/"
            if container_path == dest or container_path.startswith(dest.rstrip("/") + "/"):
                if best is None or len(dest) > len(str(best.get("Destination"))):
                    best = m
        return best

    def host_path(self, container_path: str) -> str | None:
        """``container_path`` on the host (through a volume's mount point or a bind mount), or None."""
        m = self.mount_at(os.path.normpath(container_path))
        if m is None or not m.get("Source"):
            return None
        dest = str(m["Destination"]).rstrip("/")
        rest = os.path.normpath(container_path)[len(dest):]
        return str(m["Source"]).rstrip("/") + rest


@dataclass(frozen=True)
class ComposeStack:
    project: str
    containers: tuple[ServiceContainer, ...]
    roles: dict[str, str]  # role -> service (only the roles found)

    def services(self) -> list[str]:
        return sorted({c.service for c in self.containers})

    def container(self, role: str, host: str) -> ServiceContainer:
        """The role's container: the first running one by name (a scaled service), else the first."""
        service = self.roles.get(role)
        if service is None:
            raise ConfigError(f"{host}: no {role} service in Compose project {self.project!r} (services: "
                              f"{', '.join(self.services()) or 'none'}): set docker.roles.{role} in ragops.yaml")
        mine = sorted((c for c in self.containers if c.service == service), key=lambda c: (not c.running, c.name))
        return mine[0]


def parse_container(info: dict[str, Any]) -> ServiceContainer:
    cfg, state = info.get("Config") or {}, info.get("State") or {}
    env = dict(item.split("=", 1) for item in (cfg.get("Env") or []) if "=" in item)
    host_cfg = info.get("HostConfig") or {}
    return ServiceContainer(
        service=str((cfg.get("Labels") or {}).get(SERVICE_LABEL, "")), name=str(info.get("Name", "")).lstrip("/"),
        id=str(info.get("Id", "")), state=str(state.get("Status", "")),
        health=str((state.get("Health") or {}).get("Status", "none")), image_id=str(info.get("Image", "")),
        image=str(cfg.get("Image", "")), mounts=tuple(info.get("Mounts") or ()), env=env,
        ports=dict(host_cfg.get("PortBindings") or {}), network_mode=str(host_cfg.get("NetworkMode", "")))


def pick_role(role: str, services: dict[str, str], taken: set[str], configured: str | None,
              host: str, project: str) -> str | None:
    """The service playing ``role`` (services: name -> image); None when nothing fits (the api may be absent)."""
    if configured:
        if configured not in services:
            raise ConfigError(f"{host}: docker.roles.{role}: no service {configured!r} in Compose project {project!r} "
                              f"(services: {', '.join(sorted(services)) or 'none'})")
        return configured
    for name in NAMES[role]:
        if name in services:
            return name
    hint = IMAGE_HINTS[role]
    found = sorted(s for s, image in services.items() if hint in image.rsplit("/", 1)[-1].lower() and s not in taken)
    if len(found) > 1:
        raise ConfigError(f"{host}: docker.roles.{role}: several services of project {project!r} look like {role} "
                          f"({', '.join(found)}): name one in ragops.yaml")
    return found[0] if found else None


def make_ps_command(target: Target, label: str) -> str:
    return (f"{make_docker_prefix(target.settings.docker)} ps -a -q --no-trunc --filter {quote('label=' + label)}")


def run_project_name(target: Target) -> str:
    """``docker.compose_project``, else the project whose containers were created from ``docker.compose_file``."""
    d = target.settings.docker
    if d.compose_project:
        return str(d.compose_project)
    fmt = "\t".join('{{.Label "' + label + '"}}' for label in (PROJECT_LABEL, FILES_LABEL, DIR_LABEL))
    res = target.run(f"{make_docker_prefix(d)} ps -a --filter {quote('label=' + PROJECT_LABEL)} --format {quote(fmt)}")
    if not res.ok:
        raise StepError(f"{target.name}: listing Compose containers failed (exit {res.exited}): {res.stderr.strip()[-300:]}")
    file = os.path.normpath(str(d.compose_file))
    names = set()
    for line in res.stdout.splitlines():
        project, files, workdir = (line.split("\t") + ["", "", ""])[:3]
        if file in [os.path.normpath(f) for f in files.split(",") if f] or os.path.dirname(file) == workdir.rstrip("/"):
            names.add(project)
    if len(names) != 1:
        why = f"several ({', '.join(sorted(names))})" if names else "none"
        raise ConfigError(f"{target.name}: docker.compose_file {file}: {why} of the engine's Compose projects were "
                          "created from it: set docker.compose_project in ragops.yaml")
    return names.pop()


def run_discover(target: Target) -> ComposeStack:
    """The project's containers and roles (reads: also under --dry)."""
    project = run_project_name(target)
    docker = make_docker_prefix(target.settings.docker)
    res = target.run(f"{make_ps_command(target, f'{PROJECT_LABEL}={project}')}", timeout=60)
    if res.exited == 127:
        raise ConfigError(f"{target.name}: docker not found on the host (install it or set docker.cli)")
    if not res.ok:
        raise StepError(f"{target.name}: `docker ps` failed (exit {res.exited}): {res.stderr.strip()[-300:]}")
    ids = res.stdout.split()
    if not ids:
        raise ConfigError(f"{target.name}: no container of Compose project {project!r} on this engine: is the stack "
                          "up, and is docker.compose_project right?")
    res = target.run(f"{docker} inspect " + " ".join(quote(i) for i in ids), timeout=60)
    infos = json.loads(res.stdout) if res.stdout.strip().startswith("[") else []
    containers = tuple(parse_container(i) for i in infos)
    if not containers:
        raise StepError(f"{target.name}: `docker inspect` of project {project!r} failed: {res.stderr.strip()[-300:]}")
    images: dict[str, str] = {}
    for c in containers:
        images.setdefault(c.service, c.image)
    roles_cfg = target.settings.docker.roles
    roles: dict[str, str] = {}
    for role in ("api", "chroma", "redis"):  # the api first: its image (built on chroma's) is no chroma candidate
        service = pick_role(role, images, set(roles.values()), getattr(roles_cfg, role), target.name, project)
        if service is not None:
            roles[role] = service
    return ComposeStack(project, containers, roles)


def redis_container_port(target: Target, container: ServiceContainer) -> int:
    """Redis' port inside its container (``docker.roles.redis_port``, else the published one, else redis.port)."""
    configured = target.settings.docker.roles.redis_port
    if configured:
        return int(configured)
    port = target.settings.redis.port
    for spec, bindings in container.ports.items():
        if any(str((b or {}).get("HostPort")) == str(port) for b in bindings or []):
            return int(spec.split("/")[0])
    return int(port)


def describe_container(c: ServiceContainer, container_path: str | None = None) -> dict[str, Any]:
    """What a manifest record keeps of the container a source was read from."""
    out: dict[str, Any] = {"service": c.service, "container": c.name, "image": c.image, "image_id": c.image_id}
    m = c.mount_at(container_path) if container_path else None
    if m is not None:
        out.update(path=container_path, mount_type=m.get("Type"), volume=m.get("Name"))
    return out
