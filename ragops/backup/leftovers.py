"""Leftovers of dead backup runs: the staging run dirs (``<backup.staging_dir>/run-*``) that a run
killed with ``kill -9`` (or a lost host) could not remove.

Every run dir gets an owner marker when it is created (``OWNER_NAME``: controller pid and its start
time, controller hostname, the host lock's run id, start time, lock path). Before staging, a backup
that holds the host lock lists the direct children of the staging dir whose name matches
``sources.RUN_DIR`` and removes every one whose owner is dead:

- its marker names another run than the current lock holder's and that run's controller process
  is gone (same controller: pid not alive or a different process under that pid), or it ran on
  another controller under the same lock path (we hold that lock now, so it is over);
- without a readable marker (made before markers, or killed between mkdir and marker): when it is
  older than ``NO_MARKER_GRACE_S``.

Never removed: a symlink or non-directory, anything holding a mount point (a bind mount of the same
filesystem included), a run dir of a live ragops process. Removal enters the staging dir once with
``cd -P`` and removes ``./NAME`` with ``rm -rf --one-file-system``. Under ``--dry`` it only lists.
Without the host lock (a step called outside the runner) nothing is removed.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .. import output
from ..report import format_bytes
from ..seam import Target, pid_alive, quote
from .sources import OWNER_NAME, RUN_DIR, parse_json_line

NO_MARKER_GRACE_S = 120

SCAN_SCRIPT = r"""
import json, os, re, sys
root, pattern, owner_name = sys.argv[1], re.compile(sys.argv[2]), sys.argv[3]
def unescape(s):
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), s)
try:
    mounts = [unescape(line.split()[4]) for line in open("/proc/self/mountinfo")]
except OSError:
    mounts = []
out = []
if not os.path.isdir(root):
    print(json.dumps({"ok": True, "exists": False, "entries": []})); sys.exit(0)
real = os.path.realpath(root)
for entry in sorted(os.scandir(root), key=lambda e: e.name):
    if not pattern.match(entry.name):
        continue
    st = entry.stat(follow_symlinks=False)
    kind = "symlink" if entry.is_symlink() else "dir" if entry.is_dir(follow_symlinks=False) else "other"
    rec = {"name": entry.name, "kind": kind, "mtime": st.st_mtime, "marker": None, "bytes": 0, "mounts": []}
    if kind == "dir":
        here = os.path.join(real, entry.name)
        rec["mounts"] = [m for m in mounts if m == here or m.startswith(here + "/")]
        marker = os.path.join(entry.path, owner_name)
        try:
            if os.path.isfile(marker) and not os.path.islink(marker):
                with open(marker, encoding="utf-8", errors="replace") as fh:
                    rec["marker"] = fh.read(4096)
        except OSError:
            pass
        for d, dirs, files in os.walk(entry.path):
            for name in dirs + files:
                try:
                    s = os.lstat(os.path.join(d, name))
                except OSError:
                    continue
                if s.st_dev == st.st_dev:
                    rec["bytes"] += s.st_blocks * 512
            dirs[:] = [x for x in dirs if not os.path.ismount(os.path.join(d, x))]
    out.append(rec)
print(json.dumps({"ok": True, "exists": True, "entries": out}))
"""


@dataclass
class Leftover:
    """One ``run-*`` entry of the staging dir and what is done with it."""

    path: str
    dead: bool
    why: str
    bytes: int = 0
    removed: bool = False


def process_start(pid: int) -> str | None:
    """The start time (clock ticks since boot) of a controller process, None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def make_owner(target: Target, lock_run_id: str | None) -> dict[str, Any]:
    """The owner marker of a run dir created by this process for this host."""
    return {"pid": os.getpid(), "pid_start": process_start(os.getpid()), "origin": socket.gethostname(),
            "run_id": lock_run_id, "host": target.name, "lock_path": target.settings.lock_path,
            "started": datetime.now(UTC).isoformat(timespec="seconds")}


def owner_alive(owner: dict[str, Any]) -> bool:
    """The owner's controller process still runs (same pid AND same start time)."""
    pid = owner.get("pid")
    if not isinstance(pid, int) or not pid_alive(pid):
        return False
    return owner.get("pid_start") is None or process_start(pid) == owner.get("pid_start")


