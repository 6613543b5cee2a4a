"""Pure planning of ``invoke restore --into-volumes`` on a Compose host: the NEW volumes a snapshot is
restored into, their labels, the Compose override that points the services at them, and the
operator's switch-over (and roll-back) steps. No side effects here (the executor is
``into_volumes.py``).

- Each data role's live volume (Chroma's dir at ``docker.roles.chroma_path``, Redis' dump dir) gets
  a new volume ``<live volume>-restored-<UTC stamp>``; the set of one run is
  ``<project>-restored-<stamp>``. Every new volume carries ``ragops.restore=<set>``,
  ``ragops.restore.live=<live volume>`` and ``ragops.restore.snapshot=<snapshot id>``: ``docker volume
  ls --filter label=ragops.restore`` lists them; the live volumes carry none of these.
- The override file maps each service's data mount (same ``target``: Compose merges a service's
  volumes by target) to the new volume, declared ``external`` (Compose never creates or removes it).
  The live compose files are never edited.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from typing import Any

import yaml

from ..errors import SafetyError
from ..seam import quote

LABEL = "ragops.restore"  # the restored set: <project>-restored-<stamp>
LIVE_LABEL = "ragops.restore.live"  # the live volume the new one is a restored copy of
SNAPSHOT_LABEL = "ragops.restore.snapshot"
VOLUME_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
SET_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*-restored-[0-9]{8}T[0-9]{6}Z$")


@dataclass(frozen=True)
class VolumeSwap:
    """One live data volume and the new volume the snapshot's copy of it goes into."""

    role: str  # chroma | redis
    service: str
    target: str  # the mount path in the service's container
    live: str  # the live volume's engine-level name
    name: str  # the new volume
    image: str  # the service's image id: the fill container runs it
    source: str  # host path of the restored data (a dir: its content; a file: copied as `file_name`)
    file_name: str | None = None


@dataclass
class IntoVolumesPlan:
    set_name: str
    project: str
    snapshot: str
    swaps: list[VolumeSwap]
    compose_args: list[str]  # -p P -f F... [--project-directory D]
    override_file: str
    api_url: str | None = None
    labels: dict[str, dict[str, str]] = field(default_factory=dict)  # new volume -> its labels


def make_stamp(now: float | None = None) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))


def make_set_name(project: str, stamp: str) -> str:
    base = re.sub(r"[^a-z0-9_-]", "", project.lower())[:60] or "ragops"
    return f"{base}-restored-{stamp}"


def make_volume_name(live: str, stamp: str) -> str:
    name = f"{live}-restored-{stamp}"
    if not VOLUME_NAME.match(name) or len(name) > 255:
        raise SafetyError(f"cannot derive a volume name from the live volume {live!r}")
    return name


def make_compose_args(project: str, files: list[str], workdir: str | None) -> list[str]:
    args = ["-p", project]
    for f in files:
        args += ["-f", f]
    return args + (["--project-directory", workdir] if workdir else [])


def make_plan(*, project: str, snapshot: str, stamp: str, swaps: list[VolumeSwap], files: list[str],
              workdir: str | None, existing_volumes: set[str], api_url: str | None) -> IntoVolumesPlan:
    """Refuses (SafetyError) a new name that is any existing volume (live or an earlier restore) or
    a live volume used twice; ``swaps`` already carry their new names (:func:`make_volume_name`)."""
    if not files:
        raise SafetyError(f"the Compose files of project {project!r} are unknown: set docker.compose_file")
    taken = sorted({s.name for s in swaps} & existing_volumes)
    if taken:
        raise SafetyError(f"volume(s) {', '.join(taken)} already exist: refusing to reuse them (a restore never "
                          "writes into an existing volume)")
    lives = [s.live for s in swaps]
    if len(set(lives)) != len(lives):
        raise SafetyError(f"live volume(s) mounted by several roles ({', '.join(lives)}): restore with --target instead")
    set_name = make_set_name(project, stamp)
    override = os.path.join(workdir or os.path.dirname(files[0]), f"compose.restored-{stamp}.yaml")
    labels = {s.name: {LABEL: set_name, LIVE_LABEL: s.live, SNAPSHOT_LABEL: snapshot} for s in swaps}
    return IntoVolumesPlan(set_name, project, snapshot, swaps, make_compose_args(project, files, workdir),
                           override, api_url, labels)


def make_override(plan: IntoVolumesPlan) -> dict[str, Any]:
    """The Compose override: each swapped service's data mount on its new (external) volume."""
    services: dict[str, Any] = {}
    volumes: dict[str, Any] = {}
    for s in plan.swaps:
        key = f"ragops_restored_{s.role}"
        services.setdefault(s.service, {"volumes": []})["volumes"].append(
            {"type": "volume", "source": key, "target": s.target})
        volumes[key] = {"external": True, "name": s.name}
    return {"services": services, "volumes": volumes}


def make_override_text(plan: IntoVolumesPlan) -> str:
    head = (f"# ragops restore --into-volumes {plan.set_name} (snapshot {plan.snapshot[:8]}): the data mounts\n"
            "# on the restored volumes. Remove this file from every compose command to roll back.\n")
    return head + yaml.safe_dump(make_override(plan), sort_keys=False)


def make_switch_steps(plan: IntoVolumesPlan, docker: str) -> list[dict[str, str]]:
    """The operator's switch-over and roll-back, each ``{"step": what, "command": shell}`` (the
    command empty when there is nothing to type). Printed, never run by ragops."""
    compose = f"{docker} compose " + " ".join(quote(a) for a in plan.compose_args)
    with_override = f"{compose} -f {quote(plan.override_file)}"
    services = " ".join(quote(s) for s in sorted({s.service for s in plan.swaps}))
    listing = f"{docker} volume ls --filter {quote(f'label={LABEL}={plan.set_name}')}"
    health = (f"curl -fsS {quote(plan.api_url.rstrip('/') + '/health')}" if plan.api_url else "")
    text = make_override_text(plan)
    swapped = ", ".join(f"{s.service}:{s.target} {s.live} -> {s.name}" for s in plan.swaps)
    return [
        {"step": f"check the restored volumes ({swapped})", "command": listing},
        {"step": f"write the override file {plan.override_file} (the live compose files stay as they are)",
         "command": f"cat > {quote(plan.override_file)} <<'RAGOPS_EOF'\n{text}RAGOPS_EOF"},
        {"step": "stop the whole stack (the writers too: nothing may write the old volumes meanwhile)",
         "command": f"{compose} stop"},
        {"step": f"start it on the restored volumes (recreates {services} with the new mounts)",
         "command": f"{with_override} up -d --force-recreate --wait"},
        {"step": "health check: every service healthy and the API answering"
         + ("" if health else " (set api.url in ragops.yaml to get the command)"),
         "command": f"{with_override} ps" + (f" && {health}" if health else "")},
        {"step": "keep it: pass the override in every compose command (or COMPOSE_FILE in the project's .env); "
                 "then invoke health --host <host>, and invoke restore-test after the next backup", "command": ""},
        {"step": "ROLL BACK to the old volumes (untouched: " + ", ".join(s.live for s in plan.swaps) + ")",
         "command": f"{with_override} stop && {compose} up -d --force-recreate --wait"},
        {"step": "later, remove the volumes you do not serve from (never the ones in use)",
         "command": f"{docker} volume rm " + " ".join(quote(s.name) for s in plan.swaps)},
    ]


def check_set_name(name: str) -> str:
    if not SET_NAME.match(name):
        raise SafetyError(f"{name!r} is not a ragops restored-volume set (<project>-restored-<stamp>)")
    return name
