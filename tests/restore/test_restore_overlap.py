"""After the restore, the checks run side by side: the restored files are hashed in groups (the run
dir, each stable copy), Redis starts its throwaway server without waiting for any hash, and ChromaDB
(which may rewrite its restored files on open) waits only for the hash of its own copy. Real stack;
the hash of the Chroma copy is made slow (1 s sleep around the real helper) to make the order visible."""

from __future__ import annotations

import threading
import time

from ragops.backup.sources import chroma, redis
from ragops.restore import verify
from ragops.restore.compare import Check
from ragops.restore.plan import Layout
from tests.fixtures.restore_helpers import run_test


def test_redis_starts_while_chroma_waits_for_the_hash_of_its_own_copy(world, live_untouched, monkeypatch):
    events: dict[str, float] = {}
    lock = threading.Lock()

    def mark(name: str) -> None:
        with lock:
            events.setdefault(name, time.monotonic())

    real_hash, real_redis_start, real_chroma_verify = verify.run_hash_group, redis.start, chroma.verify

    def slow_hash(target, roots, stable, scripts=None):
        name = "chroma" if any(r.rstrip("/").endswith("/stable/chroma") for r in roots) else "other"
        mark(f"hash {name} begin")
        try:
            if name == "chroma":
                time.sleep(1.0)
            return real_hash(target, roots, stable, scripts)
        finally:
            mark(f"hash {name} end")

    def redis_start(ctx, record, **kw):
        mark("redis start")
        return real_redis_start(ctx, record, **kw)

    def chroma_verify(ctx, record):
        mark("chroma verify")
        return real_chroma_verify(ctx, record)

    monkeypatch.setattr(verify, "run_hash_group", slow_hash)
    monkeypatch.setattr(redis, "start", redis_start)
    monkeypatch.setattr(chroma, "verify", chroma_verify)
    result, step = run_test(world)
    assert step.status == "ok", step.message
    assert {"hash chroma begin", "hash chroma end", "redis start", "chroma verify"} <= set(events), events
    assert events["redis start"] < events["hash chroma end"], events  # Redis does not wait for hashes
    assert events["chroma verify"] >= events["hash chroma end"], events  # Chroma waits for its own copy
    assert step.details["phases"]["start"] < 1.0, step.details["phases"]  # start no longer waits for hashing
    assert set(step.details["verify_timings"]) >= {"files", "redis", "chroma"}


def test_a_failed_hash_group_fails_the_files_check_naming_its_roots() -> None:
    layout = Layout(root="/scratch/x")
    manifest = {"files": {"/s/run/a": {"sha256": "1" * 64, "bytes": 1}}}
    check = verify.make_files_check(layout, manifest, [{"/scratch/x/restore/s/run/a": {"sha256": "1" * 64, "bytes": 1}},
                                                       "hashing /scratch/x/restore/s/stable/chroma failed: boom"])
    assert isinstance(check, Check) and not check.ok
    assert "stable/chroma failed: boom" in check.evidence
    merged = verify.make_files_check(layout, manifest, [{"/scratch/x/restore/s/run/a": {"sha256": "1" * 64, "bytes": 1}}, {}])
    assert merged.ok, merged.evidence


def test_a_restore_test_shows_restore_progress_against_the_restore_size(world, live_untouched, monkeypatch):
    from ragops import output

    lines: list[str] = []
    real_info = output.info
    monkeypatch.setattr(output, "info", lambda host, text: (lines.append(text), real_info(host, text)))
    result, step = run_test(world, progress_every_s=0.05)
    assert step.status == "ok", step.message
    shown = [x for x in lines if x.startswith("restore ") and "%: " in x]
    assert shown, lines
    assert all("/" in x for x in shown)  # done/total
    assert any(x.startswith(("restore 100%", "restore 9", "restore 8")) or "ETA" in x for x in shown), shown
