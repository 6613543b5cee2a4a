"""Shared real datasets for the backup tests (session-scoped: built once).

- ``chroma_dataset``  a real ChromaDB dir with 2 collections, 10.5k vectors of 32 dims (read-only:
                      tests copy it with ``copy_chroma`` before writing)
- ``redis_100k``      a real redis-server with 100k string keys plus a few hashes/lists/sets/zsets
- ``make_backup_env`` builds a local Target + policy + restic repo for one test
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from backup_helpers import BackupEnv, fill_redis, make_backup_env, make_chroma_dir
from restic_fixtures import (  # noqa: F401 - restic fixtures (repo kinds, restic 0.14/0.18, targets)
    data_tree,
    local_target,
    make_target,
    password_file,
    repo_settings,
    restic_bin,
)


@pytest.fixture(scope="session")
def chroma_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("chroma-dataset") / "chroma"
    make_chroma_dir(path, {"docs": 6000, "faq": 4500}, dims=32)
    return path


@pytest.fixture(scope="session")
def redis_100k(redis_factory: Any) -> Any:
    server = redis_factory("backup-100k")
    fill_redis(server, 100_000)
    return server


@pytest.fixture
def copy_chroma(chroma_dataset: Path, tmp_path: Path) -> Callable[[], Path]:
    def copy() -> Path:
        dest = tmp_path / "chroma-live"
        shutil.copytree(chroma_dataset, dest)
        return dest

    return copy


@pytest.fixture
def backup_env(tmp_path: Path) -> Callable[..., BackupEnv]:
    def make(**kw: Any) -> BackupEnv:
        return make_backup_env(tmp_path, **kw)

    return make
