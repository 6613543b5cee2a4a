"""docker.audit-logs against a real engine and a real Compose project."""

from __future__ import annotations

import subprocess

from ragops.config import Host, HostEntry, HostSettings
from ragops.docker.audit import run_audit_logs
from ragops.seam import Target
from tests.fixtures.docker_assets import COMPOSE_YAML
from tests.fixtures.fleet_helpers import INVOKE, REPO, write_config

LOGGING = """    logging:
      driver: json-file
      options:
        max-size: "10m"
        max-file: "3"
"""


def make_settings(engine, proj, tmp_path) -> dict:
    return {"lock_path": str(tmp_path / "lock"), "metrics_dir": None,
            "docker": {"docker_host": engine.host, "docker_config": engine.overrides["DOCKER_CONFIG"],
                       "cli": engine.docker, "compose_file": str(proj.file)}}


def test_audit_reports_the_unbounded_service_and_container_with_the_fix_and_exits_non_zero(dockerd, images, compose_project, tmp_path):
    proj = compose_project(replicas=1)
    bounded = dockerd.run("run", "-d", "--init", "--network", "none", "--log-opt", "max-size=10m", "--log-opt", "max-file=3",
                          images.busybox, "sleep", "600").stdout.strip()
    try:
        settings = HostSettings.model_validate(make_settings(dockerd, proj, tmp_path))
        res = run_audit_logs(Target(Host(name="local", entry=HostEntry(), settings=settings, source="test")))
        assert res.status == "failed"
        assert [s["service"] for s in res.details["services"]] == ["api"]
        assert "max-size: \"10m\"" in res.details["services"][0]["fix"]
        flagged = {c["id"] for c in res.details["containers"]}
        assert proj.containers()[0][:12] in flagged and bounded[:12] not in flagged

        cfg = write_config(tmp_path / "ragops.yaml", {"defaults": make_settings(dockerd, proj, tmp_path)})
        proc = subprocess.run([INVOKE, "docker.audit-logs", "--config", str(cfg)], capture_output=True, text=True, cwd=REPO, timeout=60)
        assert proc.returncode == 1 and "max-file" in proc.stderr and "service api" in proc.stderr
    finally:
        dockerd.run("rm", "-f", bounded)


def test_audit_passes_a_project_whose_services_rotate_their_logs(dockerd, images, compose_project, tmp_path):
    yaml_text = COMPOSE_YAML.replace("    labels:\n", LOGGING + "    labels:\n")
    proj = compose_project(replicas=1, yaml_text=yaml_text.format(name="ragaudit", image=images.api_v1, replicas=1), name="ragaudit")
    settings = HostSettings.model_validate(make_settings(dockerd, proj, tmp_path))
    res = run_audit_logs(Target(Host(name="local", entry=HostEntry(), settings=settings, source="test")))
    own = [c for c in res.details["containers"] if c["container"].startswith("ragaudit-")]
    assert res.details["services"] == [] and own == []
