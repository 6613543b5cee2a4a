"""`invoke demo.up --compose` / `demo.down --compose` (issue 13) on a private engine 20.10.

Real: the engine (tests/fixtures/docker_engine.py, DOCKER_HOST/DOCKER_CONFIG passed as a user would
export them), the cached images of scripts/setup.d/60-images.sh (loaded by the stack_engine fixture;
the demo finds them by tag), Compose, restic, and ragops' own tasks run as commands on the project's
generated ragops.yaml. No stand-ins.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ragops.demo_compose import PROJECT

INVOKE = str(Path(sys.executable).parent / "invoke")
ROOT = Path(__file__).resolve().parents[2]


def run(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([INVOKE, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("stack_engine", ["docker-20"], indirect=True)
def test_demo_up_compose_then_maintain_backup_restore_test_then_down_leaves_nothing(stack_engine, tmp_path: Path) -> None:
    engine = stack_engine
    demo = tmp_path / "demo"
    env = {**os.environ, **engine.overrides, "RAGOPS_DEMO_COMPOSE_DIR": str(demo)}
    timings: dict[str, float] = {}
    steps: dict[str, list] = {}
    try:
        t0 = time.monotonic()
        up = run(["demo.up", "--compose"], env)
        timings["up"] = time.monotonic() - t0
        assert up.returncode == 0, up.stdout + up.stderr
        state = json.loads(up.stdout.strip().splitlines()[-1])
        assert state["collections"] == {"docs": 60, "faq": 25} and state["config"] == str(demo / "ragops.yaml")
        config = ["--host", "local", "--config", state["config"]]
        for task, *flags in (("maintain",), ("backup",), ("restore-test",)):
            t0 = time.monotonic()
            res = run([task, *flags, *config, "--json"], env)
            task = " ".join([task, *flags])
            timings[task] = time.monotonic() - t0
            assert res.returncode == 0, f"{task}: {res.stdout[-3000:]}{res.stderr[-3000:]}"
            host = json.loads(res.stdout)["hosts"][0]
            assert host["status"] == "ok", res.stdout[-2000:]
            steps[task] = host["steps"]
    finally:
        down = run(["demo.down", "--compose"], env)
        flt = ["--filter", f"label=com.docker.compose.project={PROJECT}"]
        left = engine.run("ps", "-aq", *flt).stdout.split() + engine.run("volume", "ls", "-q", *flt).stdout.split()
    print(f"demo compose timings: {timings}")
    assert down.returncode == 0, down.stdout + down.stderr
    assert left == [] and not demo.exists()
    assert [s["step"] for s in steps["maintain"]] == ["cleanup", "health"] and "deleted 4 file(s)" in steps["maintain"][0]["message"]
    assert {"chroma", "redis"} <= set(json.dumps(steps["backup"][0]["details"]["sources"]).replace('"', " ").split())
    assert "checks passed" in steps["restore-test"][0]["message"]


def test_demo_up_compose_without_a_docker_engine_exits_2_naming_it(tmp_path: Path) -> None:
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no.sock", "RAGOPS_DEMO_COMPOSE_DIR": str(tmp_path / "d")}
    res = run(["demo.up", "--compose"], env, timeout=60)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "demo.up --compose: no docker engine answers" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "d").exists()


def test_demo_up_compose_with_images_neither_in_the_engine_nor_cached_exits_2_naming_them(tmp_path: Path) -> None:
    from tests.fixtures.docker_engine import BOOKWORM, start_engine_or_skip

    engine = start_engine_or_skip(BOOKWORM)  # a fresh private engine: no images
    try:
        env = {**os.environ, **engine.overrides, "RAGOPS_IMAGES_DIR": str(tmp_path / "empty-cache"),
               "RAGOPS_DEMO_COMPOSE_DIR": str(tmp_path / "d")}
        res = run(["demo.up", "--compose"], env, timeout=120)
    finally:
        engine.stop()
    assert res.returncode == 2, res.stdout + res.stderr
    assert "demo.up --compose: images not built: ragops/chroma:" in res.stderr and "ragops/rag-api:" in res.stderr
    assert "60-images.sh" in res.stderr and "Traceback" not in res.stderr and not (tmp_path / "d").exists()
