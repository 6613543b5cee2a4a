"""Real stack for the restore tests (session-scoped, built once): a redis-server with 5k keys, a
ChromaDB dir with 2 collections x 2k vectors (32-d), and one real `invoke backup` (part B's backup
step) into a local restic repository. Fault tests work on a COPY of that world (``clone_world``);
the live Redis dir and the live Chroma dir are shared and hashed before/after every fault test.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.backup_helpers import BackupEnv
from tests.fixtures.restore_helpers import World, build_world, hash_tree


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory, redis_factory: Any) -> World:
    return build_world(tmp_path_factory.mktemp("restore-world"), redis_factory("restore-live"))


@pytest.fixture
def clone_world(world: World, tmp_path: Path) -> Callable[[], World]:
    """A private copy of the repository, policy and config (same live Redis and Chroma)."""

    def clone() -> World:
        old = str(world.env.root)
        new_root = tmp_path / "bk"
        shutil.copytree(world.env.root, new_root, ignore=shutil.ignore_patterns("metrics", "*.lock"))
        for cfg in (new_root / "ragops.yaml", new_root / "policies" / "t.yaml"):
            cfg.write_text(cfg.read_text().replace(old, str(new_root)))
        env = BackupEnv(root=new_root, repo=new_root / "repo", password_file=new_root / "restic-pw",
                        policies=new_root / "policies", staging=new_root / "staging", config=new_root / "ragops.yaml",
                        cache=new_root / "cache")
        return World(env=env, redis=world.redis, chroma=world.chroma, snapshot_id=world.snapshot_id)

    return clone


@pytest.fixture
def live_untouched(world: World) -> Any:
    """Asserts after the test that the live Chroma and Redis dirs are byte-for-byte unchanged."""
    before = hash_tree(world.chroma, world.redis.dir)
    yield
    assert hash_tree(world.chroma, world.redis.dir) == before, "a restore test touched live data"
