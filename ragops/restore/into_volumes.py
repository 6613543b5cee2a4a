"""``invoke restore --into-volumes`` on a Compose host (``deployment: compose``, ``docker.data_tasks:
containers``): a snapshot into NEW named volumes beside the live ones, then the exact switch-over
steps for the operator (printed, never run: switching production is the operator's call).

1. The same refusals as ``restore --target`` (``real_restore``): the manifest read with ``restic
   dump`` and validated, a snapshot holding anything but regular files and directories (``restic
   ls``, before writing), a restored tree with links (lstat walk, before anything opens it), a
   source's ``refuse_restore``; Chroma's collections compared with the LIVE ones read in the running
   chroma container (dimension, metric, model); a Redis AOF snapshot (only RDB dumps fill a volume).
2. Free space: the snapshot's restore-size on the scratch dir, then the restored data's size on the
   engine's volume root (``docker info`` DockerRootDir/volumes) before any volume is created.
3. restic restores into a restore-test scratch dir (``<backup.staging_dir>-restore-test/restore-test-*``:
   a dead run's is removed by the next restore test), each new volume is created with its labels
   (``into_volumes_plan``) and filled by the drill's fill container (``ragops.drill.engine``: the
   service's own image by id, ``--network none``, files given to the image's data-dir owner).
4. ``finally`` (shielded from signals): the scratch dir is removed; after a failure or SIGTERM every
   volume this run created is removed too (checked gone): no half-made volume is left behind.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from .. import interrupts, output
from ..backup import restic
from ..backup.sources import registry
from ..backup.sources.chroma_containers import run_place
from ..backup.sources.chroma_verify import run_compat_in_container
from ..backup.sources.compose_roles import (
    DIR_LABEL,
    FILES_LABEL,
    ComposeStack,
    ServiceContainer,
    run_discover,
)
from ..backup.step import make_tags
from ..drill import engine
from ..drill.plan import DrillVolume
from ..errors import ConfigError, StepError, VerifyError
from ..report import OK, StepResult, format_bytes
from ..runner import Step
from ..seam import Target, quote
from ..space import run_size_of, run_space_preflight
from . import guard, plan, setup
from .into_volumes_plan import (
    LABEL,
    IntoVolumesPlan,
    VolumeSwap,
    make_plan,
    make_stamp,
    make_switch_steps,
    make_volume_name,
)
from .real_restore import run_read_manifest, run_tree_guard
from .snapshot import load_policy, resolve_snapshot


@dataclass
class IntoVolumesOptions:
    snapshot: str = "latest"
    policy: str | None = None


def require_compose(host: Any) -> None:
    """--into-volumes needs a Compose host whose data tasks run in its containers: exit 2 otherwise."""
    s = host.settings
    if s.deployment != "compose" or s.docker.data_tasks != "containers":
        raise ConfigError(f"{host.source}: hosts.{host.name}.deployment / docker.data_tasks: --into-volumes needs "
                          f"`deployment: compose` and `docker.data_tasks: containers` (got {s.deployment}, "
                          f"{s.docker.data_tasks}); restore into a directory with --target instead")


def find_volume(c: ServiceContainer, path: str, role: str, host: str) -> dict[str, Any]:
    m = c.mount_at(path)
    if m is None or m.get("Type") != "volume" or not m.get("Name") or str(m.get("Destination")).rstrip("/") != path.rstrip("/"):
        kind = "no mount" if m is None else f"a {m.get('Type')} mount at {m.get('Destination')}"
        raise ConfigError(f"{host}: {role}'s data dir {c.name}:{path} is {kind}, not a named volume of its own: "
                          "--into-volumes replaces named volumes; restore with --target and copy by hand")
    return m


def make_swaps(target: Target, stack: ComposeStack, policy: Any, doc: dict[str, Any], layout: plan.Layout,
               stamp: str) -> list[VolumeSwap]:
    """One swap per Chroma / Redis record of the manifest whose role runs in the project."""
    swaps: list[VolumeSwap] = []
    for key, rec in registry.records_by_key(doc):
        if key not in ("chroma", "redis") or not rec.get("path"):
            continue
        if key == "chroma":
            place = run_place(target, policy.sources.chroma)
            c, path, file_name = place.container, place.container_path, None
        else:
            if rec.get("method") == "aof":
                raise VerifyError(f"{target.name}: the snapshot's Redis copy is an AOF dir: --into-volumes fills RDB "
                                  "dumps only; restore with --target and follow its steps")
            c = stack.container("redis", target.name)
            path = str((rec.get("container") or {}).get("path") or "/data")
            file_name = str(rec.get("dbfilename") or "dump.rdb")
        m = find_volume(c, path, key, target.name)
        if m.get("Driver") not in (None, "", "local"):
            output.warn(target.name, f"{m['Name']} uses volume driver {m['Driver']}: the restored copy is a local volume")
        swaps.append(VolumeSwap(key, c.service, path, str(m["Name"]), make_volume_name(str(m["Name"]), stamp),
                                c.image_id, layout.restored(str(rec["path"])), file_name))
    if not swaps:
        raise VerifyError(f"{target.name}: the snapshot holds no Chroma or Redis copy: nothing to restore into volumes")
    return swaps


def run_refusals(target: Target, policy: Any, doc: dict[str, Any], snap: restic.Snapshot) -> None:
    for key, rec in registry.records_by_key(doc):
        if key == "chroma":  # the live schema is the running chroma container's (docker exec, sqlite read-only)
            check = run_compat_in_container(target, rec, policy.sources.chroma)
            why = None if check is None or check.ok else f"over the live Chroma store: {check.evidence}"
        else:
            why = registry.hook(key, "refuse_restore")(target, registry.settings_of(key, policy), rec)
        if why:
            raise VerifyError(f"{target.name}: refusing to restore snapshot {snap.short_id} {why}")


def run_compose_files(target: Target, c: ServiceContainer) -> tuple[list[str], str | None]:
    """The Compose files (and project dir) the live containers were created from; else docker.compose_file."""
    res = target.run(f"{engine.docker(target)} inspect --format '{{{{json .Config.Labels}}}}' {quote(c.id)}")
    labels = json.loads(res.stdout) if res.ok and res.stdout.strip().startswith("{") else {}
    files = [f for f in str(labels.get(FILES_LABEL, "")).split(",") if f]
    d = target.settings.docker
    if not files and d.compose_file:
        return [d.compose_file], None
    return files, labels.get(DIR_LABEL) or None


def run_volume_root(target: Target) -> str:
    res = target.run(f"{engine.docker(target)} info --format '{{{{.DockerRootDir}}}}'")
    root = res.stdout.strip()
    if not res.ok or not root.startswith("/"):
        raise StepError(f"{target.name}: `docker info` gave no DockerRootDir: {(res.stderr or res.stdout).strip()[-200:]}")
    return root.rstrip("/") + "/volumes"


def run_create_volume(target: Target, iv: IntoVolumesPlan, swap: VolumeSwap) -> None:
    labels = " ".join(f"--label {quote(f'{k}={v}')}" for k, v in iv.labels[swap.name].items())
    target.run(f"{engine.docker(target)} volume create {labels} {quote(swap.name)} >/dev/null", write=True, check=True)


def run_remove_volumes(target: Target, names: list[str]) -> list[str]:
    """Remove the volumes this run created; returns those still there."""
    if not names or target.dry:
        return []
    prefix = engine.docker(target)
    target.run(f"{prefix} volume rm -f " + " ".join(quote(n) for n in names) + " >/dev/null", write=True)
    return sorted(set(engine.run_live_volumes(target)) & set(names))


def run_fill(target: Target, iv: IntoVolumesPlan, layout: plan.Layout, restic_restore: Any) -> dict[str, float]:
    """Restore, check, measure, create and fill; on any failure remove what was created (shielded)."""
    phases: dict[str, float] = {}
    created: list[str] = []
    done = False
    try:
        t0 = time.monotonic()
        res = target.run(plan.make_create_command(layout), write=True)
        if not res.ok and not res.dry:
            raise StepError(f"{target.name}: cannot create the scratch dir {layout.root}: {res.stderr.strip()[-200:]}")
        restic_restore()
        phases["restore"] = round(time.monotonic() - t0, 3)
        if not target.dry:
            run_tree_guard(target, layout.restore_dir, f"snapshot {iv.snapshot[:8]} restored, but do NOT fill volumes from")
            missing = [s.source for s in iv.swaps if not target.run(f"[ -e {quote(s.source)} ]").ok]
            if missing:
                raise VerifyError(f"{target.name}: the restored snapshot lacks {', '.join(missing)}")
            need = run_size_of(target, [s.source for s in iv.swaps])
            run_space_preflight(target, run_volume_root(target), need, what="the restored volumes")
        t0 = time.monotonic()
        for s in iv.swaps:
            created.append(s.name)  # first: a signal during `volume create` may still leave it made
            run_create_volume(target, iv, s)
            engine.run_fill_volume(target, None, DrillVolume(s.name, s.service, s.target, s.image, s.source, s.file_name),
                                   purpose="restore-fill", label=f"{LABEL}={iv.set_name}")
        phases["volumes"] = round(time.monotonic() - t0, 3)
        done = True
    finally:
        with interrupts.shielded():
            target.run(plan.make_remove_command(layout), write=True, quiet_dry=True)
            left = [] if done else run_remove_volumes(target, created)
        if left:
            output.warn(target.name, f"could not remove the half-made volume(s) {', '.join(left)}: remove them by hand")
    return phases


def run_into_volumes(target: Target, options: IntoVolumesOptions) -> StepResult:
    policy = load_policy(target.host, options.policy)
    repo = restic.make_repo(target, policy.repository)
    snap = resolve_snapshot(target, repo, policy, target.name, options.snapshot)
    doc = run_read_manifest(target, repo, snap)
    stack = run_discover(target)
    run_refusals(target, policy, doc, snap)
    layout = plan.make_layout(plan.make_scratch_base(target.settings.backup.staging_dir))
    plan.check_scratch_safe(layout.root, plan.collect_live_paths([target.settings], policy, doc))
    stamp = make_stamp()
    swaps = make_swaps(target, stack, policy, doc, layout, stamp)
    files, workdir = run_compose_files(target, stack.containers[0])
    iv = make_plan(project=stack.project, snapshot=snap.id, stamp=stamp, swaps=swaps, files=files, workdir=workdir,
                   existing_volumes=engine.run_live_volumes(target), api_url=target.settings.api.url)
    unsafe = guard.run_listing_check(target, repo, snap)
    if unsafe:
        raise VerifyError(f"{target.name}: refusing to restore snapshot {snap.short_id}: it holds {len(unsafe)} entr(ies) "
                          "that are not regular files or directories (nothing was written): " + "; ".join(unsafe[:5]))
    need = setup.run_need_bytes(target, repo, target.name, make_tags(policy), snap.id)
    setup.run_space_check(target, layout.root, need)
    phases = run_fill(target, iv, layout, lambda: restic.restore(target, repo, snap.id, layout.restore_dir))
    steps = make_switch_steps(iv, engine.docker(target))
    verb = "would restore" if target.dry else "restored"
    made = ", ".join(f"{s.name} ({s.service}:{s.target}, live {s.live})" for s in swaps)
    output.info(target.name, f"{verb} snapshot {snap.short_id} ({snap.time[:19]}) into new volume(s) {made}; "
                             f"set {iv.set_name} ({format_bytes(need)} restored). To switch over (NOT done by ragops):")
    for i, step in enumerate(steps, 1):
        output.info(target.name, f"  {i}. {step['step']}" + (f":\n     {step['command']}" if step["command"] else ""))
    return StepResult("restore", OK, message=f"{verb} snapshot {snap.short_id} into volume set {iv.set_name}",
                      details={"snapshot": snap.id, "set": iv.set_name, "project": iv.project, "compatible": True,
                               "volumes": [{"role": s.role, "service": s.service, "target": s.target, "live": s.live,
                                            "name": s.name} for s in swaps],
                               "override_file": iv.override_file, "switch_over": steps, "phases": phases,
                               "restored_bytes": need})


def make_into_volumes_step(options: IntoVolumesOptions) -> Step:
    return Step("restore", lambda target: run_into_volumes(target, options))
