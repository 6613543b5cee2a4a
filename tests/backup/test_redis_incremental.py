"""An unchanged Redis costs nothing at backup: no BGSAVE, the same inode at the stable path, restic
reads none of the dump; across filesystems the dump is copied, and only when it changed. Real
redis-server, real redis-check-rdb, real restic."""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from pathlib import Path

import pytest

from ragops.backup import restic
from ragops.backup.policy import load_host_policy
from ragops.backup.policy_sources import RedisSource
from ragops.backup.sources import run_staging
from ragops.backup.sources.redis import stage, staging_paths
from tests.fixtures.backup_helpers import fill_redis


def persistence(server) -> dict:
    return server.client().info("persistence")


def test_an_unchanged_second_backup_does_no_bgsave_and_restic_reads_none_of_the_dump(redis_factory, backup_env):
    server = redis_factory("unchanged")
    fill_redis(server, 20000)
    env = backup_env(redis=server)
    target = env.target()
    repo = restic.make_repo(target, load_host_policy(target.host).repository)
    runs = []
    for _ in range(2):
        with run_staging(target, str(env.staging)) as run_dir:
            saves, lastsave = persistence(server)["rdb_saves"], server.client().lastsave()
            staged = stage(target, RedisSource(), run_dir)
            parent = runs[-1][1].snapshot_id if runs else None
            summary = restic.backup(target, repo, staged.backup_paths, tags=["test"], host_tag="local",
                                    exclude=staged.excludes, parent=parent)
            runs.append((staged.record, summary, saves, lastsave))
    (first, s1, _, _), (second, s2, saves, lastsave) = runs
    assert first["save"] == "bgsave" and s1.files_new == 1, "the first backup reads the dump"
    assert second["save"] == "existing" and "no change since LASTSAVE" in second["save_reason"]
    assert persistence(server)["rdb_saves"] == saves and server.client().lastsave() == lastsave, "no BGSAVE"
    assert second["stage"] == "unchanged" and second["check_cached"] is True
    assert second["keys_read"] == first["keys_read"] == 20005
    assert (s2.files_new, s2.files_changed, s2.files_unmodified) == (0, 0, 1), s2
    assert s2.data_added < 4096, s2


def test_across_filesystems_the_dump_is_copied_and_not_again_while_unchanged(redis_factory, backup_env, tmp_path):
    """The stable dir on /dev/shm (tmpfs), Redis' dir on the test tmp dir (another filesystem)."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("no /dev/shm on another filesystem than the test tmp dir")
    staging = shm / f"ragops-test-{uuid.uuid4().hex[:8]}" / "staging"
    try:
        server = redis_factory("xdev")
        fill_redis(server, 3000)
        env = backup_env(redis=server, staging=staging, init=False)
        target = env.target()
        live = Path(server.dir) / "dump.rdb"
        assert staging_paths(target, RedisSource()) == [str(live)], "a copy: the preflight counts the dump"
        recs, inodes = [], []
        for _ in range(2):
            with run_staging(target, str(staging)) as run_dir:
                recs.append(stage(target, RedisSource(), run_dir).record)
            inodes.append(os.stat(recs[-1]["path"]).st_ino)
        assert recs[0]["stage"] == "copied" and "cross-device" in recs[0]["copy_reason"], recs[0]
        assert recs[1]["stage"] == "copy-unchanged" and recs[1]["save"] == "existing" and inodes[0] == inodes[1]
        data = Path(recs[1]["path"]).read_bytes()
        assert hashlib.sha256(data).digest() == hashlib.sha256(live.read_bytes()).digest()
        assert recs[1]["keys_read"] == 3005 and recs[1]["check_cached"] is True
        server.client().set("changed", "1")
        with run_staging(target, str(staging)) as run_dir:
            third = stage(target, RedisSource(), run_dir).record
        assert third["stage"] == "copied" and third["keys_read"] == 3006 and os.stat(third["path"]).st_ino != inodes[0]
    finally:
        shutil.rmtree(staging.parent, ignore_errors=True)
