"""The remote probe scripts, run exactly as the seam runs them (script on stdin), against a real
redis-server and a real ChromaDB dir."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from tests.fixtures.backup_helpers import fill_redis, make_chroma_dir, run_inspect, run_probe


@pytest.fixture(scope="module")
def chroma_small(tmp_path_factory):
    """A real ChromaDB dir, 2 collections (cosine + model metadata, l2), 32 dims."""
    path = tmp_path_factory.mktemp("probes") / "chroma"
    make_chroma_dir(path, {"docs": 1200, "faq": 900}, dims=32)
    return path


def test_redis_probe_counts_keys_per_db_and_its_sample_digest_is_deterministic(redis_factory):
    server = redis_factory("probe")
    fill_redis(server, 3000)
    first = run_probe("probe", "--port", str(server.port), "--sample", "100")
    again = run_probe("probe", "--port", str(server.port), "--sample", "100")
    assert first["ok"] and first["db_keys"] == {"0": 3004, "1": 1}
    assert first["sampled"] == 101 and first["sample_digest"] == again["sample_digest"]
    server.client().flushdb()
    assert run_probe("probe", "--port", str(server.port), "--sample", "100")["sample_digest"] != first["sample_digest"]


def test_redis_probe_digest_covers_values_of_every_type(redis_factory):
    server = redis_factory("types")
    fill_redis(server, 10)
    before = run_probe("probe", "--port", str(server.port))["sample_digest"]
    server.client().zadd("z:1", {"m": 2.5})
    assert run_probe("probe", "--port", str(server.port))["sample_digest"] != before


def test_redis_bgsave_waits_for_lastsave_to_advance_and_handles_a_running_save(redis_factory):
    # slow saves (~1 s each): the first is still running when the probe starts, even on a loaded machine
    server = redis_factory("save", extra_args=["--rdb-key-save-delay", "500"])
    fill_redis(server, 2000)
    client = server.client()
    client.bgsave()  # a save already in progress when the probe starts
    done = run_probe("bgsave", "--port", str(server.port), "--wait", "60")
    assert done["ok"] and done["waited_for_running_save"] is True
    assert done["lastsave"] >= done["previous_lastsave"] and done["rdb_saves"] >= 2
    assert client.info("persistence")["rdb_bgsave_in_progress"] == 0
    assert Path(done["dir"], done["dbfilename"]).is_file()


def test_redis_probe_takes_the_password_from_the_environment_only(redis_factory):
    server = redis_factory("auth", password="s3cret-probe-pw")
    denied = run_probe("probe", "--port", str(server.port))
    assert not denied["ok"] and "NOAUTH" in denied["error"]
    allowed = run_probe("info", "--port", str(server.port), env={"REDISCLI_AUTH": "s3cret-probe-pw"})
    assert allowed["ok"] and "s3cret" not in json.dumps(allowed)


def test_chroma_inspect_records_collections_and_verify_accepts_an_identical_copy(chroma_small, tmp_path):
    doc = run_inspect("inspect", str(chroma_small), "--probes", "4", "--k", "5")
    assert doc["ok"], doc["checks"]
    cols = {c["name"]: c for c in doc["collections"]}
    assert cols["docs"]["count"] == 1200 and cols["faq"]["count"] == 900
    assert cols["docs"]["metric"] == "cosine" and cols["faq"]["metric"] == "l2"
    assert cols["docs"]["embedding_model"] == "all-MiniLM-L6-v2" and cols["docs"]["dimension"] == 32
    assert all(p["top_k"][0] == p["id"] and len(p["top_k"]) == 5 for p in cols["docs"]["probes"])
    copy = tmp_path / "copy"
    shutil.copytree(chroma_small, copy)
    (tmp_path / "m.json").write_text(json.dumps({"sources": [{"kind": "chroma", **doc}]}))
    verified = run_inspect("verify", str(copy), str(tmp_path / "m.json"))
    assert verified["ok"], [c for c in verified["checks"] if not c["ok"]]


def test_chroma_verify_fails_with_evidence_when_items_are_missing(tmp_path):
    make_chroma_dir(tmp_path / "a", {"small": 300}, dims=8)
    doc = run_inspect("inspect", str(tmp_path / "a"))
    (tmp_path / "m.json").write_text(json.dumps(doc))
    import chromadb

    client = chromadb.PersistentClient(str(tmp_path / "a"))
    client.get_collection("small").delete(ids=["small-1", "small-2"])
    del client
    verified = run_inspect("verify", str(tmp_path / "a"), str(tmp_path / "m.json"))
    failed = {c["check"]: c["evidence"] for c in verified["checks"] if not c["ok"]}
    assert not verified["ok"]
    assert failed["small: count matches"] == "manifest 300, dir 298"
    assert "small: ids_digest matches" in failed


def test_chroma_inspect_reports_a_missing_dir_as_one_failed_check(tmp_path):
    doc = run_inspect("inspect", str(tmp_path / "nothing"))
    assert doc["ok"] is False and "no chroma.sqlite3" in doc["error"]


def test_redis_wait_mode_gives_up_with_an_error_when_nothing_listens(free_port):
    t0 = time.monotonic()
    doc = run_probe("wait", "--port", str(free_port()), "--wait", "1")
    assert doc["ok"] is False and "ConnectionRefused" in doc["error"] and 0.9 <= time.monotonic() - t0 < 10
