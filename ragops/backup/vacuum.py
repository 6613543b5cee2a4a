"""chroma.vacuum: the maintenance guide's "occasional optimization" of the Chroma store.

Refuses without a snapshot of this host younger than 26 h (unless ``--no-backup-check``), holds the
writer with the backup policy's strategy (stop or pause; always resumed; ``live`` is refused: a
vacuum needs the writer quiet), runs ChromaDB's own ``chroma vacuum --path DIR --force`` when the
``chroma`` CLI sits beside ``backup.chroma_python``, else sqlite ``VACUUM`` on chroma.sqlite3, and
reports the size before and after. On a Compose host (``docker.data_tasks: containers``) the store
is the chroma service's volume and the vacuum runs in a throwaway container of the service's own
image (its ``chroma`` CLI, else sqlite VACUUM with its Python), the volume mounted read-write.
"""

from __future__ import annotations

import os
import time
from datetime import datetime
from typing import Any

from .. import output
from ..errors import ConfigError, StepError
from ..remote import script
from ..report import OK, StepResult, format_bytes
from ..seam import Target, quote
from . import restic
from .policy import load_host_policy
from .sources.chroma import hold_writer
from .sources.chroma_containers import ChromaPlace, in_containers, run_place
from .sources.container_scripts import make_docker_prefix
from .sources.throwaway import Mount, make_name, make_run_command, run_remove, run_tool
from .step import make_tags

FRESH_S = 26 * 3600
FAILED_TEXT = "Failed to vacuum"  # `chroma vacuum` (chromadb 1.x) prints this and still exits 0


def make_vacuum_command(chroma_python: str, data_dir: str, has_cli: bool, python: str = "python3") -> str:
    if has_cli:
        cli = os.path.join(os.path.dirname(chroma_python), "chroma")
        return f"{quote(cli)} vacuum --path {quote(data_dir)} --force"
    return f"{python} -c {quote(script('sqlite_vacuum'))} {quote(data_dir + '/chroma.sqlite3')}"


