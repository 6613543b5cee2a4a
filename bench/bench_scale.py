"""Benchmark (issue 12): how `invoke backup` and `invoke restore-test` GROW with the data, against plain
`restic backup` of the live data dirs in place and `restic restore`, in the same run, per filesystem.

    .venv/bin/python bench/bench_scale.py --quick                       # smoke: 2 tiny sizes, a few minutes
    .venv/bin/python bench/bench_scale.py --sizes 0.1,0.3,1.0 --out scale.json
    .venv/bin/python bench/bench_scale.py --fs btrfs,xfs --strategy live --copy-mode none

Per filesystem (ext4 = /var/tmp's own fs, a btrfs loop mount with the Chroma dir as a subvolume, an
XFS loop mount with reflink) and size (cached datasets, scale_data.py): the dataset is copied onto the
fs, redis-server and a Chroma server (`chroma run`, the writer) run on it, a separate process queries
Chroma in a loop; then, ragops and plain restic interleaved (order alternating): first backup,
unchanged backup, +1% Redis keys, +1% vectors (added through the server), then restore-test vs
`restic restore`. Each run: wall seconds, peak extra disk (statvfs), peak RSS of ragops' process tree
without restic, writer hold time, query p50/p99 during the run vs idle. Tables, fits (a + b*GB) and
JSON (--out). Everything is torn down in `finally` (also on Ctrl-C / SIGTERM).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE)]

import scale_data  # noqa: E402  (puts the repository root on sys.path: tests.fixtures)
from scale_fs import KINDS, Fs, Workspace, fstype, used_bytes  # noqa: E402
from scale_live import PY, Live  # noqa: E402
from scale_measure import find_key, hold_from_events, latency, run_measured  # noqa: E402
from scale_report import fits, report  # noqa: E402

INVOKE = str(Path(PY).parent / "invoke")
ENV = {**os.environ, "PATH": f"{Path(PY).parent}:{os.environ['PATH']}", "ANONYMIZED_TELEMETRY": "False"}
CHANGES = (("first", None), ("unchanged", None), ("keys+1%", "keys"), ("vectors+1%", "vectors"))


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def validate_policy(live: Live, args: argparse.Namespace, notes: list[str]) -> Path:
    """Write the config; drop fields the CURRENT ragops rejects (strategies are being changed) and say so."""
    copy_mode, server_url = (None if args.copy_mode == "none" else args.copy_mode), args.server_url
    while True:
        config = live.write_config(args.strategy, copy_mode, server_url)
        res = subprocess.run([PY, "-c", "import sys; from ragops.backup.policy import load_policies; load_policies(sys.argv[1])",
                              str(live.aux / "policies")], cwd=ROOT, capture_output=True, text=True, env=ENV)
        if res.returncode == 0:
            return config
        err = res.stderr.strip().splitlines()[-1:] or ["?"]
        if copy_mode and "copy_mode" in res.stderr:
            notes.append(f"policy field copy_mode={copy_mode} rejected by this ragops ({err[0][:160]}): run without it")
            copy_mode = None
        elif server_url and "server_url" in res.stderr:
            notes.append(f"policy field server_url rejected by this ragops ({err[0][:160]}): run without it")
            server_url = False
        else:
            raise RuntimeError(f"policy rejected: {res.stderr[-1500:]}")


def wait_queries(live: Live, after: float, n: int = 5, timeout: float = 300) -> None:
    """Until the load process had n successful queries after `after` (the server is up, index loaded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lat = latency(live.latency_log, after, time.time())
        if lat["n"] >= n:
            return
        if live.server_pid() is None or not Path(f"/proc/{live.server_pid()}").exists():
            subprocess.run([PY, str(HERE / "scale_ctl.py"), "start", str(live.state)], check=False)
        time.sleep(0.2)
    raise RuntimeError("the Chroma server answers no queries")


def run_side(live: Live, side: str, task: str, config: Path, name: str) -> dict[str, Any]:
    out = live.logs / f"{name}-{side}.out"
    excl = {p for p in [live.server_pid()] if p}
    if side == "ragops":
        argv = [INVOKE, task, "--host", "local", "--config", str(config), "--json"]
    elif task == "backup":
        argv = live.plain_backup_argv()
    else:
        snap = json.loads(live.restic("plain", "snapshots", "--json", "--latest", "1"))[-1]["id"]
        argv = live.restic_argv("plain", "restore", snap, "--target", str(live.plain_restore))
    res = run_measured(argv, fs_path=live.fs.root, out_file=out, exclude=excl, cwd=ROOT, env=ENV)
    res["latency"] = latency(live.latency_log, res["t0"], res["t1"])
    res["ok"] = res["rc"] == 0
    if side == "ragops":
        try:
            doc = json.loads(out.read_text())
            step = doc["hosts"][0]["steps"][0]
            res.update(ok=res["ok"] and step["status"] == "ok", status=step["status"], message=step.get("message"),
                       details=step.get("details"))
        except (ValueError, KeyError, IndexError) as exc:
            res.update(ok=False, message=f"no JSON result: {exc}")
        # hold_s: what ragops reports; writer_down_s: our stop command's start to our start command's end
        res["writer"] = hold_from_events(live.events, res["t0"], res["t1"])
        res["writer_down_s"] = (res["writer"] or {}).get("down_s")
        hold = find_key(res.get("details"), "hold_s")
        res["hold_s"], res["hold_source"] = (hold, "details.hold_s") if hold is not None else (
            res["writer_down_s"], "stop/start events")
    # a restore test that ran to the end but found damage (exit 5) did all the work: timed, flagged
    res["completed"] = res["ok"] or (side == "ragops" and task == "restore-test" and res["rc"] == 5)
    if task == "restore-test" or side == "plain":
        shutil.rmtree(live.plain_restore, ignore_errors=True)
    if not res["ok"]:
        log(f"  {name} {side} FAILED rc {res['rc']}: {res.get('message') or res['stderr_tail'][-300:]}")
    return res


def run_round(ws: Workspace, aux_root: Path, kind: str, ds: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    tag = f"{kind}-{ds['gb_nominal']:g}"
    fs: Fs | None = None
    live: Live | None = None
    rnd: dict[str, Any] = {"fs": kind, "size": ds["gb_nominal"], "gb": ds["gb"], "dataset": {k: v for k, v in ds.items() if k != "dir"},
                           "runs": {}, "notes": []}
    try:
        fs = ws.make(kind, 6 * ds["gb"] + 2, tag)
        rnd["fstype"], rnd["fs_label"] = fs.fstype, (kind if kind != "ext4" else f"{fs.fstype}(/var/tmp)")
        live = Live(fs, aux_root / tag, ds, args.restic)
        t0 = time.monotonic()
        live.up()
        config = validate_policy(live, args, rnd["notes"])
        wait_queries(live, time.time() - 1)
        rnd["setup_s"] = round(time.monotonic() - t0, 1)
        t_idle, disk = time.time(), []
        while time.time() < t_idle + args.idle_s:  # idle: query latency, and the fs's drift (other writers)
            disk.append(used_bytes(fs.root))
            time.sleep(0.05)
        rnd["idle_latency"] = latency(live.latency_log, t_idle, time.time())
        rnd["idle_disk_drift_mb"] = round((max(disk) - min(disk)) / 1e6, 1)
        rnd["loadavg_start"] = os.getloadavg()
        log(f"{tag}: up in {rnd['setup_s']} s ({fs.fstype}), idle p99 {rnd['idle_latency'].get('p99_ms')} ms, "
            f"idle disk drift {rnd['idle_disk_drift_mb']} MB, load {rnd['loadavg_start'][0]:.1f}")
        steps = [(name, change, "backup") for name, change in CHANGES] + [("restore", None, "restore-test")]
        for i, (name, change, task) in enumerate(steps):
            order = ("ragops", "plain") if i % 2 == 0 else ("plain", "ragops")
            if change == "keys":
                rnd["keys_added"] = live.add_keys(args.change)
                if order[0] == "plain":  # plain restic backs up the dump on disk: make it current (untimed).
                    rnd["bgsave_s"] = live.bgsave()  # ragops first: its own BGSAVE (timed) serves both
            elif change == "vectors":
                rnd["vectors_added"] = live.add_vectors(args.change)
            pair = {}
            for side in order:
                wait_queries(live, time.time())
                pair[side] = run_side(live, side, task, config, name)
                time.sleep(args.settle_s)
            rnd["runs"][name] = pair
            r, p = pair["ragops"], pair["plain"]
            log(f"{tag}: {name:<10} ragops {r['wall_s']:.2f}s  restic {p['wall_s']:.2f}s  disk+ {r['disk_peak_extra_mb']} MB  "
                f"rss {r['rss_peak_mb']} MB  hold {r.get('hold_s')}/{r.get('writer_down_s')}  p99 {r['latency'].get('p99_ms')}/{p['latency'].get('p99_ms')} ms")
        rnd["loadavg_end"] = os.getloadavg()
        rnd["copy_mode_reported"] = find_key(rnd["runs"]["first"]["ragops"].get("details"), "copy_mode")
    except Exception as exc:  # noqa: BLE001 - report what was measured, go on with the next round
        rnd["error"] = f"{type(exc).__name__}: {exc}"
        log(f"{tag}: round failed: {rnd['error']}")
    finally:
        if live:
            live.down()
        if fs:
            ws.drop(fs)
        shutil.rmtree(aux_root / tag, ignore_errors=True)
    return rnd


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="0.1,0.3,1.0", help="dataset sizes in GB, Chroma + Redis together")
    ap.add_argument("--quick", action="store_true", help="smoke run: sizes 0.02,0.05, short idle window")
    ap.add_argument("--fs", default="ext4,btrfs,xfs", help="filesystems under test: ext4 (/var/tmp's fs), btrfs, xfs, ext4loop")
    ap.add_argument("--strategy", choices=("stop", "pause", "live"), default="stop",
                    help="sources.chroma.strategy (pause: the server keeps serving, ingestion is held)")
    ap.add_argument("--copy-mode", default="auto", help="sources.chroma.copy_mode, or `none` to leave it unset")
    ap.add_argument("--no-server-url", dest="server_url", action="store_false", help="do not set sources.chroma.server_url")
    ap.add_argument("--change", type=float, default=0.01, help="fraction of keys / vectors added (default 1%%)")
    ap.add_argument("--idle-s", type=float, default=10.0, help="idle query window before the backups")
    ap.add_argument("--settle-s", type=float, default=1.0, help="pause after each measured run")
    ap.add_argument("--restic", default=shutil.which("restic") or "restic", help="restic binary (both sides)")
    ap.add_argument("--cache", default=str(scale_data.CACHE), help="dataset cache dir")
    ap.add_argument("--out", default=None, help="write the JSON result here")
    args = ap.parse_args()
    if args.quick:
        args.sizes, args.idle_s = "0.02,0.05", 3.0
    sizes = [float(s) for s in args.sizes.split(",")]
    kinds = args.fs.split(",")
    if bad := [k for k in kinds if k not in KINDS]:
        ap.error(f"--fs: unknown {bad}, choose from {KINDS}")
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "--no-optional-locks", "-C", str(ROOT), "status", "--porcelain", "ragops"], capture_output=True, text=True).stdout.strip())
    restic_v = subprocess.run([args.restic, "version"], capture_output=True, text=True).stdout.strip()
    result: dict[str, Any] = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "commit": commit,
                              "ragops_worktree_dirty": dirty, "restic": restic_v, "cores": len(os.sched_getaffinity(0)),
                              "var_tmp_fstype": fstype(Path("/var/tmp")), "args": vars(args), "rounds": []}
    t_start = time.monotonic()
    datasets = [scale_data.ensure(gb, Path(args.cache), log=log) for gb in sizes]
    ws = Workspace()
    try:
        aux = ws.tmpfs("aux", 4 * max(d["gb"] for d in datasets) + 1)
        for kind in kinds:
            for ds in datasets:
                result["rounds"].append(run_round(ws, aux, kind, ds, args))
    except KeyboardInterrupt:
        log("interrupted: tearing down")
        result["interrupted"] = True
    finally:
        ws.close()
    result["wall_s"] = round(time.monotonic() - t_start, 1)
    good = [r for r in result["rounds"] if "fs_label" in r]
    result["fits"] = fits(good)
    print(report({**result, "rounds": good}))
    for r in result["rounds"]:
        if r.get("error"):
            print(f"round {r['fs']} {r['size']:g} GB failed: {r['error']}")
    print(f"total wall {result['wall_s']} s; commit {commit}{' (ragops/ modified in the worktree)' if dirty else ''}; {restic_v}")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1, default=str))


if __name__ == "__main__":
    main()
