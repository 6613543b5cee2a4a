"""Redis source against a real redis-server: BGSAVE only when needed, the dump hard-linked at the stable
path and described by redis-check-rdb (or a throwaway load), AOF, secrets."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

from ragops.backup.policy_sources import RedisSource
from ragops.backup.sources import run_staging
from ragops.backup.sources.redis import stage, staging_paths
from tests.fixtures.backup_helpers import fill_redis, probe_redis


def rdb_saves(server) -> int:
    return int(server.client().info("persistence")["rdb_saves"])


def test_redis_is_hard_linked_at_the_stable_path_and_described_by_redis_check_rdb(redis_100k, backup_env):
    env = backup_env(redis=redis_100k, init=False)
    target = env.target()
    with run_staging(target, str(env.staging)) as run_dir:
        staged = stage(target, RedisSource(), run_dir)
        assert staged is not None
        rec = staged.record
    live = Path(redis_100k.dir) / "dump.rdb"
    stable = env.staging / "stable" / "redis"
    assert rec["path"] == str(stable / "dump.rdb") and staged.backup_paths == [str(stable)]
    assert os.stat(rec["path"]).st_ino == os.stat(live).st_ino, "a hard link to the live dump, no copy"
    assert rec["method"] == "bgsave" and rec["dump_check"] == "check-rdb" and rec["check"] == "redis-check-rdb: ok"
    assert rec["keys_read"] == 100005 and rec["expires"] == 0 and rec["already_expired"] == 0 and rec["checksum_ok"]
    assert rec["bytes"] == live.stat().st_size and rec["mtime"] == int(live.stat().st_mtime)
    assert rec["rdb_crc64"] == live.read_bytes()[-8:].hex() and rec["rdb_redis_ver"].startswith("7.")
    assert "db_keys" not in rec and "sample_digest" not in rec, "check-rdb mode loads nothing"
    assert staged.hash_paths == [] and (env.staging / "stable" / ".redis-check.json").is_file()
    assert sorted(p.name for p in stable.iterdir()) == ["dump.rdb"], "ragops' own files stay out of the snapshot"
    assert not Path(run_dir).exists(), "the staging run dir is removed afterwards"
    assert staging_paths(target, RedisSource()) == [], "a link copies nothing: the preflight counts nothing"


def test_after_writes_a_new_dump_is_saved_and_linked_and_the_old_link_kept_the_old_dump(redis_factory, backup_env):
    server = redis_factory("writes")
    fill_redis(server, 1000)
    env = backup_env(redis=server, init=False)
    target = env.target()
    with run_staging(target, str(env.staging)) as run_dir:
        first = stage(target, RedisSource(), run_dir).record
    server.client().set("extra", "1")
    server.client().set("ttl", "x", ex=1000)
    server.client().bgsave()  # Redis saves on its own: the staged link still holds the backed-up dump
    while int(server.client().info("persistence")["rdb_bgsave_in_progress"]) or rdb_saves(server) < 2:
        time.sleep(0.02)
    check = subprocess.run(["redis-check-rdb", first["path"]], capture_output=True, text=True)
    assert "[info] 1005 keys read" in check.stdout, check.stdout[-300:]
    server.client().set("more", "2")
    saves = rdb_saves(server)
    with run_staging(target, str(env.staging)) as run_dir:
        second = stage(target, RedisSource(), run_dir).record
    assert first["save"] == "bgsave" and second["save"] == "bgsave" and rdb_saves(server) == saves + 1
    assert "1 change(s) since the last save" in second["save_reason"]
    assert second["stage"] == "linked" and not second["check_cached"]
    assert second["keys_read"] == 1008 and second["expires"] == 1
    assert os.stat(second["path"]).st_ino == os.stat(Path(server.dir) / "dump.rdb").st_ino


def test_dump_check_load_still_records_per_db_counts_and_the_sample_digest(redis_100k, backup_env):
    env = backup_env(redis=redis_100k, init=False)
    target = env.target()
    source = RedisSource(dump_check="load", sample_keys=256)
    recs = []
    for _ in range(2):
        with run_staging(target, str(env.staging)) as run_dir:
            recs.append(stage(target, source, run_dir).record)
    live = probe_redis(redis_100k.port, 256)
    for rec in recs:
        assert rec["dump_check"] == "load" and rec["sample_source"] == "dump"
        assert rec["db_keys"] == {"0": 100004, "1": 1} and rec["keys"] == 100005 and rec["keys_read"] == 100005
        assert rec["sample_digest"] == live["sample_digest"], "digest of the staged dump == digest of the idle server"
    assert recs[0]["load_cached"] is False and recs[1]["load_cached"] is True, "an unchanged dump is not loaded again"


def test_an_aof_only_server_is_staged_from_its_rewritten_aof_dir_when_asked(redis_factory, backup_env):
    server = redis_factory("aof", appendonly=True)
    fill_redis(server, 500)
    env = backup_env(redis=server, init=False)
    target = env.target()
    with run_staging(target, str(env.staging)) as run_dir:
        staged = stage(target, RedisSource(aof_fallback=False, sample_keys=50), run_dir)
        rec = staged.record
        files = sorted(p.name for p in Path(rec["path"]).iterdir())
        assert rec["path"].startswith(run_dir + "/") and staged.backup_paths == []
    assert rec["method"] == "aof" and rec["keys"] == 505
    assert any(f.endswith(".manifest") for f in files) and any(".base." in f for f in files)
    assert rec["sample_digest"] == probe_redis(server.port, 50)["sample_digest"]
    assert staging_paths(target, RedisSource(aof_fallback=False)) == [str(Path(server.dir) / "appendonlydir")]


def test_an_aof_server_falls_back_to_bgsave_by_default_and_reuses_only_its_own_rdb_save(redis_factory, backup_env):
    server = redis_factory("aof2", appendonly=True)
    fill_redis(server, 100)
    env = backup_env(redis=server, init=False)
    target = env.target()
    recs = []
    for _ in range(2):
        with run_staging(target, str(env.staging)) as run_dir:
            recs.append(stage(target, RedisSource(sample_keys=10), run_dir).record)
    assert recs[0]["method"] == "bgsave" and "aof_fallback" in recs[0]["note"] and recs[0]["save"] == "bgsave"
    assert recs[1]["save"] == "existing" and recs[1]["keys_read"] == 105, "its own RDB save, nothing changed since"


def test_the_redis_password_never_shows_in_ps_or_in_the_record(redis_factory, backup_env, monkeypatch):
    password = "pw-" + "Zq9xRedisSecret"
    server = redis_factory("secret", password=password)
    fill_redis(server, 20000)
    monkeypatch.setenv("RAGOPS_TEST_REDIS_PW", password)
    env = backup_env(redis=server, redis_password_env="RAGOPS_TEST_REDIS_PW", init=False)
    target = env.target()
    seen: list[str] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            seen.append(subprocess.run(["ps", "-ww", "-eo", "args"], capture_output=True, text=True).stdout)

    thread = threading.Thread(target=watch)
    thread.start()
    try:
        with run_staging(target, str(env.staging)) as run_dir:
            rec = stage(target, RedisSource(dump_check="load", sample_keys=256), run_dir).record
    finally:
        stop.set()
        thread.join()
    assert rec["keys"] == 20005 and rec["keys_read"] == 20005 and len(seen) > 3
    assert not any(password in snapshot for snapshot in seen)
    assert password not in json.dumps(rec)
