"""health on the real Compose stack (tests/compose/conftest.py `stack`, read-only): Chroma over the
server's HTTP API, Redis through redis-py, the API, and each service's container health state."""

from __future__ import annotations

from ragops.config import Host, HostEntry, HostSettings
from ragops.report import OK
from ragops.seam import Target
from ragops.steps.health import run_health
from tests.fixtures.compose_stack import Stack


def _target(stack: Stack, tmp_path, **docker) -> Target:
    engine = stack.engine
    settings = HostSettings.model_validate({
        "deployment": "compose", "lock_path": str(tmp_path / "lock"), "metrics_dir": None,
        "api": {"url": f"http://127.0.0.1:{stack.api_port}", "retries": 0},
        "redis": {"port": stack.redis_port},
        "chroma": {"url": f"http://127.0.0.1:{stack.chroma_port}"},
        "disk": {"paths": [str(tmp_path)], "warn_percent": 99, "fail_percent": 100,
                 "inode_warn_percent": 99, "inode_fail_percent": 100},
        "docker": {"docker_host": engine.host, "docker_config": engine.overrides["DOCKER_CONFIG"],
                   "cli": str(engine.docker), **docker},
    })
    return Target(Host(name="local", entry=HostEntry(), settings=settings, source="test"))


def test_health_of_the_compose_stack_reports_server_counts_and_healthy_containers(stack: Stack, tmp_path) -> None:
    result = run_health(_target(stack, tmp_path, compose_project=stack.name))
    checks = {c["name"]: c for c in result.details["checks"]}
    assert result.status == OK, result.message
    assert {n: c["status"] for n, c in checks.items() if n.startswith("container:")} == {
        "container:api": OK, "container:chroma": OK, "container:redis": OK}
    assert checks["container:chroma"]["message"] == f"{stack.name}-chroma-1 healthy"
    expected = {name: len(ids) for name, ids in stack.seeded.items()}
    assert checks["chroma"]["figures"]["collections"] == expected and checks["chroma"]["message"].startswith("server ")
    assert checks["redis"]["message"].startswith("PONG") and checks["redis"]["figures"]["redis_version"]


def test_the_project_is_also_found_from_the_compose_files_directory(stack: Stack, tmp_path) -> None:
    result = run_health(_target(stack, tmp_path, compose_file=str(stack.file)))
    names = sorted(c["name"] for c in result.details["checks"] if c["name"].startswith("container"))
    assert names == ["container:api", "container:chroma", "container:redis"], result.message
