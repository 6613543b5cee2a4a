"""Datasets for bench_scale, built once per size and cached (pristine) under CACHE/<size>/:

    chroma/        a ChromaDB persistent dir: 2 collections (docs: cosine + model metadata, faq: l2) of
                   384-d embedding-like vectors (tests/fixtures/backup_helpers.make_chroma_dir, latent 16)
    redis/dump.rdb Redis keys `k:<i>` with 200-500 B random (incompressible) values, written with
                   pipelines into a real redis-server and saved with SAVE
    meta.json      counts and bytes; written last (a dir without it is an unfinished build, rebuilt)

Split: 70 % of the size is Chroma, 30 % Redis (measured here: Chroma dir ~10 MB + 1870 B per vector,
dump ~361 B per key). Each bench run copies the dataset onto the filesystem under test. A cached
dataset whose counts differ from today's plan is rebuilt.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the test helpers: tests.fixtures

from tests.fixtures.services import free_port, start_process, stop_process, wait_for  # noqa: E402

CACHE = Path("/var/cache/ragops/bench-scale")
FORMAT = 1
DIMS = 384
CHROMA_FIXED = 10e6
BYTES_PER_VECTOR = 1870
BYTES_PER_KEY = 361
CHROMA_SHARE = 0.7


def size_name(gb: float) -> str:
    return f"{gb:g}"


def plan(gb: float) -> dict[str, int]:
    total = gb * 1e9
    vectors = max(2000, int((total * CHROMA_SHARE - CHROMA_FIXED) / BYTES_PER_VECTOR))
    keys = max(1000, int(total * (1 - CHROMA_SHARE) / BYTES_PER_KEY))
    return {"vectors": vectors, "keys": keys}


def du_bytes(path: Path) -> int:
    out = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True).stdout
    return int(out.split()[0])


def fill_redis_values(client: Any, start: int, n: int, seed: int) -> None:
    """n string keys k:<start..> with 200-500 B values (base64 of random bytes: LZF cannot shrink them)."""
    import base64

    import numpy as np

    rng = np.random.default_rng(seed)
    pipe = client.pipeline(transaction=False)
    lengths = rng.integers(150, 375, size=n)  # base64 grows 4/3: 200-500 B values
    blob = base64.b64encode(rng.bytes(int(lengths.sum()) + 3)).decode()
    pos = 0
    for i in range(n):
        size = int(lengths[i] * 4 // 3)
        pipe.set(f"k:{start + i}", blob[pos:pos + size])
        pos += size
        if i % 5000 == 4999:
            pipe.execute()
    pipe.execute()


def _build_redis(dest: Path, keys: int) -> None:
    import redis

    dest.mkdir(parents=True)
    port = free_port()
    log = dest / "build.log"
    proc = start_process(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(dest),
                          "--save", "", "--appendonly", "no", "--logfile", str(log)], dest / "build.stdout")
    try:
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=600)
        wait_for(client.ping, "redis-server (dataset build)", proc, log, 20)
        fill_redis_values(client, 0, keys, seed=11)
        client.save()
    finally:
        stop_process(proc)
    for extra in ("build.log", "build.stdout"):
        (dest / extra).unlink(missing_ok=True)


def ensure(gb: float, cache: Path = CACHE, log: Any = print) -> dict[str, Any]:
    """The cached dataset of this size (built first if missing); returns its meta.json (+ `dir`)."""
    from tests.fixtures.backup_helpers import make_chroma_dir

    final = cache / size_name(gb)
    meta_file = final / "meta.json"
    want = plan(gb)
    if meta_file.exists():
        meta = json.loads(meta_file.read_text())
        if meta.get("format") == FORMAT and (meta.get("vectors"), meta.get("keys")) == (want["vectors"], want["keys"]):
            return {**meta, "dir": str(final)}
    shutil.rmtree(final, ignore_errors=True)
    tmp = cache / f".{size_name(gb)}.build-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        t0 = time.monotonic()
        log(f"building dataset {size_name(gb)} GB: {want['vectors']} vectors, {want['keys']} keys -> {final}")
        half = want["vectors"] // 2
        make_chroma_dir(tmp / "chroma", {"docs": half, "faq": want["vectors"] - half}, dims=DIMS, latent=16)
        _build_redis(tmp / "redis", want["keys"])
        meta = {"format": FORMAT, "gb_nominal": gb, "dims": DIMS, "collections": {"docs": half, "faq": want["vectors"] - half},
                "vectors": want["vectors"], "keys": want["keys"], "chroma_bytes": du_bytes(tmp / "chroma"),
                "redis_bytes": du_bytes(tmp / "redis"), "build_s": round(time.monotonic() - t0, 1),
                "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        meta["bytes"] = meta["chroma_bytes"] + meta["redis_bytes"]
        meta["gb"] = round(meta["bytes"] / 1e9, 4)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        tmp.rename(final)
        log(f"dataset {size_name(gb)}: {meta['gb']:.3f} GB on disk, built in {meta['build_s']} s")
        return {**meta, "dir": str(final)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":  # build (or show) the cache: python bench/scale_data.py 0.1 0.3 1.0
    for arg in sys.argv[1:]:
        print(json.dumps(ensure(float(arg)), indent=1))
