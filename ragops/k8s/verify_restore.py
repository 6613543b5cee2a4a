"""Verification run INSIDE the restore-test Job against restored volumes (stdlib only).

    python -m ragops.k8s.verify_restore --chroma /data/chroma --redis /data/redis

Chroma: ``chroma.sqlite3`` exists, ``pragma integrity_check`` is ok, and the embeddings count is
printed. Redis: a ``dump.rdb`` that starts with the ``REDIS`` magic (or an appendonly dir). Prints one
line per check; exit 0 when all pass, 1 otherwise (the Job then fails).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys


def check_chroma(path: str) -> tuple[bool, str]:
    db = os.path.join(path, "chroma.sqlite3")
    if not os.path.isfile(db):
        return False, f"chroma: {db} missing"
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            result = conn.execute("pragma integrity_check").fetchone()[0]
            if result != "ok":
                return False, f"chroma: integrity_check: {result}"
            tables = {r[0] for r in conn.execute("select name from sqlite_master where type='table'")}
            count = conn.execute("select count(*) from embeddings").fetchone()[0] if "embeddings" in tables else 0
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return False, f"chroma: {db}: {exc}"
    return True, f"chroma: ok, {count} embeddings"


def check_redis(path: str) -> tuple[bool, str]:
    dump = os.path.join(path, "dump.rdb")
    if os.path.isfile(dump):
        with open(dump, "rb") as fh:
            magic = fh.read(5)
        if magic != b"REDIS":
            return False, f"redis: {dump} is not an RDB file"
        return True, f"redis: ok, {os.path.getsize(dump)} bytes"
    if os.path.isdir(os.path.join(path, "appendonlydir")):
        return True, "redis: ok, appendonly dir present"
    return False, f"redis: no dump.rdb or appendonlydir in {path}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chroma", help="restored Chroma persistent directory")
    parser.add_argument("--redis", help="restored Redis data directory")
    args = parser.parse_args(argv)
    checks = []
    if args.chroma:
        checks.append(check_chroma(args.chroma))
    if args.redis:
        checks.append(check_redis(args.redis))
    for ok, line in checks:
        print(("PASS " if ok else "FAIL ") + line)
    return 0 if checks and all(ok for ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
