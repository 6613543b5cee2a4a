"""Benchmark: ragops cleanup vs plain `find -delete` on identical trees of 200k files (half old).

    .venv/bin/python bench/bench_cleanup.py [--files 200000] [--repeat 3] [--no-ssh]

Local: `invoke cleanup --host local --config CFG` vs `find ROOT -name '*.log' -mtime +7 -delete`.
SSH (a private sshd on 127.0.0.2, like the test fixture): `invoke cleanup --host h2` vs
`ssh 127.0.0.2 find ... -delete`. Every run gets its own identical tree (a hard-linked copy of one
template: same names, inodes and mtimes); the runs of ragops and the baseline are interleaved; medians of --repeat runs are reported with their ratio.
Targets: <= 1.15x local, <= 1.3x over SSH.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the test helpers: tests.fixtures

from tests.fixtures import fleet_helpers as fh  # noqa: E402
from tests.fixtures import services  # noqa: E402

PER_DIR = 1000
DAY = 86400


def make_big_tree(root: Path, files: int) -> None:
    """``files`` *.log files in dirs of 1000; every other one 10 days old (the rest are new)."""
    old = time.time() - 10 * DAY
    for d in range(0, files, PER_DIR):
        sub = root / f"d{d // PER_DIR:04d}"
        sub.mkdir(parents=True)
        for i in range(d, min(d + PER_DIR, files)):
            path = f"{sub}/f{i:06d}.log"
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))
            if i % 2 == 0:
                os.utime(path, (old, old))


def count_files(root: Path) -> int:
    return sum(len(fs) for _, _, fs in os.walk(root))


def timed(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, cwd=REPO, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{argv[:3]} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return elapsed, proc.stdout


def run_pair(work: Path, files: int, label: str, ragops_argv, baseline_argv, cfg_for) -> tuple[float, float, float]:
    """One identical tree for each side (``cp -al`` of the template: same names, same inodes, same
    mtimes); returns (ragops wall seconds, baseline wall seconds, ragops' own cleanup step seconds)."""
    times: dict[str, float] = {}
    step = 0.0
    for side in ("baseline", "ragops"):
        root = work / f"{label}-{side}"
        subprocess.run(["cp", "-al", str(work / "template"), str(root)], check=True)
        argv = baseline_argv(root) if side == "baseline" else ragops_argv(cfg_for(root))
        times[side], out = timed(argv, env=_env())
        if side == "ragops":
            step = json.loads(out)["hosts"][0]["steps"][0]["duration_s"]
        left = count_files(root)
        assert left == files // 2, f"{side}: {left} files left, expected {files // 2}"
        shutil.rmtree(root)
    return times["ragops"], times["baseline"], step


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGOPS_")}
    env["COLUMNS"] = "200"
    return env


def write_cfg(work: Path, root: Path, host: dict | None = None) -> Path:
    settings = {"logs": [{"root": str(root), "patterns": ["*.log"], "max_age_days": 7}],
                "lock_path": str(work / "run" / f"{root.name}.lock"), "metrics_dir": None,
                "redis": {"enabled": False}}
    data = {"defaults": settings, "hosts": {"h2": host} if host else {}}
    return fh.write_config(work / f"{root.name}.yaml", data)


def report(name: str, runs: list[tuple[float, float, float]], target: float) -> float:
    ours, base, steps = ([r[i] for r in runs] for i in range(3))
    mo, mb, ms = statistics.median(ours), statistics.median(base), statistics.median(steps)
    ratio = mo / mb
    verdict = "OK" if ratio <= target else "OVER TARGET"
    print(f"{name:6s} ragops median {mo:6.2f}s  runs {[round(x, 2) for x in ours]}  (invoke process, wall)")
    print(f"{name:6s} find   median {mb:6.2f}s  runs {[round(x, 2) for x in base]}")
    print(f"{name:6s} ratio  {ratio:.2f}x  (target <= {target}x: {verdict}); fixed overhead {mo - mb:+.2f}s")
    print(f"{name:6s} ragops cleanup step alone (no interpreter start-up) median {ms:.2f}s = {ms / mb:.2f}x find")
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-ssh", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ragops-bench-cleanup-"))
    print(f"bench_cleanup: {args.files} files (half old) per tree, {args.repeat} runs each, load {os.getloadavg()[0]:.1f}")
    invoke = [fh.INVOKE, "cleanup", "--json", "--host"]
    find = ["-name", "*.log", "-mtime", "+7", "-delete"]
    t0 = time.perf_counter()
    make_big_tree(work / "template", args.files)
    print(f"template tree built in {time.perf_counter() - t0:.1f}s")
    try:
        local = [run_pair(work, args.files, f"local{i}", lambda cfg: [*invoke, "local", "--config", str(cfg)],
                          lambda root: ["find", str(root), *find], lambda root: write_cfg(work, root))
                 for i in range(args.repeat)]
        ratios = {"local": report("local", local, 1.15)}
        if not args.no_ssh:
            (work / "sshd").mkdir()
            sshd = services.start_sshd(work / "sshd", ["127.0.0.2"])
            try:
                entry = fh.make_host_entry(sshd, "127.0.0.2")
                remote = [run_pair(work, args.files, f"ssh{i}", lambda cfg: [*invoke, "h2", "--config", str(cfg)],
                                   lambda root: [*sshd.ssh_argv("127.0.0.2"), "find", str(root), "-name", "'*.log'",
                                                 "-mtime", "+7", "-delete"],
                                   lambda root: write_cfg(work, root, entry))
                          for i in range(args.repeat)]
            finally:
                sshd.stop()
            ratios["ssh"] = report("ssh", remote, 1.3)
        print("RATIOS " + " ".join(f"{k}={v:.2f}x" for k, v in ratios.items()))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
