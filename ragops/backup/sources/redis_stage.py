"""Staging the Redis dump at a stable path, at the cost of what changed.

1. BGSAVE only when needed (:func:`make_save_decision`): the dump on disk is used as it is when
   ``INFO persistence`` shows no change since the last save, no save running, the last BGSAVE ok,
   the server not loading, the dump a regular file not modified after LASTSAVE, and (AOF on) an
   RDB save by this server since it started (otherwise dump.rdb may be older than the data).
2. The dump is staged at ``<staging_dir>/stable/redis/dump.rdb`` (:func:`make_link_command`) as a
   HARD LINK to the live dump: Redis only ever replaces its dump by rename, never rewrites it, so
   the link is an immutable, consistent copy at zero disk. A link that already is the live dump's
   inode is left untouched (a new link would change the inode's ctime and restic would re-read it);
   otherwise the link goes to a temp name in the stable dir and is renamed over (atomic). When the
   link fails (another filesystem: EXDEV), ``cp --reflink=auto`` to a temp name + rename, skipped
   when the live dump is still the file copied last time (``<stable root>/.redis-source``: dev:inode,
   size, mtime). A failed copy (a full disk) removes the stale copy too.

The stable dir holds only ``dump.rdb`` (a temp name exists only while it is replaced): ragops' own
files (that marker, ``redis_check``'s cache) sit in the stable root beside it, which is not backed up.

The link keeps the last backed-up dump's blocks alive until the next backup after Redis saved again
(at most one dump of extra disk on Redis' filesystem).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ...errors import StepError
from ...seam import Target, quote
from .stable import run_prepare, stable_dir

KEY = "redis"
DUMP_NAME = "dump.rdb"
SOURCE_NAME = ".redis-source"  # copy mode: which live file the stable copy was made from (in the stable root)
CACHE_NAME = ".redis-check.json"  # redis_check's cache of the staged file's description (in the stable root)


def private_path(directory: str, name: str) -> str:
    """One of ragops' own files, in the stable root beside ``<stable root>/redis`` (not in the snapshot)."""
    return f"{os.path.dirname(directory)}/{name}"


@dataclass
class StagedDump:
    """The staged dump: where it is, how it got there, and what ``stat`` says of it."""

    path: str
    stable_dir: str
    how: str  # linked | unchanged | copied | copy-unchanged
    identity: str = ""  # dev:inode|size|mtime|ctime (full precision): the description cache key
    size: int = 0
    mtime: int = 0
    crc64: str | None = None  # the RDB's trailing CRC64 (hex), None when saved with rdbchecksum no
    why_copied: str = ""
    cache_text: str = ""  # redis_check's cache file, as read in the same command
    extra: dict[str, Any] = field(default_factory=dict)


def make_save_decision(info: dict[str, Any]) -> tuple[bool, str]:
    """(use the dump on disk?, why) from the live server's ``redis_commands.read_info`` plus the dump's ``stat`` (``dump``)."""
    p = info.get("persistence") or {}
    dump = info.get("dump")
    changes = p.get("rdb_changes_since_last_save")
    if not isinstance(dump, dict):
        return False, "no dump on disk"
    if not dump.get("regular"):
        return False, f"{dump.get('path')} is not a regular file"
    if changes != "0":
        return False, f"{changes} change(s) since the last save"
    if p.get("loading") not in (None, "0"):
        return False, "the server is loading"
    if p.get("rdb_bgsave_in_progress") != "0":
        return False, "a save is in progress"
    if p.get("rdb_last_bgsave_status") != "ok":
        return False, f"the last BGSAVE failed ({p.get('rdb_last_bgsave_status')})"
    saves = p.get("rdb_saves")
    if info.get("appendonly") and not (saves is not None and saves.isdigit() and int(saves) > 0):
        return False, "AOF on and no RDB save since the server started (dump.rdb may be older than the data)"
    lastsave = info.get("lastsave")
    if not isinstance(lastsave, int) or int(dump.get("mtime_ns", 0)) > (lastsave + 1) * 1_000_000_000:
        return False, f"the dump was modified after LASTSAVE {lastsave}"
    return True, f"no change since LASTSAVE {lastsave}"


