"""Describe a ChromaDB persistent dir from its sqlite file alone, streaming (stdlib only, ON the host).

Usage::

    python3 - record DIR [--probes N] [--k K] [--server URL] [--cache FILE]

For a copy that is consistent by construction (writer stopped or paused, or a filesystem snapshot
taken while it was held), the manifest record needs no index in memory: per collection the name,
id, dimension, metric, embedding model (collection metadata), the count and the ids digest (the
metadata segment's ids streamed in sqlite's order, merged with log entries not yet applied), and
the probe ids (the N ids with the smallest sha256, kept in a bounded heap). RAM is O(N) whatever
the store's size; the index files are only stat'ed (a sparse, torn segment file is refused).

``--server URL``: the probes' vectors and top-k ids are asked from the Chroma server that already
has the live index loaded (HTTP API v2: no extra RAM on the host). Without it the probes record
ids only (``top_k`` null): the restore test then checks self-retrieval instead of top-k overlap.
``--cache FILE``: when every file below DIR has the path, size, mtime and inode it had when the
cached record was made (an unchanged mirror or snapshot: a snapshot keeps the source's inodes), the
cached record is printed (``cached: true``) without reading the store.
The last stdout line is one JSON object with ``ok``; the fields match ``chroma_inspect.py``'s.
"""

import hashlib
import heapq
import json
import os
import sqlite3
import urllib.request
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # shipped composed, these pieces in front (ragops.remote.NEEDS); imported for linters only
    from ragops.remote.chroma_common import MODEL_KEYS, find_sparse_files, parse, read_stored_metric
    from ragops.remote.json_result import check, run_json_main

ADDS, DELETE = (0, 2), 3  # embeddings_queue.operation: ADD, UPDATE, UPSERT, DELETE


def read_metadata(db, collection_id):
    rows = db.execute("SELECT key, str_value FROM collection_metadata WHERE collection_id = ?", (collection_id,))
    return {k: v for k, v in rows if v is not None}


def read_pending(db, collection_id, segment_id):
    """Log entries of this collection the metadata segment has not applied yet: (adds, deletes)."""
    row = db.execute("SELECT seq_id FROM max_seq_id WHERE segment_id = ?", (segment_id,)).fetchone()
    applied = row[0] if row and isinstance(row[0], int) else -1
    adds, deletes = set(), set()
    topic = "%" + collection_id
    for op, eid in db.execute("SELECT operation, id FROM embeddings_queue WHERE seq_id > ? AND topic LIKE ? "
                              "ORDER BY seq_id", (applied, topic)):
        if op == DELETE:
            adds.discard(eid)
            deletes.add(eid)
        elif op in ADDS:
            adds.add(eid)
            deletes.discard(eid)
    return adds, deletes


def stream_ids(db, segment_id, adds, deletes):
    """The collection's ids in sorted (bytewise = code point) order: stored ones merged with pending adds."""
    extra = sorted(adds)
    j = 0
    for (eid,) in db.execute("SELECT embedding_id FROM embeddings WHERE segment_id = ? ORDER BY embedding_id",
                             (segment_id,)):
        while j < len(extra) and extra[j] < eid:
            yield extra[j]
            j += 1
        if j < len(extra) and extra[j] == eid:
            j += 1
        if eid not in deletes:
            yield eid
    yield from extra[j:]


def describe_collection(db, cid, name, dimension, config_text, probes, schema_text=None):
    seg = db.execute("SELECT id FROM segments WHERE collection = ? AND scope = 'METADATA'", (cid,)).fetchone()
    meta = read_metadata(db, cid)
    digest, count, heap = hashlib.sha256(), 0, []  # type: ignore[var-annotated]
    if seg is not None:
        adds, deletes = read_pending(db, cid, seg[0])
        for eid in stream_ids(db, seg[0], adds, deletes):
            digest.update(("\n" if count else "").encode() + eid.encode())
            count += 1
            key = hashlib.sha256(eid.encode()).hexdigest()
            item = (_Neg(key), eid)
            if len(heap) < probes:
                heapq.heappush(heap, item)
            elif probes and key < heap[0][0].key:
                heapq.heapreplace(heap, item)
    probe_ids = [eid for _k, eid in sorted(heap, key=lambda kv: kv[0].key)]
    model = next((str(meta[k]) for k in MODEL_KEYS if meta.get(k)), None)
    return {"name": name, "id": cid, "count": count, "get_ids": count, "dimension": dimension,
            "metric": read_stored_metric(meta, config_text, schema_text), "embedding_model": model, "ids_digest": digest.hexdigest(),
            "probes": [{"id": i, "top_k": None} for i in probe_ids]}


class _Neg:
    """Max-heap key on a str (heapq is a min-heap)."""

    __slots__ = ("key",)

    def __init__(self, key):
        self.key = key

    def __lt__(self, other):
        return self.key > other.key


