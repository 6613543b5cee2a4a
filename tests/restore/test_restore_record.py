"""Verified-state records: a JSON file on the host, newest last, bounded."""

from __future__ import annotations

import json

from ragops.config import HostSettings
from ragops.report import find_latest_record
from ragops.restore import record


def make(sid: str, ok: bool = True, now: float = 0.0) -> dict:
    return record.make_record(snapshot_id=sid, repository="/r", host="h", verified_on="h", ok=ok, rto_s=1.5,
                              phases={"restore": 1.0}, failed_checks=[] if ok else ["redis: key counts"], now=now)


def test_records_accumulate_and_the_latest_per_snapshot_wins():
    text = record.add_record(None, make("a" * 64, ok=False, now=1))
    text = record.add_record(text, make("a" * 64, ok=True, now=2))
    records = record.parse_records(text)
    found = find_latest_record(records, "a" * 64)
    assert found is not None and found["ok"] and found["ts"] == 2
    assert record.describe_verification(found) == "verified 1970-01-01T00:00:02Z (RTO 1.5s)"
    assert record.describe_verification(find_latest_record(records, "b" * 64)) == "never"


def test_a_copied_snapshot_is_matched_by_its_original_id():
    records = record.parse_records(record.add_record(None, make("c" * 64)))
    assert find_latest_record(records, "d" * 64, original="c" * 64) is not None


def test_only_the_last_records_are_kept_and_garbage_is_ignored():
    text = None
    for i in range(record.KEEP + 5):
        text = record.add_record(text, make(f"{i:064d}"))
    assert len(json.loads(text)["records"]) == record.KEEP
    assert record.parse_records("not json") == []


def test_the_file_lives_next_to_the_metrics_or_in_the_staging_dir():
    assert record.make_record_path(HostSettings()) == "/var/lib/prometheus/node-exporter/ragops-restore-verified.json"
    no_metrics = HostSettings.model_validate({"metrics_dir": None})
    assert record.make_record_path(no_metrics) == "/var/tmp/ragops-staging/ragops-restore-verified.json"


def test_a_restore_test_records_its_outcome_on_the_source_host(world):
    from ragops.restore.record import read_verified
    from ragops.restore.run import Options, make_restore_test_step
    from ragops.runner import run_host

    target = world.env.target()
    run_host(target, "restore-test", [make_restore_test_step(world.host(), Options(selfcheck=0, read_data_subset=None))])
    snaps = world.env.snapshots()
    latest = snaps[-1]["id"]
    found = find_latest_record(read_verified(world.env.target()), latest)
    assert found is not None and found["ok"] and found["verified_on"] == "local" and found["rto_s"] > 0
