"""Before a restore test loads anything: do the snapshot's Chroma index and Redis dump fit the verifying
host's memory cap (``resources.memory_max``)?

When: right after the snapshot lookup and the free-space check, BEFORE restic restores, the Chroma
verify process is pre-started or a throwaway redis-server runs. The figures come from the snapshot's
own manifest, read with ``restic dump SNAPSHOT <staging_dir>/ragops-manifest.json`` (one small file,
one restic call). The manifest is untrusted: it is checked with the restore test's own manifest
rules (``snapshot.check_document``) and every figure used here is range-checked; an unusable
manifest skips this preflight with a warning (the restore test's manifest check then fails it
before anything is opened, as always). A manifest that lies low only gets past this friendly
refusal: the cap itself (``ragops.resources``) still stops the helper, not the host.

Refusal: a ``ConfigError`` (exit 2, a setup error like a missing redis-server) naming the estimate,
the cap, the setting ``resources.memory_max`` and ``invoke restore-test --host SRC --on <verify
host>``. Not a failed check (exit 5): nothing is wrong with the backup, the verifying host is too
small for it, and a 5 pages the on-call for a broken backup.

The estimates, all in one place (:data:`ESTIMATORS`), are of what the cap counts under prlimit
(RLIMIT_DATA, the larger of the two measures; RSS, what a cgroup counts, was 25-35 % lower), sized
on real data sets measured here (ChromaDB 1.5.9, redis-server 7.0.15; docs/resources.md has the
tables), with ~20 % headroom:

- Chroma (one verify process opens every collection): ``144 MiB + sum(count x (6 x dimension +
  1792)) bytes``. Measured: the smallest RLIMIT_DATA the verify passed under was 181 MiB for 20k
  x 384-d, 373 MiB for 80k x 384-d, 613 MiB for 160k x 384-d, 288 MiB for 20k x 1536-d, which fits
  116 MiB + count x (4.9 x dim + 1490) B: the float32 vectors (dim x 4) held about 1.2 times
  (index plus transient copies while loading), plus HNSW links, labels, ids and Python objects per
  vector, on top of the Python/ChromaDB baseline. The same on 1 or 2 CPUs: the helpers pin numpy's
  OpenBLAS to one thread (``OPENBLAS_NUM_THREADS``; each extra thread's ~32 MiB buffer counts, so
  unpinned the need grew by ~30 MiB per CPU of the verifying host). The index term is never taken
  below twice the restored HNSW files (``data_level0.bin`` + ``link_lists.bin``: an index allocated
  for more elements than it holds).
- Redis (the throwaway server): ``48 MiB + 1.5 x dump bytes + 96 B x keys``. Measured: 53 MiB for
  100k small keys (2.2 MiB RDB), 133 MiB for 1M small keys (23.6 MiB), 61 MiB for 20k ~700-byte
  values (12.8 MiB), 209 MiB for 200k of them (128 MiB), which fits 44 MiB + 1.19 x RDB + 64 B x
  keys. A pure multiple of the RDB does not work: small keys cost 5-24 x their RDB bytes, big
  values 1.6 x. Without a recorded key count, keys = dump bytes / 20 (the smallest keys measured).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from .. import interrupts, output
from ..backup import restic
from ..backup.errors import ResticError
from ..backup.manifest import MANIFEST_NAME
from ..backup.repository import run_restic
from ..backup.sources.hooks import is_count
from ..errors import ConfigError
from ..resources import MiB, format_size
from ..seam import Target

CHROMA_BASELINE = 144 * MiB  # measured 116 MiB: Python + chromadb (Rust bindings) + sqlite + one OpenBLAS buffer
CHROMA_BYTES_PER_DIM = 6  # per vector and dimension: float32 (4) held ~1.2 x, measured 4.9
CHROMA_BYTES_PER_VECTOR = 1792  # HNSW links and labels (140 B), ids, metadata, Python objects: measured 1490
CHROMA_HNSW_FILE_FACTOR = 2  # floor of the index term: the loaded index is at least its files
CHROMA_HNSW_FILES = ("data_level0.bin", "link_lists.bin")
REDIS_BASELINE = 48 * MiB  # measured 44 MiB: redis-server and jemalloc's arenas
REDIS_RDB_FACTOR = 1.5  # per byte of dump, measured 1.19
REDIS_BYTES_PER_KEY = 96  # dict entry, key and object headers, measured 64
REDIS_RDB_BYTES_PER_KEY = 20  # no key count recorded: the smallest keys measured took 23 B each in the RDB
MAX_COUNT = 10**10  # figures beyond these are not a real store: the manifest is not usable here
MAX_DIMENSION = 65536
MAX_BYTES = 1 << 50
MAX_MANIFEST = 64 * MiB


@dataclass(frozen=True)
class Load:
    """One process the restore test will load data into, and the memory it needs."""

    what: str  # "the Chroma index", "the Redis dump"
    bytes: int
    detail: str


def is_figure(value: Any, limit: int) -> bool:
    return is_count(value) and value <= limit


def estimate_chroma(record: dict[str, Any], files: dict[str, Any]) -> Load | None:
    """The Chroma verify process: every collection's vectors, links and ids plus the baseline."""
    cols = record.get("collections")
    if not isinstance(cols, list) or not cols:
        return None
    index, shown = 0, []
    for col in cols:
        if not isinstance(col, dict):
            raise ValueError("chroma: a collection is not an object")
        count, dim = col.get("count", 0), col.get("dimension")
        if not is_figure(count, MAX_COUNT):
            raise ValueError(f"chroma: collection {str(col.get('name'))[:40]!r}: count {str(count)[:20]!r} is not a count")
        if dim is None and count:
            raise ValueError(f"chroma: collection {str(col.get('name'))[:40]!r}: {count} vectors without a dimension")
        if dim is not None and not (is_figure(dim, MAX_DIMENSION) and dim > 0):
            raise ValueError(f"chroma: collection {str(col.get('name'))[:40]!r}: dimension {str(dim)[:20]!r} is not 1-{MAX_DIMENSION}")
        index += count * (CHROMA_BYTES_PER_DIM * (dim or 0) + CHROMA_BYTES_PER_VECTOR)
        shown.append(f"{str(col.get('name'))[:40]} {count} x {dim}-d")
    path = record.get("path")
    hnsw = 0
    if isinstance(path, str):
        for name, entry in files.items():
            if (isinstance(name, str) and name.startswith(path.rstrip("/") + "/") and os.path.basename(name) in CHROMA_HNSW_FILES
                    and isinstance(entry, dict) and is_figure(entry.get("bytes"), MAX_BYTES)):
                hnsw += entry["bytes"]
    index = max(index, CHROMA_HNSW_FILE_FACTOR * hnsw)
    detail = ", ".join(shown[:5]) + (f" and {len(shown) - 5} more" if len(shown) > 5 else "")
    return Load("the Chroma index", CHROMA_BASELINE + index, f"{len(cols)} collection(s): {detail}")


