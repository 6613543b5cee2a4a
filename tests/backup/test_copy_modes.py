"""The Chroma copy modes on real filesystems: btrfs snapshots, XFS reflinks, the ext4 mirror.

Real parts: btrfs and XFS on loop devices (``loop_fs``), a ChromaDB dir, restic. What is asserted is
behaviour, not timing: the snapshot is gone after the backup (also when restic fails), the writer
hold of a snapshot is short, an unchanged second backup makes restic read no file content (its
summary: every Chroma file unmodified), reflinks share extents (the filesystem barely grows), the
mirror rewrites only the changed files and keeps the others' inodes, and every snapshot restores
to a store that verifies against its manifest.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from ragops.backup.step import run_backup
from ragops.errors import RagopsError
from tests.fixtures.backup_helpers import assert_restored_sources_valid, run_dirs

STOP = {"stop": {"command": "true", "start_command": "true"}}


def place_chroma(fs, chroma_dataset: Path) -> Path:
    """The dataset as the live data dir on ``fs``: a subvolume on btrfs, a plain dir elsewhere."""
    data = fs.subvolume("chroma") if fs.kind == "btrfs" else fs.mount / "chroma"
    shutil.copytree(chroma_dataset, data, dirs_exist_ok=True)
    return data


def chroma_files(path: Path) -> int:
    return sum(1 for p in path.rglob("*") if p.is_file())


def make_env(backup_env, data: Path, staging: Path, **chroma):
    return backup_env(chroma_dir=data, strategy="stop", staging=staging, chroma_extra={**STOP, **chroma})


def test_a_btrfs_snapshot_is_the_copy_held_briefly_and_dropped_after_the_backup(loop_fs, chroma_dataset, backup_env, tmp_path):
    fs = loop_fs("btrfs")
    data = place_chroma(fs, chroma_dataset)
    env = make_env(backup_env, data, fs.mount / "staging")
    result = run_backup(env.target())
    assert result.status == "ok", result.message
    rec = next(s for s in result.details["sources"] if s["kind"] == "chroma")
    assert rec["copy_mode"] == "snapshot" and rec["path"] == str(fs.mount / "staging" / "stable" / "chroma")
    assert rec["hold_s"] < 1.0 and rec["described_by"] == "sqlite"
    assert not (fs.mount / "staging" / "stable" / "chroma").exists(), "the snapshot is deleted after the backup"
    assert run_dirs(fs.mount / "staging") == []
    restored = env.restore(env.snapshots()[-1]["id"], tmp_path / "restored")
    assert_restored_sources_valid(env.target(), restored, env.manifest(restored), tmp_path)


def test_a_snapshot_is_dropped_when_restic_fails(loop_fs, chroma_dataset, backup_env, tmp_path):
    fs = loop_fs("btrfs")
    data = place_chroma(fs, chroma_dataset)
    env = make_env(backup_env, data, fs.mount / "staging")
    failing = tmp_path / "restic-fails"
    failing.write_text(f'#!/bin/sh\nfor a; do [ "$a" = backup ] && exit 1; done\nexec {shutil.which("restic")} "$@"\n')
    failing.chmod(0o755)
    target = env.target()
    object.__setattr__(target.settings.backup, "restic", str(failing))
    with pytest.raises(RagopsError, match="restic backup failed"):
        run_backup(target)
    assert not (fs.mount / "staging" / "stable" / "chroma").exists()
    assert subprocess.run(["btrfs", "subvolume", "list", str(fs.mount)], capture_output=True, text=True,
                          check=True).stdout.split()[-1:] == ["chroma"], "only the data subvolume is left"


@pytest.mark.parametrize("kind, mode", [("btrfs", "snapshot"), ("xfs", "reflink"), ("ext4", "mirror")])
def test_an_unchanged_second_backup_makes_restic_read_no_chroma_file(kind, mode, loop_fs, chroma_dataset, backup_env, tmp_path):
    if kind == "ext4":  # /tmp here: the mirror, updated in place
        data, staging = tmp_path / "chroma", tmp_path / "staging"
        shutil.copytree(chroma_dataset, data)
    else:
        fs = loop_fs(kind)
        data, staging = place_chroma(fs, chroma_dataset), fs.mount / "staging"
    env = make_env(backup_env, data, staging)
    first = run_backup(env.target())
    assert first.status == "ok", first.message
    rec = next(s for s in first.details["sources"] if s["kind"] == "chroma")
    assert rec["copy_mode"] == mode
    second = run_backup(env.target())
    assert second.status == "ok", second.message
    files = chroma_files(data)
    # the run dir (the manifest) has a new name every run; every Chroma file is at its stable path, unchanged
    assert second.details["files_unmodified"] == files, second.details
    assert (second.details["files_new"], second.details["files_changed"]) == (1, 0), second.details
    again = next(s for s in second.details["sources"] if s["kind"] == "chroma")
    assert not rec["record_cached"] and again["record_cached"], "the unchanged copy is not described again"
    assert again["collections"] == rec["collections"]


def test_reflinks_share_extents_so_the_filesystem_barely_grows(loop_fs, chroma_dataset, backup_env):
    fs = loop_fs("xfs")
    data = place_chroma(fs, chroma_dataset)
    size = sum(p.stat().st_size for p in data.rglob("*") if p.is_file())
    env = make_env(backup_env, data, fs.mount / "staging")  # the restic repo is on another filesystem
    subprocess.run(["sync"], check=True)
    before = fs.used_bytes()
    result = run_backup(env.target())
    assert result.status == "ok", result.message
    subprocess.run(["sync"], check=True)
    grown = fs.used_bytes() - before
    assert (fs.mount / "staging" / "stable" / "chroma" / "chroma.sqlite3").is_file()
    assert grown < size * 0.2, f"the reflink mirror took {grown} bytes for {size} bytes of data"


def test_the_mirror_rewrites_only_changed_files_and_keeps_the_others_inodes(chroma_dataset, backup_env, tmp_path):
    data = tmp_path / "chroma"
    shutil.copytree(chroma_dataset, data)
    env = make_env(backup_env, data, tmp_path / "staging", copy_mode="mirror")
    assert run_backup(env.target()).status == "ok"
    mirror = tmp_path / "staging" / "stable" / "chroma"
    inodes = {p.relative_to(mirror): p.stat().st_ino for p in mirror.rglob("*") if p.is_file()}
    segment = next(p for p in data.rglob("header.bin"))
    segment.write_bytes(segment.read_bytes())  # same bytes, new mtime: copied again, block by block
    extra = data / segment.parent.name / "extra.bin"
    extra.write_bytes(b"x" * 3000)
    result = run_backup(env.target())
    rec = next(s for s in result.details["sources"] if s["kind"] == "chroma")
    assert rec["copy_stats"]["changed"] == 2 and rec["copy_stats"]["bytes_written"] == 3000, rec["copy_stats"]
    assert rec["record_cached"] is False, "a changed copy is described again"
    now = {p.relative_to(mirror): p.stat().st_ino for p in mirror.rglob("*") if p.is_file()}
    assert all(now[k] == v for k, v in inodes.items()), "every file keeps its inode (in-place updates)"
    extra.unlink()
    assert run_backup(env.target()).status == "ok"
    assert not (mirror / segment.parent.name / "extra.bin").exists(), "a file gone from the store leaves the mirror"


def test_with_a_server_url_the_probes_top_k_come_from_the_loaded_index_and_verify_after_restore(
        chroma_dataset, backup_env, tmp_path):
    """A real ``chroma run`` serves the live dir; the held copy is described from sqlite and the
    probes' top-k ids are asked from the server (HTTP API v2), then a restore verifies them."""
    from tests.fixtures import services

    data = tmp_path / "chroma"
    shutil.copytree(chroma_dataset, data)
    server = services.start_chroma_server(data, tmp_path / "chroma-server.log")
    try:
        env = make_env(backup_env, data, tmp_path / "staging", copy_mode="mirror", server_url=server.url, probe_k=5)
        result = run_backup(env.target())
        assert result.status == "ok", result.message
    finally:
        server.stop()
    restored = env.restore(env.snapshots()[-1]["id"], tmp_path / "restored")
    manifest = env.manifest(restored)
    rec = next(s for s in manifest["sources"] if s["kind"] == "chroma")
    assert rec["described_by"] == "sqlite"
    for col in rec["collections"]:
        assert col["probes_from"] == "server" and len(col["probes"]) == 5
        assert all(len(p["top_k"]) == 5 and p["top_k"][0] == p["id"] for p in col["probes"]), col["probes"]
    assert_restored_sources_valid(env.target(), restored, manifest, tmp_path)


