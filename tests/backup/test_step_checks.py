"""The backup step's post-backup check of the new snapshot (pure: forget's listing decides)."""

import pytest

from ragops.backup.restic import ForgetResult, Snapshot
from ragops.backup.step import check_new_snapshot_kept
from ragops.config import load_config
from ragops.errors import StepError
from ragops.seam import Target


def _snap(sid: str) -> Snapshot:
    return Snapshot(id=sid, short_id=sid[:8], time="2026-11-28T00:00:00", hostname="local", paths=["/x"])


class _NoRepository:
    """Any restic call on this repository fails the test: forget's listing must suffice."""

    def describe(self) -> str:
        return "the test repository"

    def __getattr__(self, name: str):  # noqa: ANN204
        raise AssertionError(f"restic was asked again (repo.{name})")


def test_a_new_snapshot_in_forgets_keep_list_needs_no_further_restic_call():
    target = Target(host=load_config().hosts["local"])
    gone = ForgetResult(keep=[_snap("abcdef123456")], remove=[], dry=False)
    assert check_new_snapshot_kept(target, _NoRepository(), gone, "abcdef12") is None  # type: ignore[arg-type]


def test_a_new_snapshot_missing_from_forgets_listing_is_looked_up_and_fails_when_absent(monkeypatch):
    target = Target(host=load_config().hosts["local"])
    asked: list[str] = []
    monkeypatch.setattr("ragops.backup.restic.verify_present", lambda t, repo, sid: asked.append(sid))
    gone = ForgetResult(keep=[_snap("0000aaaa")], remove=[], dry=False)
    with pytest.raises(StepError, match="is not listed"):
        check_new_snapshot_kept(target, _NoRepository(), gone, "abcdef12")  # type: ignore[arg-type]
    assert asked == ["abcdef12"]


def test_retention_that_removes_the_snapshot_just_taken_fails_the_step():
    target = Target(host=load_config().hosts["local"])
    gone = ForgetResult(keep=[_snap("0000aaaa")], remove=[_snap("abcdef123456")], dry=False)
    with pytest.raises(StepError, match="retention policy removed snapshot abcdef12"):
        check_new_snapshot_kept(target, None, gone, "abcdef12")  # type: ignore[arg-type]


def test_without_forget_a_local_repository_shows_the_new_snapshot_by_its_file(tmp_path):
    """A real local restic repository: its snapshots/ dir holds one file per snapshot, named by the
    full id; restic 0.14 reports the short id, so the check matches the prefix."""
    import subprocess

    from ragops.backup.repository import Repo
    from ragops.backup.step import check_snapshot_written

    repo_dir, pw = tmp_path / "repo", tmp_path / "pw"
    pw.write_text("pw\n")
    base = ["restic", "-r", str(repo_dir), "--password-file", str(pw), "-q"]
    subprocess.run([*base, "init"], check=True, capture_output=True)
    subprocess.run([*base, "backup", str(pw)], check=True, capture_output=True)
    [snap_file] = list((repo_dir / "snapshots").iterdir())
    target = Target(host=load_config().hosts["local"])
    repo = Repo(url=str(repo_dir), password_file=str(pw))
    check_snapshot_written(target, repo, snap_file.name[:8])
    with pytest.raises(StepError, match="snapshot 0badc0de is not listed"):
        check_snapshot_written(target, repo, "0badc0de")  # not a file: restic is asked, and it has none
