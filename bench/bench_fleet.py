"""Benchmark: `invoke maintain --dry` on 16 loopback SSH hosts vs on 1 host (wall-time ratio).

    .venv/bin/python bench/bench_fleet.py [--hosts 16] [--repeat 3] [--parallel N]

A private sshd listens on 127.0.0.2 .. 127.0.0.(1+hosts) (tests/fixtures/services.py), every host gets its
own small tree of old/new files, strict host key checking. Target: ratio <= 2.5.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the test helpers: tests.fixtures

from tests.fixtures import fleet_helpers as fh  # noqa: E402
from tests.fixtures import services  # noqa: E402


def timed(*args: str) -> float:
    t0 = time.perf_counter()
    res = fh.run_invoke(*args, timeout=600)
    elapsed = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"invoke {' '.join(args)} failed ({res.returncode}):\n{res.stderr[-3000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=None, help="--parallel flag (default: config default, 8)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ragops-bench-fleet-"))
    addresses = [f"127.0.0.{n}" for n in range(2, 2 + args.hosts)]
    (work / "sshd").mkdir()
    sshd = services.start_sshd(work / "sshd", addresses)
    try:
        cfg = work / "ragops.yaml"
        bases = fh.write_fleet_config(cfg, sshd, addresses, work / "hosts")
        for base in bases.values():
            fh.make_tree(base, old=20, new=20)
        flags = ["--parallel", str(args.parallel)] if args.parallel else []
        one, fleet = [], []
        timed("maintain", "--dry", "--host", "h2", "--config", str(cfg))  # warm caches once
        for _ in range(args.repeat):
            one.append(timed("maintain", "--dry", "--host", "h2", "--config", str(cfg)))
            fleet.append(timed("maintain", "--dry", "--host", "@fleet", "--config", str(cfg), *flags))
        m1, mf = statistics.median(one), statistics.median(fleet)
        ratio = mf / m1
        print(f"bench_fleet: maintain --dry, {args.hosts} hosts vs 1, parallel {args.parallel or 'default (8)'}, "
              f"load {os.getloadavg()[0]:.1f}")
        print(f"1 host     median {m1:6.2f}s  runs {[round(x, 2) for x in one]}")
        print(f"{args.hosts} hosts   median {mf:6.2f}s  runs {[round(x, 2) for x in fleet]}")
        print(f"RATIO fleet/one = {ratio:.2f}x  (target <= 2.5x: {'OK' if ratio <= 2.5 else 'OVER TARGET'})")
    finally:
        sshd.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
