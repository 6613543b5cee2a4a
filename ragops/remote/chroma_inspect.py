"""Inspect or verify a ChromaDB persistent dir (runs ON the host with a Python that has chromadb).

Usage (script on stdin, run with the host's ``backup.chroma_python``)::

    python3 - inspect DIR [--probes N] [--k K]
    python3 - verify DIR MANIFEST_JSON [--min-overlap F] [--source NAME]

``inspect`` prints per collection: name, id, count, dimension, metric, embedding model (if in
the metadata), ids digest (sha256 of the sorted ids joined by newlines), the get() id count, and
N probe queries made with STORED vectors (the ids with the smallest sha256(id)) with their top-k
ids; plus sqlite ``pragma integrity_check``. Its ``checks`` are the copy validation: integrity ok,
every collection opens, count == get() ids, probe results are stored ids, most probes find
themselves (restore: every probe that found itself at backup time).

``verify`` re-inspects DIR using the probe ids recorded in MANIFEST_JSON (a ragops manifest, or
just its chroma source record) and compares: collections, counts, ids digests, dimensions,
metrics, top-k overlap >= --min-overlap, self-retrieval. Every check is printed with evidence.
The last stdout line is always one JSON object with ``ok``.
"""

import hashlib
import json
import os
import sqlite3
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # shipped composed, these pieces in front (ragops.remote.NEEDS); imported for linters only
    from ragops.remote.chroma_common import MODEL_KEYS, find_sparse_files, parse
    from ragops.remote.json_result import check, run_json_main

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
# numpy's OpenBLAS starts one thread per CPU, each with its own ~32 MiB buffer: under a memory cap
# (RLIMIT_DATA counts them) the need would grow with the host's CPU count. One thread: the need is
# the same on every host (memory_preflight's estimate), and nothing here is BLAS-bound.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def make_ids_digest(ids):
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()


def pick_probe_ids(ids, n):
    return sorted(ids, key=lambda i: hashlib.sha256(i.encode()).hexdigest())[:n]


def read_integrity(path):
    db = sqlite3.connect("file:" + os.path.join(path, "chroma.sqlite3") + "?mode=ro", uri=True, timeout=30)
    try:
        rows = db.execute("pragma integrity_check").fetchall()
    finally:
        db.close()
    return "; ".join(str(r[0]) for r in rows[:5])


def read_metric(col):
    conf = getattr(col, "configuration_json", None) or {}
    space = ((conf.get("hnsw") or {}).get("space")) or ((conf.get("spann") or {}).get("space"))
    return (col.metadata or {}).get("hnsw:space") or space or "l2"


def read_model(col):
    meta = col.metadata or {}
    for key in MODEL_KEYS:
        if meta.get(key):
            return str(meta[key])
    return None


def run_probes(col, probe_ids, k):
    if not probe_ids:
        return []
    got = col.get(ids=probe_ids, include=["embeddings"])
    vectors = {i: [float(x) for x in e] for i, e in zip(got["ids"], got["embeddings"])}
    present = [i for i in probe_ids if i in vectors]
    res = col.query(query_embeddings=[vectors[i] for i in present], n_results=k, include=["distances"])
    return [{"id": i, "top_k": list(ids), "distances": [round(float(d), 6) for d in dists]}
            for i, ids, dists in zip(present, res["ids"], res["distances"])] + \
        [{"id": i, "top_k": [], "distances": [], "missing": True} for i in probe_ids if i not in vectors]


def find_self_misses(results):
    return [p["id"] for p in results if p.get("missing") or not p["top_k"]
            or (p["top_k"][0] != p["id"] and (p.get("distances") or [1.0])[0] > 1e-6)]


def check_self_retrieval(name, results, expected_self=None):
    """A torn index loses most probes at once; HNSW itself may miss the odd stored vector (an
    unreachable node in high-dimensional data: the live store misses it too). Without a reference
    (backup) fewer than half of the probes may miss; with one (restore), every probe that found
    itself at backup time must find itself again."""
    misses = find_self_misses(results)
    if expected_self is None:
        ok = len(misses) * 2 < max(1, len(results))
        rule = "fewer than half may miss (HNSW recall)"
    else:
        ok = not set(misses) & set(expected_self)
        rule = "the %d that found themselves at backup time must again" % len(expected_self)
    return check(name + ": stored vectors find themselves first", ok,
                 "%d probe(s), %d miss: %s; %s" % (len(results), len(misses), misses[:5], rule))


def inspect_collection(col, probes, k, probe_ids=None, expected_self=None):
    count = col.count()
    ids = col.get(include=[])["ids"]
    id_set = set(ids)
    chosen = probe_ids if probe_ids is not None else pick_probe_ids(ids, probes)
    results = run_probes(col, chosen, max(1, min(k, count))) if count else []
    dimension = None
    if ids:
        one = col.get(ids=[ids[0]], include=["embeddings"])["embeddings"]
        dimension = len(one[0]) if len(one) else None
    record = {"name": col.name, "id": str(col.id), "count": count, "get_ids": len(ids), "dimension": dimension,
              "metric": read_metric(col), "embedding_model": read_model(col), "ids_digest": make_ids_digest(ids),
              "k": k, "probes": results}
    strays = sorted({r for p in results for r in p["top_k"]} - id_set)
    record["checks"] = [
        check(col.name + ": count == get() ids", count == len(ids), "count %d, get() %d ids" % (count, len(ids))),
        check(col.name + ": probe results are stored ids", not strays,
              "%d probe(s), unknown ids: %s" % (len(results), strays[:5])),
        check_self_retrieval(col.name, results, expected_self),
    ]
    return record


