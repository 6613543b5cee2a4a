"""backup.init, backup.forget and backup.check through the ``invoke`` CLI, as a user runs them: a
real restic, real local repositories (primary and secondary) and an S3 repository on SeaweedFS."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from ragops.errors import ExitCode
from tests.fixtures.fleet_helpers import run_invoke, write_config

pytestmark = pytest.mark.slow


def write_setup(tmp_path: Path, policies: dict[str, dict]) -> Path:
    (tmp_path / "policies").mkdir()
    for name, policy in policies.items():
        (tmp_path / "policies" / f"{name}.yaml").write_text(json.dumps(policy))
    return write_config(tmp_path / "ragops.yaml", {"defaults": {
        "lock_path": str(tmp_path / "lock"), "metrics_dir": None,
        "backup": {"policy": next(iter(policies)), "policies_dir": str(tmp_path / "policies")}}})


def restic_env(password: Path, repo: Path) -> dict[str, str]:
    return {**os.environ, "RESTIC_REPOSITORY": str(repo), "RESTIC_PASSWORD_FILE": str(password),
            "RESTIC_CACHE_DIR": str(password.parent / "restic-cache")}


def snapshot_ids(password: Path, repo: Path) -> list[str]:
    out = subprocess.run(["restic", "snapshots", "--json"], env=restic_env(password, repo), check=True,
                         capture_output=True, text=True).stdout
    return [s["short_id"] for s in json.loads(out)]


def repo_bytes(repo: Path) -> int:
    return sum(p.stat().st_size for p in (repo / "data").rglob("*") if p.is_file())


def test_init_creates_both_repositories_once_and_forget_prunes_what_retention_lets_go(tmp_path):
    password = tmp_path / "pw"
    password.write_text("task-test\n")
    primary, secondary = tmp_path / "repo", tmp_path / "repo2"
    repo = {"url": str(primary), "password_file": str(password), "cache_dir": str(tmp_path / "restic-cache")}
    second = {**repo, "url": str(secondary)}
    cfg = write_setup(tmp_path, {"keep5": {"repository": repo, "secondary": second, "retention": {"keep_last": 5}},
                                 "keep1": {"repository": repo, "retention": {"keep_last": 1}}})

    made = run_invoke("backup.init", "--config", str(cfg), "--json")
    assert made.returncode == ExitCode.OK, made.stderr
    step = made.json()["hosts"][0]["steps"][0]
    assert step["message"] == f"primary {primary}: created; secondary {secondary}: created"
    assert (primary / "config").is_file() and (secondary / "config").is_file()
    again = run_invoke("backup.init", "--config", str(cfg), "--json")
    assert again.json()["hosts"][0]["steps"][0]["message"] == f"primary {primary}: exists; secondary {secondary}: exists"

    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):  # three snapshots, each with 1 MiB of its own data
        (data / f"f{i}.bin").write_bytes(os.urandom(1024 * 1024))
        subprocess.run(["restic", "backup", "-q", "--tag", "ragops", "--host", "local", str(data)],
                       env=restic_env(password, primary), check=True, capture_output=True)
        (data / f"f{i}.bin").unlink()
    before_ids, before_bytes = snapshot_ids(password, primary), repo_bytes(primary)
    assert len(before_ids) == 3

    dry = run_invoke("backup.forget", "--config", str(cfg), "--policy", "keep1", "--dry", "--json")
    assert dry.returncode == ExitCode.OK, dry.stderr
    assert dry.json()["hosts"][0]["steps"][0]["message"] == "would forget 2, kept 1 (keep1)"
    assert snapshot_ids(password, primary) == before_ids and repo_bytes(primary) == before_bytes

    kept5 = run_invoke("backup.forget", "--config", str(cfg), "--json")  # the host's policy: keep_last 5
    assert kept5.json()["hosts"][0]["steps"][0]["message"] == "forgot 0, kept 3 (keep5)"

    done = run_invoke("backup.forget", "--config", str(cfg), "--policy", "keep1", "--json")
    assert done.returncode == ExitCode.OK, done.stderr
    step = done.json()["hosts"][0]["steps"][0]
    assert step["message"] == "forgot 2, kept 1 (keep1)"
    assert sorted(step["details"]["remove"]) == sorted(before_ids[:2]) and step["details"]["keep"] == before_ids[2:]
    assert snapshot_ids(password, primary) == before_ids[2:]
    assert repo_bytes(primary) < before_bytes - 1024 * 1024  # pruned: the forgotten snapshots' data is gone

    checked = run_invoke("backup.check", "--config", str(cfg), "--read-data-subset", "1/1", "--json")
    assert checked.returncode == ExitCode.OK, checked.stderr
    assert checked.json()["hosts"][0]["steps"][0]["message"] == "no errors (read-data-subset 1/1, keep5)"


def test_init_on_s3_checks_the_bucket_first_and_records_its_versioning(tmp_path, s3_server):
    env = {"RAGOPS_T_S3_KEY": s3_server.access_key, "RAGOPS_T_S3_SECRET": s3_server.secret_key,
           "RAGOPS_T_RESTIC_PW": "pw-s3-task"}
    url = f"s3:{s3_server.endpoint}/task-init-bucket/restic"
    repo = {"url": url, "password_env": "RAGOPS_T_RESTIC_PW", "cache_dir": str(tmp_path / "restic-cache"),
            "s3": {"access_key_env": "RAGOPS_T_S3_KEY", "secret_key_env": "RAGOPS_T_S3_SECRET", "region": s3_server.region}}
    cfg = write_setup(tmp_path, {"s3": {"repository": repo, "retention": {"keep_last": 1}}})

    dry = run_invoke("backup.init", "--config", str(cfg), "--dry", "--json", env=env)
    assert dry.returncode == ExitCode.OK, dry.stderr
    assert "bucket task-init-bucket does not exist (would be created)" in dry.stderr
    assert "primary_bucket_versioning" not in dry.json()["hosts"][0]["steps"][0]["details"]

    made = run_invoke("backup.init", "--config", str(cfg), "--json", env=env)
    assert made.returncode == ExitCode.OK, made.stderr
    step = made.json()["hosts"][0]["steps"][0]
    assert step["message"] == f"primary {url}: created"
    assert step["details"]["primary_bucket_versioning"] == "never enabled"
    assert f"primary repository {url}: bucket task-init-bucket created; versioning: never enabled" in made.stderr