def estimate_redis(record: dict[str, Any], files: dict[str, Any]) -> Load | None:
    """The throwaway redis-server: a baseline, a multiple of the dump and a per-key cost."""
    size = record.get("bytes")
    keys = record.get("keys") if record.get("keys") is not None else record.get("keys_read")  # check-rdb records
    if size is None:
        return None
    if not is_figure(size, MAX_BYTES):
        raise ValueError(f"redis: bytes {str(size)[:20]!r} is not a byte count")
    if keys is not None and not is_figure(keys, MAX_COUNT):
        raise ValueError(f"redis: keys {str(keys)[:20]!r} is not a count")
    counted = keys if keys is not None else size // REDIS_RDB_BYTES_PER_KEY
    need = int(REDIS_BASELINE + REDIS_RDB_FACTOR * size + REDIS_BYTES_PER_KEY * counted)
    what = "AOF dir" if record.get("method") == "aof" else "RDB"
    return Load("the Redis dump", need, f"{format_size(size)} {what}, {keys if keys is not None else '~' + str(counted)} keys")


# The one table of estimates, by manifest record kind; a source without one loads nothing big.
ESTIMATORS: dict[str, Callable[[dict[str, Any], dict[str, Any]], Load | None]] = {
    "chroma": estimate_chroma, "redis": estimate_redis}


