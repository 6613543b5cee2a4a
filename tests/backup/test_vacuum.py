"""chroma.vacuum on a real ChromaDB dir: refuses without a fresh backup, holds and resumes the writer."""

from __future__ import annotations

import pytest

from ragops.backup.step import run_backup
from ragops.backup.vacuum import FRESH_S, parse_snapshot_time, run_vacuum
from ragops.errors import ConfigError, StepError


def test_restic_times_with_nanoseconds_and_offsets_parse():
    assert parse_snapshot_time("2026-11-28T21:00:00.123456789Z") == pytest.approx(1795899600.123456, abs=1e-3)
    assert parse_snapshot_time("2026-11-28T22:00:00+01:00") == 1795899600.0


def test_vacuum_refuses_without_a_fresh_backup_then_runs_with_the_writer_paused(copy_chroma, backup_env, tmp_path):
    chroma_dir = copy_chroma()
    log = tmp_path / "writer.log"
    env = backup_env(chroma_dir=chroma_dir, strategy="pause",
                     chroma_extra={"pause": {"pre": f"echo paused >> {log}", "post": f"echo resumed >> {log}"}})
    with pytest.raises(StepError, match="without a backup younger than 26 h \\(none\\)"):
        run_vacuum(env.target())
    assert not log.exists(), "the writer is not touched when the vacuum is refused"
    assert run_backup(env.target()).status == "ok"
    log.unlink()
    result = run_vacuum(env.target())
    assert result.status == "ok" and "->" in result.message and result.details["bytes_before"] > 0
    assert result.details["tool"] in ("chroma vacuum", "sqlite VACUUM") and "h old" in result.details["backup_check"]
    assert log.read_text().split() == ["paused", "resumed"]
    assert FRESH_S == 26 * 3600


def test_vacuum_refuses_the_live_strategy_and_dry_run_changes_nothing(copy_chroma, backup_env, tmp_path):
    chroma_dir = copy_chroma()
    env = backup_env(chroma_dir=chroma_dir, strategy="live")
    with pytest.raises(ConfigError, match="needs the writer stopped or paused"):
        run_vacuum(env.target(), backup_check=False)
    log = tmp_path / "w.log"
    env2 = backup_env(chroma_dir=chroma_dir, strategy="stop", init=False,
                      chroma_extra={"stop": {"command": f"echo stop >> {log}", "start_command": f"echo start >> {log}"}})
    before = (chroma_dir / "chroma.sqlite3").stat().st_mtime_ns
    result = run_vacuum(env2.target(dry=True), backup_check=False)
    assert result.message.startswith("would vacuum") and not log.exists()
    assert (chroma_dir / "chroma.sqlite3").stat().st_mtime_ns == before
