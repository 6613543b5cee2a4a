"""health's container states on deployment: compose hosts: the docker command, its parsing and the
per-service judgement (pure); the real engine + Compose stack run is tests/compose/test_health_compose.py."""

from __future__ import annotations

from ragops.config import HostSettings
from ragops.report import DEGRADED, FAILED, OK
from ragops.steps.health_containers import (
    INSPECT_FORMAT,
    judge_containers,
    make_containers_command,
    parse_containers,
)


def _settings(**docker):
    return HostSettings.model_validate({"deployment": "compose", "docker": docker})


def test_the_project_comes_from_compose_project_else_the_compose_files_directory():
    cmd = make_containers_command(_settings(compose_project="rag", docker_host="unix:///run/d.sock", cli="/usr/bin/docker"))
    assert cmd is not None and cmd.startswith("ids=$(DOCKER_HOST=unix:///run/d.sock /usr/bin/docker ps -aq --no-trunc ")
    assert "--filter label=com.docker.compose.project=rag)" in cmd and "inspect --format" in cmd
    by_file = make_containers_command(_settings(compose_file="/srv/rag stack/compose.yaml"))
    assert "'label=com.docker.compose.project.working_dir=/srv/rag stack'" in str(by_file)
    assert make_containers_command(_settings()) is None  # no project named: no container checks
    bare = HostSettings.model_validate({"deployment": "bare", "docker": {"compose_project": "rag"}})
    assert make_containers_command(bare) is None
    assert '{{index .Config.Labels "com.docker.compose.service"}}' in INSPECT_FORMAT


def _row(name, service, state="running", health="healthy", restarts=0, oneoff=""):
    return f"/{name}\t{service}\t{state}\t{health}\t{restarts}\t{oneoff}"


def test_each_service_is_judged_by_its_running_containers():
    out = "\n".join([
        _row("rag-chroma-1", "chroma"), _row("rag-redis-1", "redis", health="none"),
        _row("rag-api-1", "api", health="starting"), _row("rag-api-2", "api", state="exited", health="unhealthy"),
        _row("rag-worker-1", "worker", health="unhealthy"), _row("rag-db-1", "db", state="restarting", restarts=7),
        _row("rag-cron-1", "cron", state="paused"), _row("rag-api-run-1", "api", health="unhealthy", oneoff="True"),
    ])
    rows = parse_containers(out)
    assert all(not r["name"].startswith("/") for r in rows) and "rag-api-run-1" not in {r["name"] for r in rows}
    checks = {c.name: c for c in judge_containers(rows, "rag")}
    assert {n: c.status for n, c in checks.items()} == {
        "container:api": DEGRADED, "container:chroma": OK, "container:cron": DEGRADED, "container:db": FAILED,
        "container:redis": OK, "container:worker": FAILED}
    assert checks["container:redis"].message == "rag-redis-1 running (no healthcheck)"
    assert checks["container:db"].message == "not running: rag-db-1 restarting (restarts 7)"
    assert [c["name"] for c in checks["container:api"].figures["containers"]] == ["rag-api-1", "rag-api-2"]


def test_no_container_of_the_project_has_failed():
    (check,) = judge_containers([], "rag")
    assert check.name == "containers" and check.status == FAILED and "is the stack up?" in check.message
