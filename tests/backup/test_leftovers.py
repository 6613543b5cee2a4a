"""Leftovers of dead backup runs: real staging dirs, real owner processes, a real bind mount, the real
host lock; and a real `invoke backup` killed with SIGKILL at three points (see test_leftovers_e2e.py)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from ragops.backup import leftovers
from ragops.backup.sources import OWNER_NAME, RUN_DIR, make_run_dir
from ragops.lock import HostLock


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def make_run(staging: Path, owner: dict | None, *, age_s: float = 0.0, rand: str | None = None) -> Path:
    run = Path(make_run_dir(str(staging), now=time.time() - age_s, rand=rand))
    (run / "chroma").mkdir(parents=True)
    (run / "chroma" / "chroma.sqlite3").write_bytes(b"\0" * 65536)
    if owner is not None:
        (run / OWNER_NAME).write_text(json.dumps(owner))
    if age_s:
        os.utime(run, (time.time() - age_s, time.time() - age_s))
    return run


@pytest.fixture
def env(backup_env):
    return backup_env(init=False)


def test_the_run_dir_name_pattern_rejects_a_trailing_newline_and_other_names() -> None:
    assert RUN_DIR.match("run-20260101T000000Z-abcdef")
    for bad in ("run-20260101T000000Z-abcdef\n", "run-20260101T000000Z-abcdeff", "run-x", "xrun-20260101T000000Z-abcdef"):
        assert not RUN_DIR.match(bad), bad


def test_under_the_host_lock_dead_runs_are_removed_and_everything_else_is_left_alone(env, tmp_path, capsys):
    target = env.target()
    staging = env.staging
    staging.mkdir(parents=True)
    mine = leftovers.make_owner(target, "some-earlier-run")
    dead = make_run(staging, {**mine, "pid": dead_pid(), "pid_start": None}, rand="aaaaa1")
    reused = make_run(staging, {**mine, "pid_start": "1"}, rand="aaaaa2")  # our pid, but another process's start
    unmarked_old = make_run(staging, None, age_s=3600, rand="aaaaa3")
    other_controller = make_run(staging, {**mine, "origin": "elsewhere", "pid": 1}, rand="aaaaa4")
    live = make_run(staging, mine, rand="bbbbb1")  # this very process: alive
    unmarked_new = make_run(staging, None, rand="bbbbb2")
    foreign_lock = make_run(staging, {**mine, "origin": "elsewhere", "lock_path": "/run/other.lock"}, rand="bbbbb3")
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    link = staging / "run-20200101T000000Z-ccccc1"
    link.symlink_to(outside)
    not_ours = staging / "run-something-else"
    not_ours.mkdir()
    with_mount = make_run(staging, {**mine, "pid": dead_pid()}, rand="ccccc2")
    (with_mount / "mnt").mkdir()
    subprocess.run(["mount", "--bind", str(outside), str(with_mount / "mnt")], check=True)
    try:
        with HostLock(target, "backup"):
            holder = leftovers.read_lock_holder(target)
            report = leftovers.run_remove_leftovers(target, str(staging), holder)
    finally:
        subprocess.run(["umount", str(with_mount / "mnt")], check=False)
    removed = sorted(Path(r["path"]).name for r in report["removed"])
    assert removed == sorted(p.name for p in (dead, reused, unmarked_old, other_controller))
    assert all(not p.exists() for p in (dead, reused, unmarked_old, other_controller))
    assert all(p.is_dir() for p in (live, unmarked_new, foreign_lock, with_mount, not_ours))
    assert link.is_symlink() and (outside / "keep.txt").read_text() == "keep"
    kept = {Path(k["path"]).name: k["why"] for k in report["kept"]}
    assert "owned by live process" in kept[live.name] and "a symlink" in kept[link.name]
    assert "holds mount point" in kept[with_mount.name] and "under another lock" in kept[foreign_lock.name]
    assert report["bytes"] >= 4 * 65536 and report["failed"] == []
    err = capsys.readouterr().err
    assert f"removing leftover staging dir {dead}" in err and "its run is gone (pid" in err


def test_a_dry_run_lists_the_dead_runs_and_removes_nothing(env):
    staging = env.staging
    staging.mkdir(parents=True)
    dead = make_run(staging, {**leftovers.make_owner(env.target(), "x"), "pid": dead_pid()})
    target = env.target(dry=True)
    report = leftovers.run_remove_leftovers(target, str(staging), leftovers.read_lock_holder(target))
    assert [r["path"] for r in report["would_remove"]] == [str(dead)] and dead.is_dir()
    assert leftovers.make_summary(report, True).startswith("would remove 1 leftover staging dir(s) of dead runs")


def test_without_the_host_lock_nothing_is_judged_or_removed(env):
    staging = env.staging
    staging.mkdir(parents=True)
    dead = make_run(staging, None, age_s=3600)
    target = env.target()
    report = leftovers.run_remove_leftovers(target, str(staging), leftovers.read_lock_holder(target))
    assert "does not hold the host lock" in report["skipped"] and dead.is_dir()
