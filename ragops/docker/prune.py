"""docker.prune (and maintain's `docker` step): compute exactly what to remove, then remove it.

We never call `docker system/volume/image prune`: their semantics depend on the API version
(1.41's `volume prune` removes named volumes too and knows no `all` filter; >= 1.42 removes only
anonymous ones unless all=true) and `images --filter until=` is rejected. Instead the candidates
are computed from `docker inspect` (``make_prune_plan``, pure) and removed one by one:

- stopped containers (exited / created / dead);
- dangling images, and unused tagged images created longer than ``until`` ago (an image is in use
  when a container that stays references it);
- unused networks (never bridge / host / none, never swarm-scoped);
- volumes only with ``--volumes``: never one referenced by any container (running or not), never a
  protected one (``docker.protected_label`` or a name glob in ``docker.protected_volumes``);
- build cache: `docker builder prune -f --filter until=<until>` (docker decides by last use).

Nothing carrying ``docker.protected_label`` is ever removed. Sizes are docker's own figures: an
image's size counts layers it shares with kept images, so image bytes are an upper bound.
"""

from __future__ import annotations

import fnmatch
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from .. import output
from ..report import DEGRADED, OK, StepResult, format_bytes
from ..seam import Target
from .cli import detect_versions, has_label, parse_duration, parse_size, parse_time, run_docker, run_inspect

KINDS = ("container", "image", "network", "volume", "build-cache")
STOPPED = ("exited", "created", "dead")
BUILTIN_NETWORKS = ("bridge", "host", "none")


@dataclass
class Candidate:
    kind: str
    id: str
    name: str
    size: int
    reason: str
    args: list[str] = field(default_factory=list)  # docker arguments that remove it


@dataclass
class Snapshot:
    containers: list[dict[str, Any]] = field(default_factory=list)
    images: list[dict[str, Any]] = field(default_factory=list)
    networks: list[dict[str, Any]] = field(default_factory=list)
    volumes: list[dict[str, Any]] = field(default_factory=list)
    volume_sizes: dict[str, int] = field(default_factory=dict)


@dataclass
class PruneOptions:
    until_s: int
    volumes: bool
    protected_label: str
    protected_volumes: list[str]
    now: datetime = field(default_factory=lambda: datetime.now(UTC))


def is_protected_volume(volume: dict[str, Any], opts: PruneOptions) -> str | None:
    labels = volume.get("Labels") or {}
    if has_label(labels, opts.protected_label):
        return f"label {opts.protected_label}"
    names = [volume.get("Name", ""), labels.get("com.docker.compose.volume", "")]
    for pattern in opts.protected_volumes:
        if any(n and fnmatch.fnmatchcase(n, pattern) for n in names):
            return f"name matches {pattern!r}"
    return None


def make_prune_plan(snap: Snapshot, opts: PruneOptions) -> list[Candidate]:
    """Every object to remove, in a removable order (containers, images newest first, networks, volumes)."""
    out: list[Candidate] = []
    kept_containers = []
    for c in snap.containers:
        name = c.get("Name", "").lstrip("/")
        if c["State"]["Status"] in STOPPED and not has_label(c["Config"].get("Labels"), opts.protected_label):
            out.append(Candidate("container", c["Id"], name, int(c.get("SizeRw") or 0),
                                 f"stopped ({c['State']['Status']})", ["rm", c["Id"]]))
        else:
            kept_containers.append(c)
    used_images = {c["Image"] for c in kept_containers}
    cutoff = opts.now - timedelta(seconds=opts.until_s)
    images = sorted(snap.images, key=lambda i: parse_time(i["Created"]), reverse=True)  # children first
    for img in images:
        if img["Id"] in used_images or has_label((img.get("Config") or {}).get("Labels"), opts.protected_label):
            continue
        tags = [t for t in img.get("RepoTags") or [] if t != "<none>:<none>"]
        created = parse_time(img["Created"])
        if not tags:
            out.append(Candidate("image", img["Id"], img["Id"][7:19], int(img.get("Size") or 0), "dangling",
                                 ["rmi", img["Id"]]))
        elif created < cutoff:
            out.append(Candidate("image", img["Id"], ", ".join(tags), int(img.get("Size") or 0),
                                 f"unused, created {created:%Y-%m-%d}", ["rmi", *tags]))
    used_networks: set[str] = set()
    for c in snap.containers:
        used_networks.add(c.get("HostConfig", {}).get("NetworkMode", ""))
        for net_name, net in ((c.get("NetworkSettings") or {}).get("Networks") or {}).items():
            used_networks.update({net_name, (net or {}).get("NetworkID", "")})
    for n in snap.networks:
        if (n["Name"] in BUILTIN_NETWORKS or n.get("Scope") == "swarm" or n.get("Containers")
                or {n["Name"], n["Id"]} & used_networks or has_label(n.get("Labels"), opts.protected_label)):
            continue
        out.append(Candidate("network", n["Id"], n["Name"], 0, "unused", ["network", "rm", n["Id"]]))
    if opts.volumes:
        used_volumes = {m.get("Name") for c in snap.containers for m in c.get("Mounts") or [] if m.get("Type") == "volume"}
        for v in snap.volumes:
            if v["Name"] in used_volumes or is_protected_volume(v, opts):
                continue
            out.append(Candidate("volume", v["Name"], v["Name"], snap.volume_sizes.get(v["Name"], 0), "unused",
                                 ["volume", "rm", v["Name"]]))
    return out


