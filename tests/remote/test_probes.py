"""The remote probe scripts, run exactly as the seam runs them (script on stdin), against a real
ChromaDB dir (Redis is asked with redis-py now: tests/backup/test_redis_commands.py)."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.fixtures.backup_helpers import make_chroma_dir, run_inspect


@pytest.fixture(scope="module")
def chroma_small(tmp_path_factory):
    """A real ChromaDB dir, 2 collections (cosine + model metadata, l2), 32 dims."""
    path = tmp_path_factory.mktemp("probes") / "chroma"
    make_chroma_dir(path, {"docs": 1200, "faq": 900}, dims=32)
    return path


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
