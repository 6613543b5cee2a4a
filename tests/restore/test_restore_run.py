"""restore-test on the real stack: real redis-server, real ChromaDB, real restic; faults injected."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.backup_helpers import make_backup_env
from tests.fixtures.restore_helpers import (
    World,
    craft_snapshot,
    failed_checks,
    hash_tree,
    run_backup,
    run_test,
)


def test_the_latest_snapshot_restores_and_passes_every_check(world, live_untouched):
    result, step = run_test(world)
    assert step.status == "ok", step.message
    names = [c["check"] for c in step.details["checks"]]
    for expected in ("snapshot", "restore", "manifest", "files: sha256", "redis: dump loads", "redis: redis-check-rdb",
                     "redis: key counts", "redis: rdb checksum", "chroma: sqlite integrity_check",
                     "chroma: docs: self-retrieval", "chroma: docs: embedding_model matches",
                     "compatibility with live collections"):
        assert expected in names, (expected, names)
    assert any(n.startswith("repository: restic check") for n in names)
    assert set(step.details["phases"]) == {"restore", "start", "verify"}
    assert step.details["verified_bytes"] > 0
    scratch = list((world.env.root).glob("staging-restore-test/*"))
    assert scratch == [], "the scratch dir is removed"
    print(json.dumps(step.details, indent=1)[:3000])


def first_segment_file(staging: Path, name: str) -> Path:
    files = sorted((staging / "chroma").glob(f"*/{name}"), key=lambda p: p.stat().st_size)
    assert files, f"no {name} in the staged chroma copy"
    return files[-1]


def test_a_corrupted_pack_file_fails_the_repository_check(clone_world, live_untouched):
    w = clone_world()
    packs = sorted((w.env.repo / "data").rglob("*"), key=lambda p: p.stat().st_size if p.is_file() else 0)
    pack = packs[-1]
    data = bytearray(pack.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 64):
        data[i] ^= 0xFF
    pack.write_bytes(bytes(data))
    result, step = run_test(w, read_data_subset="100%")
    assert step.status == "failed"
    failed = failed_checks(step)
    assert "repository: restic check --read-data-subset=100%" in failed, failed
    assert result.exit_code != 0


def test_a_redis_dump_lacking_keys_the_manifest_counts_fails_the_key_counts(clone_world, redis_factory, tmp_path, live_untouched):
    w = clone_world()

    def drop_keys(staging: Path, manifest) -> None:
        work = tmp_path / "redis-craft"
        work.mkdir()
        shutil.copy(staging / "redis" / "dump.rdb", work / "dump.rdb")
        server = redis_factory("craft", dir=work)
        client = server.client()
        client.delete(*[f"key:{i}" for i in range(100)])
        client.save()
        server.stop()
        shutil.copy(work / "dump.rdb", staging / "redis" / "dump.rdb")

    sid = craft_snapshot(w, tmp_path, drop_keys)
    _, step = run_test(w, snapshot=sid)
    failed = failed_checks(step)
    assert step.status == "failed" and "redis: key counts" in failed, failed
    counts = next(c for c in step.details["checks"] if c["check"] == "redis: key counts")
    assert "the restored dump loaded 4905 key(s) + 0 expired on load, manifest: 5005 keys read" in counts["evidence"]


def test_a_truncated_chroma_segment_file_fails_a_chroma_check(clone_world, tmp_path, live_untouched):
    w = clone_world()

    def truncate(staging: Path, manifest) -> None:
        seg = first_segment_file(staging, "data_level0.bin")
        with open(seg, "r+b") as fh:
            fh.truncate(seg.stat().st_size // 3)

    _, step = run_test(w, snapshot=craft_snapshot(w, tmp_path, truncate))
    failed = failed_checks(step)
    assert step.status == "failed" and any(c.startswith("chroma:") for c in failed), failed


def test_an_overwritten_chroma_segment_file_fails_a_chroma_check(clone_world, tmp_path, live_untouched):
    w = clone_world()

    def overwrite(staging: Path, manifest) -> None:
        seg = first_segment_file(staging, "data_level0.bin")
        seg.write_bytes(bytes(seg.stat().st_size))

    _, step = run_test(w, snapshot=craft_snapshot(w, tmp_path, overwrite))
    failed = failed_checks(step)
    assert step.status == "failed" and any(c.startswith("chroma:") for c in failed), failed


def scramble_vectors(seg: Path) -> None:
    """Overwrite every stored vector of an HNSW segment with noise, keeping the graph, labels and
    file size (Chroma's hnswlib header.bin: an int version, then size_t fields; size_data_per_element,
    label_offset and offsetData sit at bytes 28/36/44)."""
    import struct

    import numpy as np

    size, label_off, data_off = struct.unpack_from("<QQQ", (seg.parent / "header.bin").read_bytes(), 28)
    data = bytearray(seg.read_bytes())
    rng = np.random.default_rng(3)
    for start in range(0, len(data) - size + 1, size):
        n = (label_off - data_off) // 4
        data[start + data_off:start + label_off] = rng.normal(size=n).astype(np.float32).tobytes()
    seg.write_bytes(bytes(data))


def test_scrambled_vectors_with_intact_counts_and_ids_fail_the_top_k_comparison(clone_world, tmp_path, live_untouched):
    w = clone_world()
    _, step = run_test(w, snapshot=craft_snapshot(w, tmp_path, lambda staging, _m: scramble_vectors(
        first_segment_file(staging, "data_level0.bin"))), selfcheck=40)
    failed = failed_checks(step)
    assert step.status == "failed", failed
    assert any(c.startswith("chroma: ") and ": probe top-k overlap" in c for c in failed), failed
    passed = {c["check"] for c in step.details["checks"] if c["ok"]}
    assert {f"chroma: {n}: {f} matches" for n in ("docs", "faq") for f in ("count", "ids_digest")} <= passed, sorted(passed)


def test_a_corrupted_sqlite_file_fails_the_integrity_check(clone_world, tmp_path, live_untouched):
    w = clone_world()

    def corrupt(staging: Path, manifest) -> None:
        db = staging / "chroma" / "chroma.sqlite3"
        data = bytearray(db.read_bytes())
        for i in range(4096 * 3, 4096 * 3 + 2000):  # inside a b-tree page, past the header
            data[i] = 0x5A
        db.write_bytes(bytes(data))

    _, step = run_test(w, snapshot=craft_snapshot(w, tmp_path, corrupt))
    failed = failed_checks(step)
    assert step.status == "failed" and any(c.startswith("chroma:") for c in failed), failed


def test_a_manifest_whose_dimension_differs_fails_the_dimension_check(clone_world, tmp_path, live_untouched):
    w = clone_world()

    def redimension(staging: Path, manifest) -> None:
        rec = next(r for r in manifest["sources"] if r["kind"] == "chroma")
        rec["collections"][0]["dimension"] = 64
        (staging / "ragops-manifest.json").write_text(json.dumps(manifest))

    _, step = run_test(w, snapshot=craft_snapshot(w, tmp_path, redimension))
    failed = failed_checks(step)
    assert "chroma: docs: dimension matches" in failed, failed
    assert "compatibility with live collections" in failed, failed


def test_a_missing_snapshot_id_is_one_clear_failed_check(world, live_untouched):
    result, step = run_test(world, snapshot="deadbeef")
    assert step.status == "failed" and step.details["verify_failed"]
    assert "no snapshot with id 'deadbeef'" in step.message and "backup.snapshots" in step.message


def test_keep_leaves_the_scratch_dir_but_stops_the_throwaway_redis(clone_world, live_untouched):
    w = clone_world()
    _, step = run_test(w, keep=True, selfcheck=0, read_data_subset=None)
    scratch = Path(step.details["scratch_dir"])
    assert step.status == "ok" and scratch.is_dir()
    assert (scratch / "redis" / "redis.log").is_file(), "the throwaway server ran in the scratch dir"
    procs = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(scratch) not in procs, "the throwaway redis-server is stopped"
    shutil.rmtree(scratch)


def make_remote_env(kind: str, world, tmp_path: Path, sshd, s3_server, monkeypatch):
    from ragops.backup import restic
    from ragops.backup.policy import load_host_policy

    if kind == "sftp":
        repo_dir = tmp_path / "sftp-repo"
        repository = {"url": f"sftp:root@127.0.0.2:{repo_dir}", "sftp_command": sshd.sftp_command("127.0.0.2")}
    else:
        monkeypatch.setenv("RAGOPS_TEST_S3_KEY", s3_server.access_key)
        monkeypatch.setenv("RAGOPS_TEST_S3_SECRET", s3_server.secret_key)
        repository = {"url": f"s3:{s3_server.endpoint}/restore-{tmp_path.name[-8:].lower().replace('_', '-')}",
                      "s3": {"access_key_env": "RAGOPS_TEST_S3_KEY", "secret_key_env": "RAGOPS_TEST_S3_SECRET"}}
    pw = tmp_path / "pw"
    pw.write_text("remote repo password\n")
    env = make_backup_env(tmp_path, redis=world.redis, chroma_dir=world.chroma, init=False, policy_extra={
        "repository": {**repository, "password_file": str(pw), "cache_dir": str(tmp_path / "cache")}})
    target = env.target()
    restic.init(target, restic.make_repo(target, load_host_policy(target.host).repository))
    return env


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sftp", "s3"])
def test_a_snapshot_in_a_remote_repository_restores_and_passes(kind, world, tmp_path, sshd, request, monkeypatch):

    s3 = request.getfixturevalue("s3_server") if kind == "s3" else None
    env = make_remote_env(kind, world, tmp_path, sshd, s3, monkeypatch)
    w = World(env=env, redis=world.redis, chroma=world.chroma, snapshot_id=run_backup(env))
    before = hash_tree(world.chroma, world.redis.dir)  # after the backup (its BGSAVE writes the live dump)
    _, step = run_test(w, selfcheck=10)
    assert step.status == "ok", step.message
    assert hash_tree(world.chroma, world.redis.dir) == before, "the restore test touched live data"
    assert step.details["repository"].startswith(f"{kind}:")


def test_a_snapshot_taken_between_lookup_and_restore_fails_the_restore_check(clone_world, tmp_path, live_untouched):
    """The lookup and `restic restore latest` run side by side; if they disagree (a backup landed
    in between, simulated by a lookup that still names the older snapshot) nothing is verified."""
    from concurrent.futures import Future

    from ragops.backup import restic
    from ragops.backup.policy import load_host_policy
    from ragops.restore import plan
    from ragops.restore.run import run_restore

    w = clone_world()
    newer = craft_snapshot(w, tmp_path, lambda staging, manifest: None)
    target = w.env.target()
    policy = load_host_policy(target.host)
    repo = restic.make_repo(target, policy.repository)
    older = next(s for s in restic.snapshots(target, repo) if s.matches(w.snapshot_id))
    listed: Future[tuple[restic.Snapshot, list[restic.Snapshot]]] = Future()
    listed.set_result((older, [older]))
    layout = plan.Layout(str(tmp_path / "scratch"))
    snap, check = run_restore(target, repo, policy, "local", "latest", layout, listed)
    assert snap is older and not check.ok
    assert f"restic restored snapshot {newer[:8]}" in check.evidence and "run the restore test again" in check.evidence
