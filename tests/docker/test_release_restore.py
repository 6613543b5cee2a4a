"""release --restore-on-failure: a failed release rolls back, then restores the pre-release
snapshot (taken by its own backup step) beside the live data and prints the switch-over steps."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.fixtures.fleet_helpers import INVOKE, REPO, write_config


@pytest.mark.slow
def test_failed_release_rolls_back_and_restores_the_pre_release_snapshot_beside_live_data(dockerd, images,
                                                                                           compose_project, tmp_path):
    proj = compose_project(replicas=1)
    live = tmp_path / "etc-rag"
    live.mkdir()
    (live / "rag-engine.yaml").write_text("model: v1\n")
    password = tmp_path / "restic-password"
    password.write_text("release-restore-test\n")
    repo = tmp_path / "repo"
    subprocess.run(["restic", "-r", str(repo), "--password-file", str(password), "init"], check=True, capture_output=True)
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "rel.yaml").write_text(json.dumps({
        "repository": {"url": str(repo), "password_file": str(password)},
        "sources": {"redis": {"enabled": False}, "chroma": {"enabled": False}, "paths": [{"path": str(live)}]},
        "retention": {"keep_last": 5}}))
    bad = [{"name": "api", "image": "local/rag-api:{version}", "health_command": "echo gate says no >&2; exit 1"}]
    cfg = write_config(tmp_path / "ragops.yaml", {"defaults": {
        "lock_path": str(tmp_path / "lock"), "metrics_dir": None, "redis": {"enabled": False},
        "backup": {"policy": "rel", "policies_dir": str(tmp_path / "policies"), "staging_dir": str(tmp_path / "staging")},
        "docker": {"docker_host": dockerd.host, "docker_config": dockerd.overrides["DOCKER_CONFIG"], "cli": dockerd.docker,
                   "compose_file": str(proj.file), "history_file": str(tmp_path / "history.jsonl"),
                   "health_timeout_s": 20.0, "stop_timeout_s": 2, "services": bad,
                   "release": {"record_dir": str(tmp_path / "records")}}}})
    proc = subprocess.run([INVOKE, "release", "--version", "2", "--config", str(cfg), "--json", "--restore-on-failure"],
                          capture_output=True, text=True, cwd=REPO, timeout=240)
    assert proc.returncode == 1, proc.stderr
    host = json.loads(proc.stdout)["hosts"][0]
    steps = {s["step"]: s for s in host["steps"]}
    assert steps["backup"]["status"] == "ok" and steps["upgrade:api"]["status"] == "failed"
    restore = steps["restore"]
    assert restore["status"] == "ok", restore["message"]
    assert restore["details"]["snapshot"].startswith(steps["backup"]["details"]["snapshot_id"][:8])
    target = restore["details"]["target"]
    assert target.startswith(str(tmp_path / "staging") + "-release-restore/")
    restored = tmp_path / (target.lstrip("/").split(str(tmp_path).lstrip("/") + "/", 1)[1]) / str(live).lstrip("/") / "rag-engine.yaml"
    assert restored.read_text() == "model: v1\n"
    assert any("rsync -a" in step for step in restore["details"]["steps"])  # the printed switch-over steps
    assert (live / "rag-engine.yaml").read_text() == "model: v1\n"  # live data untouched
    assert {c["Config"]["Image"] for c in dockerd.inspect(*proj.containers())} == {"local/rag-api:1"}  # rolled back