def parse_snapshot_time(text: str) -> float:
    """restic's RFC 3339 time (nanoseconds, offset) as a Unix timestamp."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def check_fresh_backup(target: Target, policy_name: str | None, now: float | None = None) -> str:
    """Message naming the fresh snapshot; StepError if there is none younger than 26 h."""
    policy = load_host_policy(target.host, policy_name)
    if policy is None:
        raise StepError(f"{target.name}: no backup policy configured, so no fresh backup can be checked; "
                        "back up first or pass --no-backup-check")
    snaps = restic.snapshots(target, restic.make_repo(target, policy.repository), tags=make_tags(policy), host=target.name)
    now = time.time() if now is None else now
    newest = max((parse_snapshot_time(s.time) for s in snaps), default=None)
    if newest is None or now - newest > FRESH_S:
        age = "none" if newest is None else f"newest is {(now - newest) / 3600:.1f} h old"
        raise StepError(f"{target.name}: refusing to vacuum without a backup younger than 26 h ({age}); "
                        "run `invoke backup` first or pass --no-backup-check")
    return f"fresh backup {(now - newest) / 3600:.1f} h old"


def read_size(target: Target, data_dir: str) -> int:
    res = target.run(f"du -sb {quote(data_dir)} | cut -f1")
    return int(res.stdout.strip() or 0) if res.ok else 0


def run_vacuum(target: Target, *, policy_name: str | None = None, backup_check: bool = True) -> StepResult:
    policy = load_host_policy(target.host, policy_name)
    source = policy.sources.chroma if policy else None
    place = run_place(target, source) if in_containers(target) else None
    data_dir = place.data_dir if place else (source.data_dir if source else None) or target.settings.chroma.data_dir
    if not data_dir:
        raise ConfigError(f"{target.name}: no Chroma data dir (chroma.data_dir or the policy's sources.chroma.data_dir)")
    if source is None or source.strategy == "live":
        raise ConfigError(f"{target.name}: chroma.vacuum needs the writer stopped or paused: set the policy's "
                          "sources.chroma.strategy to stop or pause")
    fresh = check_fresh_backup(target, policy_name) if backup_check else "backup check skipped (--no-backup-check)"
    output.info(target.name, fresh)
    if place is not None:
        return run_vacuum_in_container(target, source, place, data_dir, fresh)
    python = target.settings.backup.chroma_python
    cli = os.path.join(os.path.dirname(python), "chroma") if os.path.dirname(python) else "chroma"
    has_cli = target.run(f"{quote(cli)} vacuum --help >/dev/null 2>&1").ok
    if not os.path.dirname(python):
        has_cli = False  # only trust the CLI that belongs to the configured chromadb installation
    before = read_size(target, data_dir)
    command = make_vacuum_command(python, data_dir, has_cli, target.python)
    with hold_writer(target, source):
        res = target.run(command, write=True, timeout=3600)
        if not res.ok or FAILED_TEXT in res.stdout + res.stderr:
            raise StepError(f"{target.name}: vacuum of {data_dir} failed (exit {res.exited}): {res.stderr.strip()[-400:]}")
    return make_result(target, data_dir, "chroma vacuum" if has_cli else "sqlite VACUUM", before, fresh)


def make_container_vacuum(target: Target, place: ChromaPlace, data_dir: str, name: str, has_cli: bool) -> str:
    """The vacuum in a throwaway container of the chroma image, the volume mounted read-write (the
    store is rewritten: the service is held meanwhile)."""
    docker = make_docker_prefix(target.settings.docker)
    image, mounts = place.container.image_id, [Mount(data_dir, read_only=False)]
    if has_cli:
        args = ["vacuum", "--path", data_dir, "--force"]
        return make_run_command(docker, image, "chroma", args, name=name, purpose="chroma-vacuum", mounts=mounts)
    args = ["-c", script("sqlite_vacuum"), data_dir + "/chroma.sqlite3"]
    return make_run_command(docker, image, target.settings.docker.roles.python, args, name=name,
                            purpose="chroma-vacuum", mounts=mounts)


def run_vacuum_in_container(target: Target, source: Any, place: ChromaPlace, data_dir: str, fresh: str) -> StepResult:
    """chroma.vacuum on a Compose host: the chroma image's own ``chroma vacuum`` (sqlite VACUUM if the
    image has no such CLI), in a throwaway container, with the writer held by the policy's strategy."""
    probe = run_tool(target, place.container.image_id, "chroma", ["vacuum", "--help"], [], purpose="chroma-vacuum")
    has_cli = probe.ok
    before = read_size(target, data_dir)
    name = make_name("chroma-vacuum")
    try:
        with hold_writer(target, source):
            res = target.run(make_container_vacuum(target, place, data_dir, name, has_cli), write=True, timeout=3600)
            if not res.ok or FAILED_TEXT in res.stdout + res.stderr:
                raise StepError(f"{target.name}: vacuum of {data_dir} failed (exit {res.exited}): "
                                f"{(res.stderr or res.stdout).strip()[-400:]}")
    finally:
        if not target.dry:
            run_remove(target, make_docker_prefix(target.settings.docker), name)
    tool = ("chroma vacuum" if has_cli else "sqlite VACUUM") + f" (image {place.container.image_id[:19]})"
    result = make_result(target, data_dir, tool, before, fresh)
    result.details["output"] = (res.stdout + res.stderr).strip()[-600:]
    return result


def make_result(target: Target, data_dir: str, tool: str, before: int, fresh: str) -> StepResult:
    after = before if target.dry else read_size(target, data_dir)
    verb = "would vacuum" if target.dry else "vacuumed"
    return StepResult("chroma.vacuum", OK, bytes_freed=max(0, before - after),
                      message=f"{verb} {data_dir} with {tool}: {format_bytes(before)} -> {format_bytes(after)}",
                      details={"data_dir": data_dir, "tool": tool, "bytes_before": before, "bytes_after": after,
                               "backup_check": fresh},
                      metrics=[("ragops_chroma_bytes", {"when": "before"}, float(before)),
                               ("ragops_chroma_bytes", {"when": "after"}, float(after))])
