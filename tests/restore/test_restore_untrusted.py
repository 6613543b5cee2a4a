"""A snapshot is untrusted input (issue 10 item 3): real restic snapshots crafted with links, FIFOs and
hostile manifests; restore-test and restore must refuse them before anything opens them, and leave
every file outside their scratch/target dir byte-for-byte unchanged."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from ragops.restore.guard import TREE_CHECK
from tests.fixtures.restore_helpers import craft_snapshot, failed_checks, hash_tree, run_test, staged_copy


def make_victim(w, tmp_path: Path) -> Path:
    """A tree outside the scratch dir that a hostile snapshot points at: a copy of the live Chroma
    dir and of the live Redis dump (so ChromaDB or redis-server would happily open them)."""
    victim = tmp_path / "victim"
    shutil.copytree(w.chroma, victim / "chroma")
    shutil.copy(Path(w.redis.dir) / "dump.rdb", victim / "dump.rdb")
    return victim


def link_chroma_to(victim: Path):
    """A ``craft_snapshot`` mutation: the staged Chroma copy becomes a symlink to the victim's copy."""

    def link_chroma(staging: Path, manifest) -> None:
        copy = staged_copy(manifest, "chroma")
        shutil.rmtree(copy)
        os.symlink(victim / "chroma", copy)

    return link_chroma


def test_a_chroma_entry_symlinked_out_of_the_scratch_dir_is_refused_and_the_target_never_opened(
        clone_world, tmp_path, live_untouched):
    w = clone_world()
    victim = make_victim(w, tmp_path)

    sid = craft_snapshot(w, tmp_path, link_chroma_to(victim))
    before = hash_tree(victim)
    _, step = run_test(w, snapshot=sid)
    assert hash_tree(victim) == before, "restore-test modified the tree the symlink pointed at"
    assert step.status == "failed" and TREE_CHECK in failed_checks(step), failed_checks(step)
    tree = next(c for c in step.details["checks"] if c["check"] == TREE_CHECK)
    assert "refused" in tree["evidence"] and "symlink to" in tree["evidence"] and "/chroma" in tree["evidence"], tree
    opened = [c["check"] for c in step.details["checks"] if c["check"].startswith(("chroma:", "redis:", "files:"))]
    assert opened == [], f"nothing may be opened after the tree was refused: {opened}"
    assert step.details["verify_failed"] is True


@pytest.mark.parametrize("kind", ["symlink", "hard link", "FIFO"])
def test_a_redis_dump_that_is_a_link_or_a_fifo_is_refused_before_redis_or_the_hashing_open_it(
        clone_world, tmp_path, live_untouched, kind):
    w = clone_world()
    victim = make_victim(w, tmp_path)

    def swap_dump(staging: Path, manifest) -> None:
        dump = staging / "redis" / "dump.rdb"
        dump.unlink()
        if kind == "symlink":
            os.symlink(victim / "dump.rdb", dump)
        elif kind == "hard link":
            shutil.copy(victim / "dump.rdb", staging / "redis" / "other.rdb")
            os.link(staging / "redis" / "other.rdb", dump)
        else:
            os.mkfifo(dump)

    sid = craft_snapshot(w, tmp_path, swap_dump)
    before = hash_tree(victim)
    _, step = run_test(w, snapshot=sid)
    assert hash_tree(victim) == before
    tree = next(c for c in step.details["checks"] if c["check"] == TREE_CHECK)
    assert not tree["ok"] and kind in tree["evidence"] and "dump.rdb" in tree["evidence"], tree
    assert not any(c["check"].startswith(("redis:", "files:", "chroma:")) for c in step.details["checks"])


def escape_from_redis_dir(tmp_path: Path, base: Path) -> str:
    """An aof_dir that climbs from <scratch>/redis/ to ``tmp_path/escaped`` (cp -a would write there)."""
    redis_dir_depth = len(base.parts) + 1  # base/restore-test-*/redis
    return "../" * redis_dir_depth + str(tmp_path / "escaped").lstrip("/")


