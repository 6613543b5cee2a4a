"""Run ``ragops/remote`` helpers inside a service's own container (``docker exec``), not on the host.

On a Compose host only docker (and restic) is installed: the Python that runs the stdlib helpers
is the one in the service images (ragops/chroma, ragops/rag-api and ragops/redis all have Debian's
python3; the official chroma image too). :class:`ContainerScripts` is the :class:`~.hooks.Scripts`
protocol of :class:`~.hooks.HostScripts`, with the command::

    [DOCKER_HOST=..] docker exec -i [-u USER] [-e K=V ...] [-e SECRET ...] CONTAINER PYTHON - ARGS

and the script on stdin, through the one seam ``Target.run`` (``write=True`` is only printed under
``--dry``). Secrets still travel on stdin: the host shell reads them into its environment and
``-e NAME`` (no value) hands them to the container, so they are never in argv.

A Compose service is found the Compose way, by its labels (``com.docker.compose.project`` /
``com.docker.compose.service``): :func:`make_find_args` + :func:`run_find_container`. Paths the
helpers see are the container's: :func:`make_container_path` maps a host path (a volume's
mountpoint) to it through the container's mounts.

Not like the host: the helper is not under ``resources.nice/ionice/memory_max`` (that wraps the
docker client, not the process in the container), and ``docker exec`` does not pass a signal or a
timeout on to the process it started: a helper cut short keeps running in the container until it
ends by itself.
"""

from __future__ import annotations

import json
from typing import Any

from ...config import DockerSettings
from ...errors import StepError, ToolNotFoundError
from ...remote import script
from ...seam import CmdResult, Target, quote

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
PS_FORMAT = "{{.ID}}\t{{.Names}}\t{{.State}}\t{{.Status}}\t{{.Label \"" + PROJECT_LABEL + "\"}}"
NOT_FOUND = ("executable file not found", "no such file or directory")


def make_docker_prefix(settings: DockerSettings, docker: str | None = None) -> str:
    """``[DOCKER_HOST=..] [DOCKER_CONFIG=..] DOCKER``: the host's docker CLI (``docker:`` settings)."""
    env = [f"DOCKER_HOST={quote(settings.docker_host)}"] if settings.docker_host else []
    env += [f"DOCKER_CONFIG={quote(settings.docker_config)}"] if settings.docker_config else []
    return " ".join([*env, quote(docker or settings.cli)])


def make_exec_command(docker: str, container: str, args: list[str], *, python: str = "python3",
                      user: str | None = None, env: dict[str, str] | None = None,
                      secret_names: list[str] | tuple[str, ...] = ()) -> str:
    """``DOCKER exec -i [-u USER] [-e K=V ...] [-e NAME ...] CONTAINER PYTHON - ARGS`` (``docker``
    is already a shell prefix; everything else is quoted here)."""
    parts = [docker, "exec", "-i"]
    parts += ["-u", quote(user)] if user else []
    for key, value in (env or {}).items():
        if not key.isidentifier():
            raise ValueError(f"bad environment variable name {key!r}")
        parts += ["-e", quote(f"{key}={value}")]
    for name in secret_names:  # value from the host shell's environment (read from stdin by the seam)
        parts += ["-e", quote(name)]
    return " ".join([*parts, quote(container), quote(python), "-", *(quote(str(a)) for a in args)])


def make_find_args(service: str, project: str | None = None) -> list[str]:
    """``docker ps -a`` of a Compose service's containers (every state: a stopped one is named)."""
    filters = [f"label={PROJECT_LABEL}={project}"] if project else []
    filters.append(f"label={SERVICE_LABEL}={service}")
    return ["ps", "-a", "--no-trunc", *(a for f in filters for a in ("--filter", f)), "--format", PS_FORMAT]


def parse_ps(stdout: str) -> list[dict[str, str]]:
    keys = ("id", "name", "state", "status", "project")
    return [dict(zip(keys, (line.split("\t") + [""] * 5)[:5], strict=True)) for line in stdout.splitlines() if line.strip()]


def pick_container(rows: list[dict[str, str]], service: str, project: str | None, host: str) -> str:
    """The running container of the service (the first by name when scaled); else a StepError."""
    where = f"Compose service {service!r}" + (f" of project {project!r}" if project else "")
    running = sorted((r for r in rows if r["state"] == "running"), key=lambda r: r["name"])
    projects = sorted({r["project"] for r in running})
    if len(projects) > 1:
        raise StepError(f"{host}: {where} runs in several Compose projects ({', '.join(projects)}): "
                        "set the project to choose one")
    if running:
        return running[0]["name"]
    if rows:
        seen = "; ".join(f"{r['name']} is {r['state'] or '?'} ({r['status']})" for r in rows)
        start = f"docker compose -p {quote(project or rows[0]['project'])} start {quote(service)}"
        raise StepError(f"{host}: {where} has no running container ({seen}): its helpers run inside it, "
                        f"start it first ({start})")
    raise StepError(f"{host}: no container of {where} on this engine (none with the label "
                    f"{SERVICE_LABEL}={service}): is the stack up, and are the service and project names right?")


