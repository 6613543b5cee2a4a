"""sha256 and size of every file below a dir (links skipped): ``hash_files.py ROOT [SKIP_NAME ...]``.

Names in SKIP_NAME are skipped only directly below ROOT (the manifest, the run's owner marker).
Prints one JSON line ``{"ok": true, "files": {path: {"sha256", "bytes"}}}``. Stdlib only.
"""
import hashlib
import json
import os
import sys


def hash_tree(root, skip):
    out = {}
    for d, _, fs in os.walk(root):
        for f in fs:
            p = os.path.join(d, f)
            if (d == root and f in skip) or os.path.islink(p):
                continue
            h = hashlib.sha256()
            with open(p, "rb") as fh:
                for b in iter(lambda: fh.read(1 << 20), b""):
                    h.update(b)
            out[p] = {"sha256": h.hexdigest(), "bytes": os.path.getsize(p)}
    return out


if __name__ == "__main__":
    print(json.dumps({"ok": True, "files": hash_tree(sys.argv[1], sys.argv[2:])}))