HOSTILE = {
    "aof_dir climbing out of the scratch dir": lambda m, tmp, base: next(
        r for r in m["sources"] if r["kind"] == "redis").update(method="aof", aof_dir=escape_from_redis_dir(tmp, base)),
    "chroma path outside the staging dir": lambda m, tmp, base: next(
        r for r in m["sources"] if r["kind"] == "chroma").update(path=str(tmp / "victim" / "chroma")),
    "db_keys of the wrong type": lambda m, tmp, base: next(
        r for r in m["sources"] if r["kind"] == "redis").update(db_keys={"0": "many"}),
    "sources of the wrong type": lambda m, tmp, base: m.update(sources="redis"),
    "a staged file path with '..'": lambda m, tmp, base: m["files"].update(
        {m["staging_dir"] + "/../../etc/passwd": {"sha256": "0" * 64, "bytes": 1}}),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_manifest_is_a_failed_manifest_check_and_steers_no_write(clone_world, tmp_path, live_untouched, case):
    w = clone_world()
    victim = make_victim(w, tmp_path)
    base = w.env.root / "staging-restore-test"

    def hostile(staging: Path, manifest) -> None:
        HOSTILE[case](manifest, tmp_path, base)
        (staging / "ragops-manifest.json").write_text(json.dumps(manifest))

    sid = craft_snapshot(w, tmp_path, hostile)
    before = hash_tree(victim)
    _, step = run_test(w, snapshot=sid)
    assert hash_tree(victim) == before
    assert not (tmp_path / "escaped").exists(), "the manifest steered a copy out of the scratch dir"
    assert step.status == "failed" and "unexpected error" not in step.message, step.message
    manifest = next(c for c in step.details["checks"] if c["check"] == "manifest")
    assert not manifest["ok"] and manifest["evidence"].startswith("manifest:"), manifest
    assert not any(c["check"].startswith(("redis:", "files:", "chroma:")) for c in step.details["checks"])


def test_restore_refuses_a_snapshot_with_a_symlink_before_writing_into_the_target(clone_world, tmp_path, live_untouched):
    from ragops.restore.real_restore import RestoreOptions, make_restore_step
    from ragops.runner import run_host

    w = clone_world()
    victim = make_victim(w, tmp_path)

    sid = craft_snapshot(w, tmp_path, link_chroma_to(victim))
    dest = tmp_path / "restore-target"
    before = hash_tree(victim)
    result = run_host(w.env.target(), "restore", [make_restore_step(RestoreOptions(target_dir=str(dest), snapshot=sid))])
    step = result.steps[0]
    assert step.status == "failed" and "refusing to restore snapshot" in step.message, step.message
    assert "symlink" in step.message and "nothing was written" in step.message
    assert not dest.exists() or not any(dest.iterdir()), "restore wrote a hostile snapshot into the target"
    assert hash_tree(victim) == before


def craft_with_inplace_dir(w, tmp_path: Path, make_dir) -> str:
    """A snapshot of the original staging paths plus an in-place directory built by ``make_dir``
    (what a `paths:` source backs up where it lies, e.g. a Kubernetes ConfigMap mount)."""
    inplace = tmp_path / "configmap"
    inplace.mkdir()
    make_dir(inplace)
    try:
        return craft_snapshot(w, tmp_path, lambda staging, manifest: None, extra_paths=[inplace])
    finally:
        shutil.rmtree(inplace)


def configmap_links(d: Path) -> None:
    """The layout kubelet gives a ConfigMap volume: files are relative links through `..data`."""
    (d / "..2026_12_01_00_00_00.1").mkdir()
    (d / "..2026_12_01_00_00_00.1" / "default.yaml").write_text("retention: {keep_last: 1}\n")
    os.symlink("..2026_12_01_00_00_00.1", d / "..data")
    os.symlink("..data/default.yaml", d / "default.yaml")


def test_relative_links_that_stay_inside_an_in_place_path_pass_like_a_configmap_mount(clone_world, tmp_path, live_untouched):
    w = clone_world()
    sid = craft_with_inplace_dir(w, tmp_path, configmap_links)
    _, step = run_test(w, snapshot=sid)
    tree = next(c for c in step.details["checks"] if c["check"] == TREE_CHECK)
    assert tree["ok"], tree
    assert step.status == "ok", failed_checks(step)


@pytest.mark.parametrize("target", ["../../../../../../etc/passwd", "/etc/passwd"])
def test_a_link_in_an_in_place_path_that_leaves_the_restored_tree_is_refused(clone_world, tmp_path, live_untouched, target):
    w = clone_world()

    def escaping(d: Path) -> None:
        configmap_links(d)
        os.symlink(target, d / "escape.yaml")

    sid = craft_with_inplace_dir(w, tmp_path, escaping)
    _, step = run_test(w, snapshot=sid)
    tree = next(c for c in step.details["checks"] if c["check"] == TREE_CHECK)
    assert not tree["ok"] and "escape.yaml" in tree["evidence"] and "default.yaml" not in tree["evidence"], tree
    assert not any(c["check"].startswith(("redis:", "files:", "chroma:")) for c in step.details["checks"])
