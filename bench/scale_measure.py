"""Measuring one command for bench_scale: wall time, peak extra disk, peak RSS of its process tree,
and, afterwards, query latency in its time window and the writer's hold time.

- disk: `statvfs` used bytes of the filesystem under test every 50 ms, minus the value just before
  the run (after `sync -f`; `disk_peak_extra_mb`), and after it ended and `sync -f` (`disk_after_extra_mb`:
  e.g. a mirror kept on disk);
- RSS: every 50 ms, the process tree of the command (ppid links from /proc/*/stat), summing VmRSS
  (statm) of every process except `restic` (reported apart as `restic_rss_peak_mb`) and except any
  pid in `exclude` (the Chroma server, which is detached anyway). For plain restic, the tree IS restic.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from scale_fs import sync_fs, used_bytes

PAGE = os.sysconf("SC_PAGE_SIZE")
MB = 1e6


def _procs() -> dict[int, tuple[int, str]]:
    """pid -> (ppid, comm) of every process."""
    out: dict[int, tuple[int, str]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        out[int(entry.name)] = (int(stat[stat.rindex(")") + 2:].split()[1]), comm)
    return out


def _rss(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def tree_rss(root: int, exclude: set[int]) -> tuple[int, int, int]:
    """(RSS of the tree without restic, RSS of restic processes in it, processes counted)."""
    procs = _procs()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    own = restic = n = 0
    stack = [root]
    while stack:
        pid = stack.pop()
        stack.extend(children.get(pid, []))
        if pid in exclude:
            continue
        comm = procs.get(pid, (0, ""))[1]
        if comm == "restic" and pid != root:
            restic += _rss(pid)
        else:
            own += _rss(pid)
            n += 1
    return own, restic, n


class Sampler(threading.Thread):
    def __init__(self, pid: int, fs_path: Path, exclude: set[int], period: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.pid, self.fs_path, self.exclude, self.period = pid, fs_path, exclude, period
        self.disk0 = used_bytes(fs_path)
        self.disk_peak = self.disk0
        self.rss_peak = self.restic_peak = self.procs_peak = 0
        self.samples = 0
        self.stop_flag = threading.Event()

    def run(self) -> None:
        while not self.stop_flag.is_set():
            self.disk_peak = max(self.disk_peak, used_bytes(self.fs_path))
            own, restic, n = tree_rss(self.pid, self.exclude)
            self.rss_peak, self.restic_peak = max(self.rss_peak, own), max(self.restic_peak, restic)
            self.procs_peak = max(self.procs_peak, n)
            self.samples += 1
            self.stop_flag.wait(self.period)


def run_measured(argv: list[str], *, fs_path: Path, out_file: Path, exclude: set[int] | None = None,
                 cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 7200) -> dict[str, Any]:
    """Run argv (stdout to out_file, stderr kept), sampling disk and RSS; never raises on a failed rc."""
    err_file = out_file.with_suffix(".stderr")
    sync_fs(fs_path)  # a settled baseline (untimed)
    with open(out_file, "wb") as out, open(err_file, "wb") as err:
        t0_wall, t0 = time.time(), time.monotonic()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=cwd, env=env)
        sampler = Sampler(proc.pid, fs_path, exclude or set())
        sampler.start()
        try:
            rc = proc.wait(timeout=timeout)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            sampler.stop_flag.set()
            sampler.join()
        wall = time.monotonic() - t0
    sync_fs(fs_path)  # what the run left on disk, written out (untimed)
    after = used_bytes(fs_path)
    sampler.disk_peak = max(sampler.disk_peak, after)
    return {"wall_s": round(wall, 3), "rc": rc, "t0": t0_wall, "t1": t0_wall + wall,
            "disk_peak_extra_mb": round((sampler.disk_peak - sampler.disk0) / MB, 1),
            "disk_after_extra_mb": round((after - sampler.disk0) / MB, 1),
            "rss_peak_mb": round(sampler.rss_peak / MB, 1), "restic_rss_peak_mb": round(sampler.restic_peak / MB, 1),
            "procs_peak": sampler.procs_peak, "samples": sampler.samples,
            "stderr_tail": err_file.read_text(errors="replace")[-1500:] if rc else ""}


def latency(log: Path, t0: float, t1: float) -> dict[str, Any]:
    """Query latency of the load process for queries started in [t0, t1]."""
    lat, errors, last_ok, gap = [], 0, t0, 0.0
    if log.exists():
        for line in log.read_text().splitlines():
            parts = line.split()
            if len(parts) != 3:
                continue
            start, secs, ok = float(parts[0]), float(parts[1]), parts[2] == "1"
            if not t0 <= start <= t1:
                continue
            if ok:
                lat.append(secs)
                gap = max(gap, start + secs - last_ok)
                last_ok = start + secs
            else:
                errors += 1
    gap = max(gap, t1 - last_ok)
    if not lat:
        return {"n": 0, "errors": errors, "max_gap_s": round(gap, 3)}
    lat.sort()
    pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]  # noqa: E731
    return {"n": len(lat), "errors": errors, "p50_ms": round(pick(0.5) * 1000, 2),
            "p99_ms": round(pick(0.99) * 1000, 2), "max_ms": round(lat[-1] * 1000, 2), "max_gap_s": round(gap, 3)}


def hold_from_events(events: Path, t0: float, t1: float) -> dict[str, float] | None:
    """The writer's stop/start edges inside [t0, t1]: down_s = first `stop_begin` to last `start_end`,
    split into stop_s (stopping), stopped_s (between our two commands) and start_s (until it answers)."""
    if not events.exists():
        return None
    evs = [json.loads(x) for x in events.read_text().splitlines() if x.strip()]
    at = {name: [e["t"] for e in evs if e["ev"] == name and t0 <= e["t"] <= t1]
          for name in ("stop_begin", "stop_end", "start_begin", "start_end")}
    if not all(at.values()):
        return None
    first_stop, last_start = min(at["stop_begin"]), max(at["start_end"])
    return {"down_s": round(last_start - first_stop, 3), "stop_s": round(min(at["stop_end"]) - first_stop, 3),
            "stopped_s": round(max(at["start_begin"]) - min(at["stop_end"]), 3),
            "start_s": round(last_start - max(at["start_begin"]), 3), "stops": len(at["stop_begin"])}


def find_key(doc: Any, key: str) -> Any:
    """First value of `key` anywhere in a JSON document (depth first), else None."""
    if isinstance(doc, dict):
        if key in doc:
            return doc[key]
        doc = list(doc.values())
    if isinstance(doc, list):
        for item in doc:
            found = find_key(item, key)
            if found is not None:
                return found
    return None
