"""The docker CLI on the host, through the seam: commands, JSON parsing, sizes, times, versions.

ragops never talks to the Engine API itself: ``target.run("docker ...")`` runs the CLI on the host
(locally, or on the remote host over SSH), so nothing is needed on the controller and what runs is
exactly what an operator would type. ``docker.docker_host`` / ``docker.docker_config`` become
DOCKER_HOST / DOCKER_CONFIG of every command.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from ..config import DockerSettings
from ..errors import StepError
from ..seam import CmdResult, Target, Tool, quote

_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
          "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}
_DURATION = re.compile(r"([0-9]+)([dhms])")
_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def make_docker_command(settings: DockerSettings, args: list[str]) -> str:
    """`DOCKER_HOST=... docker ARGS` as one shell command (every argument quoted)."""
    env = []
    if settings.docker_host:
        env.append(f"DOCKER_HOST={quote(settings.docker_host)}")
    if settings.docker_config:
        env.append(f"DOCKER_CONFIG={quote(settings.docker_config)}")
    return " ".join([*env, quote(settings.cli), *(quote(a) for a in args)])


def run_docker(target: Target, args: list[str], *, write: bool = False, check: bool = True,
               timeout: float | None = 300) -> CmdResult:
    """Run the docker CLI on the host; with ``check`` a failure raises StepError naming host and command."""
    settings: DockerSettings = target.settings.docker
    tool = Tool("docker", settings.cli, "docker.cli") if check else None  # missing: a StepError
    res = target.run(make_docker_command(settings, args), write=write, timeout=timeout, requires=tool)
    if check and not res.ok and not res.dry:
        shown = " ".join(["docker", *args])[:200]
        detail = res.stderr.strip()[-600:] or res.stdout.strip()[-600:]
        raise StepError(f"{target.name}: `{shown}` failed (exit {res.exited}): {detail}")
    return res


def parse_json_lines(stdout: str) -> list[dict[str, Any]]:
    """Output of `docker ... --format '{{json .}}'`: one JSON object per line."""
    return [json.loads(line) for line in stdout.splitlines() if line.strip().startswith("{")]


def run_inspect(target: Target, kind: str, refs: list[str], *, size: bool = False) -> list[dict[str, Any]]:
    """`docker <kind> inspect` of many objects at once (objects vanishing meanwhile are skipped)."""
    if not refs:
        return []
    out: list[dict[str, Any]] = []
    for i in range(0, len(refs), 200):
        args = [kind, "inspect", *(["--size"] if size else []), *refs[i:i + 200]]
        res = run_docker(target, args, check=False)
        if res.stdout.strip().startswith("["):
            out += json.loads(res.stdout)
        elif not res.ok:
            raise StepError(f"{target.name}: `docker {kind} inspect` failed: {res.stderr.strip()[-400:]}")
    return out


def parse_size(text: str | None) -> int:
    """docker's human sizes ("1.986MB", "3B", "12.5kB", "N/A") -> bytes (decimal units, like docker)."""
    if not text:
        return 0
    match = re.match(r"^\s*([0-9.]+)\s*([a-zA-Z]*)", text)
    if not match:
        return 0
    return int(float(match.group(1)) * _UNITS.get(match.group(2).lower(), 1))


def parse_duration(text: str) -> int:
    """'168h', '7d', '1h30m' -> seconds."""
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise StepError(f"bad duration {text!r}: use e.g. 168h, 7d, 90m")
    return sum(int(n) * _SECONDS[u] for n, u in parts)


def parse_time(text: str) -> datetime:
    """Engine timestamps: RFC 3339 with nanoseconds ("2020-01-02T03:04:05.123456789Z")."""
    match = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?$", text.strip())
    if not match:
        raise ValueError(f"unparseable docker time {text!r}")
    zone = match.group(3) or "Z"
    base = datetime.fromisoformat(match.group(1) + ("+00:00" if zone == "Z" else zone)).astimezone(UTC)
    return base + timedelta(microseconds=int(float("0" + (match.group(2) or ".0")) * 1_000_000))


def detect_versions(target: Target) -> dict[str, str]:
    """Server version and API version of the engine the host's CLI talks to."""
    res = run_docker(target, ["version", "--format", "{{json .Server}}"], check=False, timeout=60)
    if not res.ok:
        detail = res.stderr.strip()[-400:]
        raise StepError(f"{target.name}: cannot reach the Docker engine: {detail or 'docker version failed'}")
    server = json.loads(res.stdout or "{}") or {}
    return {"version": str(server.get("Version", "")), "api_version": str(server.get("ApiVersion", ""))}


def api_at_least(api_version: str, wanted: tuple[int, int]) -> bool:
    try:
        major, minor = (int(x) for x in api_version.split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= wanted


def has_label(labels: dict[str, str] | None, spec: str) -> bool:
    """True if ``labels`` carry ``spec`` ("key=value")."""
    key, _, value = spec.partition("=")
    return (labels or {}).get(key) == value
