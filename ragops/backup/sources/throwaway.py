"""Throwaway helper containers of a service's own image (``docker.data_tasks: containers``).

What checks a Chroma copy must be the server's own chromadb, and what loads a Redis dump the
server's own redis-server: so those helpers run in a container of the service's image, by image
id, created for the one call and removed after it::

    docker run --rm -i --name ragops-<purpose>-<hex> --label ragops.throwaway=<purpose>
        --network none -u "$(id -u):$(id -g)" -e HOME=/tmp -v /host/dir:/host/dir[:ro] ...
        --entrypoint python3 IMAGE_ID - ARGS          (the ragops/remote script on stdin)

- Every host directory is mounted at the SAME path inside (a volume's mount point, the staging
  or scratch dir), so the helpers' arguments and outputs are the host's paths, exactly as with
  :class:`~.hooks.HostScripts`; what must not be written is mounted ``:ro``.
- ``--network none`` (no network at all) unless a helper must reach a server on the host
  (``network="host"``: a Chroma server's probes); the container runs as ragops' own user on the
  host, so what it writes in the staging dir is ragops' to remove.
- Removed after the call by ``--rm`` and, in ``finally`` (also after a failure, a timeout or
  SIGTERM: ``docker run`` does not take its container down when its client is killed), by
  ``docker rm -f NAME``; :func:`make_leftovers_command` lists what a ``kill -9`` left.
"""

from __future__ import annotations

import secrets as _secrets
from dataclasses import dataclass

from ... import interrupts
from ...remote import script
from ...seam import CmdResult, Target, quote
from .container_scripts import make_docker_prefix

LABEL = "ragops.throwaway"
HOST_USER = '"$(id -u):$(id -g)"'  # expanded by the host's shell: the container runs as ragops' user


@dataclass(frozen=True)
class Mount:
    """A host path mounted at the same path in the throwaway container."""

    path: str
    read_only: bool = True

    def arg(self) -> str:
        return quote(f"{self.path}:{self.path}" + (":ro" if self.read_only else ""))


def make_name(purpose: str) -> str:
    return f"ragops-{purpose}-{_secrets.token_hex(4)}"


def make_run_command(docker: str, image: str, entrypoint: str, args: list[str], *, name: str, purpose: str,
                     mounts: list[Mount], network: str = "none", env: dict[str, str] | None = None,
                     secret_names: tuple[str, ...] = (), detach: bool = False, stdin: bool = False) -> str:
    """``DOCKER run --rm ...`` of one throwaway container (``docker`` is already a shell prefix)."""
    if network not in ("none", "host"):
        raise ValueError(f"throwaway containers use --network none or host, not {network!r}")
    parts = [docker, "run", "--rm", *(["-d"] if detach else []), *(["-i"] if stdin else []),
             "--name", quote(name), "--label", quote(f"{LABEL}={purpose}"), "--network", network,
             "-u", HOST_USER, "-e", "HOME=/tmp"]
    for key, value in (env or {}).items():
        if not key.isidentifier():
            raise ValueError(f"bad environment variable name {key!r}")
        parts += ["-e", quote(f"{key}={value}")]
    parts += [a for n in secret_names for a in ("-e", quote(n))]
    parts += [a for m in mounts for a in ("-v", m.arg())]
    return " ".join([*parts, "--entrypoint", quote(entrypoint), quote(image), *(quote(str(a)) for a in args)])


def make_remove_command(docker: str, name: str) -> str:
    """Remove the container if it is still there (quietly: ``--rm`` usually did it already)."""
    return f"{docker} rm -f {quote(name)} >/dev/null 2>&1; true"


def make_leftovers_command(docker: str) -> str:
    """Names of throwaway containers still on the engine (none once every run ended)."""
    return f"{docker} ps -a --filter {quote('label=' + LABEL)} --format '{{{{.Names}}}}'"


def run_remove(target: Target, docker: str, name: str) -> None:
    with interrupts.shielded():
        target.run(make_remove_command(docker, name), quiet_dry=True)


class ThrowawayScripts:
    """The :class:`~.hooks.Scripts` protocol: each ``run_script`` in a new container of ``image``."""

    def __init__(self, target: Target, image: str, mounts: list[Mount], *, purpose: str, python: str = "python3",
                 network: str = "none") -> None:
        self.target, self.image, self.mounts, self.purpose = target, image, list(mounts), purpose
        self.python, self.network = python, network
        self.docker = make_docker_prefix(target.settings.docker)
        self.names: list[str] = []  # every container started (removed after each call, and by close())

    def _command(self, name: str, args: list[str], python: str | None, env: dict[str, str] | None,
                 secret_names: tuple[str, ...] = ()) -> str:
        return make_run_command(self.docker, self.image, python or self.python, ["-", *args], name=name,
                                purpose=self.purpose, mounts=self.mounts, network=self.network, env=env,
                                secret_names=secret_names, stdin=True)

    def command(self, args: list[str], *, python: str | None = None, env: dict[str, str] | None = None) -> str:
        return self._command(make_name(self.purpose), args, python, env)

    def run_script(self, names: str | tuple[str, ...], args: list[str], *, python: str | None = None,
                   env: dict[str, str] | None = None, write: bool = False, timeout: float | None = None,
                   secrets: dict[str, str] | None = None) -> CmdResult:
        text = script(*((names,) if isinstance(names, str) else names))
        name = make_name(self.purpose)
        self.names.append(name)
        cmd = self._command(name, args, python, env, tuple(secrets or ()))
        try:
            return self.target.run(cmd, stdin=text, write=write, timeout=timeout, secrets=secrets)
        finally:
            if not (write and self.target.dry):
                run_remove(self.target, self.docker, name)

    def close(self) -> None:
        """Remove every container this executor started that may still run (e.g. a pre-started verify)."""
        for name in self.names:
            if not self.target.dry:
                run_remove(self.target, self.docker, name)


def run_tool(target: Target, image: str, tool: str, args: list[str], mounts: list[Mount], *, purpose: str,
             timeout: float | None = None, write: bool = False) -> CmdResult:
    """A tool of the image (e.g. ``redis-check-rdb FILE``) in a throwaway container, removed after."""
    docker = make_docker_prefix(target.settings.docker)
    name = make_name(purpose)
    try:
        return target.run(make_run_command(docker, image, tool, args, name=name, purpose=purpose, mounts=mounts),
                          timeout=timeout, write=write)
    finally:
        if not (write and target.dry):
            run_remove(target, docker, name)