def make_protected_report(snap: Snapshot, opts: PruneOptions) -> list[dict[str, str]]:
    """Volumes kept on purpose, with the reason (shown with --volumes)."""
    used = {m.get("Name") for c in snap.containers for m in c.get("Mounts") or [] if m.get("Type") == "volume"}
    kept = []
    for v in snap.volumes:
        why = is_protected_volume(v, opts) or ("in use" if v["Name"] in used else None)
        if why:
            kept.append({"volume": v["Name"], "kept_because": why})
    return kept


def collect_snapshot(target: Target, volumes: bool) -> Snapshot:
    def ids(args: list[str]) -> list[str]:
        return list(dict.fromkeys(run_docker(target, args).stdout.split()))

    snap = Snapshot(
        containers=run_inspect(target, "container", ids(["ps", "-a", "-q", "--no-trunc"]), size=True),
        images=run_inspect(target, "image", ids(["image", "ls", "-q", "--no-trunc"])),
        networks=run_inspect(target, "network", ids(["network", "ls", "-q", "--no-trunc"])),
    )
    if volumes:
        snap.volumes = run_inspect(target, "volume", ids(["volume", "ls", "-q"]))
        res = run_docker(target, ["system", "df", "-v", "--format", "{{json .Volumes}}"], check=False)
        if res.ok and res.stdout.strip().startswith("["):
            import json

            snap.volume_sizes = {v["Name"]: parse_size(v.get("Size")) for v in json.loads(res.stdout)}
    return snap


def run_prune(target: Target, *, until: str, volumes: bool) -> StepResult:
    settings = target.settings.docker
    versions = detect_versions(target)
    opts = PruneOptions(parse_duration(until), volumes, settings.protected_label, settings.protected_volumes)
    snap = collect_snapshot(target, volumes)
    plan = make_prune_plan(snap, opts)
    removed: dict[str, int] = dict.fromkeys(KINDS, 0)
    counts: dict[str, int] = dict.fromkeys(KINDS, 0)
    errors: list[str] = []
    for cand in plan:
        if target.dry:
            output.dry_command(target.name, f"docker {' '.join(cand.args)}   # {cand.kind} {cand.name}: "
                                            f"{cand.reason}, {format_bytes(cand.size)}")
            counts[cand.kind] += 1
            removed[cand.kind] += cand.size
            continue
        res = run_docker(target, cand.args, write=True, check=False)
        if res.ok:
            counts[cand.kind] += 1
            removed[cand.kind] += cand.size
        else:
            errors.append(f"{cand.kind} {cand.name}: {res.stderr.strip()[-300:]}")
    cache = run_docker(target, ["builder", "prune", "-f", "--filter", f"until={opts.until_s}s"], write=True, check=False)
    if cache.ok and not cache.dry:
        removed["build-cache"] = parse_size(cache.stdout.rpartition("Total reclaimed space:")[2])
    elif not cache.ok:
        errors.append(f"build cache: {cache.stderr.strip()[-300:]}")
    verb = "would reclaim" if target.dry else "reclaimed"
    parts = [f"{counts[k]} {k}(s) {format_bytes(removed[k])}" for k in KINDS if counts[k] or removed[k]]
    result = StepResult("docker", OK if not errors else DEGRADED)
    result.message = f"{verb} {format_bytes(sum(removed.values()))}: {', '.join(parts) or 'nothing to prune'}"
    if not volumes:
        result.message += "; volumes untouched (use --volumes)"
    if errors:
        result.message += f"; {len(errors)} error(s): " + "; ".join(errors)
    result.bytes_freed = 0 if target.dry else sum(removed.values())
    result.files = sum(counts.values())
    result.details = {
        "engine": versions, "until": until, "volumes": volumes,
        "candidates": [asdict(c) for c in plan], "objects": counts, "bytes": removed, "errors": errors,
        "protected_volumes": make_protected_report(snap, opts) if volumes else [],
    }
    for kind in KINDS:
        result.metrics.append(("ragops_docker_prune_bytes", {"kind": kind}, float(removed[kind])))
        result.metrics.append(("ragops_docker_prune_objects", {"kind": kind}, float(counts[kind])))
    output.info(target.name, f"docker {versions['version']} (API {versions['api_version']}): {result.message}")
    return result


def run_docker_step(target: Target) -> StepResult:
    """maintain's `docker` step: prune with the configured `until`, never volumes."""
    return run_prune(target, until=target.settings.docker.prune_until, volumes=False)
