"""Damaged snapshots and a live writer on the real Compose stack (`docker.data_tasks: containers`,
engine 20.10, one stack for the module: `data_stack`): each damage fails its named check with the live
volumes unchanged; back-to-back backups under a writer each restore-test clean, the writer resumed."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from ragops.restore.run import Options, make_restore_test_step
from ragops.runner import run_host
from tests.fixtures.compose_data import Env, backup, failed, restore_test, throwaways
from tests.fixtures.compose_stack import Stack
from tests.fixtures.restore_helpers import craft_snapshot, hash_tree

# One engine (20.10, always installed): what is checked does not depend on the engine; both engines
# run the stack's backup, restore-test and signal tests (test_data_tasks.py).
pytestmark = pytest.mark.parametrize("stack_engine", ["docker-20"], indirect=True)

# -- damaged snapshots: each fails its named check ---------------------------------------------

@pytest.fixture(scope="module")
def base(data_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Any:
    env = Env(data_stack, tmp_path_factory.mktemp("faults"))
    client = data_stack.redis()
    client.mset({f"fault:{i}": str(i) for i in range(200)})
    result = backup(env)

    class World:
        pass

    w = World()
    w.env, w.snapshot_id = env, str(result.details["snapshot_id"])  # type: ignore[attr-defined]
    return w


def live_hashes(stack: Stack) -> dict[str, str]:
    return hash_tree(stack.mountpoint("chroma_data"), stack.mountpoint("redis_data"))


def first_segment_file(staging: Path, name: str) -> Path:
    files = sorted((staging / "chroma").glob(f"*/{name}"), key=lambda p: p.stat().st_size)
    assert files, f"no {name} in the staged chroma copy"
    return files[-1]


def truncate_hnsw(staging: Path, manifest: dict[str, Any]) -> None:
    seg = first_segment_file(staging, "data_level0.bin")  # preallocated: cut into the stored elements
    with open(seg, "r+b") as fh:
        fh.truncate(2048)


def corrupt_sqlite(staging: Path, manifest: dict[str, Any]) -> None:
    db = staging / "chroma" / "chroma.sqlite3"
    data = bytearray(db.read_bytes())
    data[4096 * 3:4096 * 3 + 2000] = b"\x5a" * 2000  # inside a b-tree page, past the header
    db.write_bytes(bytes(data))


def redimension(staging: Path, manifest: dict[str, Any]) -> None:
    """The snapshot's `docs` collection recorded at 64-d (live and the restored copy are 16-d)."""
    rec = next(r for r in manifest["sources"] if r["kind"] == "chroma")
    next(c for c in rec["collections"] if c["name"] == "docs")["dimension"] = 64
    (staging / "ragops-manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("fault", ["truncated hnsw segment", "corrupted sqlite", "dump missing keys", "wrong dimension"])
def test_a_damaged_snapshot_fails_its_named_check(data_stack: Stack, base: Any, tmp_path: Path, redis_factory,
                                                  fault: str) -> None:
    def drop_keys(staging: Path, manifest: dict[str, Any]) -> None:
        work = tmp_path / "redis-craft"
        work.mkdir()
        shutil.copy(staging / "redis" / "dump.rdb", work / "dump.rdb")
        server = redis_factory(f"craft-{uuid.uuid4().hex[:6]}", dir=work)
        server.client().delete(*[f"fault:{i}" for i in range(50)])
        server.client().save()
        server.stop()
        shutil.copy(work / "dump.rdb", staging / "redis" / "dump.rdb")

    mutate = {"truncated hnsw segment": truncate_hnsw, "corrupted sqlite": corrupt_sqlite, "dump missing keys": drop_keys,
              "wrong dimension": redimension}
    sid = craft_snapshot(base, tmp_path, mutate[fault])
    before = live_hashes(data_stack)
    result = run_host(base.env.target(), "restore-test",
                      [make_restore_test_step(base.env.host(), Options(snapshot=sid))])
    step = result.steps[0]
    assert live_hashes(data_stack) == before  # the live volumes are only ever read
    bad = [c["check"] for c in step.details["checks"] if not c["ok"]]
    assert step.status == "failed", bad
    if fault == "dump missing keys":
        assert bad == ["redis: redis-check-rdb", "redis: rdb checksum", "redis: key counts"] or "redis: key counts" in bad, bad
        counts = next(c for c in step.details["checks"] if c["check"] == "redis: key counts")
        assert "keys read" in counts["evidence"] and not any(b.startswith("chroma") for b in bad), bad
    elif fault == "wrong dimension":  # the restored copy's own 16-d index, and the live 16-d collection
        assert "chroma: docs: dimension matches" in bad and "compatibility with live collections" in bad, bad
        compat = next(c for c in step.details["checks"] if c["check"] == "compatibility with live collections")
        assert "dimension is 64 in the snapshot but 16 live" in compat["evidence"], compat
        assert not any(b.startswith("redis") or b.startswith("chroma: faq") for b in bad), bad
    elif fault == "corrupted sqlite":
        assert "chroma: opens" in bad and "files: sha256" in bad, bad
        opens = next(c for c in step.details["checks"] if c["check"] == "chroma: opens")
        assert "malformed" in opens["evidence"], opens
    else:  # the seeded collections are small: Chroma still serves them from its sqlite log, so the
        # checksum of the HNSW file (hashed at backup: a stable path) is what names the damage
        assert bad == ["files: sha256"], bad
        files = next(c for c in step.details["checks"] if c["check"] == "files: sha256")
        assert "data_level0.bin" in files["evidence"], files
    assert throwaways(data_stack) == []


def test_a_corrupted_pack_fails_the_repository_check(data_stack: Stack, tmp_path: Path) -> None:
    """A fault in the repository, not the data: 64 bytes flipped inside the largest pack file."""
    env = Env(data_stack, tmp_path / "pack")
    sid = str(backup(env).details["snapshot_id"])
    pack = max((p for p in (env.repo / "data").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    data = bytearray(pack.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 64):
        data[i] ^= 0xFF
    pack.write_bytes(bytes(data))
    before = live_hashes(data_stack)
    result = run_host(env.target(), "restore-test",
                      [make_restore_test_step(env.host(), Options(snapshot=sid, read_data_subset="100%"))])
    assert live_hashes(data_stack) == before
    step = result.steps[0]
    assert step.status == "failed" and result.exit_code != 0
    bad = failed(step)  # "check: evidence"; the restore also fails when the pack held restored data
    assert any(b.startswith("repository: restic check --read-data-subset=100%: ") for b in bad), bad
    assert throwaways(data_stack) == []


# -- a live writer ----------------------------------------------------------------------------

class Writer(threading.Thread):
    """Adds one document through the Chroma server's HTTP API and sets one Redis key every ~20 ms;
    failures (Chroma stopped for the copy) are counted and retried."""

    def __init__(self, stack: Stack) -> None:
        super().__init__(daemon=True)
        self.stack, self.halt = stack, threading.Event()
        self.acked: list[str] = []
        self.failures = 0
        self.last_ok = 0.0

    def run(self) -> None:
        from ragops.rag_api import embed

        client, col, r, i = None, None, self.stack.redis(), 0
        while not self.halt.is_set():
            doc_id = f"live-{i:05d}"
            try:
                if col is None:
                    client = self.stack.chroma()
                    col = client.get_or_create_collection("live", embedding_function=None)
                col.add(ids=[doc_id], embeddings=[embed(f"live {i}", 8)], documents=[f"live {i}"])
                r.set(f"live:{i}", str(i))
                self.acked.append(doc_id)
                self.last_ok = time.monotonic()
                i += 1
            except Exception:  # noqa: BLE001 - the server is stopped for the copy: retry
                self.failures += 1
                col = None
                time.sleep(0.2)
            time.sleep(0.02)


def test_back_to_back_backups_under_a_live_writer_each_restore_test_clean(data_stack: Stack, tmp_path: Path) -> None:
    env = Env(data_stack, tmp_path)
    writer = Writer(data_stack)
    writer.start()
    runs = int(os.environ.get("RAGOPS_COMPOSE_BACKUPS", "5"))  # the 10: RAGOPS_COMPOSE_BACKUPS=10
    holds = []
    try:
        for n in range(runs):
            deadline = time.monotonic() + 30
            while len(writer.acked) < 5 * (n + 1) and time.monotonic() < deadline:
                time.sleep(0.05)
            result = backup(env)
            done = time.monotonic()
            chroma = next(r for r in result.details["sources"] if r["kind"] == "chroma")
            holds.append(chroma["hold_s"])
            assert chroma["collections"]["live"] >= 1
            step = restore_test(env)
            assert step.status == "ok", (n, failed(step))
            while writer.last_ok < done and time.monotonic() < done + 60:  # the writer is resumed
                time.sleep(0.05)
            assert writer.last_ok > done, f"backup {n}: the writer did not resume"
    finally:
        writer.halt.set()
        writer.join(30)
    stored = set(data_stack.chroma().get_collection("live").get(include=[])["ids"])
    assert set(writer.acked) <= stored  # no acknowledged write was lost
    assert len(env.snapshots()) == runs and throwaways(data_stack) == []
    assert not list(env.staging.glob("run-*")) and not list((tmp_path / "staging-restore-test").glob("restore-test-*"))
    print(f"{runs} backups under a writer: holds {holds}, writer failures {writer.failures}, acked {len(writer.acked)}")


