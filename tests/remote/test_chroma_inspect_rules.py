"""The self-retrieval rule of the Chroma copy validation, as a pure function (no store needed)."""

from __future__ import annotations

from tests.fixtures.backup_helpers import load_script

INSPECT = load_script("chroma_inspect")  # the program shipped to hosts
check_self_retrieval, find_self_misses = INSPECT.check_self_retrieval, INSPECT.find_self_misses


def probe(pid: str, top: str, dist: float = 0.2) -> dict:
    return {"id": pid, "top_k": [top, "x"], "distances": [0.0 if top == pid else dist, 0.3]}


def test_a_probe_that_finds_a_duplicate_at_distance_zero_is_not_a_miss() -> None:
    assert find_self_misses([probe("a", "a"), probe("b", "dup", dist=0.0), probe("c", "z")]) == ["c"]


def test_without_a_reference_one_hnsw_miss_in_five_passes_but_a_majority_fails() -> None:
    one_miss = [probe("a", "z")] + [probe(p, p) for p in "bcde"]
    three_miss = [probe(p, "z") for p in "abc"] + [probe(p, p) for p in "de"]
    assert check_self_retrieval("docs", one_miss)["ok"]
    failed = check_self_retrieval("docs", three_miss)
    assert not failed["ok"] and "3 miss" in failed["evidence"]


def test_with_a_reference_a_probe_that_found_itself_at_backup_must_find_itself_again() -> None:
    results = [probe("a", "z")] + [probe(p, p) for p in "bcde"]
    assert check_self_retrieval("docs", results, expected_self=["b", "c", "d", "e"])["ok"]
    assert not check_self_retrieval("docs", results, expected_self=["a", "b"])["ok"]
