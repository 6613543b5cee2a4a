"""sha256 and size of every file below one or more dirs (links skipped), stdlib only.

Usage::

    python3 - ROOT [SKIP_NAME ...]
    python3 - --roots ROOT [ROOT ...] [--skip NAME ...] [--cache FILE]

Names in SKIP_NAME / ``--skip`` are skipped only directly below the FIRST root (the manifest, the
run's owner marker). ``--cache FILE``: a JSON cache keyed by path, size, mtime (ns) and inode; a file
whose key is unchanged is not read again (restic hashes content anyway; this keeps an unchanged
store from being read every night). The cache is rewritten atomically with only the files seen.
Prints one JSON line ``{"ok": true, "files": {path: {"sha256", "bytes"}}, "hashed_bytes": N}``.
"""
import hashlib
import json
import os
import sys


def hash_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for b in iter(lambda: fh.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def hash_tree(root, skip, cache=None, seen=None, stats=None):
    out = {}
    for d, _, fs in os.walk(root):
        for f in fs:
            p = os.path.join(d, f)
            if (d == root and f in skip) or os.path.islink(p):
                continue
            st = os.lstat(p)
            key = [st.st_size, st.st_mtime_ns, st.st_ino]
            old = (cache or {}).get(p)
            if old is not None and old[:3] == key:
                digest = old[3]
            else:
                digest = hash_file(p)
                if stats is not None:
                    stats["hashed_bytes"] += st.st_size
            if seen is not None:
                seen[p] = key + [digest]
            out[p] = {"sha256": digest, "bytes": st.st_size}
    return out


def read_cache(path):
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
        return doc if isinstance(doc, dict) else {}
    except (OSError, ValueError):
        return {}


def write_cache(path, seen):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(seen, fh)
    os.replace(tmp, path)


def main(argv):
    if not argv or argv[0] != "--roots":
        return {"ok": True, "files": hash_tree(argv[0], argv[1:])}
    roots, skip, cache_path, it = [], [], None, iter(argv[1:])
    for a in it:
        if a == "--skip":
            skip.append(next(it))
        elif a == "--cache":
            cache_path = next(it)
        else:
            roots.append(a)
    cache = read_cache(cache_path) if cache_path else None
    seen, stats, files = {}, {"hashed_bytes": 0}, {}  # type: ignore[var-annotated]
    for i, root in enumerate(roots):
        if os.path.isdir(root) and not os.path.islink(root):
            files.update(hash_tree(root, skip if i == 0 else [], cache, seen, stats))
    if cache_path:
        write_cache(cache_path, seen)
    return {"ok": True, "files": files, "hashed_bytes": stats["hashed_bytes"]}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])))