def estimate_loads(doc: dict[str, Any]) -> list[Load]:
    """Every load of a (checked) manifest; ValueError naming the first unusable figure."""
    files: dict[str, Any] = doc["files"] if isinstance(doc.get("files"), dict) else {}
    loads = []
    for rec in doc.get("sources", []):
        estimator = ESTIMATORS.get(str(rec.get("kind"))) if isinstance(rec, dict) else None
        load = estimator(rec, files) if estimator is not None else None
        if load is not None:
            loads.append(load)
    return loads


def find_too_big(loads: list[Load], cap: int) -> list[Load]:
    """The loads that would not fit the cap (each heavy process has its own cap of ``cap`` bytes)."""
    return [load for load in loads if load.bytes > cap]


def make_refusal(host: str, source: str, snapshot: str, too_big: list[Load], cap_text: str, cap: int) -> ConfigError:
    needs = "; ".join(f"{load.what} needs about {format_size(load.bytes)} ({load.detail})" for load in too_big)
    return ConfigError(
        f"{host}: restore-test of snapshot {snapshot} refused before loading anything: {needs}, more than "
        f"resources.memory_max of {host} ({cap_text} = {format_size(cap)}, the cap of each heavy helper). Raise "
        f"resources.memory_max for {host} if it has the RAM, or verify on a bigger host: "
        f"invoke restore-test --host {source} --on <verify host>")


def run_read_manifest(target: Target, repo: restic.Repo, snap: restic.Snapshot) -> dict[str, Any] | None:
    """The snapshot's manifest via ``restic dump``, checked like the restored one; None (with a
    warning) when it cannot be read or is not usable."""
    from .snapshot import check_document, find_staging

    staging = find_staging(snap)
    if staging is None:
        return None  # the restore test's manifest check says why
    try:
        res = run_restic(target, repo, ["dump", snap.id, f"{staging}/{MANIFEST_NAME}"], json=False, what="dump manifest")
    except ResticError as exc:
        output.warn(target.name, f"memory preflight skipped: cannot read the manifest from the snapshot: {str(exc)[-200:]}")
        return None
    try:
        doc = json.loads(res.stdout) if len(res.stdout) <= MAX_MANIFEST else None
    except ValueError:
        doc = None
    problems = check_document(doc, staging) if doc is not None else ["not a JSON document of at most 64 MiB"]
    if problems:
        output.warn(target.name, f"memory preflight skipped: the snapshot's manifest is not usable: {problems[0][:200]}")
        return None
    return doc


def run_memory_preflight(target: Target, repo: restic.Repo, snap_future: Future[Any], source: str) -> None:
    """Refuse (ConfigError) before anything is restored or loaded when a load would not fit the
    verifying host's ``resources.memory_max``. No cap configured: nothing to do (no restic call)."""
    settings = target.settings.resources
    cap = settings.memory_max_bytes
    if cap is None:
        return
    snap = interrupts.result(snap_future)[0]  # the lookup's error (no such snapshot) wins
    doc = run_read_manifest(target, repo, snap)
    if doc is None:
        return
    try:
        loads = estimate_loads(doc)
    except ValueError as exc:
        output.warn(target.name, f"memory preflight skipped: the snapshot's manifest figures are not usable: {exc}")
        return
    too_big = find_too_big(loads, cap)
    if too_big:
        raise make_refusal(target.name, source, snap.short_id, too_big, str(settings.memory_max), cap)
    if loads:
        output.info(target.name, "memory preflight: " + ", ".join(f"{load.what} ~{format_size(load.bytes)}" for load in loads)
                    + f", each within resources.memory_max {settings.memory_max}")
