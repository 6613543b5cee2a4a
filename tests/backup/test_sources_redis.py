"""Redis source against a real redis-server: BGSAVE, staged dump, redis-check-rdb, digest, AOF, secrets."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

from backup_helpers import fill_redis, run_probe

from ragops.backup.policy_sources import RedisSource
from ragops.backup.sources import run_staging
from ragops.backup.sources.redis import stage


def test_redis_is_staged_with_bgsave_checked_and_described_by_the_dump_itself(redis_100k, backup_env):
    env = backup_env(redis=redis_100k)
    target = env.target()
    with run_staging(target, str(env.staging)) as run_dir:
        staged = stage(target, RedisSource(sample_keys=256), run_dir)
        assert staged is not None
        rec = staged.record
        assert Path(rec["path"]).is_file() and rec["path"].startswith(run_dir)
        assert rec["method"] == "bgsave" and rec["check"] == "redis-check-rdb: ok"
        assert rec["db_keys"] == {"0": 100004, "1": 1} and rec["keys"] == 100005
        assert rec["sample_source"] == "dump"
    assert not Path(run_dir).exists(), "the staging run dir is removed afterwards"
    live = run_probe("probe", "--port", str(redis_100k.port), "--sample", "256")
    assert rec["sample_digest"] == live["sample_digest"], "digest of the staged dump == digest of the idle server"


def test_an_aof_only_server_is_staged_from_its_rewritten_aof_dir_when_asked(redis_factory, backup_env):
    server = redis_factory("aof", appendonly=True)
    fill_redis(server, 500)
    env = backup_env(redis=server)
    target = env.target()
    with run_staging(target, str(env.staging)) as run_dir:
        rec = stage(target, RedisSource(aof_fallback=False, sample_keys=50), run_dir).record
        files = sorted(p.name for p in Path(rec["path"]).iterdir())
    assert rec["method"] == "aof" and rec["keys"] == 505
    assert any(f.endswith(".manifest") for f in files) and any(".base." in f for f in files)
    assert rec["sample_digest"] == run_probe("probe", "--port", str(server.port), "--sample", "50")["sample_digest"]


def test_an_aof_server_falls_back_to_bgsave_by_default_and_says_so(redis_factory, backup_env):
    server = redis_factory("aof2", appendonly=True)
    fill_redis(server, 100)
    env = backup_env(redis=server)
    target = env.target()
    with run_staging(target, str(env.staging)) as run_dir:
        rec = stage(target, RedisSource(sample_keys=10), run_dir).record
    assert rec["method"] == "bgsave" and "aof_fallback" in rec["note"]


def test_the_redis_password_never_shows_in_ps_or_in_the_record(redis_factory, backup_env, monkeypatch):
    password = "pw-" + "Zq9xRedisSecret"
    server = redis_factory("secret", password=password)
    fill_redis(server, 20000)
    monkeypatch.setenv("RAGOPS_TEST_REDIS_PW", password)
    env = backup_env(redis=server, redis_password_env="RAGOPS_TEST_REDIS_PW")
    target = env.target()
    seen: list[str] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            seen.append(subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout)

    thread = threading.Thread(target=watch)
    thread.start()
    try:
        with run_staging(target, str(env.staging)) as run_dir:
            rec = stage(target, RedisSource(sample_keys=256), run_dir).record
    finally:
        stop.set()
        thread.join()
    assert rec["keys"] == 20005 and len(seen) > 3
    assert not any(password in snapshot for snapshot in seen)
    assert password not in json.dumps(rec)
