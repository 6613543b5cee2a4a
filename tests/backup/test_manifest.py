"""The manifest document: pure planner tests plus the hash pass on a real staged tree."""

from __future__ import annotations

import hashlib

import pytest

from ragops.backup.manifest import (
    FORMAT_VERSION,
    make_manifest,
    run_hash_files,
    validate_manifest,
)
from ragops.backup.policy import Policy
from ragops.errors import StepError
from tests.fixtures.fleet_helpers import make_target

POLICY = Policy.model_validate({"repository": {"url": "/srv/repo", "password_file": "/etc/pw"},
                                "retention": {"keep_daily": 7}, "tags": ["nightly"]})


def _manifest(**kw):
    args = {"host": "prod1", "policy_name": "default", "policy": POLICY, "run_dir": "/st/run-1",
            "records": [{"kind": "redis", "name": "redis", "path": "/st/run-1/redis/dump.rdb"},
                        {"kind": "chroma", "name": "chroma", "path": "/st/run-1/chroma", "collections": []}],
            "files": {"/st/run-1/redis/dump.rdb": {"sha256": "ab", "bytes": 10},
                      "/st/run-1/chroma/chroma.sqlite3": {"sha256": "cd", "bytes": 7},
                      "/st/run-1/chroma/seg/data_level0.bin": {"sha256": "ef", "bytes": 3}},
            "restic_version": "0.14.0", "backup_paths": ["/st/run-1", "/etc/rag"], "now": 1795900000.0}
    args.update(kw)
    return make_manifest(**args)


def test_manifest_carries_versions_host_time_policy_and_fills_file_checksums_into_records():
    doc = _manifest()
    assert doc["format"] == FORMAT_VERSION and doc["restic_version"] == "0.14.0" and doc["host"] == "prod1"
    assert doc["created"] == "2026-11-28T21:06:40Z"
    assert doc["policy"] == {"name": "default", "tags": ["nightly"], "repository": "/srv/repo", "retention": {"keep_daily": 7, "keep_tags": [], "group_by": "host,tags"}}
    redis, chroma = doc["sources"]
    assert (redis["sha256"], redis["bytes"]) == ("ab", 10)
    assert (chroma["files"], chroma["bytes"]) == (2, 10)
    assert validate_manifest(doc) == []


def test_manifest_refuses_relative_paths_because_restic_would_store_them_under_root():
    with pytest.raises(StepError, match="every path must be absolute"):
        _manifest(run_dir="staging/run-1")
    with pytest.raises(StepError, match="relative path"):
        _manifest(records=[{"kind": "chroma", "path": "chroma", "collections": []}])


def test_a_manifest_read_back_is_validated_for_required_fields_and_format():
    assert validate_manifest([]) == ["manifest: not a JSON object"]
    assert "manifest: missing files" in validate_manifest({k: 1 for k in ("format", "host")})
    doc = _manifest()
    doc["format"] = 99
    assert validate_manifest(doc) == [f"manifest: format 99 is not {FORMAT_VERSION}"]


def test_every_staged_file_is_hashed_except_the_manifest_itself(tmp_path):
    run = tmp_path / "run-x"
    (run / "redis").mkdir(parents=True)
    (run / "redis" / "dump.rdb").write_bytes(b"REDIS0010")
    (run / "ragops-manifest.json").write_text("{}")
    files = run_hash_files(make_target(tmp_path), str(run))
    assert files == {str(run / "redis" / "dump.rdb"): {"sha256": hashlib.sha256(b"REDIS0010").hexdigest(), "bytes": 9}}
