"""The demo deployment, for real: two sandboxes side by side, then ``maintain --host local`` on one."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from ragops import demo
from ragops.seam import pid_alive
from tests.fixtures.fleet_helpers import REPO, run_invoke

pytestmark = pytest.mark.slow


def invoke_in(directory: Path, demo_dir: Path, *args: str):
    """``invoke -r REPO ARGS`` from a directory without ragops.yaml, for the sandbox in demo_dir."""
    return run_invoke("-r", str(REPO), *args, cwd=directory, env={"RAGOPS_DEMO_DIR": str(demo_dir)}, timeout=180)


@pytest.fixture
def two_demos(tmp_path):
    dirs = [tmp_path / "demo-a", tmp_path / "demo-b"]
    try:
        yield dirs
    finally:
        for d in dirs:
            demo.down(d)


def test_two_demos_run_side_by_side_and_maintain_local_cleans_one(tmp_path, two_demos):
    states = []
    for d in two_demos:
        res = invoke_in(tmp_path, d, "demo.up")
        assert res.returncode == 0, res.stderr
        states.append(json.loads(res.stdout.strip().splitlines()[-1]))
    a, b = states
    assert {a["redis_port"], a["api_port"]}.isdisjoint({b["redis_port"], b["api_port"]})
    assert a["collections"] == b["collections"] == demo.COLLECTIONS
    for state in states:
        assert pid_alive(state["redis_pid"]) and pid_alive(state["api_pid"])
        assert demo.port_open(state["api_port"]) and demo.port_open(state["redis_port"])

    demo_a = two_demos[0]
    status = json.loads(invoke_in(tmp_path, demo_a, "demo.status").stdout)
    assert status["api_up"] and status["redis_up"] and status["api_port"] == a["api_port"]

    old = {demo_a / "logs/api-2026-01.log", demo_a / "logs/worker.log", demo_a / "tmp/upload-old.part",
           demo_a / "tmp/cache/old.bin"}
    kept = {demo_a / "logs/api.log", demo_a / "logs/ingest.log", demo_a / "logs/notes.txt", demo_a / "tmp/upload-new.part"}
    res = invoke_in(tmp_path, demo_a, "maintain", "--host", "local", "--json")
    assert res.returncode == 0, res.stderr
    host = res.json()["hosts"][0]
    assert host["status"] == "ok" and [s["step"] for s in host["steps"]] == ["cleanup", "logrotate", "health", "backup"]
    backup = host["steps"][3]
    assert backup["status"] == "ok" and backup["details"]["policy"] == "demo"  # a real restic snapshot in the demo dir
    assert not any(p.exists() for p in old) and all(p.exists() for p in kept)
    checks = {c["name"]: c for c in host["steps"][2]["details"]["checks"]}
    assert checks["api_status"]["figures"]["total_documents"] == sum(demo.COLLECTIONS.values())
    assert checks["redis"]["status"] == "ok" and checks["chroma"]["status"] == "ok"
    assert (demo_a / "metrics" / "ragops_task_maintain.prom").exists()
    assert (two_demos[1] / "logs" / "worker.log").exists()  # the other sandbox was not touched

    res = invoke_in(tmp_path, demo_a, "demo.down")
    assert res.returncode == 0 and "stopped: api (pid" in res.stderr
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (pid_alive(a["api_pid"]) or pid_alive(a["redis_pid"])):
        time.sleep(0.05)
    assert not pid_alive(a["api_pid"]) and not pid_alive(a["redis_pid"])
    assert pid_alive(b["api_pid"])  # stopping one sandbox leaves the other running
    down = invoke_in(tmp_path, demo_a, "maintain", "--host", "local")
    assert down.returncode != 0 and "api_health failed" in down.stderr


def test_demo_up_is_idempotent_and_reuses_running_processes(tmp_path):
    d = tmp_path / "demo"
    try:
        first = demo.up(d)
        second = demo.up(d)
        assert (second["redis_pid"], second["api_pid"]) == (first["redis_pid"], first["api_pid"])
        assert os.listdir(d / "run") and (d / "run" / "state.json").exists()
    finally:
        assert demo.down(d)
    assert demo.down(d) == []
