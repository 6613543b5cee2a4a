"""A Compose Redis with no port on the host (``--network none``: reachable only inside its container)
is backed up through ``docker exec CONTAINER redis-cli``; the stack's ``network_mode: host`` Redis goes
through redis-py (tests/compose/test_data_tasks.py). Real private dockerd 20.10, the real ragops/redis
image (only that one is loaded), the real Redis source (BGSAVE, stable link, redis-check-rdb in a
throwaway container of the image)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from ragops.backup.policy_sources import RedisSource
from ragops.backup.sources import run_staging
from ragops.backup.sources.redis import stage
from ragops.errors import ConfigError
from tests.fixtures.compose_stack import image_cache
from tests.fixtures.docker_engine import Engine
from tests.fixtures.fleet_helpers import make_target

PASSWORD = "cli-Pw-only-on-stdin"


pytestmark = pytest.mark.parametrize("stack_engine", ["docker-20"], indirect=True)  # the suite's shared engine


@pytest.fixture(scope="module")
def cli_redis(stack_engine: Engine) -> Iterator[dict[str, Any]]:
    t0, engine = time.monotonic(), stack_engine
    image = image_cache()["redis"].tag  # loaded into the engine by stack_engine
    project = f"rcli{uuid.uuid4().hex[:8]}"
    name = f"{project}-redis-1"
    try:
        engine.run("run", "-d", "--name", name, "--network", "none", "--label", f"com.docker.compose.project={project}",
                   "--label", "com.docker.compose.service=redis", "-v", f"{project}_data:/data", image,
                   "redis-entrypoint", "--requirepass", PASSWORD)
        deadline = time.monotonic() + 30
        while engine.run("exec", name, "redis-cli", "-a", PASSWORD, "--no-auth-warning", "ping", check=False).stdout.strip() != "PONG":
            assert time.monotonic() < deadline, "the redis container did not answer"
            time.sleep(0.1)
        engine.run("exec", "-i", name, "redis-cli", "-a", PASSWORD, "--no-auth-warning", "--pipe",
                   input="".join(f"SET key:{i} value-{i}\r\n" for i in range(3000)).encode())
        yield {"engine": engine, "project": project, "name": name, "setup_s": time.monotonic() - t0}
    finally:
        engine.run("rm", "-f", "-v", name, check=False)
        engine.run("volume", "rm", f"{project}_data", check=False)


def _target(tmp_path, cli_redis, **redis_over):
    engine = cli_redis["engine"]
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "pw").write_text(PASSWORD + "\n")
    settings = {"deployment": "compose",
                "docker": {"docker_host": engine.env["DOCKER_HOST"], "docker_config": engine.env["DOCKER_CONFIG"],
                           "compose_project": cli_redis["project"], "data_tasks": "containers"},
                "redis": {"port": 6379, "password_file": str(tmp_path / "pw"), **redis_over},
                "backup": {"staging_dir": str(tmp_path / "staging")}}
    return make_target(tmp_path, settings)


def _execs(engine, since: float) -> list[str]:
    out = engine.run("events", "--since", str(int(since)), "--until", str(int(time.time()) + 1), "--format",
                     "{{json .}}").stdout
    return [e.get("Action", "") for e in map(json.loads, out.splitlines()) if e.get("Action", "").startswith("exec_create")]


def test_a_compose_redis_without_a_host_port_is_backed_up_with_redis_cli_in_its_container(tmp_path, cli_redis):
    target = _target(tmp_path, cli_redis)
    t0 = time.time()
    with run_staging(target, str(tmp_path / "staging")) as run_dir:
        rec = stage(target, RedisSource(), run_dir).record
    assert rec["save"] == "bgsave" and rec["keys_read"] == 3000 and rec["check"] == "redis-check-rdb: ok"
    assert rec["container"]["container"] == cli_redis["name"] and rec["stage"] in ("linked", "copied")
    execs = [e for e in _execs(cli_redis["engine"], t0) if "redis-cli -e --no-auth-warning" in e]  # ragops' own
    assert any(" redis-cli " in e and " BGSAVE" in e for e in execs), execs
    assert any(" redis-cli " in e and "INFO persistence" in e for e in execs), execs
    assert not any(PASSWORD in e for e in execs), "the password is never in the exec's argv"
    with pytest.raises(ConfigError, match="redis.tls is set but the Compose Redis"):
        with run_staging(target, str(tmp_path / "staging")) as run_dir:
            stage(_target(tmp_path / "tls", cli_redis, tls=True), RedisSource(), run_dir)