def test_sigterm_while_restic_reads_a_snapshot_drops_the_snapshot_and_exits_130(loop_fs, chroma_dataset, backup_env, tmp_path):
    import os
    import signal
    import time

    import yaml

    from tests.fixtures.fleet_helpers import start_invoke

    fs = loop_fs("btrfs")
    data = place_chroma(fs, chroma_dataset)
    env = make_env(backup_env, data, fs.mount / "staging")
    started = tmp_path / "restic-started"
    slow = tmp_path / "restic-slow"
    slow.write_text(f'#!/bin/sh\nfor a; do [ "$a" = backup ] && {{ touch {started}; sleep 100; }}; done\n'
                    f'exec {shutil.which("restic")} "$@"\n')
    slow.chmod(0o755)
    doc = yaml.safe_load(env.config.read_text())
    doc["defaults"]["backup"]["restic"] = str(slow)
    env.config.write_text(yaml.safe_dump(doc))
    proc = start_invoke("backup", "--config", str(env.config), "--json")
    deadline = time.monotonic() + 60
    while not started.exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    assert fs.is_subvolume(fs.mount / "staging" / "stable" / "chroma"), "restic runs while the snapshot exists"
    os.kill(proc.pid, signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert not (fs.mount / "staging" / "stable" / "chroma").exists(), "the snapshot is dropped after SIGTERM"
    assert run_dirs(fs.mount / "staging") == []
