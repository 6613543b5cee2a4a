"""The stable staging dirs: prepared concurrently by the sources, never through a symlink."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from ragops.backup.sources.stable import run_prepare
from ragops.errors import StepError
from tests.fixtures.backup_helpers import make_backup_env


def test_sources_preparing_their_stable_dirs_at_the_same_moment_all_succeed(tmp_path):
    """The sources stage in parallel: a check-then-mkdir lost this race ("File exists") in the bench."""
    for i in range(25):
        env = make_backup_env(tmp_path / f"r{i}", init=False)
        target = env.target()
        with ThreadPoolExecutor(max_workers=4) as pool:
            done = list(pool.map(run_prepare, [target] * 4, ["redis", "chroma", "a", "b"]))
        assert all(os.path.isdir(p) and not os.path.islink(p) for p in done)
        assert oct((env.staging / "stable").stat().st_mode & 0o777) == "0o700"


def test_a_stable_dir_that_is_a_symlink_is_refused(tmp_path):
    env = make_backup_env(tmp_path, init=False)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (env.staging / "stable").mkdir(parents=True)
    os.symlink(elsewhere, env.staging / "stable" / "redis")
    with pytest.raises(StepError, match="cannot prepare the stable staging dir"):
        run_prepare(env.target(), "redis")
    assert list(elsewhere.iterdir()) == []
