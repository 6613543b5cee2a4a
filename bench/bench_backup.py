"""Benchmark: `invoke backup` against plain `restic backup` of the same already-staged data.

Dataset: 100k Redis keys (real redis-server), 50k Chroma vectors of 384 dims in 2 collections (real
ChromaDB), 200 MB of files (backed up in place). Each side gets its own fresh local repository;
run 1 is the first backup, run 2 is an unchanged re-run. Prints seconds and ratios
(targets: <= 1.3 first run, <= 1.5 unchanged run).

Usage: .venv/bin/python bench/bench_backup.py [--vectors 50000] [--files-mb 200] [--keep DIR]
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
sys.path.insert(0, str(ROOT))  # the test helpers: tests.fixtures

from tests.fixtures.backup_helpers import fill_redis, make_backup_env, make_chroma_dir  # noqa: E402
from tests.fixtures.services import RedisFactory  # noqa: E402


def make_files(base: Path, total_mb: int) -> None:
    base.mkdir(parents=True)
    for i in range(total_mb // 4):
        (base / f"model-{i:03d}.bin").write_bytes(os.urandom(4 << 20))


CPU: list[float] = []  # CPU seconds (user + sys, the process and its waited-for children) per timed run
LAST_STDOUT = [""]


def timed(argv: list[str], **kw) -> float:  # noqa: ANN003
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    res = subprocess.run(argv, capture_output=True, text=True, **kw)
    if res.returncode:
        raise SystemExit(f"{argv[:3]} failed: {res.stderr[-2000:]}")
    elapsed = time.monotonic() - t0
    LAST_STDOUT[0] = res.stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--vectors", type=int, default=50_000)
    ap.add_argument("--files-mb", type=int, default=200)
    ap.add_argument("--keys", type=int, default=100_000)
    ap.add_argument("--keep", default=None)
    args = ap.parse_args()
    tmp = Path(args.keep or tempfile.mkdtemp(prefix="bench-backup-"))
    factory = RedisFactory(tmp / "redis")
    try:
        t0 = time.monotonic()
        server = factory("bench")
        fill_redis(server, args.keys)
        half = args.vectors // 2
        make_chroma_dir(tmp / "chroma", {"docs": half, "faq": args.vectors - half}, dims=384, latent=16)
        make_files(tmp / "files", args.files_mb)
        print(f"dataset ready in {time.monotonic() - t0:.1f}s", file=sys.stderr)
        env = make_backup_env(tmp, redis=server, chroma_dir=tmp / "chroma", paths=[{"path": str(tmp / "files")}])
        invoke = [str(Path(sys.executable).parent / "invoke"), "backup", "--host", "local", "--config", str(env.config), "--json"]
        path_env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
        ours, breakdown, restic_part = [], [], []
        for _ in range(2):
            ours.append(timed(invoke, cwd=ROOT, env=path_env))
            restic_part.append(json.loads(LAST_STDOUT[0])["hosts"][0]["steps"][0]["details"]["restic_backup_s"])
            prom = (env.root / "metrics" / "ragops_backup.prom").read_text().splitlines()
            breakdown.append({line.split('source="')[1].split('"')[0]: round(float(line.split()[-1]), 2)
                              for line in prom if line.startswith("ragops_backup_source_duration_seconds{")})
        ours_cpu = CPU[-2:]

        # plain restic: the same staged data (restored from our snapshot), already on disk
        staged = tmp / "staged"
        snap = env.snapshots()[-1]
        env.restore(snap["id"], staged)
        run_dir = next(staged.rglob("ragops-manifest.json")).parent
        plain_repo = tmp / "plain-repo"
        base = ["restic", "-r", str(plain_repo), "--password-file", str(env.password_file), "--cache-dir", str(tmp / "plain-cache")]
        subprocess.run([*base, "init"], check=True, capture_output=True)
        plain = [timed([*base, "backup", "--json", str(run_dir), str(tmp / "files")]) for _ in range(2)]
        cores = len(os.sched_getaffinity(0))
        # The CPU work alone bounds the wall time from below: cpu / cores, even if perfectly parallel.
        out = {"invoke_backup_s": [round(x, 2) for x in ours], "plain_restic_s": [round(x, 2) for x in plain],
               "invoke_backup_cpu_s": [round(x, 2) for x in ours_cpu], "plain_restic_cpu_s": [round(x, 2) for x in CPU[-2:]],
               "cores": cores, "invoke_wall_floor_s": [round(x / cores, 2) for x in ours_cpu],
               "ratio_floor": [round(c / cores / p, 2) for c, p in zip(ours_cpu, plain, strict=True)],
               "invoke_source_seconds": breakdown,
               # the restic command inside `invoke backup` (wall time, as the plain run) vs the plain run
               "invoke_restic_part_s": restic_part, "restic_part_ratio": [round(a / b, 2) for a, b in zip(restic_part, plain, strict=True)], "ratio_first": round(ours[0] / plain[0], 2), "ratio_unchanged": round(ours[1] / plain[1], 2),
               "targets": {"first": 1.3, "unchanged": 1.5}}
        print(json.dumps(out, indent=1))
    finally:
        factory.stop_all()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
