"""Thin executors of a drill's docker commands, all through ``Target.run`` (``docker.docker_host`` /
``docker.docker_config`` apply; writes obey --dry; a remote host runs them over SSH).

Volumes are filled by a throwaway container of the service's own image (by id), as root inside
(the restore-test scratch dir is 0700, and the image's user must own the result)::

    docker run --rm --network none -u 0:0 -v VOLUME:TARGET -v RESTORED:RESTORED:ro --entrypoint sh IMAGE_ID
        -c 'owner=$(stat -c %u:%g TARGET); cp -R RESTORED/. TARGET/ (or the dump file); chown -R owner TARGET'

The fresh volume is empty, so the engine first copies the image's own TARGET into it (its owner is
the image's service user): the restored files get that owner. The image needs ``sh``, ``cp``,
``stat`` and ``chown`` (every Debian/Alpine based image has them).

`invoke drill.down` (:func:`run_drill_down`) removes drills kept with `restore-test --drill --keep` (or
left by a `kill -9`): every container, volume and network labelled with a drill project of the host's
live project (``docker.compose_project``), or the one named with --project, found by labels (no
Compose file needed; --dry prints the commands). Live objects carry no drill label: never matched.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from .. import interrupts
from ..backup.sources.container_scripts import make_docker_prefix
from ..backup.sources.hooks import HostScripts
from ..backup.sources.throwaway import LABEL as THROWAWAY
from ..errors import StepError
from ..report import FAILED, OK, StepResult
from ..seam import CmdResult, Target, quote
from .plan import LABEL, LIVE_LABEL, DrillPlan, DrillVolume, check_project_name

PROJECT_LABEL = "com.docker.compose.project"
FILL = ('owner=$(stat -c %u:%g "$1") && if [ -d "$2" ]; then cp -R "$2"/. "$1"/; else cp "$2" "$1/$3"; fi '
        '&& chown -R "$owner" "$1"')


def docker(target: Target) -> str:
    return make_docker_prefix(target.settings.docker)


def run_free_ports(target: Target, n: int) -> list[int]:
    """``n`` distinct free loopback ports on the host (ragops/remote/free_port.py, asked n times)."""
    ports: list[int] = []
    for _ in range(n * 3):
        if len(ports) == n:
            break
        res = HostScripts(target).run_script("free_port", [])
        if res.ok and res.stdout.strip().isdigit() and int(res.stdout.strip()) not in ports:
            ports.append(int(res.stdout.strip()))
    if len(ports) < n:
        raise StepError(f"{target.name}: could not find {n} free loopback ports")
    return ports


def make_config_args(target: Target, project: str, labels: dict[str, str]) -> list[str]:
    """`compose -p P -f FILE... config --format json`: docker.compose_file, else the files the live
    containers were created from (their Compose labels)."""
    d = target.settings.docker
    files = [d.compose_file] if d.compose_file else [f for f in labels.get(f"{PROJECT_LABEL}.config_files", "").split(",") if f]
    if not files:
        raise StepError(f"{target.name}: the Compose file of project {project!r} is unknown: set docker.compose_file")
    args = ["compose", "-p", project]
    for f in files:
        args += ["-f", f]
    workdir = labels.get(f"{PROJECT_LABEL}.working_dir")
    if workdir and not d.compose_file:
        args += ["--project-directory", workdir]
    return [*args, "config", "--format", "json"]


def run_live_config(target: Target, project: str, container_id: str) -> dict[str, Any]:
    res = target.run(f"{docker(target)} inspect --format '{{{{json .Config.Labels}}}}' {quote(container_id)}")
    labels = json.loads(res.stdout) if res.ok and res.stdout.strip().startswith("{") else {}
    res = target.run(f"{docker(target)} " + " ".join(quote(a) for a in make_config_args(target, project, labels)),
                     timeout=120)
    try:
        return dict(json.loads(res.stdout))
    except ValueError:
        raise StepError(f"{target.name}: `docker compose config` of {project!r} failed: "
                        f"{(res.stderr or res.stdout).strip()[-400:]}") from None


def run_live_volumes(target: Target) -> set[str]:
    res = target.run(f"{docker(target)} volume ls -q")
    return set(res.stdout.split())


def run_create_volume(target: Target, plan: DrillPlan, vol: DrillVolume) -> CmdResult:
    labels = [f"{LABEL}={plan.project}", f"{LIVE_LABEL}={plan.live_project}"]
    cmd = f"{docker(target)} volume create " + " ".join(f"--label {quote(lab)}" for lab in labels) + f" {quote(vol.name)}"
    return target.run(cmd, write=True, check=True)


def make_fill_command(prefix: str, plan: DrillPlan | None, vol: DrillVolume, name: str, *, purpose: str = "drill-fill",
                      label: str | None = None) -> str:
    """The fill container of ``vol``; ``label`` (default ``ragops.drill=<project>``) marks whose it is."""
    assert vol.source is not None and (plan is not None or label is not None)
    own = label if label is not None else f"{LABEL}={plan.project}"  # type: ignore[union-attr]
    return " ".join([prefix, "run", "--rm", "--name", quote(name), "--label", quote(f"{THROWAWAY}={purpose}"),
                     "--label", quote(own), "--network", "none", "-u", "0:0",
                     "-v", quote(f"{vol.name}:{vol.target}"), "-v", quote(f"{vol.source}:{vol.source}:ro"),
                     "--entrypoint", "sh", quote(vol.image), "-c", quote(FILL), "sh", quote(vol.target),
                     quote(vol.source), quote(vol.file_name or "dump.rdb")])


def run_fill_volume(target: Target, plan: DrillPlan | None, vol: DrillVolume, *, purpose: str = "drill-fill",
                    label: str | None = None) -> None:
    """Fill ``vol`` in a throwaway container (removed in ``finally``, shielded); ``restore --into-volumes``
    passes its own ``purpose`` and ``label``."""
    name = f"ragops-{purpose}-{secrets.token_hex(4)}"
    try:
        target.run(make_fill_command(docker(target), plan, vol, name, purpose=purpose, label=label), write=True,
                   check=True, timeout=3600)
    finally:
        with interrupts.shielded():
            target.run(f"{docker(target)} rm -f {quote(name)} >/dev/null 2>&1; true", quiet_dry=True, write=True)


def make_compose_command(target: Target, project: str, compose_file: str, *args: str) -> str:
    return f"{docker(target)} compose -p {quote(project)} -f {quote(compose_file)} " + " ".join(quote(a) for a in args)


def run_states(target: Target, project: str) -> list[dict[str, str]]:
    """service, id, state, health (``none`` without a HEALTHCHECK) of every container of the project."""
    ids = target.run(f"{docker(target)} ps -aq --no-trunc --filter {quote(f'label={PROJECT_LABEL}={project}')}").stdout.split()
    if not ids:
        return []
    res = target.run(f"{docker(target)} inspect " + " ".join(quote(i) for i in ids))
    out = []
    for info in json.loads(res.stdout) if res.stdout.strip().startswith("[") else []:
        state = info.get("State") or {}
        out.append({"service": str((info["Config"].get("Labels") or {}).get("com.docker.compose.service", "")),
                    "id": str(info.get("Id", "")), "state": str(state.get("Status", "")),
                    "health": str((state.get("Health") or {}).get("Status", "none"))})
    return out


def run_logs(target: Target, container_id: str, lines: int = 5) -> str:
    res = target.run(f"{docker(target)} logs --tail {lines} {quote(container_id)} 2>&1")
    return " | ".join(line.strip() for line in res.stdout.splitlines() if line.strip())[-300:]


def make_leftovers_commands(prefix: str, project: str) -> dict[str, str]:
    by_label = quote(f"label={LABEL}={project}")
    return {"containers": f"{prefix} ps -aq --filter {by_label} --filter {quote(f'label={PROJECT_LABEL}={project}')}",
            "volumes": f"{prefix} volume ls -q --filter {by_label}",
            "networks": f"{prefix} network ls -q --filter {quote(f'label={PROJECT_LABEL}={project}')}"}


def run_leftovers(target: Target, project: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for kind, cmd in make_leftovers_commands(docker(target), project).items():
        out[kind] = target.run(cmd).stdout.split()
    # containers of the project whatever their labels (compose's), and fill containers (ours)
    out["containers"] = sorted(set(out["containers"]) | set(target.run(
        f"{docker(target)} ps -aq --filter {quote(f'label={PROJECT_LABEL}={project}')}").stdout.split()) | set(
        target.run(f"{docker(target)} ps -aq --filter {quote(f'label={LABEL}={project}')}").stdout.split()))
    return out


def run_remove_project(target: Target, project: str) -> dict[str, list[str]]:
    """Remove every container, volume and network of the drill project; returns what is left (nothing)."""
    with interrupts.shielded():
        found = run_leftovers(target, project)
        prefix = docker(target)
        if found["containers"]:
            target.run(f"{prefix} rm -f -v " + " ".join(quote(i) for i in found["containers"]), write=True, timeout=120)
        if found["networks"]:
            target.run(f"{prefix} network rm " + " ".join(quote(i) for i in found["networks"]), write=True)
        if found["volumes"]:
            target.run(f"{prefix} volume rm -f " + " ".join(quote(v) for v in found["volumes"]), write=True)
        return found if target.dry else {k: v for k, v in run_leftovers(target, project).items() if v}


def run_list_projects(target: Target, live_project: str | None = None) -> list[str]:
    """Drill projects on the engine (of one live project): from container and volume labels."""
    names: set[str] = set()
    fmt = "{{.Label \"" + LABEL + "\"}}\t{{.Label \"" + LIVE_LABEL + "\"}}"
    for kind in ("ps -a", "volume ls"):
        res = target.run(f"{docker(target)} {kind} --filter {quote('label=' + LABEL)} --format {quote(fmt)}")
        for line in res.stdout.splitlines():
            project, _, live = line.partition("\t")
            if project and (live_project is None or live == live_project):
                names.add(project)
    return sorted(names)


def run_drill_down(target: Target, project: str | None = None) -> StepResult:
    live = target.settings.docker.compose_project
    projects = [check_project_name(project)] if project else run_list_projects(target, live)
    removed: dict[str, dict[str, list[str]]] = {}
    left: dict[str, dict[str, list[str]]] = {}
    for name in projects:
        removed[name] = run_leftovers(target, name)
        rest = run_remove_project(target, name)
        if rest and not target.dry:
            left[name] = rest
    details = {"projects": projects, "removed": removed, "left": left}
    if left:
        return StepResult("drill.down", FAILED, message=f"still left: {left}", details=details)
    if not projects:
        return StepResult("drill.down", OK, message=f"no drill project of {live or 'any live project'} on this engine",
                          details=details)
    counts = ", ".join(f"{p}: {sum(len(v) for v in removed[p].values())} object(s)" for p in projects)
    verb = "would remove" if target.dry else "removed"
    return StepResult("drill.down", OK, message=f"{verb} {counts}", details=details)
