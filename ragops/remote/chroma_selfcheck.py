"""Restore-test helpers for a ChromaDB persistent dir (runs ON the host, script on stdin).

Usage::

    python3 - schema DIR                       # stdlib only: read chroma.sqlite3 READ-ONLY
    python3 - selfcheck DIR [--sample N]       # needs chromadb (the host's backup.chroma_python)
    python3 - both DIR MANIFEST_JSON MIN_OVERLAP N   # chroma_inspect's verify + selfcheck in ONE process
    python3 - serve GO_FILE [TIMEOUT_S]        # import ChromaDB now, wait for GO_FILE (0: no limit), then run its argv

``both`` runs when this script is shipped AFTER ``chroma_inspect.py`` on the same stdin (its own
``__main__`` block disabled, see ``ragops.restore.verify``): ChromaDB is imported and the store
opened once for the verify and the self-retrieval probe.

``serve`` lets the restore test pay ChromaDB's import (~0.9 s of CPU) while restic is still
restoring: it imports, then polls for GO_FILE, a JSON ``{"argv": [...]}`` (run as if given on the
command line) or ``{"abort": "why"}``. It gives up when GO_FILE's directory disappears (the scratch
dir was removed), when its parent process is gone (the caller was killed), or after TIMEOUT_S.

``schema`` lists each collection's name, id, dimension, metric and embedding model straight from
sqlite opened with ``mode=ro`` (it never opens the store with ChromaDB, so it is safe on a live dir).

``selfcheck`` is the self-retrieval probe: per collection, N stored vectors (the ids with the
smallest sha256("self:" + id), a different sample than the manifest's probes) are queried with
their own embedding and should come back first (or at distance 0, for duplicate vectors). At
least MIN_SELF_RECALL of them must: HNSW is approximate and misses the odd stored vector on hard
data (measured: 6-11% of uniform random 384-d vectors, in the live store too), while a damaged
index that still has the right counts and ids loses most of them.
The last stdout line is always one JSON object with ``ok``.
"""

import hashlib
import json
import os
import sqlite3
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # shipped composed, these pieces in front (ragops.remote.NEEDS); for linters only
    from ragops.remote.chroma_common import MODEL_KEYS, read_stored_metric
    from ragops.remote.json_result import check, run_json_main

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
# numpy's OpenBLAS starts one thread per CPU, each with its own ~32 MiB buffer: under a memory cap
# (RLIMIT_DATA counts them) the need would grow with the host's CPU count. One thread: the need is
# the same on every host (memory_preflight's estimate), and nothing here is BLAS-bound.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
MIN_SELF_RECALL = 0.75


def run_schema(path):
    db = sqlite3.connect("file:" + os.path.join(path, "chroma.sqlite3") + "?mode=ro", uri=True, timeout=30)
    try:
        cols = [r[1] for r in db.execute("pragma table_info(collections)")]
        extra = ", ".join(c if c in cols else "NULL" for c in ("config_json_str", "schema_str"))
        rows = db.execute("select id, name, dimension, %s from collections order by name" % extra).fetchall()
        out = []
        for cid, name, dim, config_text, schema_text in rows:
            meta = dict(db.execute("select key, coalesce(str_value, int_value, float_value) from collection_metadata "
                                   "where collection_id = ?", (cid,)).fetchall())
            model = next((str(meta[k]) for k in MODEL_KEYS if meta.get(k)), None)
            out.append({"name": name, "id": cid, "dimension": dim, "embedding_model": model,
                        "metric": read_stored_metric(meta, config_text, schema_text)})
    finally:
        db.close()
    return {"ok": True, "dir": path, "collections": out}


def open_store(path):
    import chromadb
    from chromadb.config import Settings

    return chromadb.PersistentClient(path=path, settings=Settings(anonymized_telemetry=False))


def selfcheck_collection(col, sample):
    """(failing ids, sampled count) of one collection's self-retrieval probe."""
    ids = col.get(include=[])["ids"]
    chosen = sorted(ids, key=lambda i: hashlib.sha256(("self:" + i).encode()).hexdigest())[:sample]
    if not chosen:
        return [], 0
    got = col.get(ids=chosen, include=["embeddings"])
    res = col.query(query_embeddings=[list(map(float, e)) for e in got["embeddings"]], n_results=1, include=["distances"])
    bad = [i for i, top, dist in zip(got["ids"], res["ids"], res["distances"])
           if not top or (top[0] != i and float(dist[0]) > 1e-6)]
    bad += [i for i in chosen if i not in set(got["ids"])]
    return bad, len(chosen)


def run_selfcheck(path, sample):
    client = open_store(path)
    checks, figures = [], {}
    for listed in sorted(client.list_collections(), key=lambda c: str(getattr(c, "name", c))):
        name = str(getattr(listed, "name", listed))
        try:
            bad, sampled = selfcheck_collection(client.get_collection(name, embedding_function=None), sample)
            figures[name] = {"sampled": sampled, "failed": len(bad)}
            checks.append(check(name + ": self-retrieval", sampled - len(bad) >= MIN_SELF_RECALL * sampled,
                                "%d of %d sampled stored vectors return themselves first (at least %d%% must); "
                                "missing: %s" % (sampled - len(bad), sampled, MIN_SELF_RECALL * 100, bad[:5])))
        except Exception as exc:  # noqa: BLE001 - a damaged index raises anything: it is the evidence
            checks.append(check(name + ": self-retrieval", False, "%s: %s" % (type(exc).__name__, str(exc)[:300])))
    return {"ok": all(c["ok"] for c in checks), "dir": path, "checks": checks, "figures": figures}


def run_serve(go_file, timeout_s):
    import time

    parent = os.getppid()
    import chromadb  # noqa: F401 - the point: import while the caller is still restoring

    deadline = time.monotonic() + timeout_s if timeout_s > 0 else None
    while deadline is None or time.monotonic() < deadline:
        if os.path.exists(go_file):
            with open(go_file, encoding="utf-8") as fh:
                order = json.load(fh)
            if "abort" in order:
                return {"ok": False, "error": "aborted: %s" % order["abort"]}
            return main(order["argv"])
        if not os.path.isdir(os.path.dirname(go_file)):
            return {"ok": False, "error": "gave up: %s is gone" % os.path.dirname(go_file)}
        if os.getppid() != parent or os.getppid() == 1:  # reparented: the caller is gone
            return {"ok": False, "error": "gave up: the process that started it is gone"}
        time.sleep(0.01)
    return {"ok": False, "error": "gave up after %ss without %s" % (timeout_s, go_file)}


def main(argv):
    if argv[0] == "serve":
        return run_serve(os.path.abspath(argv[1]), float(argv[2]) if len(argv) > 2 else 0.0)
    mode, path = argv[0], os.path.abspath(argv[1])
    if not os.path.isfile(os.path.join(path, "chroma.sqlite3")):
        return {"ok": False, "error": "no chroma.sqlite3 in " + path}
    if mode == "schema":
        return run_schema(path)
    if mode == "both":
        out = globals()["run_verify"](path, argv[2], float(argv[3]))  # from chroma_inspect, shipped first
        if int(argv[4]) and out.get("collections"):
            out["selfcheck"] = run_selfcheck(path, int(argv[4]))
        return out
    if mode == "selfcheck":
        sample = int(argv[argv.index("--sample") + 1]) if "--sample" in argv else 50
        return run_selfcheck(path, sample)
    return {"ok": False, "error": "unknown mode " + mode}


if __name__ == "__main__":
    run_json_main(main)
