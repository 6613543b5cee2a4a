"""upgrade: health-gated rolling replacement of one Compose service's replicas, with rollback.

For N running replicas, one at a time: `compose up -d --no-deps --scale svc=N+1 --no-recreate svc`
starts one new replica with the pinned image (old ones are left alone), ragops waits for its
HEALTHCHECK to be healthy (and the service's ``health_command`` via `docker exec`), then stops and
removes one old replica, so N healthy replicas serve at every moment (the promise is >= N-1). On a failed gate: the new replica(s) are removed, the previous image is
pinned again, upgraded replicas are replaced back the same way, and the step fails naming the
replica that failed. Every outcome is appended to the history file (``history.py``).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from .. import output
from ..errors import StepError
from ..report import FAILED, OK, StepResult
from ..seam import Target, quote
from .cli import run_docker, run_inspect
from .compose import (
    describe_health,
    list_service_containers,
    make_compose_args,
    make_override_path,
    read_override,
    run_compose_config,
    write_override,
)
from .history import append_record, make_record

POLL_S = 0.5


@dataclass
class Outcome:
    service: str
    result: str = "ok"  # ok | unchanged | rolled_back | rollback_failed | planned
    from_ref: dict[str, Any] = field(default_factory=dict)
    to_ref: dict[str, Any] = field(default_factory=dict)
    failing_replica: str = ""
    message: str = ""
    durations: dict[str, float] = field(default_factory=dict)
    record_id: str = ""


def make_upgrade_plan(*, service: str, project: str, replicas: list[str], from_image: str, to_image: str,
                      compose: list[str], override_path: str, health_command: str | None, timeout_s: float,
                      stop_timeout_s: int, history_file: str) -> list[str]:
    """The human-readable plan printed by --dry (the executor follows the same order)."""
    n = len(replicas)
    up = " ".join(["docker", *compose, "up", "-d", "--no-deps", "--scale", f"{service}={n + 1}", "--no-recreate", service])
    gate = f"wait until its HEALTHCHECK is healthy (timeout {timeout_s:g}s)"
    if health_command:
        gate += f", then docker exec <new> sh -c {quote(health_command)}"
    lines = [f"upgrade {project}/{service}: {from_image} -> {to_image}, {n} replica(s), one at a time, "
             f"keeping >= {max(n - 1, 0)} healthy",
             f"1. docker pull {to_image} (on failure: use the local image, else stop)",
             f"2. write {override_path}: services.{service}.image = {to_image}"]
    for i, old in enumerate(replicas, start=1):
        lines.append(f"{i + 2}. replica {i}/{n}: {up}; {gate}; docker stop -t {stop_timeout_s} {old}; docker rm {old}")
    lines.append(f"on a failed gate: remove the new replica(s), pin {from_image} again, replace upgraded replicas "
                 f"back the same way, wait for {n} healthy, exit non-zero naming the replica")
    lines.append(f"append the outcome to {history_file}")
    return lines


def make_image_ref(image: str, info: dict[str, Any] | None) -> dict[str, Any]:
    return {"image": image, "id": (info or {}).get("Id", ""), "digests": (info or {}).get("RepoDigests") or []}


def run_wait_healthy(target: Target, cid: str, name: str, health_command: str | None, timeout_s: float) -> str | None:
    """None when the replica passed its gates, else why it failed."""
    deadline = time.monotonic() + timeout_s
    status = "unknown"
    while time.monotonic() < deadline:
        info = run_inspect(target, "container", [cid])
        if not info:
            return f"replica {name} vanished"
        status = describe_health(info[0])
        if status in ("exited", "dead"):
            return f"replica {name} exited (code {info[0]['State'].get('ExitCode')})"
        if status == "unhealthy":
            log = (info[0]["State"].get("Health") or {}).get("Log") or [{}]
            return f"replica {name} is unhealthy: {str(log[-1].get('Output', '')).strip()[:200] or 'healthcheck failed'}"
        if status in ("healthy", "none"):
            break
        time.sleep(POLL_S)
    else:
        return f"replica {name} not healthy after {timeout_s:g}s (health: {status})"
    if health_command:
        res = run_docker(target, ["exec", cid, "sh", "-c", health_command], check=False, timeout=timeout_s)
        if not res.ok:
            return f"replica {name}: health command failed (exit {res.exited}): {(res.stderr or res.stdout).strip()[:200]}"
    return None


def run_replace(target: Target, project: str, service: str, olds: list[dict[str, Any]], health_command: str | None,
                durations: dict[str, float], label: str) -> tuple[list[str], str | None, str]:
    """Replace ``olds`` one by one with replicas of the currently pinned image.

    Returns (ids of new replicas, failure or None, name of the failing replica)."""
    settings = target.settings.docker
    compose = make_compose_args(settings, override=True)
    n = len(list_service_containers(target, project, service, all_states=False))
    created: list[str] = []
    for i, old in enumerate(olds, start=1):
        t0 = time.monotonic()
        known = {c["Id"] for c in list_service_containers(target, project, service)}
        run_docker(target, [*compose, "up", "-d", "--no-deps", "--scale", f"{service}={n + 1}", "--no-recreate", service],
                   write=True, timeout=settings.health_timeout_s + 120)
        fresh = [c for c in list_service_containers(target, project, service) if c["Id"] not in known]
        if not fresh:
            return created, f"compose started no new replica of {service}", ""
        created += [c["Id"] for c in fresh]
        for new in fresh:
            name = new["Name"].lstrip("/")
            why = run_wait_healthy(target, new["Id"], name, health_command, settings.health_timeout_s)
            if why:
                return created, why, name
            output.info(target.name, f"{service}: {label} replica {name} healthy ({time.monotonic() - t0:.1f}s)")
        run_docker(target, ["stop", "-t", str(settings.stop_timeout_s), old["Id"]], write=True)
        run_docker(target, ["rm", old["Id"]], write=True)
        durations[f"{label}_replica_{i}_s"] = round(time.monotonic() - t0, 3)
    return created, None, ""


def run_pin(target: Target, service: str, image: str) -> dict[str, str]:
    """Pin the service's image in the override; return the previous pins."""
    previous = read_override(target)
    write_override(target, {**previous, service: image})
    return previous


