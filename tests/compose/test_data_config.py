"""Configuration of a Compose host's data tasks and the pure planners of the container helpers (no engine)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from ragops.config import load_config
from ragops.errors import ConfigError
from tests.fixtures.restore_helpers import invoke

# -- configuration (no engine) ------------------------------------------------------------------

def readme_blocks() -> list[Any]:
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = text.split("## Docker Compose deployments", 1)[1].split("\n## ", 1)[0]
    return [yaml.safe_load(b.split("\n", 1)[1]) for b in section.split("```yaml")[1:] for b in [b.split("```", 1)[0]]]


def test_the_readme_compose_example_is_a_valid_config_and_policy(tmp_path: Path) -> None:
    from ragops.backup.policy import validate_policy

    config, policy = readme_blocks()
    (tmp_path / "ragops.yaml").write_text(yaml.safe_dump(config))
    host = load_config(str(tmp_path / "ragops.yaml"), environ={}).hosts["prod1"]
    assert host.settings.docker.data_tasks == "containers" and host.settings.docker.roles.chroma == "chroma"
    parsed, problems = validate_policy(policy, "rag-compose.yaml")
    assert problems == [] and parsed is not None and parsed.sources.chroma.stop.compose_service == "chroma"


@pytest.mark.parametrize(("docker", "message"), [
    ({"data_tasks": "containers"}, "defaults.docker: data_tasks: containers needs the Compose project"),
    ({"data_tasks": "volumes"}, "defaults.docker.data_tasks: "),
    ({"data_tasks": "containers", "compose_project": "rag", "roles": {"chromadb": "x"}},
     "defaults.docker.roles.chromadb: unknown field (did you mean 'chroma'?)"),
    ({"data_tasks": "containers", "compose_project": "rag", "roles": {"redis": "a b"}}, "defaults.docker.roles.redis: "),
    ({"data_tasks": "containers", "compose_project": "rag", "roles": {"chroma_path": "data"}},
     "defaults.docker.roles.chroma_path: "),
])
def test_wrong_compose_settings_exit_2_naming_file_and_field(tmp_path: Path, docker: dict[str, Any], message: str) -> None:
    path = tmp_path / "ragops.yaml"
    path.write_text(yaml.safe_dump({"defaults": {"docker": docker}}))
    res = invoke("config.check", "--config", str(path))
    assert res.returncode == 2, res.stdout + res.stderr
    assert f"{path}: {message}" in res.stdout + res.stderr, res.stdout + res.stderr
    assert "Traceback" not in res.stderr


def test_a_bare_host_with_data_tasks_containers_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ragops.yaml"
    path.write_text(yaml.safe_dump({"defaults": {"deployment": "bare",
                                                 "docker": {"data_tasks": "containers", "compose_project": "rag"}}}))
    with pytest.raises(ConfigError, match=r"data_tasks: containers is for deployment: compose \(this host is bare\)"):
        load_config(str(path), environ={})


# -- the pure planners (no engine) --------------------------------------------------------------

def test_throwaway_run_command_mounts_at_the_same_path_and_quotes_everything() -> None:
    from ragops.backup.sources.throwaway import Mount, make_run_command

    cmd = make_run_command("DOCKER_HOST=unix:///s docker", "sha256:abc", "python3", ["-", "record", "/a b"],
                           name="ragops-chroma-record-1", purpose="chroma-record",
                           mounts=[Mount("/var/lib/x y"), Mount("/stage", read_only=False)], env={"A": "1"},
                           stdin=True)
    assert cmd == ("DOCKER_HOST=unix:///s docker run --rm -i --name ragops-chroma-record-1 --label "
                   "ragops.throwaway=chroma-record --network none -u \"$(id -u):$(id -g)\" -e HOME=/tmp -e A=1 "
                   "-v '/var/lib/x y:/var/lib/x y:ro' -v /stage:/stage --entrypoint python3 sha256:abc - record '/a b'")
    with pytest.raises(ValueError, match="--network none or host"):
        make_run_command("docker", "i", "sh", [], name="n", purpose="p", mounts=[], network="bridge")


def test_roles_default_by_name_then_image_and_ambiguity_is_a_config_error() -> None:
    from ragops.backup.sources.compose_roles import pick_role

    images = {"vectors": "chromadb/chroma:1.0.0", "cache": "redis:7", "web": "registry/rag-api:2"}
    assert pick_role("api", images, set(), None, "h", "p") == "web"
    assert pick_role("chroma", images, {"web"}, None, "h", "p") == "vectors"
    assert pick_role("redis", {**images, "redis": "x"}, set(), None, "h", "p") == "redis"  # the name wins
    assert pick_role("api", {"chroma": "c"}, set(), None, "h", "p") is None
    with pytest.raises(ConfigError, match=r"docker.roles.chroma: several services .* \(a, b\)"):
        pick_role("chroma", {"a": "chroma:1", "b": "x/chroma:2"}, set(), None, "h", "p")
    with pytest.raises(ConfigError, match=r"docker.roles.redis: no service 'kv'"):
        pick_role("redis", images, set(), "kv", "h", "p")


def test_host_path_goes_through_the_deepest_mount() -> None:
    from ragops.backup.sources.compose_roles import ServiceContainer

    c = ServiceContainer("chroma", "c", "id", "running", "healthy", "sha256:i", "img", mounts=(
        {"Type": "volume", "Name": "v", "Source": "/var/lib/docker/volumes/v/_data", "Destination": "/data"},
        {"Type": "bind", "Source": "/srv/idx", "Destination": "/data/index"}))
    assert c.host_path("/data") == "/var/lib/docker/volumes/v/_data"
    assert c.host_path("/data/chroma.sqlite3") == "/var/lib/docker/volumes/v/_data/chroma.sqlite3"
    assert c.host_path("/data/index/a.bin") == "/srv/idx/a.bin"
    assert c.host_path("/database") is None and c.host_path("/etc") is None


def test_hold_commands_stop_then_start_and_wait_for_health() -> None:
    from ragops.backup.sources.chroma_containers import make_hold_commands

    stop, start = make_hold_commands("docker", ["rag-chroma-1"], 30)
    assert stop == "docker stop -t 30 rag-chroma-1 >/dev/null"
    assert start.startswith("docker start rag-chroma-1 >/dev/null && for n in rag-chroma-1;")
    assert "healthy|running) break" in start and "-ge 60 ]" in start
