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
import os
from typing import Any

from ..backup import restic
from ..backup.repository import run_restic
from ..backup.sources import parse_json_line
from ..errors import StepError
from ..remote import script
from ..seam import Target, quote
from .compare import Check

TREE_CHECK = "restored tree: only regular files and directories"
KINDS = ("redis", "chroma", "paths")


def is_safe_path(path: Any) -> bool:
    """Absolute, normalized (no '.', '..', '//', trailing '/'), no NUL or newline."""
    return (isinstance(path, str) and path.startswith("/") and os.path.normpath(path) == path
            and "\0" not in path and "\n" not in path and ".." not in path.split("/"))


def is_inside(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def check_source(i: int, rec: Any, staging: str) -> list[str]:
    where = f"manifest: sources[{i}]"
    if not isinstance(rec, dict):
        return [f"{where}: not an object"]
    kind = rec.get("kind")
    if kind not in KINDS:
        return [f"{where}: kind {str(kind)[:40]!r} is not one of {', '.join(KINDS)}"]
    bad = []
    if kind in ("redis", "chroma"):
        path = rec.get("path")
        if not (isinstance(path, str) and is_safe_path(path) and is_inside(path, staging) and path != staging):
            bad.append(f"{where}.path {str(path)[:80]!r}: not a normalized absolute path inside the staging dir {staging}")
    if kind == "redis":
        if rec.get("method") not in ("bgsave", "aof"):
            bad.append(f"{where}.method {str(rec.get('method'))[:20]!r}: not bgsave or aof")
        aof = rec.get("aof_dir")
        if rec.get("method") == "aof" and not (isinstance(aof, str) and aof not in ("", ".", "..") and "/" not in aof
                                                and "\0" not in aof):
            bad.append(f"{where}.aof_dir {str(aof)[:40]!r}: not a plain directory name")
        keys = rec.get("db_keys")
        if keys is not None and not (isinstance(keys, dict) and all(str(k).isdigit() and is_count(v) for k, v in keys.items())):
            bad.append(f"{where}.db_keys: not a map of db number to key count")
        for key in ("sample_size", "keys"):
            if rec.get(key) is not None and not is_count(rec[key]):
                bad.append(f"{where}.{key}: not a count")
        if rec.get("sample_digest") is not None and not isinstance(rec["sample_digest"], str):
            bad.append(f"{where}.sample_digest: not a string")
    if kind == "chroma":
        if rec.get("data_dir") is not None and not is_safe_path(rec["data_dir"]):
            bad.append(f"{where}.data_dir {str(rec['data_dir'])[:80]!r}: not a normalized absolute path")
        cols = rec.get("collections", [])
        if not isinstance(cols, list) or not all(isinstance(c, dict) and isinstance(c.get("name"), str)
                                                 and is_count(c.get("count", 0)) for c in cols):
            bad.append(f"{where}.collections: not a list of {{name, count, ...}} objects")
    if kind == "paths":
        entries = rec.get("entries", [])
        if not isinstance(entries, list) or not all(isinstance(e, dict) and is_safe_path(e.get("path")) for e in entries):
            bad.append(f"{where}.entries: not a list of objects with a normalized absolute path")
    return bad


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
        outside = [p for p in files if not (is_safe_path(p) and is_inside(p, staging))]
        bad += [f"manifest: files: {str(p)[:80]!r} is not a normalized path inside {staging}" for p in outside[:3]]
        if not all(isinstance(v, dict) and isinstance(v.get("sha256"), str) and is_count(v.get("bytes")) for v in files.values()):
            bad.append("manifest: files: every entry needs a sha256 string and a byte count")
    if not isinstance(doc["sources"], list):
        return bad + ["manifest: sources is not a list"]
    for i, rec in enumerate(doc["sources"]):
        bad += check_source(i, rec, staging)
    return bad


def run_tree_check(target: Target, root: str) -> Check:
    """lstat walk of ``root`` on the host: nothing below it may be anything but a file or a dir."""
    res = target.run(f"{target.python} - tree {quote(root)}", stdin=script("restore_guard"))
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
    return Check(TREE_CHECK, True, f"{doc.get('entries')} entries below {root}, no link, device, FIFO, socket "
                 "or mount point", figures)


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