def make_verdict(entry: dict[str, Any], *, current_run_id: str | None, here: str, lock_path: str,
                 now: float) -> tuple[bool, str]:
    """(dead, why) for one scanned entry (pure apart from the local /proc lookups of owner_alive)."""
    if entry["kind"] != "dir":
        return False, f"a {entry['kind']}, not a directory: left alone"
    if entry["mounts"]:
        return False, f"holds mount point(s) {', '.join(entry['mounts'][:3])}: left alone"
    try:
        owner = json.loads(entry["marker"]) if entry["marker"] else None
    except ValueError:
        owner = None
    if not isinstance(owner, dict):
        age = now - float(entry["mtime"])
        if age < NO_MARKER_GRACE_S:
            return False, f"no owner marker, {age:.0f}s old (may be being created): left alone"
        return True, f"no owner marker, {age:.0f}s old"
    who = f"pid {owner.get('pid')} on {owner.get('origin')}, started {owner.get('started')}"
    if current_run_id is not None and owner.get("run_id") == current_run_id:
        return False, f"the current run's ({who})"
    if owner.get("origin") == here:
        if owner_alive(owner):
            return False, f"owned by live process {who}: left alone"
        return True, f"its run is gone ({who})"
    if owner.get("lock_path") == lock_path:
        return True, f"its run on another controller is over: this run holds lock {lock_path} ({who})"
    return False, f"owned by {who} under another lock ({owner.get('lock_path')}): left alone"


def read_lock_holder(target: Target) -> dict[str, Any] | None:
    text = target.read_text(target.settings.lock_path)
    try:
        holder = json.loads(text or "")
    except ValueError:
        return None
    return holder if isinstance(holder, dict) else None


def holds_lock(holder: dict[str, Any] | None) -> bool:
    return bool(holder) and holder.get("pid") == os.getpid() and holder.get("origin") == socket.gethostname()  # type: ignore[union-attr]


def make_remove_leftover_command(staging_dir: str, name: str) -> str:
    """Enter the staging dir once (``cd -P``), then remove ``./NAME``: no path component can change under it."""
    if not RUN_DIR.match(name):
        raise ValueError(f"not a run dir name: {name!r}")
    n = quote(name)
    return f"cd -P -- {quote(staging_dir)} && [ -d {n} ] && [ ! -L {n} ] && rm -rf --one-file-system -- ./{n}"


def run_scan(target: Target, staging_dir: str) -> list[dict[str, Any]]:
    res = target.run(f"{target.python} - {quote(staging_dir)} {quote(RUN_DIR.pattern)} {OWNER_NAME}", stdin=SCAN_SCRIPT)
    doc = parse_json_line(res.stdout, f"{target.name}: listing {staging_dir}")
    return list(doc.get("entries") or [])


def run_remove_leftovers(target: Target, staging_dir: str, holder: dict[str, Any] | None) -> dict[str, Any]:
    """Find and remove the run dirs of dead runs (``holder``: the host lock's content, see
    :func:`read_lock_holder`); returns the report (``removed``, ``failed``, ``kept``, ``bytes``)."""
    if not target.dry and not holds_lock(holder):
        return {"skipped": "this process does not hold the host lock: leftovers not judged"}
    base = os.path.normpath(staging_dir)
    current = str(holder["run_id"]) if holder and holder.get("run_id") else None
    items: list[Leftover] = []
    for entry in run_scan(target, base):
        dead, why = make_verdict(entry, current_run_id=current, here=socket.gethostname(),
                                 lock_path=target.settings.lock_path, now=time.time())
        items.append(Leftover(path=f"{base}/{entry['name']}", dead=dead, why=why, bytes=int(entry.get("bytes") or 0)))
    for item in items:
        if not item.dead:
            continue
        verb = "would remove" if target.dry else "removing"
        output.info(target.name, f"{verb} leftover staging dir {item.path} ({format_bytes(item.bytes)}): {item.why}")
        res = target.run(make_remove_leftover_command(base, os.path.basename(item.path)), write=True)
        if res.dry:
            continue
        if res.ok:
            item.removed = True
        else:
            output.warn(target.name, f"could not remove leftover {item.path} (exit {res.exited}): {res.stderr.strip()[-200:]}")
    for item in items:
        if not item.dead and not item.why.startswith("the current run"):
            output.warn(target.name, f"staging dir {item.path}: {item.why}")
    gone = [i for i in items if i.dead]
    return {"removed" if not target.dry else "would_remove": [{"path": i.path, "bytes": i.bytes, "why": i.why} for i in gone
                                                              if i.removed or target.dry],
            "failed": [i.path for i in gone if not i.removed and not target.dry],
            "kept": [{"path": i.path, "why": i.why} for i in items if not i.dead],
            "bytes": sum(i.bytes for i in gone if i.removed or target.dry)}


def make_summary(report: dict[str, Any], dry: bool) -> str | None:
    """One clause for the step message, or None when nothing was (or would be) removed."""
    done = report.get("would_remove" if dry else "removed") or []
    if not done:
        return None
    verb = "would remove" if dry else "removed"
    return f"{verb} {len(done)} leftover staging dir(s) of dead runs ({format_bytes(report.get('bytes', 0))})"
