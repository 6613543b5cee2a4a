"""Benchmark: start-up cost of the task collection, and proof that no heavy dependency is imported.

    .venv/bin/python bench/bench_import.py [--top 15] [--repeat 5]

Runs `python -X importtime -c "import tasks"` from the repo root, prints the imports with the
largest cumulative time, checks that chromadb, boto3, docker, kubernetes and numpy are NOT
imported (exit 1 if one is), and times `invoke --list` (median of --repeat runs).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HEAVY = ["chromadb", "boto3", "docker", "kubernetes", "numpy"]
INVOKE = str(Path(sys.executable).parent / "invoke")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", "import tasks"], cwd=REPO,
                          capture_output=True, text=True, check=True)
    rows = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        self_us, cumulative, name = line[len("import time:"):].split("|")
        rows.append((int(cumulative), int(self_us), name.rstrip()))
    modules = {name.strip() for _, _, name in rows}
    total = next((c for c, _, n in rows if n.strip() == "tasks"), 0)
    print(f"bench_import: `import tasks` = {total / 1000:.0f} ms cumulative, {len(rows)} modules, "
          f"load {os.getloadavg()[0]:.1f}")
    print(f"top {args.top} by cumulative time (ms):")
    for cumulative, self_us, name in sorted(rows, reverse=True)[: args.top]:
        print(f"  {cumulative / 1000:8.1f}  (self {self_us / 1000:6.1f})  {name}")
    heavy = [h for h in HEAVY if h in modules or any(m.startswith(h + ".") for m in modules)]
    for h in HEAVY:
        print(f"  {h:11s} {'IMPORTED' if h in heavy else 'not imported'}")
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        subprocess.run([INVOKE, "--list"], cwd=REPO, capture_output=True, check=True)
        times.append(time.perf_counter() - t0)
    python_only = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], capture_output=True, check=True)
        python_only.append(time.perf_counter() - t0)
    print(f"invoke --list median {statistics.median(times) * 1000:.0f} ms (runs {[round(t * 1000) for t in times]}); "
          f"bare python start-up {statistics.median(python_only) * 1000:.0f} ms")
    if heavy:
        print(f"FAIL: heavy optional dependencies imported at start-up: {', '.join(heavy)}")
        raise SystemExit(1)
    print("OK: no heavy optional dependency is imported by `import tasks`")


if __name__ == "__main__":
    main()