def make_link_command(live: str, directory: str) -> str:
    """Stage ``live`` as ``directory/dump.rdb`` (link, or copy across filesystems; see module doc) and
    print ``ragops-stage HOW``, ``ragops-stat ...``, ``ragops-crc HEX``, ``ragops-why TEXT``, then
    the cache file after a ``ragops-cache`` line."""
    dst, tmp = f"{directory}/{DUMP_NAME}", f"{directory}/.ragops-tmp-{DUMP_NAME}"
    q = {k: quote(v) for k, v in {"live": live, "dst": dst, "tmp": tmp, "src": private_path(directory, SOURCE_NAME),
                                  "cache": private_path(directory, CACHE_NAME)}.items()}
    return (
        f"live={q['live']}; dst={q['dst']}; tmp={q['tmp']}.$$; src={q['src']}; why=; how=unchanged; "
        '{ [ -f "$live" ] && [ ! -L "$live" ]; } || { echo "the live dump $live is not a regular file" >&2; exit 3; }; '
        'a=$(stat -c %d:%i -- "$live") || exit 3; b=$(stat -c %d:%i -- "$dst" 2>/dev/null); '
        'if [ "$a" != "$b" ]; then rm -f -- "$tmp"; '
        'if why=$(ln -- "$live" "$tmp" 2>&1); then mv -f -- "$tmp" "$dst" || exit 4; how=linked; rm -f -- "$src"; '
        "else id=$(stat -c '%d:%i|%s|%y' -- \"$live\") || exit 3; "
        'if [ -f "$dst" ] && [ ! -L "$dst" ] && [ "$(cat -- "$src" 2>/dev/null)" = "$id" ]; then how=copy-unchanged; '
        'else cp --reflink=auto -p -- "$live" "$tmp" && mv -f -- "$tmp" "$dst" && printf "%s\\n" "$id" > "$src" '
        '|| { rm -f -- "$tmp" "$dst" "$src"; exit 5; }; how=copied; fi; fi; fi; '
        'echo "ragops-stage $how"; '
        "echo \"ragops-stat $(stat -c '%d:%i|%s|%Y|%y|%z' -- \"$dst\")\"; "
        'echo "ragops-crc $(tail -c 8 -- "$dst" | od -An -tx1 | tr -d " \\n")"; '
        'echo "ragops-why $(printf "%s" "$why" | head -n 1)"; '
        f"echo ragops-cache; cat -- {q['cache']} 2>/dev/null; exit 0"
    )


def parse_link_output(stdout: str, path: str, directory: str) -> StagedDump:
    """The :class:`StagedDump` from :func:`make_link_command`'s output (StepError if it is garbled)."""
    head, _, cache = stdout.partition("ragops-cache\n")
    fields = {}
    for line in head.splitlines():
        name, _, value = line.partition(" ")
        fields[name] = value.strip()
    parts = fields.get("ragops-stat", "").split("|")
    if fields.get("ragops-stage") not in ("linked", "unchanged", "copied", "copy-unchanged") or len(parts) != 5:
        raise StepError(f"staging the Redis dump: unexpected output {stdout.strip()[-300:]!r}")
    crc = fields.get("ragops-crc", "")
    return StagedDump(path=path, stable_dir=directory, how=fields["ragops-stage"],
                      identity="|".join([parts[0], parts[1], parts[3], parts[4]]), size=int(parts[1]), mtime=int(parts[2]),
                      crc64=crc if len(crc) == 16 and crc.strip("0") else None,
                      why_copied=fields.get("ragops-why", "") if fields["ragops-stage"].startswith("cop") else "",
                      cache_text=cache)


def run_stage_dump(target: Target, live: str) -> StagedDump:
    """Prepare ``<staging_dir>/stable/redis`` and stage the live dump there (a write: obeys --dry)."""
    directory = run_prepare(target, KEY)
    path = f"{directory}/{DUMP_NAME}"
    res = target.run(make_link_command(live, directory), write=True)
    if res.dry:
        return StagedDump(path=path, stable_dir=directory, how="dry")
    if not res.ok:
        detail = (res.stderr.strip() or res.stdout.strip())[-400:]
        if "No space left on device" in detail:
            detail = "no space left on device (staging disk full); " + detail[-200:]
        raise StepError(f"{target.name}: staging the Redis dump {live} at {path} failed (exit {res.exited}): {detail}")
    return parse_link_output(res.stdout, path, directory)


def make_same_fs_command(live: str, directory: str) -> str:
    """Print ``same`` when ``live`` and ``directory`` (or its nearest existing ancestor) are on the
    same filesystem and mount (a link will do), else ``other``."""
    return (f"d={quote(directory)}; while [ ! -e \"$d\" ]; do d=$(dirname -- \"$d\"); done; "
            f"a=$(stat -c %d -- \"$d\")$(df -P -- \"$d\" | awk 'NR==2{{print $NF}}'); "
            f"b=$(stat -c %d -- {quote(live)})$(df -P -- {quote(live)} | awk 'NR==2{{print $NF}}') || exit 1; "
            "[ \"$a\" = \"$b\" ] && echo same || echo other")


def run_link_will_do(target: Target, live: str) -> bool:
    """True when the stable dir can hard-link the live dump (nothing to copy for the preflight)."""
    res = target.run(make_same_fs_command(live, stable_dir(target, KEY)))
    return res.ok and res.stdout.strip() == "same"
