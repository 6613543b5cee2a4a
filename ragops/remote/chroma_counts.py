"""Print JSON with a Chroma persistent dir's collections and item counts, read-only, stdlib only.

Usage: python3 - DATA_DIR  (script on stdin). Never opens the store for writing.
"""

import json
import os
import sqlite3
import sys


def main(data_dir):
    path = os.path.join(data_dir, "chroma.sqlite3")
    if not os.path.isdir(data_dir):
        return {"ok": False, "error": "data dir does not exist: " + data_dir}
    if not os.path.isfile(path):
        return {"ok": False, "error": "no chroma.sqlite3 in " + data_dir}
    db = sqlite3.connect("file:" + path + "?mode=ro", uri=True, timeout=10)
    try:
        rows = db.execute(
            "SELECT c.name, c.dimension, (SELECT count(*) FROM embeddings e JOIN segments s ON e.segment_id = s.id "
            "WHERE s.collection = c.id AND s.scope = 'METADATA') FROM collections c ORDER BY c.name"
        ).fetchall()
    finally:
        db.close()
    collections = [{"name": n, "dimension": d, "count": k} for n, d, k in rows]
    size = 0
    for root, _dirs, files in os.walk(data_dir):
        for f in files:
            try:
                size += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return {"ok": True, "collections": collections, "total": sum(c["count"] for c in collections), "bytes": size}


if __name__ == "__main__":
    try:
        out = main(sys.argv[1])
    except sqlite3.Error as exc:
        out = {"ok": False, "error": f"sqlite: {exc}"}
    print(json.dumps(out))
