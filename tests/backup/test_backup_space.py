"""The backup's free-space preflight on a real 64 MiB tmpfs holding BOTH the live Chroma dir and the
staging dir (the production layout of issue #10 item 6), real ChromaDB and real restic."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from ragops.backup.step import run_backup
from ragops.errors import SpaceError, StepError
from ragops.space import run_size_of
from tests.fixtures.backup_helpers import files_below, run_dirs

MIB = 1024 * 1024


@pytest.fixture
def shared_fs(tmpfs_mount: Callable[..., Path]) -> Path:
    return tmpfs_mount("prod-disk")


def tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def test_a_backup_whose_copy_would_cross_the_floor_is_refused_before_anything_is_staged(
        chroma_dataset, backup_env, shared_fs, tmp_path):
    live = shared_fs / "chroma"
    shutil.copytree(chroma_dataset, live)
    staging = shared_fs / "staging"
    paused = tmp_path / "paused.log"
    env = backup_env(chroma_dir=live, staging=staging, strategy="pause",
                     chroma_extra={"pause": {"pre": f"echo pre >> {paused}", "post": f"echo post >> {paused}"}})
    need = run_size_of(env.target(), [str(live)])
    st = os.statvfs(shared_fs)
    floor = st.f_blocks * st.f_frsize // 10
    ballast = (st.f_bavail * st.f_frsize - need - floor // 2) // MIB  # the copy would leave half the floor
    with open(shared_fs / "other-data", "wb") as fh:
        for _ in range(ballast):
            fh.write(os.urandom(MIB))
    before = tree_digest(live)

    with pytest.raises(SpaceError) as info:
        run_backup(env.target())
    text = str(info.value)
    assert text.startswith(f"local: backup staging (chroma {live}) needs ")
    assert f"on {shared_fs} (prod-disk)" in text and "at least 6.4 MiB must stay free" in text
    assert "disk.min_free_percent 10%" in text and "refused before writing anything" in text
    assert not staging.exists(), "not even the staging dir was created"
    assert not paused.exists(), "the writer was never paused"
    assert tree_digest(live) == before and env.snapshots() == []

    (shared_fs / "other-data").unlink()
    result = run_backup(env.target())
    assert result.status == "ok", result.message
    assert result.details["space"]["need_bytes"] == need and len(env.snapshots()) == 1
    assert paused.read_text().split() == ["pre", "post"] and run_dirs(staging) == []
    assert tree_digest(live) == before


def test_the_floor_setting_is_read_from_the_host_config(chroma_dataset, backup_env, shared_fs):
    live = shared_fs / "chroma"
    shutil.copytree(chroma_dataset, live)
    env = backup_env(chroma_dir=live, staging=shared_fs / "staging", settings_extra={"disk": {"min_free_percent": 95}})
    with pytest.raises(SpaceError, match=r"at least 60.8 MiB must stay free \(disk.min_free_percent 95%"):
        run_backup(env.target())
    assert not (shared_fs / "staging").exists()


def test_a_live_chroma_copy_that_runs_out_of_room_mid_copy_fails_at_once_as_a_full_disk(chroma_dataset, backup_env, tmpfs_mount):
    # Bytes enough for the preflight, inodes for the run dir, its marker, chroma.sqlite3 and its journal only:
    # the segment folders' cp hits ENOSPC (find must report it, not leave a torn copy to validation).
    mount = tmpfs_mount("few-inodes", "size=64m,nr_inodes=8")
    env = backup_env(chroma_dir=chroma_dataset, staging=mount / "staging")
    with pytest.raises(StepError, match=r"updating the mirror .* failed: no space left on device") as info:
        run_backup(env.target())
    assert "no valid copy" not in str(info.value) and files_below(mount / "staging") == []
