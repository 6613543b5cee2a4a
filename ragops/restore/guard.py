"""A snapshot is untrusted input: its tree and its manifest are checked before anything opens them.

- :func:`run_tree_check`: ``ragops/remote/restore_guard.py tree`` walks the restored tree with lstat
  (nothing followed) and refuses symlinks, hard links, devices, FIFOs, sockets and mount points,
  BEFORE ChromaDB, redis-server, redis-check-rdb or the hashing open a single file.
- :func:`check_manifest`: every field the restore code uses has the right type, and every path is
  absolute, normalized, without '..' and inside the snapshot's staging dir (the layout backup
  writes): a hostile manifest can name nothing outside the scratch dir, and wrong types are a
  failed ``manifest`` check, never a traceback.
- :func:`run_listing_check`: ``restic ls`` of the snapshot, for ``restore`` before it writes: only
  regular files and directories with plain names.
"""

from __future__ import annotations

import json
from typing import Any

from ..backup import restic
from ..backup.repository import run_restic
from ..backup.sources import parse_json_line, registry
from ..backup.sources.hooks import is_count, is_inside, is_safe_path
from ..errors import StepError
from ..remote import script
from ..seam import Target, quote
from .compare import Check

TREE_CHECK = "restored tree: only regular files and directories"
__all__ = ["TREE_CHECK", "is_safe_path", "is_inside", "is_count", "check_source", "check_manifest", "run_tree_check",
           "run_listing_check"]


def check_source(i: int, rec: Any, staging: str) -> list[str]:
    """One untrusted record: a registered source's kind, then that source's own field checks."""
    where = f"manifest: sources[{i}]"
    if not isinstance(rec, dict):
        return [f"{where}: not an object"]
    kind = rec.get("kind")
    if kind not in registry.SOURCES:
        return [f"{where}: kind {str(kind)[:40]!r} is not one of {', '.join(registry.keys())}"]
    problems: list[str] = registry.hook(str(kind), "check_record")(where, rec, staging)
    return problems


def check_manifest(doc: Any, staging: str) -> list[str]:
    """Problems of a manifest read from the snapshot whose staging dir is ``staging`` (empty: usable)."""
    if not isinstance(doc, dict):
        return ["manifest: not a JSON object"]
    from ..backup.manifest import REQUIRED

    bad = [f"manifest: missing {key}" for key in REQUIRED if key not in doc]
    if bad:
        return bad
    if doc["staging_dir"] != staging or not is_safe_path(staging):
        bad.append(f"manifest: staging_dir {str(doc['staging_dir'])[:120]!r} is not the snapshot's staging dir {staging}")
    for key in ("created", "tool_version"):
        if not isinstance(doc[key], str):
            bad.append(f"manifest: {key} is not a string")
    if not isinstance(doc.get("backup_paths", []), list) or not all(is_safe_path(p) for p in doc.get("backup_paths", [])):
        bad.append("manifest: backup_paths: not a list of normalized absolute paths")
    files = doc["files"]
    if not isinstance(files, dict):
        bad.append("manifest: files is not an object")
    else:
        from ..backup.sources.stable import stable_root_of_run_dir

        root = stable_root_of_run_dir(staging) if is_safe_path(staging) else None
        stable = [p for p in doc.get("backup_paths", []) if root and is_safe_path(p) and is_inside(p, root) and p != root] \
            if isinstance(doc.get("backup_paths", []), list) else []
        allowed = [staging, *stable]
        outside = [p for p in files if not (is_safe_path(p) and any(is_inside(p, a) for a in allowed))]
        bad += [f"manifest: files: {str(p)[:80]!r} is not a normalized path inside {' or '.join(allowed)}"
                for p in outside[:3]]
        if not all(isinstance(v, dict) and isinstance(v.get("sha256"), str) and is_count(v.get("bytes")) for v in files.values()):
            bad.append("manifest: files: every entry needs a sha256 string and a byte count")
    if not isinstance(doc["sources"], list):
        return bad + ["manifest: sources is not a list"]
    for i, rec in enumerate(doc["sources"]):
        bad += check_source(i, rec, staging)
    return bad


def run_tree_check(target: Target, root: str, strict: list[str] | None = None) -> Check:
    """lstat walk of ``root`` on the host: below the ``strict`` dirs (the staged dumps ragops opens)
    nothing but files and dirs; elsewhere also relative symlinks that stay inside ``root``."""
    dirs = " ".join(quote(d) for d in (strict or []))
    res = target.run(f"{target.python} - tree {quote(root)} {dirs}".rstrip(), stdin=script("restore_guard"))
    try:
        doc = parse_json_line(res.stdout, "restored tree check")
    except StepError:
        return Check(TREE_CHECK, False, f"the tree check of {root} gave no result: {(res.stderr or res.stdout).strip()[-300:]}")
    if doc.get("error"):
        return Check(TREE_CHECK, False, f"the tree check of {root} failed: {doc['error']}")
    figures = {k: doc.get(k) for k in ("entries", "bytes", "unsafe")}
    if not doc.get("ok"):
        return Check(TREE_CHECK, False, f"refused: {doc.get('unsafe')} unsafe entr(ies) in the restored snapshot, "
                     "nothing was opened: " + "; ".join(doc.get("problems", [])[:5]), figures)
    return Check(TREE_CHECK, True, f"{doc.get('entries')} entries below {root}, no device, FIFO, socket, "
                 "mount point or link leaving the tree (none at all in the staged data)", figures)


def run_listing_check(target: Target, repo: restic.Repo, snap: restic.Snapshot) -> list[str]:
    """Entries of the snapshot (``restic ls``) a restore must not write: anything but files and dirs."""
    res = run_restic(target, repo, ["ls", snap.id], what="list snapshot")
    bad = []
    for line in res.stdout.splitlines():
        try:
            node = json.loads(line)
        except ValueError:
            continue
        if not isinstance(node, dict) or node.get("struct_type") != "node":
            continue
        path, kind = node.get("path"), node.get("type")
        if kind not in ("file", "dir"):
            bad.append(f"{path}: {kind}")
        elif not is_safe_path(path):
            bad.append(f"{str(path)[:80]!r}: not a normalized absolute path")
    return bad
