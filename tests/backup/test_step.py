"""The backup step end to end: real redis-server, real ChromaDB, real restic (local and sftp)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ragops.backup.step import run_backup
from ragops.errors import StepError
from ragops.report import SKIPPED
from tests.fixtures.backup_helpers import assert_restored_sources_valid, files_below, run_dirs
from tests.fixtures.fleet_helpers import INVOKE, REPO


def test_a_backup_restores_to_a_valid_chroma_dir_and_a_loadable_redis_dump_matching_the_manifest(
        redis_100k, chroma_dataset, backup_env, tmp_path):
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "app.yaml").write_text("model: x\n")
    (conf / "skip.tmp").write_text("tmp")
    hook_log = tmp_path / "hooks.log"
    env = backup_env(redis=redis_100k, chroma_dir=chroma_dataset,
                     paths=[{"path": str(conf), "exclude": ["*.tmp"]}],
                     policy_extra={"hooks": {"before": [f"echo before >> {hook_log}"],
                                             "after": [f"echo after $RAGOPS_SNAPSHOT_ID >> {hook_log}"]}})
    result = run_backup(env.target())
    assert result.status == "ok", result.message
    snap = env.snapshots()[-1]
    assert set(snap["tags"]) == {"test", "ragops"} and snap["hostname"] == "local"
    assert hook_log.read_text().split() == ["before", "after", result.details["snapshot_id"]]
    assert run_dirs(env.staging) == [], "the run dir is removed after the run"
    assert (env.staging / "stable" / "chroma" / "chroma.sqlite3").is_file(), "the mirror stays for the next run"
    names = {m[0] for m in result.metrics}
    assert {"ragops_backup_bytes_added", "ragops_backup_snapshot_bytes", "ragops_backup_files",
            "ragops_backup_source_duration_seconds"} <= names

    restored = env.restore(snap["id"], tmp_path / "restored")
    manifest = env.manifest(restored)
    assert (restored / conf.relative_to("/") / "app.yaml").is_file()
    assert not (restored / conf.relative_to("/") / "skip.tmp").exists()
    for path, meta in manifest["files"].items():  # every staged file restored byte-identical
        data = (restored / path.lstrip("/")).read_bytes()
        assert len(data) == meta["bytes"]
        assert hashlib.sha256(data).hexdigest() == meta["sha256"], path
    assert_restored_sources_valid(env.target(), restored, manifest, tmp_path)


def test_dry_run_stages_nothing_and_records_no_snapshot(redis_100k, chroma_dataset, backup_env, capsys):
    env = backup_env(redis=redis_100k, chroma_dir=chroma_dataset)
    result = run_backup(env.target(dry=True))
    err = capsys.readouterr().err
    assert result.status == "ok" and env.snapshots() == []
    # the session's Redis may already be saved: then no BGSAVE is needed (and none would run)
    assert (f"{sys.executable} - bgsave" in err or "redis: using the dump on disk" in err), err
    assert "backup --tag test --tag ragops" in err
    assert "correct horse" not in err and not env.staging.exists()


def test_without_a_policy_the_step_is_skipped_with_a_reason(backup_env):
    env = backup_env(init=False)
    text = env.config.read_text().replace("policy: t", "policy: null")
    env.config.write_text(text)
    result = run_backup(env.target())
    assert result.status == SKIPPED and "no backup policy" in result.message


def test_a_full_staging_disk_ends_with_one_clear_error_no_staging_and_no_snapshot(redis_100k, chroma_dataset, backup_env,
                                                                                tmpfs_mount):
    # Room for the bytes (the free-space preflight passes) but not for the files: ENOSPC mid-copy.
    mount = tmpfs_mount("small", "size=64m,nr_inodes=8")
    env = backup_env(redis=redis_100k, chroma_dir=chroma_dataset, staging=mount / "staging")
    with pytest.raises(StepError, match="no space left on device") as info:
        run_backup(env.target())
    assert "staging disk full" in str(info.value) and "\n" not in str(info.value).strip()[:200]
    # the Redis dump copied across filesystems stays on purpose (next run's unchanged file); Chroma's
    # partial mirror and the run dir are gone
    kept = {"stable/redis/dump.rdb", "stable/.redis-source", "stable/.redis-check.json"}
    assert [f for f in files_below(mount / "staging") if f not in kept] == [], files_below(mount / "staging")
    assert env.snapshots() == []


def test_backup_runs_over_ssh_into_an_sftp_repository(sshd, chroma_dataset, backup_env, tmp_path):
    repo_dir = tmp_path / "sftp-repo"
    url = f"sftp:root@127.0.0.2:{repo_dir}"
    env = backup_env(chroma_dir=chroma_dataset, init=False, repo_url=url,
                     policy_extra={}, settings_extra={})
    policy = env.policies / "t.yaml"
    policy.write_text(policy.read_text().replace(f"url: {url}", f"url: {url}\n  sftp_command: '{sshd.sftp_command('127.0.0.2')}'"))
    from ragops.backup import restic
    from ragops.backup.policy import load_host_policy

    target = env.target()
    restic.init(target, restic.make_repo(target, load_host_policy(target.host).repository))
    result = run_backup(env.target())
    assert result.status == "ok" and (repo_dir / "config").is_file()
    assert result.details["sources"][0]["collections"] == {"docs": 6000, "faq": 4500}


def test_invoke_backup_is_the_default_task_of_the_collection(chroma_dataset, backup_env):
    env = backup_env(chroma_dir=chroma_dataset)
    res = subprocess.run([INVOKE, "backup", "--host", "local", "--config", str(env.config), "--json"],
                         cwd=REPO, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})
    assert res.returncode == 0, res.stderr[-2000:]
    doc = json.loads(res.stdout)
    assert doc["hosts"][0]["steps"][0]["step"] == "backup" and len(env.snapshots()) == 1
    assert (env.root / "metrics" / "ragops_backup.prom").read_text().count("ragops_backup_bytes_added") == 2


@pytest.mark.parametrize(("keep_last", "forgotten"), [(2, 1), (3, 0)])
def test_retention_after_a_backup_forgets_only_what_keep_last_lets_go(keep_last, forgotten, backup_env, tmp_path):
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "app.yaml").write_text("model: x\n")
    env = backup_env(paths=[{"path": str(conf)}], policy_extra={"retention": {"keep_last": keep_last}})
    results = [run_backup(env.target()) for _ in range(3)]
    assert [r.status for r in results] == ["ok"] * 3
    last = results[-1]
    assert len(last.details["forget"]["remove"]) == forgotten
    assert len(env.snapshots()) == 3 - forgotten
    assert env.snapshots()[-1]["id"].startswith(last.details["snapshot_id"])
    if forgotten:  # restic decided (and removed the oldest)
        assert "forget_skipped" not in last.details
    else:  # 3 snapshots in the group, keep_last 3: provably nothing to forget, restic not asked
        assert "nothing to forget (3 snapshot(s) in the largest group, keep_last 3)" in last.details["forget_skipped"]
