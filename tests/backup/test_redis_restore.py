"""The restore test of a Redis record written without loading the dump (keys read by redis-check-rdb,
size, CRC64): it passes on the real snapshot, fails on a tampered record, and an untrusted record with
bad fields is refused. Real redis-server, real restic, the real backup and restore-test steps."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from ragops.backup.sources.redis import check_record, compare
from tests.fixtures.backup_helpers import fill_redis


def run_restore_test(env, **kw):
    from ragops.config import load_config
    from ragops.restore.run import Options, make_restore_test_step
    from ragops.runner import run_host

    host = load_config(str(env.config), environ={}).hosts["local"]
    result = run_host(env.target(), "restore-test", [make_restore_test_step(host, Options(**kw))])
    return result.steps[0]


def checks_of(step) -> dict[str, dict]:
    return {c["check"]: c for c in step.details["checks"]}


def hash_dir(path: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.rglob("*")) if p.is_file()}


def craft(env, snapshot_id: str, tmp_path: Path, mutate) -> str:
    """A snapshot whose manifest ``mutate(manifest)`` altered: the run dir is put back where it was,
    the stable dir is the one on disk (restic stores absolute paths)."""
    restored = env.restore(snapshot_id, tmp_path / "orig")
    manifest = env.manifest(restored)
    run_dir = Path(manifest["staging_dir"])
    shutil.copytree(restored / run_dir.relative_to("/"), run_dir)
    try:
        mutate(manifest)
        (run_dir / "ragops-manifest.json").write_text(json.dumps(manifest))
        out = env.restic("backup", "--json", "--host", "local", "--tag", "test", "--tag", "ragops", str(run_dir),
                         *manifest["backup_paths"][1:])
        summary = [json.loads(line) for line in out.stdout.splitlines() if '"summary"' in line][-1]
    finally:
        shutil.rmtree(run_dir)
    return str(summary["snapshot_id"])


@pytest.fixture
def backed_up(redis_factory, backup_env):
    from ragops.backup.step import run_backup

    server = redis_factory("restore-new")
    fill_redis(server, 3000)
    server.client().set("ttl:1", "x", ex=3600)
    env = backup_env(redis=server)
    result = run_backup(env.target())
    assert result.status == "ok", result.message
    return env, server, result


def test_a_restore_test_of_the_new_record_passes_and_a_tampered_key_count_fails(backed_up, tmp_path):
    env, server, result = backed_up
    rec = next(s for s in result.details["sources"] if s["kind"] == "redis")
    assert rec["keys_read"] == 3006 and rec["expires"] == 1 and rec["path"].startswith(str(env.staging / "stable"))
    live = hash_dir(Path(server.dir))
    dump = (Path(server.dir) / "dump.rdb").read_bytes()
    # the dump is not sha256'ed at backup (a second pass over a changed dump): its own CRC64 is recorded
    assert rec["rdb_crc64"] == dump[-8:].hex() and rec["bytes"] == len(dump), rec
    step = run_restore_test(env, read_data_subset=None)
    assert step.status == "ok", step.message
    checks = checks_of(step)
    for name in ("redis: dump loads", "redis: redis-check-rdb", "redis: rdb checksum", "redis: key counts", "files: sha256"):
        assert checks[name]["ok"], checks[name]
    assert "3006 loaded + 0 expired on load = 3006 keys read" in checks["redis: key counts"]["evidence"], checks
    assert "3006 keys read (manifest 3006)" in checks["redis: redis-check-rdb"]["evidence"]

    def wrong_count(manifest):
        next(s for s in manifest["sources"] if s["kind"] == "redis")["keys_read"] = 3007

    step = run_restore_test(env, snapshot=craft(env, result.details["snapshot_id"], tmp_path, wrong_count),
                            read_data_subset=None)
    checks = checks_of(step)
    assert step.status == "failed" and not checks["redis: key counts"]["ok"], checks
    assert "manifest: 3007 keys read" in checks["redis: key counts"]["evidence"], checks["redis: key counts"]
    assert not checks["redis: redis-check-rdb"]["ok"] and checks["redis: rdb checksum"]["ok"]
    assert hash_dir(Path(server.dir)) == live, "the restore tests touched the live Redis dir"


def test_a_dump_other_than_the_recorded_one_fails_the_rdb_checksum(backed_up, tmp_path):
    env, _server, result = backed_up

    def other_dump(manifest):
        rec = next(s for s in manifest["sources"] if s["kind"] == "redis")
        rec["rdb_crc64"] = "%016x" % (int(rec["rdb_crc64"], 16) ^ 1)

    step = run_restore_test(env, snapshot=craft(env, result.details["snapshot_id"], tmp_path, other_dump),
                            read_data_subset=None)
    checks = checks_of(step)
    assert step.status == "failed" and not checks["redis: rdb checksum"]["ok"] and checks["redis: key counts"]["ok"]


STAGING = "/var/tmp/st/run-20260101T000000Z-abcdef"
GOOD = {"kind": "redis", "method": "bgsave", "path": "/var/tmp/st/stable/redis/dump.rdb", "keys_read": 10, "expires": 2,
        "already_expired": 1, "bytes": 300, "mtime": 1700000000, "lastsave": 1700000000, "checksum_ok": True,
        "rdb_crc64": "08218aca8fc0b859", "dump_check": "check-rdb", "rdb_redis_ver": "7.0.15", "stage": "linked"}
HOSTILE = {
    "path outside the staging dir": {"path": "/var/lib/redis/dump.rdb"},
    "path in another source's stable dir": {"path": "/var/tmp/st/stable/chroma/dump.rdb"},
    "path climbing out": {"path": "/var/tmp/st/stable/redis/../../../../etc/passwd"},
    "negative keys read": {"keys_read": -1},
    "negative expires": {"expires": -5},
    "keys read as a string": {"keys_read": "10"},
    "a boolean count": {"bytes": True},
    "more expires than keys": {"expires": 11},
    "more already expired than expires": {"already_expired": 3},
    "checksum_ok not a boolean": {"checksum_ok": "yes"},
    "crc64 not hex": {"rdb_crc64": "$(reboot)"},
    "unknown dump_check": {"dump_check": "trust-me"},
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_redis_record_is_refused_by_check_record(case):
    assert check_record("manifest: sources[0]", dict(GOOD), STAGING) == []
    problems = check_record("manifest: sources[0]", {**GOOD, **HOSTILE[case]}, STAGING)
    assert problems and all(p.startswith("manifest: sources[0].") for p in problems), problems


def test_key_counts_of_new_records_use_the_load_figures_and_old_records_their_per_db_counts():
    new = {"keys_read": 10, "expires": 3, "db_keys": {"0": 10}}
    ok = compare(new, {"db_keys": {"0": 8}, "load": {"keys_loaded": 8, "keys_expired": 2}})[0]
    assert ok.ok, ok.evidence  # two keys expired since the backup: expected, and per-db is not exact with TTLs
    assert not compare(new, {"db_keys": {"0": 8}, "load": {"keys_loaded": 8, "keys_expired": 1}})[0].ok
    assert not compare(new, {"db_keys": {"0": 6}, "load": {"keys_loaded": None, "keys_expired": None}})[0].ok
    no_ttl = {"keys_read": 11, "expires": 0, "db_keys": {"0": 10, "1": 1}}
    moved = compare(no_ttl, {"db_keys": {"0": 11}, "load": {"keys_loaded": 11, "keys_expired": 0}})[0]
    assert not moved.ok and "db1: manifest 1, restored 0" in moved.evidence
    old = compare({"db_keys": {"0": 10}}, {"db_keys": {"0": 9}})[0]
    assert not old.ok and "db0: manifest 10, restored 9" in old.evidence
