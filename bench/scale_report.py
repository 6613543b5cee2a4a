"""Tables and fits for bench_scale: one table per size (ragops vs plain restic, ratio), then least
squares fits value = a + b*GB over the sizes (a: the fixed part, b: the per-GB part) per filesystem,
measure and side, for seconds, peak extra disk and peak RSS."""

from __future__ import annotations

from typing import Any

MEASURES = ("first", "unchanged", "keys+1%", "vectors+1%", "restore")
METRICS = (("wall_s", "s"), ("disk_peak_extra_mb", "disk+ MB"), ("rss_peak_mb", "RSS MB"))


def fit(xs: list[float], ys: list[float]) -> dict[str, float] | None:
    """Least squares y = a + b*x (with R^2); None with fewer than 2 distinct x."""
    n = len(xs)
    if n < 2 or len(set(xs)) < 2:
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    a = my - b * mx
    ss_tot = sum((y - my) ** 2 for y in ys)
    ss_res = sum((y - a - b * x) ** 2 for x, y in zip(xs, ys, strict=True))
    return {"a": round(a, 3), "b_per_gb": round(b, 3), "r2": round(1 - ss_res / ss_tot, 4) if ss_tot else 1.0, "n": n}


def _num(value: Any, fmt: str = "{:.2f}") -> str:
    return "-" if value is None else fmt.format(value)


def _pair(run: dict[str, Any] | None, key: str, fmt: str = "{:.0f}") -> str:
    return "-" if not run or run.get(key) is None else fmt.format(run[key])


def _status(run: dict[str, Any] | None) -> str:
    if not run:
        return "missing"
    if run.get("ok"):
        return ""
    return f"ragops FAILED rc {run.get('rc')}" + (" (ran to the end: timed)" if run.get("completed") else "")


def size_table(rounds: list[dict[str, Any]]) -> str:
    head = (f"{'fs':<14} {'measure':<11} {'ragops s':>9} {'restic s':>9} {'ratio':>6} {'disk+MB r/p':>12} "
            f"{'diskKept r':>10} {'RSS MB r/p':>11} {'hold/down s':>11} {'p99 ms r/p (idle)':>22} {'q-gap s r/p':>11} note")
    lines = [head, "-" * len(head)]
    for rnd in rounds:
        idle = rnd.get("idle_latency", {}).get("p99_ms")
        for m in MEASURES:
            r, p = rnd["runs"].get(m, {}).get("ragops"), rnd["runs"].get(m, {}).get("plain")
            ratio = r["wall_s"] / p["wall_s"] if r and p and r.get("completed") and p.get("ok") and p["wall_s"] else None
            lat_r, lat_p = (r or {}).get("latency", {}), (p or {}).get("latency", {})
            p99 = f"{_num(lat_r.get('p99_ms'), '{:.1f}')}/{_num(lat_p.get('p99_ms'), '{:.1f}')} ({_num(idle, '{:.1f}')})"
            errs = f"{_num(lat_r.get('max_gap_s'), '{:.1f}')}/{_num(lat_p.get('max_gap_s'), '{:.1f}')}"
            hold = f"{_pair(r, 'hold_s', '{:.2f}')}/{_pair(r, 'writer_down_s', '{:.1f}')}"
            note = " ".join(x for x in (_status(r), "" if not p or p.get("ok") else "plain FAILED") if x)
            lines.append(f"{rnd['fs_label']:<14} {m:<11} {_pair(r, 'wall_s', '{:.2f}'):>9} {_pair(p, 'wall_s', '{:.2f}'):>9} "
                         f"{_num(ratio):>6} {_pair(r, 'disk_peak_extra_mb') + '/' + _pair(p, 'disk_peak_extra_mb'):>12} "
                         f"{_pair(r, 'disk_after_extra_mb'):>10} {_pair(r, 'rss_peak_mb') + '/' + _pair(p, 'rss_peak_mb'):>11} "
                         f"{hold:>11} {p99:>22} {errs:>11} {note}")
    return "\n".join(lines)


def fits(rounds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for fs in sorted({r["fs_label"] for r in rounds}):
        mine = sorted((r for r in rounds if r["fs_label"] == fs), key=lambda r: r["gb"])
        for m in MEASURES:
            for key, unit in METRICS:
                row: dict[str, Any] = {"fs": fs, "measure": m, "metric": key, "unit": unit}
                for side in ("ragops", "plain"):
                    pts = [(r["gb"], r["runs"][m][side][key]) for r in mine
                           if r["runs"].get(m, {}).get(side, {}).get("completed") and r["runs"][m][side].get(key) is not None]
                    row[side] = fit([x for x, _ in pts], [y for _, y in pts])
                out.append(row)
    return out


def _fit_text(f: dict[str, float] | None) -> str:
    return "-" if not f else f"{f['a']:9.2f} + {f['b_per_gb']:9.2f}/GB (R2 {f['r2']:.3f})"


def fits_table(rows: list[dict[str, Any]]) -> str:
    head = f"{'fs':<14} {'measure':<11} {'metric':<9} {'ragops: fixed + per GB':>38} {'restic: fixed + per GB':>38}"
    lines = [head, "-" * len(head)]
    for row in rows:
        lines.append(f"{row['fs']:<14} {row['measure']:<11} {row['unit']:<9} {_fit_text(row['ragops']):>38} {_fit_text(row['plain']):>38}")
    return "\n".join(lines)


def report(result: dict[str, Any]) -> str:
    rounds = result["rounds"]
    parts = []
    for gb in sorted({r["size"] for r in rounds}):
        mine = [r for r in rounds if r["size"] == gb]
        ds = mine[0]["dataset"]
        parts.append(f"== size {gb:g} GB: {ds['gb']:.3f} GB on disk ({ds['vectors']} x {ds['dims']}-d vectors in 2 "
                     f"collections, {ds['keys']} Redis keys); strategy {result['args']['strategy']} ==")
        parts.append(size_table(mine))
        for r in mine:
            idle, load = r.get("idle_latency", {}), r.get("loadavg_start", [0])[0]
            parts.append(f"  idle [{r['fs_label']}]: query p50/p99 {idle.get('p50_ms')}/{idle.get('p99_ms')} ms, fs drift while idle "
                         f"{r.get('idle_disk_drift_mb')} MB (other writers), load average {load:.1f}; copy_mode reported: "
                         f"{r.get('copy_mode_reported')}")
            for note in r.get("notes", []):
                parts.append(f"  note [{r['fs_label']}]: {note}")
    parts.append("== fits over sizes (least squares: value = fixed + per-GB * GB) ==")
    parts.append(fits_table(result["fits"]))
    return "\n".join(parts)
