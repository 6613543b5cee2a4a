"""Pure comparisons of restored data with the manifest."""

from __future__ import annotations

from ragops.backup.sources.chroma import compare_compat, compare_models
from ragops.backup.sources.chroma import convert_checks as convert_chroma_checks
from ragops.backup.sources.hooks import Check
from ragops.backup.sources.redis import compare as compare_redis
from ragops.restore.compare import compare_files, summarize


def test_files_match_by_sha256_below_the_restore_dir():
    expected = {"/st/a": {"sha256": "1", "bytes": 5}, "/st/b": {"sha256": "2", "bytes": 7}}
    ok = compare_files(expected, {"/r/st/a": {"sha256": "1", "bytes": 5}, "/r/st/b": {"sha256": "2", "bytes": 7}}, "/r")
    assert ok.ok and ok.figures["verified_bytes"] == 12
    bad = compare_files(expected, {"/r/st/a": {"sha256": "X", "bytes": 5}}, "/r")
    assert not bad.ok and "missing: /st/b" in bad.evidence and "sha256 differs: /st/a" in bad.evidence


def test_redis_counts_and_digest_are_compared_per_db():
    record = {"db_keys": {"0": 10, "1": 1}, "sample_digest": "abc", "sample_size": 5}
    good = compare_redis(record, {"db_keys": {"0": 10, "1": 1}, "sample_digest": "abc", "sampled": 6})
    assert all(c.ok for c in good)
    bad = compare_redis(record, {"db_keys": {"0": 9}, "sample_digest": "abd"})
    assert [c.ok for c in bad] == [False, False]
    assert "db0: manifest 10, restored 9" in bad[0].evidence and "db1: manifest 1, restored 0" in bad[0].evidence


def test_chroma_results_without_checks_become_a_failed_open_check():
    checks = convert_chroma_checks({"ok": False, "error": "ValueError: boom"})
    assert [(c.check, c.ok) for c in checks] == [("chroma: opens", False)]
    assert convert_chroma_checks({"checks": [{"check": "x", "ok": True, "evidence": "e"}]})[0].check == "chroma: x"


def test_a_changed_embedding_model_fails():
    record = {"collections": [{"name": "docs", "embedding_model": "a"}]}
    assert not compare_models(record, [{"name": "docs", "embedding_model": "b"}])[0].ok


def test_compatibility_names_each_differing_field_of_collections_in_both():
    record = {"collections": [{"name": "docs", "dimension": 384, "metric": "cosine", "embedding_model": "m1"},
                              {"name": "gone", "dimension": 3}]}
    live = [{"name": "docs", "dimension": 768, "metric": "cosine", "embedding_model": "m2"}]
    assert compare_compat(record, live) == ["collection docs: dimension is 384 in the snapshot but 768 live",
                                            "collection docs: embedding_model is m1 in the snapshot but m2 live"]


def test_the_summary_names_the_failed_checks():
    ok, text = summarize([Check("a", True), Check("b", False, "why")])
    assert not ok and text == "1 of 2 checks failed: b: why"
