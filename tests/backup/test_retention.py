"""When the backup step may skip `restic forget` (pure)."""

from __future__ import annotations

from ragops.backup.policy import RetentionSettings
from ragops.backup.restic import Snapshot
from ragops.backup.retention import make_forget_skip_reason


def snap(i: int, host: str = "web1", tags: tuple[str, ...] = ("ragops", "nightly"), path: str = "/st/run-1") -> Snapshot:
    return Snapshot(id=f"{i:064x}", short_id=f"{i:08x}", time="", hostname=host, paths=[path], tags=list(tags))


def test_groups_no_larger_than_keep_last_need_no_forget() -> None:
    reason = make_forget_skip_reason(RetentionSettings(keep_last=3), [snap(1), snap(2), snap(3)])
    assert reason is not None and "keep_last 3" in reason


def test_one_group_larger_than_keep_last_leaves_the_decision_to_restic() -> None:
    assert make_forget_skip_reason(RetentionSettings(keep_last=2), [snap(1), snap(2), snap(3)]) is None


def test_a_larger_group_under_another_tag_set_also_needs_restic() -> None:
    snaps = [snap(1), snap(2, tags=("ragops", "nightly", "pre-upgrade")), snap(3, tags=("ragops", "nightly", "pre-upgrade"))]
    assert make_forget_skip_reason(RetentionSettings(keep_last=1), snaps) is None
    assert make_forget_skip_reason(RetentionSettings(keep_last=2), snaps) is not None


def test_grouping_by_host_and_tags_ignores_changing_staging_paths() -> None:
    snaps = [snap(i, path=f"/st/run-{i}") for i in range(3)]
    assert make_forget_skip_reason(RetentionSettings(keep_last=2), snaps) is None
    assert make_forget_skip_reason(RetentionSettings(keep_last=2, group_by="host,paths"), snaps) is not None


def test_calendar_rules_without_keep_last_are_always_left_to_restic() -> None:
    assert make_forget_skip_reason(RetentionSettings(keep_daily=7, keep_weekly=4), [snap(1)]) is None
