"""release: the --dry plan, and a two-host release over SSH whose second host fails."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.fixtures.fleet_helpers import INVOKE, REPO, make_host_entry, write_config


def make_host(engine, proj, base, services, **extra) -> dict:
    return {"lock_path": str(base / "lock"), "metrics_dir": None, "redis": {"enabled": False},
            "docker": {"docker_host": engine.host, "docker_config": engine.overrides["DOCKER_CONFIG"], "cli": engine.docker,
                       "compose_file": str(proj.file), "history_file": str(base / "history.jsonl"),
                       "health_timeout_s": 20.0, "stop_timeout_s": 2, "services": services, **extra}}


def run_invoke(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([INVOKE, *args], capture_output=True, text=True, cwd=REPO, timeout=240)


def test_release_dry_prints_the_whole_plan_and_changes_nothing(dockerd, images, compose_project, tmp_path):
    proj = compose_project()
    services = [{"name": "api", "image": "local/rag-api:{version}"}]
    cfg = write_config(tmp_path / "ragops.yaml", {"defaults": make_host(dockerd, proj, tmp_path, services,
                                                                       release={"record_dir": str(tmp_path / "records")})})
    before = proj.containers()
    proc = run_invoke("release", "--version", "2", "--config", str(cfg), "--dry")
    assert proc.returncode == 0, proc.stderr
    for text in ("preflight: ok", "backup: skipped", "local/rag-api:1 -> local/rag-api:2", "replica 2/2",
                 "verify: skipped", "write the release record"):
        assert text in proc.stderr, text
    assert proj.containers() == before and not (tmp_path / "records").exists()


@pytest.mark.slow
def test_two_host_release_stops_at_the_failing_second_host_and_rolls_both_back(dockerd, images, compose_project, sshd, tmp_path):
    """Both "hosts" are the test sshd (127.0.0.2 / .3), each driving its own Compose project on the
    private engine. h3's extra health gate always fails: h3 rolls back, the release stops, and
    with rollback_released_hosts h2 (already released) is rolled back too."""
    p2, p3 = compose_project(replicas=1), compose_project(replicas=1)  # N-1 is proven in test_upgrade
    ok = [{"name": "api", "image": "local/rag-api:{version}"}]
    bad = [{"name": "api", "image": "local/rag-api:{version}", "health_command": "echo no such endpoint >&2; exit 1"}]
    release = {"batch_size": 1, "rollback_released_hosts": True, "record_dir": str(tmp_path / "records")}
    cfg = write_config(tmp_path / "ragops.yaml", {"hosts": {
        "h2": {**make_host_entry(sshd, "127.0.0.2"), **make_host(dockerd, p2, tmp_path / "h2", ok, release=release)},
        "h3": {**make_host_entry(sshd, "127.0.0.3"), **make_host(dockerd, p3, tmp_path / "h3", bad, release=release)},
    }})
    proc = run_invoke("release", "--host", "h2,h3", "--version", "2", "--config", str(cfg), "--json", "--skip-backup")
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    hosts = {h["host"]: h for h in doc["hosts"]}
    assert [s["step"] for s in hosts["h2"]["steps"]] == ["preflight", "backup", "upgrade:api", "verify"]
    assert hosts["h2"]["status"] == "ok"
    h3 = hosts["h3"]
    assert h3["status"] == "failed" and h3["error"] == "release stopped at upgrade:api"
    upgrade = h3["steps"][-1]
    assert upgrade["details"]["failing_replica"].startswith(f"{p3.name}-api-") and "no such endpoint" in upgrade["message"]
    assert hosts["h2 (rollback)"]["steps"][0]["step"] == "rollback:api" and hosts["h2 (rollback)"]["status"] == "ok"
    for proj in (p2, p3):
        assert [proj.http_get(c, "/version") for c in proj.containers()] == ["1"]
        assert all(dockerd.health(c) == "healthy" for c in proj.containers())
    (md,) = (tmp_path / "records").glob("*.md")
    assert "FAILED" in md.read_text() and "Stopped after batch 2" in md.read_text()
    record = json.loads(md.with_suffix(".json").read_text())
    assert record["version"] == "2" and record["run"]["exit_code"] == 1
    h2_history = [json.loads(x) for x in (tmp_path / "h2" / "history.jsonl").read_text().splitlines()]
    assert [(h["kind"], h["result"]) for h in h2_history] == [("release", "ok"), ("rollback", "ok")]
    assert h2_history[0]["release_id"] == record["release_id"]