def run_find_container(target: Target, service: str, project: str | None = None, *, docker: str | None = None) -> str:
    """Name of the running container of a Compose service (a read: also runs under --dry)."""
    cmd = " ".join([make_docker_prefix(target.settings.docker, docker), *(quote(a) for a in make_find_args(service, project))])
    res = target.run(cmd, timeout=60)
    if not res.ok:
        what = "docker not found on the host (install it or set docker.cli)" if res.exited == 127 else \
            f"`docker ps` failed (exit {res.exited}): {res.stderr.strip()[-400:]}"
        raise StepError(f"{target.name}: finding the container of Compose service {service!r}: {what}")
    return pick_container(parse_ps(res.stdout), service, project, target.name)


def make_container_path(mounts: list[dict[str, Any]], host_path: str) -> str | None:
    """A host path (e.g. a volume's mountpoint, or a file below it) as the container sees it,
    through ``docker inspect``'s ``Mounts`` (the deepest mount containing it); None if unmounted."""
    best: tuple[int, str] | None = None
    for m in mounts:
        src, dest = str(m.get("Source") or "").rstrip("/"), str(m.get("Destination") or "")
        if src and dest and (host_path == src or host_path.startswith(src + "/")) and (best is None or len(src) > best[0]):
            best = (len(src), dest.rstrip("/") + host_path[len(src):] if host_path != src else dest)
    return best[1] if best else None


def run_container_mounts(target: Target, container: str, *, docker: str | None = None) -> list[dict[str, Any]]:
    cmd = f"{make_docker_prefix(target.settings.docker, docker)} inspect --format '{{{{json .Mounts}}}}' {quote(container)}"
    res = target.run(cmd, timeout=60)
    if not res.ok:
        raise StepError(f"{target.name}: `docker inspect {container}` failed: {res.stderr.strip()[-400:]}")
    return list(json.loads(res.stdout or "[]") or [])


class ContainerScripts:
    """Runs ``ragops/remote`` scripts in a running container: ``docker exec -i CONTAINER PYTHON - ARGS``."""

    def __init__(self, target: Target, container: str, *, python: str = "python3", docker: str | None = None,
                 user: str | None = None) -> None:
        self.target, self.container, self.python, self.user = target, container, python, user
        self.docker = make_docker_prefix(target.settings.docker, docker)  # docker: default docker.cli

    @classmethod
    def for_service(cls, target: Target, service: str, project: str | None = None, **kwargs: Any) -> ContainerScripts:
        return cls(target, run_find_container(target, service, project, docker=kwargs.get("docker")), **kwargs)

    def _command(self, args: list[str], python: str | None, env: dict[str, str] | None,
                 secret_names: list[str] | tuple[str, ...] = ()) -> str:
        return make_exec_command(self.docker, self.container, args, python=python or self.python, user=self.user,
                                 env=env, secret_names=secret_names)

    def command(self, args: list[str], *, python: str | None = None, env: dict[str, str] | None = None) -> str:
        return self._command(args, python, env)

    def run_script(self, names: str | tuple[str, ...], args: list[str], *, python: str | None = None,
                   env: dict[str, str] | None = None, write: bool = False, timeout: float | None = None,
                   secrets: dict[str, str] | None = None) -> CmdResult:
        text = script(*((names,) if isinstance(names, str) else names))
        res = self.target.run(self._command(args, python, env, tuple(secrets or ())), stdin=text, write=write,
                              timeout=timeout, secrets=secrets)
        if not res.ok and not res.dry:
            self.raise_exec_error(res, python or self.python)
        return res

    def raise_exec_error(self, res: CmdResult, python: str) -> None:
        """docker exec's own failures named (container gone or stopped, no such Python, no docker);
        a helper's own failure is left to the caller, as with HostScripts."""
        out = (res.stderr.strip() + "\n" + res.stdout.strip()).strip()  # engine 20.10 prints OCI errors on stdout
        host, where = self.target.name, f"container {self.container!r}"
        if out.startswith(("Error response from daemon", "Error: No such container")):
            raise StepError(f"{host}: {where} is gone or not running (docker exec, exit {res.exited}): {out[-300:]}")
        if res.exited in (126, 127) and "OCI runtime" in out and any(s in out.lower() for s in NOT_FOUND):
            raise StepError(f"{host}: {python!r} is not in {where} (its image has no such Python): ragops' "
                            f"helpers cannot run there; {out[-200:]}")
        if res.exited == 127 and "not found" in out and "OCI" not in out:
            raise ToolNotFoundError(f"{host}: docker binary {self.docker!r} not found on the host "
                                    "(install it, or set docker.cli)")