def run_upgrade_service(target: Target, service: str, image: str, *, kind: str = "upgrade",
                        health_command: str | None = None, **extra: Any) -> Outcome:
    """Upgrade one service to ``image`` (rolling, health-gated, rolled back on failure)."""
    settings = target.settings.docker
    t_start = time.monotonic()
    pins = read_override(target)
    project = settings.compose_project or str(run_compose_config(target, override=bool(pins)).get("name", ""))
    running = list_service_containers(target, project, service, all_states=False)
    if not running:
        raise StepError(f"{target.name}: service {service} of project {project} has no running replica "
                        "(start it first: docker compose up -d)")
    from_image = running[0]["Config"]["Image"]
    from_infos = run_inspect(target, "image", [running[0]["Image"]])
    from_ref = make_image_ref(from_image, from_infos[0] if from_infos else None)
    out = Outcome(service, from_ref=from_ref)
    lines = make_upgrade_plan(service=service, project=project, replicas=[c["Name"].lstrip("/") for c in running],
                              from_image=from_image, to_image=image,
                              compose=make_compose_args(settings, override=True), override_path=make_override_path(settings),
                              health_command=health_command, timeout_s=settings.health_timeout_s,
                              stop_timeout_s=settings.stop_timeout_s, history_file=settings.history_file)
    if target.dry:
        for line in lines:
            output.dry_command(target.name, line)
        out.result, out.message = "planned", f"{service}: {from_image} -> {image} ({len(running)} replicas)"
        return out
    t0 = time.monotonic()
    pulled = run_docker(target, ["pull", image], write=True, check=False, timeout=600)
    local = run_inspect(target, "image", [image])
    if not local:
        raise StepError(f"{target.name}: image {image}: pull failed ({pulled.stderr.strip()[-200:]}) and it is not present locally")
    out.durations["pull_s"] = round(time.monotonic() - t0, 3)
    out.to_ref = make_image_ref(image, local[0])
    if all(c["Image"] == local[0]["Id"] for c in running) and pins.get(service, from_image) == image:
        out.result, out.message = "unchanged", f"{service} already runs {image}"
        return out
    run_pin(target, service, image)
    created, why, failing = run_replace(target, project, service, running, health_command, out.durations, "new")
    if why:
        out.failing_replica = failing
        out.result, out.message = run_rollback_service(target, project, service, from_image, created, out.durations, failing)
        out.message = f"{service}: {why}; " + out.message
    else:
        out.message = f"{service}: {from_image} -> {image} on {len(running)} replica(s)"
    out.durations["total_s"] = round(time.monotonic() - t_start, 3)
    record = make_record(kind=kind, host=target.name, project=project, service=service, from_ref=from_ref,
                         to_ref=out.to_ref, result=out.result, failing_replica=out.failing_replica,
                         durations=out.durations, message=out.message, **extra)
    append_record(target, record)
    out.record_id = record["id"]
    return out


def run_rollback_service(target: Target, project: str, service: str, from_image: str, created: list[str],
                         durations: dict[str, float], failing: str = "") -> tuple[str, str]:
    """Back to ``from_image``: drop the failing and unhealthy new replicas, replace the healthy
    ones the same rolling way, wait until healthy."""
    t0 = time.monotonic()
    run_pin(target, service, from_image)
    current = {c["Id"]: c for c in list_service_containers(target, project, service)}
    for cid in created:
        failed_gate = cid in current and current[cid]["Name"].lstrip("/") == failing
        if cid in current and (failed_gate or describe_health(current[cid]) != "healthy"):
            run_docker(target, ["rm", "-f", cid], write=True)
            current.pop(cid)
    upgraded = [current[cid] for cid in created if cid in current]
    _, why, failing = run_replace(target, project, service, upgraded, None, durations, "rollback")
    durations["rollback_s"] = round(time.monotonic() - t0, 3)
    if why:
        return "rollback_failed", f"ROLLBACK FAILED ({why}); fix by hand"
    left = list_service_containers(target, project, service, all_states=False)
    states = {c["Name"].lstrip("/"): describe_health(c) for c in left}
    if any(s not in ("healthy", "none") for s in states.values()):
        return "rollback_failed", f"rolled back to {from_image} but not all replicas are healthy: {states}"
    return "rolled_back", f"rolled back to {from_image}, {len(left)} healthy replica(s)"


def find_service(target: Target, service: str) -> tuple[str | None, str | None]:
    """(image template, health_command) of a configured service; (None, None) if not configured."""
    for svc in target.settings.docker.services:
        if svc.name == service:
            return svc.image, svc.health_command
    return None, None


def make_outcome_result(out: Outcome, step: str) -> StepResult:
    ok = out.result in ("ok", "unchanged", "planned")
    result = StepResult(step, OK if ok else FAILED, message=out.message, details=asdict(out))
    if out.failing_replica:
        result.message = f"failing replica {out.failing_replica}: {out.message}"
    return result


def run_upgrade_step(target: Target, service: str, image: str, *, kind: str = "upgrade", **extra: Any) -> StepResult:
    _, health_command = find_service(target, service)
    out = run_upgrade_service(target, service, image, kind=kind, health_command=health_command, **extra)
    return make_outcome_result(out, f"upgrade:{service}")
