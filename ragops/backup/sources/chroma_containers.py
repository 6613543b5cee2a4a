"""The Chroma source on a Compose host (``docker.data_tasks: containers``): where its data is, how the
writer is held, and where its helpers run.

- The persistent dir is the chroma role's mount at ``sources.chroma.data_dir`` (a path INSIDE the
  container; default ``docker.roles.chroma_path``, ``/data``): its host directory (a volume's mount
  point) comes from ``docker inspect`` (:func:`run_place`).
- ``strategy: stop`` with ``stop.compose_service: S``: ``docker stop -t T`` of S's running
  containers, then ``docker start`` of the same containers and a wait until each is healthy (or
  running, without a HEALTHCHECK) (:func:`make_hold_commands`). No Compose plugin needed.
- ``strategy: pause`` with ``pause.compose_service: W``: ``docker pause`` of W's running containers
  (the writer: ingestion / API), ``docker unpause`` of every one still paused afterwards
  (:func:`make_pause_commands`); the caller runs it in ``finally``, shielded from signals. Chroma
  itself is refused: the cgroup freezer stops the server between any two instructions, so its
  sqlite and HNSW files would be copied as a crash would leave them.
- Helpers that read the data (the copy's ``mirror_sync``, ``chroma_record``, ``chroma_inspect``,
  ``chroma_selfcheck``) run in THROWAWAY containers of the chroma service's image, by image id
  (:class:`~.throwaway.ThrowawayScripts`), the data mounted read-only where it is only read; the
  live schema (compatibility check) is read with ``docker exec`` in the running server's container.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import ConfigError
from ...seam import Target, quote
from ..policy_sources import ChromaSource, PauseSettings, StopSettings
from .compose_roles import ServiceContainer, describe_container, run_discover
from .container_scripts import ContainerScripts, make_docker_prefix
from .throwaway import Mount, ThrowawayScripts

HEALTH_FORMAT = "{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}"


def in_containers(target: Target) -> bool:
    return bool(target.settings.docker.data_tasks == "containers")


@dataclass(frozen=True)
class ChromaPlace:
    """The chroma role's container and its persistent dir, inside and on the host."""

    container: ServiceContainer
    container_path: str
    data_dir: str  # on the host (the volume's mount point)

    def describe(self) -> dict[str, object]:
        return describe_container(self.container, self.container_path)


def run_place(target: Target, source: ChromaSource | None) -> ChromaPlace:
    stack = run_discover(target)
    c = stack.container("chroma", target.name)
    inside = (source.data_dir if source is not None else None) or target.settings.docker.roles.chroma_path
    host = c.host_path(inside)
    if host is None:
        mounts = ", ".join(f"{m.get('Destination')}" for m in c.mounts) or "none"
        raise ConfigError(f"{target.name}: docker.roles.chroma_path {inside}: not a mount of container {c.name} "
                          f"(its mounts: {mounts}); set it (or the policy's sources.chroma.data_dir) to Chroma's "
                          "persistent dir inside the container")
    return ChromaPlace(c, inside, host)


def make_hold_commands(docker: str, names: list[str], timeout_s: float) -> tuple[str, str]:
    """(stop, start + wait healthy) of the writer's containers."""
    quoted = " ".join(quote(n) for n in names)
    stop = f"{docker} stop -t {int(min(timeout_s, 600))} {quoted} >/dev/null"
    wait = (f"for n in {quoted}; do i=0; while :; do s=$({docker} inspect -f {quote(HEALTH_FORMAT)} \"$n\"); "
            "case \"$s\" in healthy|running) break;; exited|dead) echo \"$n is $s\" >&2; exit 1;; esac; "
            f"i=$((i+1)); [ $i -ge {int(timeout_s * 2)} ] && {{ echo \"$n is still $s\" >&2; exit 1; }}; sleep 0.5; done; done")
    return stop, f"{docker} start {quoted} >/dev/null && {wait}"


def run_hold_commands(target: Target, stop: StopSettings) -> tuple[str, str]:
    """The stop/start commands of ``stop.compose_service``'s running containers in the project."""
    stack = run_discover(target)
    service = stop.compose_service
    names = sorted(c.name for c in stack.containers if c.service == service and c.running)
    if not names:
        raise ConfigError(f"{target.name}: sources.chroma.stop.compose_service {service!r}: no running container of "
                          f"that service in Compose project {stack.project!r} (services: {', '.join(stack.services())})")
    return make_hold_commands(make_docker_prefix(target.settings.docker), names, stop.timeout_s)


def make_pause_commands(docker: str, names: list[str]) -> tuple[str, str]:
    """(docker pause, docker unpause) of the writer's containers. The unpause thaws every one of them
    that is paused (also after a pause that failed half-way or was cut short by a signal) and fails
    unless each is running afterwards."""
    quoted = " ".join(quote(n) for n in names)
    thaw = (f"rc=0; for n in {quoted}; do s=$({docker} inspect -f '{{{{.State.Status}}}}' \"$n\") || {{ rc=1; continue; }}; "
            f"if [ \"$s\" = paused ]; then {docker} unpause \"$n\" >/dev/null || rc=1; "
            f"s=$({docker} inspect -f '{{{{.State.Status}}}}' \"$n\"); fi; "
            "[ \"$s\" = running ] || { echo \"$n is $s\" >&2; rc=1; }; done; exit $rc")
    return f"{docker} pause {quoted} >/dev/null", thaw


def run_pause_commands(target: Target, pause: PauseSettings) -> tuple[str, str]:
    """The pause/unpause commands of ``pause.compose_service``'s running containers in the project."""
    if not in_containers(target):
        raise ConfigError(f"{target.name}: sources.chroma.pause.compose_service needs docker.data_tasks: containers "
                          "(a Compose host whose data tasks run in its containers)")
    stack = run_discover(target)
    service = str(pause.compose_service)
    if service == stack.roles.get("chroma"):
        raise ConfigError(f"{target.name}: sources.chroma.pause.compose_service {service!r} is the Chroma server: "
                          "freezing it gives only a crash-consistent copy; pause the writer (ingestion / API) instead, "
                          "or use strategy stop")
    names = sorted(c.name for c in stack.containers if c.service == service and c.running)
    if not names:
        raise ConfigError(f"{target.name}: sources.chroma.pause.compose_service {service!r}: no running container of "
                          f"that service in Compose project {stack.project!r} (services: {', '.join(stack.services())})")
    return make_pause_commands(make_docker_prefix(target.settings.docker), names)


def make_scripts(target: Target, place: ChromaPlace, mounts: list[Mount], purpose: str,
                 network: str = "none") -> ThrowawayScripts:
    return ThrowawayScripts(target, place.container.image_id, mounts, purpose=purpose,
                            python=target.settings.docker.roles.python, network=network)


def run_image(target: Target) -> ChromaPlace:
    """The chroma role (for its image) on the verifying host."""
    return run_place(target, None)


def make_live_scripts(target: Target, place: ChromaPlace) -> ContainerScripts:
    """``docker exec`` in the running Chroma server's container (reads of the live store)."""
    return ContainerScripts(target, place.container.name, python=target.settings.docker.roles.python)