def post(url, body, timeout=60):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - the configured server_url
        return json.loads(resp.read().decode())


def wait_for_server(server, timeout=120):
    """The server may just be starting again (strategy stop): wait for its heartbeat."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(server.rstrip("/") + "/api/v2/heartbeat", timeout=5) as resp:  # noqa: S310
                if resp.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.2)


def ask_server(server, record, k):
    """Top-k ids of the probe vectors, from the server's loaded index (HTTP API v2)."""
    base = server.rstrip("/") + "/api/v2/tenants/default_tenant/databases/default_database/collections/" + record["id"]
    ids = [p["id"] for p in record["probes"]]
    if not ids:
        return
    got = post(base + "/get", {"ids": ids, "include": ["embeddings"]})
    vectors = dict(zip(got["ids"], got["embeddings"]))
    present = [i for i in ids if i in vectors]
    res = post(base + "/query", {"query_embeddings": [vectors[i] for i in present], "n_results": max(1, min(k, record["count"])),
                                 "include": ["distances"]}) if present else {"ids": [], "distances": []}
    found = {i: (top, dist) for i, top, dist in zip(present, res["ids"], res["distances"])}
    record["probes"] = [{"id": i, "top_k": list(found[i][0]), "distances": [round(float(d), 6) for d in found[i][1]]}
                        if i in found else {"id": i, "top_k": [], "distances": [], "missing": True} for i in ids]
    record["k"] = k
    record["probes_from"] = "server"


def run_record(path, probes, k, server=None):
    db_path = os.path.join(path, "chroma.sqlite3")
    if not os.path.isfile(db_path):
        return {"ok": False, "dir": path, "error": "no chroma.sqlite3 in " + path,
                "checks": [check("chroma.sqlite3 exists", False, path)]}
    sparse = find_sparse_files(path)
    if sparse:
        return {"ok": False, "dir": path, "error": "torn copy: sparse segment files",
                "checks": [check("segment files are dense (not a torn copy)", False, "; ".join(sparse)[:600])]}
    db = sqlite3.connect("file:" + db_path + "?mode=ro", uri=True, timeout=60)
    try:
        quick = "; ".join(str(r[0]) for r in db.execute("pragma quick_check").fetchall()[:5])
        out = {"dir": path, "integrity_check": quick, "collections": [], "described_by": "sqlite",
               "checks": [check("sqlite quick_check", quick == "ok", quick)]}
        cols = [r[1] for r in db.execute("pragma table_info(collections)")]
        schema = "schema_str" if "schema_str" in cols else "NULL"
        rows = db.execute("SELECT id, name, dimension, config_json_str, %s FROM collections ORDER BY name" % schema).fetchall()
        for cid, name, dimension, config_text, schema_text in rows:
            record = describe_collection(db, cid, name, dimension, config_text, probes, schema_text)
            record["k"] = k
            if server:
                if not out["collections"]:
                    wait_for_server(server)
                ask_server(server, record, k)
            out["collections"].append(record)
    finally:
        db.close()
    out["ok"] = all(c["ok"] for c in out["checks"])
    return out


def tree_key(path, params):
    """What the record depends on: every file's relative path, size, mtime and inode, and the options."""
    files = []
    for d, _dirs, names in os.walk(path):
        for name in sorted(names):
            st = os.lstat(os.path.join(d, name))
            files.append([os.path.relpath(os.path.join(d, name), path), st.st_size, st.st_mtime_ns, st.st_ino])
    return {"params": params, "files": sorted(files)}


def run_cached(path, probes, k, server, cache):
    """An unchanged copy (same files, sizes, mtimes, inodes) gets the record made for it last time."""
    key = tree_key(path, [probes, k, server, "metric-from-schema"])  # a record made before that fix is not reused
    try:
        with open(cache, encoding="utf-8") as fh:
            old = json.load(fh)
        if old.get("key") == key and old.get("record", {}).get("ok"):
            return dict(old["record"], cached=True)
    except (OSError, ValueError, AttributeError):
        pass
    record = run_record(path, probes, k, server)
    if record.get("ok"):
        tmp = cache + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump({"key": key, "record": record}, fh)
        os.replace(tmp, cache)
    return record


def main(argv):
    pos, opts = parse(argv)
    if not pos or pos[0] != "record" or len(pos) < 2:
        return {"ok": False, "error": "usage: record DIR [--probes N] [--k K] [--server URL]"}
    args = (os.path.abspath(pos[1]), int(opts.get("probes", 5)), int(opts.get("k", 10)), opts.get("server"))
    if opts.get("cache"):
        return run_cached(*args, opts["cache"])
    return run_record(*args)


if __name__ == "__main__":
    run_json_main(main)
