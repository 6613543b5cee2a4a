"""How the Chroma source makes its consistent copy (``sources.chroma.copy_mode``).

The copy lives at the stable path ``<staging_dir>/stable/chroma`` (``stable.py``) so restic's change
detection skips unchanged files; only ``full`` copies into the run dir (a new path every run).

- ``snapshot``: ``btrfs subvolume snapshot -r DATA_DIR STABLE`` while the writer is held (the hold
  lasts as long as the snapshot ioctl: milliseconds); the snapshot keeps the source's inode numbers
  and timestamps, so a snapshot taken at the same path next run looks unchanged to restic. It is
  deleted after the backup, also on failure and on a signal (``Staged.cleanup``). Needs DATA_DIR to
  be a subvolume (its root dir has inode 256) and the staging dir on the same btrfs.
- ``reflink`` / ``mirror``: ``ragops/remote/mirror_sync.py`` updates the mirror in place (changed
  files only: reflinked, or rewritten block by block); unchanged files keep inode, mtime and ctime.
  The mirror stays between runs (it IS the extra disk: near zero with reflinks).
- ``auto``: snapshot where the data dir is a btrfs subvolume and the snapshot works, else the
  mirror with reflinks where the filesystem has them, else plain in-place copies.
- ``full``: ``cp -a`` into the run dir (removed with it).
Under ``strategy: live`` the sqlite file is always copied first with sqlite's online backup API.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ... import interrupts, output
from ...errors import StepError
from ...seam import Target, quote
from ..policy_sources import ChromaSource
from . import make_copy_command, parse_json_line, run_or_fail
from .hooks import HostScripts
from .stable import run_prepare

SUBVOLUME_INODE = "256"  # the root dir of every btrfs subvolume


@dataclass
class Copy:
    """The copy made: where it is, how, how long the writer was held, and what removes it."""

    path: str
    mode: str
    hold_s: float = 0.0
    stats: dict[str, Any] = field(default_factory=dict)
    stable: bool = True
    cleanup: list[str] = field(default_factory=list)  # commands run after the backup (always)


def make_is_subvolume_command(path: str) -> str:
    """True (exit 0) when ``path`` is the root of a btrfs subvolume (never through a symlink)."""
    p = quote(path)
    return (f"[ ! -L {p} ] && [ -d {p} ] && [ \"$(stat -f -c %T {p})\" = btrfs ] && "
            f"[ \"$(stat -c %i {p})\" = {SUBVOLUME_INODE} ]")


def make_clear_command(path: str) -> str:
    """Remove what a previous run left at the stable path: a snapshot (a subvolume) or a mirror dir."""
    p = quote(path)
    return (f"if [ -L {p} ]; then echo 'refusing: {path} is a symlink' >&2; exit 1; fi; "
            f"if {make_is_subvolume_command(path)}; then btrfs subvolume delete {p} >/dev/null; "
            f"elif [ -e {p} ]; then rm -rf --one-file-system -- {p}; fi")


def make_snapshot_command(data_dir: str, dest: str) -> str:
    return f"btrfs subvolume snapshot -r {quote(data_dir)} {quote(dest)} >/dev/null"


def make_delete_snapshot_command(dest: str) -> str:
    """Delete the snapshot at ``dest`` only if it is a subvolume (never anything else)."""
    return f"if {make_is_subvolume_command(dest)}; then btrfs subvolume delete {quote(dest)} >/dev/null; fi"


def make_mirror_args(data_dir: str, dest: str, mode: str, *, live: bool) -> list[str]:
    sync_mode = {"reflink": "reflink", "mirror": "copy"}.get(mode, "auto")
    return [data_dir, dest, sync_mode, *(["--sqlite-online", "chroma.sqlite3"] if live else [])]


def resolve_mode(target: Target, source: ChromaSource, data_dir: str) -> str:
    """``auto`` -> ``snapshot`` when the data dir is a btrfs subvolume and btrfs is installed, else
    ``auto`` (the mirror, with reflinks where the filesystem has them); any other mode as configured."""
    if source.copy_mode != "auto":
        return source.copy_mode
    subvolume = target.run(make_is_subvolume_command(data_dir)).ok
    return "snapshot" if subvolume and target.run("command -v btrfs >/dev/null 2>&1").ok else "auto"


def run_snapshot(target: Target, source: ChromaSource, data_dir: str, dest: str, hold: Any) -> Copy:
    from .chroma import hold_writer  # the writer hold is the source's; imported late (no cycle)

    run_or_fail(target, make_clear_command(dest), f"clearing {dest}")
    t0 = time.monotonic()  # the hold: from the stop/pause command to the end of the start/resume command
    with hold_writer(target, source):
        res = target.run(make_snapshot_command(data_dir, dest), write=True)
    held = time.monotonic() - t0
    if not res.ok:
        raise StepError(f"{target.name}: btrfs snapshot of {data_dir} failed (exit {res.exited}): {res.stderr.strip()[-300:]}")
    return Copy(dest, "snapshot", hold_s=held, cleanup=[make_delete_snapshot_command(dest)])


def make_mirror_scripts(target: Target, place: Any, data_dir: str, dest: str) -> Any:
    """Where mirror_sync runs: on the host, or (a Compose host) in a throwaway container of the chroma
    image with the volume read-only and the mirror read-write, both at their host paths."""
    if place is None:
        return HostScripts(target)
    from .chroma_containers import make_scripts
    from .throwaway import Mount

    return make_scripts(target, place, [Mount(data_dir), Mount(dest, read_only=False)], "chroma-copy")


def run_mirror(target: Target, source: ChromaSource, data_dir: str, dest: str, mode: str, place: Any = None) -> Copy:
    from .chroma import hold_writer

    if target.run(make_is_subvolume_command(dest)).ok:  # a snapshot left by a run killed with -9
        run_or_fail(target, make_delete_snapshot_command(dest), f"removing the old snapshot {dest}")
    args = make_mirror_args(data_dir, dest, mode, live=source.strategy == "live")
    if target.dry:  # the hold's commands are printed around it
        with hold_writer(target, source):
            output.dry_command(target.name, f"would update the mirror {dest} from {data_dir} ({mode}: changed files only)")
        return Copy(dest, mode)
    t0 = time.monotonic()
    with hold_writer(target, source):
        res = make_mirror_scripts(target, place, data_dir, dest).run_script("mirror_sync", args, write=True)
    held = time.monotonic() - t0
    doc = parse_json_line(res.stdout, f"mirror of {data_dir}") if res.stdout.strip() else {"ok": False}
    if not doc.get("ok"):
        detail = doc.get("error") or res.stderr.strip()[-300:]
        if any(m in str(detail) for m in ("No space left", "Errno 28", "disk is full")):
            with interrupts.shielded():  # give the disk back: a half-written mirror must not keep it full
                target.run(f"[ ! -L {quote(dest)} ] && rm -rf --one-file-system -- {quote(dest)}", write=True)
            detail = f"no space left on device (staging disk full; the partial mirror was removed); {detail}"
        raise StepError(f"{target.name}: updating the mirror {dest} of {data_dir} failed: {detail}")
    used = "reflink" if doc.get("mode") == "reflink" and mode != "mirror" else "mirror"
    return Copy(dest, used, hold_s=held if source.strategy != "live" else 0.0, stats=doc)


def run_full(target: Target, source: ChromaSource, data_dir: str, dest: str) -> Copy:
    from .chroma import hold_writer, make_live_copy_commands

    t0 = time.monotonic()
    with hold_writer(target, source):
        if source.strategy == "live":
            for cmd in make_live_copy_commands(data_dir, dest, target.python):
                run_or_fail(target, cmd, f"live copy of {data_dir}")
        else:
            run_or_fail(target, make_copy_command(data_dir, dest), f"copy of {data_dir}")
    return Copy(dest, "full", hold_s=time.monotonic() - t0 if source.strategy != "live" else 0.0, stable=False)


def run_copy(target: Target, source: ChromaSource, data_dir: str, run_dir: str, place: Any = None) -> Copy:
    """Make the consistent copy the configured way (``auto`` falls back from a failed snapshot)."""
    mode = resolve_mode(target, source, data_dir)
    if mode == "full":
        return run_full(target, source, data_dir, f"{run_dir}/chroma")
    dest = run_prepare(target, "chroma")
    if mode == "snapshot":
        try:
            return run_snapshot(target, source, data_dir, dest, None)
        except StepError as exc:
            if source.copy_mode == "snapshot" or interrupts.cancelled():
                raise
            output.warn(target.name, f"btrfs snapshot not possible ({str(exc)[-200:]}): using the mirror")
            mode = "auto"
    return run_mirror(target, source, data_dir, dest, mode, place)


def run_cleanup(target: Target, copy: Copy) -> None:
    """Remove what only this run needed (a snapshot); shielded: also after a signal."""
    with interrupts.shielded():
        for command in copy.cleanup:
            res = target.run(command, write=True)
            if not res.ok:
                output.warn(target.name, f"could not remove {copy.path}: {res.stderr.strip()[-200:]}; the next run removes it")
