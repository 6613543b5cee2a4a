"""Benchmark: `invoke restore-test` (restore + start + all verification) against a plain `restic restore`
of the same snapshot. Target: ratio <= 1.6.

    .venv/bin/python bench/bench_restore.py            # 100k Redis keys, 50k x 384-d vectors, 200 MB files
    .venv/bin/python bench/bench_restore.py --small    # 10k keys, 5k x 64-d, 20 MB (a quick look)

Builds the dataset in a temp dir (real redis-server, real ChromaDB, real restic local repository),
takes one `ragops` backup (part B's backup step), then alternates plain restores and restore tests
(--runs each) and reports the best of each, the ratio and the restore test's per-phase figures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # ragops and the test helpers (tests.fixtures)

from ragops.backup.step import run_backup  # noqa: E402
from tests.fixtures.backup_helpers import fill_redis, make_backup_env, make_chroma_dir  # noqa: E402
from tests.fixtures.services import RedisFactory  # noqa: E402


def make_files(directory: Path, total_mb: int) -> None:
    directory.mkdir(parents=True)
    for i in range(max(1, total_mb // 10)):
        (directory / f"model-{i}.bin").write_bytes(os.urandom(10 * 1024 * 1024))


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


CPU: dict[str, list[float]] = {"plain": [], "test": []}


def time_plain(env, snapshot_id: str, dest: Path) -> float:
    shutil.rmtree(dest, ignore_errors=True)
    c0, t0 = children_cpu(), time.monotonic()
    env.restore(snapshot_id, dest)
    elapsed = time.monotonic() - t0
    CPU["plain"].append(children_cpu() - c0)
    shutil.rmtree(dest)
    return elapsed


def time_restore_test(env) -> tuple[float, dict]:
    c0 = children_cpu()
    t0 = time.monotonic()
    res = subprocess.run([str(ROOT / ".venv" / "bin" / "invoke"), "restore-test", "--config", str(env.config), "--json"],
                         cwd=ROOT, capture_output=True, text=True, timeout=3600)
    elapsed = time.monotonic() - t0
    CPU["test"].append(children_cpu() - c0)
    if res.returncode != 0:
        raise SystemExit(f"restore-test failed (exit {res.returncode}):\n{res.stderr[-3000:]}")
    return elapsed, json.loads(res.stdout)["hosts"][0]["steps"][0]["details"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", action="store_true", help="10k keys, 5k x 64-d vectors, 20 MB of files")
    ap.add_argument("--runs", type=int, default=2, help="runs of each (best is reported)")
    args = ap.parse_args()
    keys, vectors, dims, files_mb = (10_000, 5_000, 64, 20) if args.small else (100_000, 50_000, 384, 200)
    tmp = Path(tempfile.mkdtemp(prefix="ragops-bench-restore-"))
    factory = RedisFactory(tmp / "redis")
    try:
        t0 = time.monotonic()
        redis = factory("bench")
        fill_redis(redis, keys)
        chroma = tmp / "chroma"
        make_chroma_dir(chroma, {"docs": vectors // 2, "faq": vectors - vectors // 2}, dims=dims, latent=16)
        make_files(tmp / "files", files_mb)
        env = make_backup_env(tmp, redis=redis, chroma_dir=chroma, paths=[{"path": str(tmp / "files")}])
        result = run_backup(env.target())
        snapshot_id = str(result.details["snapshot_id"])
        print(f"dataset: {keys} keys, {vectors} x {dims}-d vectors, {files_mb} MB files; "
              f"built and backed up in {time.monotonic() - t0:.1f}s (snapshot {snapshot_id[:8]})")
        plain, tests, details = [], [], {}
        for _ in range(args.runs):
            plain.append(time_plain(env, snapshot_id, tmp / "plain"))
            elapsed, details = time_restore_test(env)
            tests.append(elapsed)
        best_plain, best_test = min(plain), min(tests)
        ratio = best_test / best_plain
        print(f"plain restic restore: {', '.join(f'{x:.2f}s' for x in plain)}  (best {best_plain:.2f}s)")
        print(f"invoke restore-test:  {', '.join(f'{x:.2f}s' for x in tests)}  (best {best_test:.2f}s, "
              f"{len(details['checks'])} checks, verified {details['verified_bytes'] / 1e6:.1f} MB)")
        print("last restore-test phases: " + ", ".join(f"{k} {v:.2f}s" for k, v in details["phases"].items())
              + f"; RTO {details['rto_s']:.2f}s; outside the phases (CLI, config, snapshot lookup, lock, cleanup, "
              f"record) {best_test - details['rto_s']:.2f}s")
        print("verify groups (parallel): " + ", ".join(f"{k} {v:.2f}s" for k, v in details.get("verify_timings", {}).items()))
        cores = len(os.sched_getaffinity(0))
        cpu_test, cpu_plain = min(CPU["test"]), min(CPU["plain"])
        print(f"CPU (user+sys): restore-test {cpu_test:.2f}s, plain restore {cpu_plain:.2f}s; on {cores} cores the "
              f"restore test cannot finish under {cpu_test / cores:.2f}s (ratio floor {cpu_test / cores / best_plain:.2f})")
        print(f"ratio: {ratio:.2f} (target <= 1.6) -> {'OK' if ratio <= 1.6 else 'ABOVE TARGET'}")
    finally:
        factory.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
