"""Benchmark: `load_config` + `select_hosts('@fleet')` on generated 10k / 50k / 250k-host inventories.

    .venv/bin/python bench/bench_config_load.py [--sizes 10000,50000,250000] [--profile N]

Each size runs in its own fresh interpreter (so peak RSS is that size's own), on an inventory like
a real big fleet: every host has an address and groups; one host in 100 overrides a setting (its
own log root), one in 1000 sets a port and user. Prints wall time and peak RSS (ru_maxrss) per
size, the linear fit (time = a + b*hosts, RSS = a + b*hosts) and R^2, and the per-host cost.
``--profile N`` prints a cProfile of one N-host load instead. Not asserted in tests.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def make_inventory_text(n: int) -> str:
    """YAML of an n-host inventory (written by hand: yaml.safe_dump of 250k hosts takes minutes)."""
    lines = ["defaults:", "  metrics_dir: null", "  logs:", "    - root: /var/log/rag", "hosts:"]
    for i in range(n):
        lines.append(f"  node{i:06d}:")
        lines.append(f"    address: 10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}")
        lines.append(f"    groups: [fleet, rack{i % 50}]")
        if i % 100 == 0:
            lines.append(f"    logs: [{{root: /var/log/rag{i % 7}}}]")
        if i % 1000 == 0:
            lines += ["    port: 2222", "    user: ops"]
    return "\n".join(lines) + "\n"


CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, {repo!r})
t0 = time.perf_counter()
from ragops.config import load_config, select_hosts
t1 = time.perf_counter()
loaded = load_config({path!r}, environ={{}})
t2 = time.perf_counter()
chosen = select_hosts(loaded, "@fleet")
t3 = time.perf_counter()
print(json.dumps({{"hosts": len(loaded.hosts), "selected": len(chosen), "import_s": t1 - t0, "load_s": t2 - t1,
                  "select_s": t3 - t2, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def measure(path: Path) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", CHILD.format(repo=str(REPO), path=str(path))], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def fit(xs: list[float], ys: list[float]) -> tuple[float, float, float]:
    """Least squares y = a + b*x, and R^2."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx else 0.0
    a = my - b * mx
    ss_tot = sum((y - my) ** 2 for y in ys)
    ss_res = sum((y - a - b * x) ** 2 for x, y in zip(xs, ys, strict=True))
    return a, b, (1 - ss_res / ss_tot) if ss_tot else 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,50000,250000")
    parser.add_argument("--profile", type=int, default=0, help="cProfile one load of this many hosts")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ragops-bench-config-"))
    if args.profile:
        path = work / "ragops.yaml"
        path.write_text(make_inventory_text(args.profile))
        sys.path.insert(0, str(REPO))
        import cProfile
        import pstats

        from ragops.config import load_config, select_hosts

        prof = cProfile.Profile()
        prof.enable()
        select_hosts(load_config(str(path), environ={}), "@fleet")
        prof.disable()
        pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    for n in sizes:
        path = work / f"ragops-{n}.yaml"
        path.write_text(make_inventory_text(n))
        row = measure(path)
        rows.append(row)
        path.unlink()
        print(f"{n:>7} hosts ({path.stat().st_size if path.exists() else 0} B): load {row['load_s']:.2f}s, "
              f"select @fleet {row['select_s']:.3f}s, peak RSS {row['rss_mb']:.0f} MB (import {row['import_s']:.2f}s)",
              flush=True)
    xs = [float(n) for n in sizes]
    ta, tb, tr = fit(xs, [r["load_s"] + r["select_s"] for r in rows])
    ma, mb, mr = fit(xs, [r["rss_mb"] for r in rows])
    print(f"time = {ta:.2f}s + {tb * 1e6:.1f}us/host (R^2 {tr:.4f}); "
          f"RSS = {ma:.0f} MB + {mb * 1024:.2f} KiB/host (R^2 {mr:.4f})")
    work.rmdir()


if __name__ == "__main__":
    main()
