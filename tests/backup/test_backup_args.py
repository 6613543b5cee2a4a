"""restic backup arguments (pure planner)."""

import pytest

from ragops.backup.restic import make_backup_args
from ragops.errors import ConfigError


def test_backup_args_name_the_parent_snapshot_so_unchanged_files_are_not_reread():
    args = make_backup_args(["/var/tmp/stage/run-1", "/etc/rag"], tags=["ragops"], host_tag="prod1", parent="abc123")
    assert args[args.index("--parent") + 1] == "abc123"
    assert args[-2:] == ["/var/tmp/stage/run-1", "/etc/rag"]


def test_backup_args_without_a_previous_snapshot_have_no_parent():
    assert "--parent" not in make_backup_args(["/srv/x"], tags=[], parent=None)


def test_backup_args_refuse_relative_paths():
    with pytest.raises(ConfigError, match="must be absolute"):
        make_backup_args(["srv/x"], tags=[])


def test_backup_progress_shows_restic_status_lines_and_ignores_the_rest(capsys):
    from ragops.backup.restic import make_progress

    show = make_progress("prod1", every_s=0)
    show('{"message_type":"status","percent_done":0.5,"files_done":5,"total_files":10,"bytes_done":50,"total_bytes":100}')
    show("not json at all")
    show('{"message_type":"summary","snapshot_id":"x"}')
    err = capsys.readouterr().err
    assert "backup 50%: 5/10 files, 50 B/100 B" in err
    assert err.count("backup ") == 1


def test_a_progress_line_shows_percent_files_bytes_and_the_eta_restic_reports():
    from ragops.backup.restic_backup import make_progress_line

    line = make_progress_line({"message_type": "status", "percent_done": 0.4213, "files_done": 12, "total_files": 40,
                               "bytes_done": 3 << 30, "total_bytes": 8 << 30, "seconds_remaining": 125})
    assert line == "backup 42%: 12/40 files, 3.0 GiB/8.0 GiB, ETA 2m05s"
    assert make_progress_line({"percent_done": 0, "files_done": 0}) == "backup 0%: 0/? files, 0 B/?"
