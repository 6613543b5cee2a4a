"""Stop/start the Chroma server (`chroma run`) that owns the live data dir: the writer of bench_scale.

    python bench/scale_ctl.py start STATE_DIR     # start (detached), wait for the heartbeat
    python bench/scale_ctl.py stop STATE_DIR      # SIGTERM, wait until it is gone (SIGKILL after 60 s)
    python bench/scale_ctl.py pause STATE_DIR     # strategy pause: ingestion paused, server keeps serving
    python bench/scale_ctl.py resume STATE_DIR

STATE_DIR holds `server.json` (data dir, port, chroma binary), `server.pid`, `server.log` and
`events.jsonl`: one line per edge (`stop_begin`, `stop_end`, `start_begin`, `start_end`) with the wall
time, so the bench can compute the writer's hold time. ragops runs these as `stop.command` and
`stop.start_command`. The started server is detached (own session, the launching process exits), so
it is never part of ragops' process tree (its RSS is not ragops').
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def _event(state: Path, name: str) -> None:
    with open(state / "events.jsonl", "a") as f:
        f.write(json.dumps({"ev": name, "t": time.time()}) + "\n")


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")  # pid 1 here may not reap zombies


def read_pid(state: Path) -> int | None:
    try:
        return int((state / "server.pid").read_text())
    except (OSError, ValueError):
        return None


def heartbeat(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def start(state: Path, timeout: float = 120) -> int:
    _event(state, "start_begin")
    conf = json.loads((state / "server.json").read_text())
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
    with open(state / "server.log", "ab") as log:
        proc = subprocess.Popen([conf["chroma"], "run", "--path", conf["data_dir"], "--host", "127.0.0.1",
                                 "--port", str(conf["port"])], stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True, env=env, close_fds=True)
    (state / "server.pid").write_text(str(proc.pid))
    deadline = time.monotonic() + timeout
    while not heartbeat(conf["port"]):
        if proc.poll() is not None or time.monotonic() > deadline:
            print(f"chroma server did not come up (rc {proc.poll()}), see {state / 'server.log'}", file=sys.stderr)
            return 1
        time.sleep(0.05)
    _event(state, "start_end")
    return 0


def stop(state: Path, grace: float = 60) -> int:
    _event(state, "stop_begin")
    pid = read_pid(state)
    if pid and alive(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
            while alive(pid):
                time.sleep(0.02)
    _event(state, "stop_end")
    return 0


def pause(state: Path) -> int:
    """The `pause` strategy's pre hook: ingestion pauses (the bench's writer adds vectors only between
    the measured runs, so there is nothing to wait for); the server keeps serving queries."""
    _event(state, "stop_begin")
    _event(state, "stop_end")
    return 0


def resume(state: Path) -> int:
    _event(state, "start_begin")
    _event(state, "start_end")
    return 0


if __name__ == "__main__":
    verb, state_dir = sys.argv[1], Path(sys.argv[2])
    sys.exit({"start": start, "stop": stop, "pause": pause, "resume": resume}[verb](state_dir))