def open_client(path):
    import chromadb
    from chromadb.config import Settings

    return chromadb.PersistentClient(path=path, settings=Settings(anonymized_telemetry=False))


def run_inspect(path, probes, k, probe_ids_by_name=None, self_by_name=None):
    if not os.path.isfile(os.path.join(path, "chroma.sqlite3")):
        return {"ok": False, "dir": path, "error": "no chroma.sqlite3 in " + path,
                "checks": [check("chroma.sqlite3 exists", False, path)]}
    sparse = find_sparse_files(path)
    if sparse:  # never hand such a file to hnswlib (it sizes buffers from the file)
        return {"ok": False, "dir": path, "error": "torn copy: sparse segment files",
                "checks": [check("segment files are dense (not a torn copy)", False, "; ".join(sparse)[:600])]}
    integrity = read_integrity(path)  # before chromadb opens (and possibly touches) the files
    out = {"dir": path, "integrity_check": integrity, "collections": [],
           "checks": [check("sqlite integrity_check", integrity == "ok", integrity)]}
    client = open_client(path)
    for listed in sorted(client.list_collections(), key=lambda c: getattr(c, "name", str(c))):
        name = getattr(listed, "name", listed)
        try:
            col = client.get_collection(name, embedding_function=None)
            wanted = None if probe_ids_by_name is None else probe_ids_by_name.get(name, [])
            expected_self = None if self_by_name is None else self_by_name.get(name, [])
            record = inspect_collection(col, probes, k, wanted, expected_self)
        except Exception as exc:  # noqa: BLE001 - a broken copy raises anything; report it as evidence
            record = {"name": name, "error": "%s: %s" % (type(exc).__name__, exc),
                      "checks": [check(name + ": opens and answers", False, "%s: %s" % (type(exc).__name__, exc))]}
        out["checks"] += record.pop("checks")
        out["collections"].append(record)
    # Opening a copy lets ChromaDB apply its log to the HNSW segments; on a torn copy that can grow a
    # segment file into a huge sparse one (seen: 2.8 TB apparent link_lists.bin) while every probe
    # still answers. Such a copy is no backup either (hashing and restic would read terabytes of holes).
    sparse = find_sparse_files(path)
    out["checks"].append(check("segment files are dense after opening (not a torn copy)", not sparse,
                               "; ".join(sparse)[:600] or "no sparse segment file"))
    out["ok"] = all(c["ok"] for c in out["checks"])
    return out


def find_chroma_record(doc, source=None):
    if "collections" in doc:
        return doc
    for rec in doc.get("sources", []):
        if rec.get("kind") == "chroma" and (source is None or rec.get("name") == source):
            return rec
    raise ValueError("manifest has no chroma source record" + (" named " + source if source else ""))


def run_verify(path, manifest_path, min_overlap=0.9, source=None):
    with open(manifest_path, encoding="utf-8") as fh:
        expected = find_chroma_record(json.load(fh), source)
    want = {c["name"]: c for c in expected["collections"]}
    probe_ids = {n: [p["id"] for p in c.get("probes", [])] for n, c in want.items()}
    k = max([c.get("k", 10) for c in want.values()] or [10])
    # probes recorded without top-k (described from sqlite, no server): the backup-time self-retrieval
    # rule applies (fewer than half may miss) and there is no top-k to overlap with
    unranked = {n for n, c in want.items() if any(p.get("top_k") is None for p in c.get("probes", []))}
    found_self = {n: None if n in unranked else sorted(set(ids) - set(find_self_misses(want[n].get("probes", []))))
                  for n, ids in probe_ids.items()}
    got = run_inspect(path, 0, k, probe_ids, found_self)
    checks = list(got["checks"])
    have = {c["name"]: c for c in got.get("collections", [])}
    checks.append(check("same collections", sorted(have) == sorted(want),
                        "manifest %s, dir %s" % (sorted(want), sorted(have))))
    for name, exp in sorted(want.items()):
        cur = have.get(name)
        if cur is None or "error" in cur:
            continue
        for field in ("count", "ids_digest", "dimension", "metric"):
            checks.append(check("%s: %s matches" % (name, field), cur.get(field) == exp.get(field),
                                "manifest %s, dir %s" % (exp.get(field), cur.get(field))))
        if name in unranked:
            checks.append(check("%s: probe top-k overlap >= %s" % (name, min_overlap), True,
                                "not recorded at backup (described from sqlite without a server): self-retrieval instead"))
            continue
        old = {p["id"]: p["top_k"] for p in exp.get("probes", [])}
        overlaps = []
        for probe in cur.get("probes", []):
            ref = old.get(probe["id"], [])
            overlaps.append(len(set(ref) & set(probe["top_k"])) / max(1, len(ref)))
        worst = min(overlaps) if overlaps else 1.0
        checks.append(check("%s: probe top-k overlap >= %s" % (name, min_overlap), worst >= min_overlap,
                            "%d probe(s), worst overlap %.2f" % (len(overlaps), worst)))
    return {"ok": all(c["ok"] for c in checks), "dir": path, "checks": checks, "collections": got.get("collections", [])}


def main(argv):
    pos, opts = parse(argv)
    mode = pos[0] if pos else "inspect"
    if mode == "inspect":
        return run_inspect(os.path.abspath(pos[1]), int(opts.get("probes", 5)), int(opts.get("k", 10)))
    if mode == "verify":
        return run_verify(os.path.abspath(pos[1]), pos[2], float(opts.get("min-overlap", 0.9)), opts.get("source"))
    return {"ok": False, "error": "unknown mode " + mode}


if __name__ == "__main__":
    run_json_main(main, echo_checks=True)
