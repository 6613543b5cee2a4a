"""logrotate: the policy text, and real installs on the local host (validated by the real logrotate)."""

from __future__ import annotations

from ragops.config import HostSettings
from ragops.report import FAILED, OK, SKIPPED
from ragops.steps.logrotate import make_logrotate_text, run_logrotate
from tests.fixtures.fleet_helpers import hash_tree, make_target


def test_policy_rotates_every_log_root_by_size_and_count():
    settings = HostSettings.model_validate({
        "logs": [{"root": "/srv/api/logs/", "patterns": ["*.log", "*.out"]}, {"root": "/srv/worker"}],
        "logrotate": {"size": "20M", "rotate": 5, "compress": False},
    })
    assert make_logrotate_text(settings) == (
        "# Managed by ragops (invoke logrotate): edits here are overwritten.\n"
        "/srv/api/logs/*.log /srv/api/logs/*.out {\n"
        "    size 20M\n    rotate 5\n    missingok\n    notifempty\n    copytruncate\n}\n"
        "\n"
        "/srv/worker/*.log {\n"
        "    size 20M\n    rotate 5\n    missingok\n    notifempty\n    copytruncate\n}\n"
    )


def test_policy_quotes_globs_with_spaces_so_logrotate_keeps_them_whole():
    text = make_logrotate_text(HostSettings.model_validate({"logs": [{"root": "/srv/my logs", "patterns": ["*.log"]}]}))
    assert '"/srv/my logs/*.log" {' in text


def test_policy_follows_the_guide_by_default():
    text = make_logrotate_text(HostSettings.model_validate({"logs": [{"root": "/var/log/rag"}]}))
    assert "size 10M\n    rotate 3\n" in text and "compress\n    delaycompress\n" in text


def _settings(tmp_path):
    return {"logs": [{"root": str(tmp_path / "logs")}], "logrotate": {"path": str(tmp_path / "etc" / "ragops")}}


def test_logrotate_installs_the_policy_once_and_is_idempotent(tmp_path):
    target = make_target(tmp_path, _settings(tmp_path))
    first = run_logrotate(target)
    assert first.status == OK and first.details["changed"] is True and first.details["validated"] is True
    assert first.message.startswith("created ")
    policy = tmp_path / "etc" / "ragops"
    assert policy.read_text() == make_logrotate_text(target.settings)
    assert oct(policy.stat().st_mode & 0o777) == "0o644"
    second = run_logrotate(target)
    assert second.status == OK and second.details["changed"] is False and "up to date" in second.message


def test_logrotate_policy_for_a_root_with_spaces_is_accepted_by_logrotate(tmp_path):
    settings = _settings(tmp_path)
    settings["logs"] = [{"root": str(tmp_path / "my logs")}]
    (tmp_path / "my logs").mkdir()
    (tmp_path / "my logs" / "a b.log").write_text("x")
    result = run_logrotate(make_target(tmp_path, settings))
    assert result.status == OK and result.details["validated"] is True


def test_logrotate_dry_run_shows_the_diff_and_writes_nothing(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "ragops").write_text("# old policy\n")
    before = hash_tree(tmp_path / "etc")
    result = run_logrotate(make_target(tmp_path, _settings(tmp_path), dry=True))
    assert result.status == OK and result.message.startswith("would write ")
    assert "-# old policy" in result.details["diff"] and "+    size 10M" in result.details["diff"]
    assert hash_tree(tmp_path / "etc") == before


def test_logrotate_refuses_a_policy_logrotate_rejects(tmp_path):
    settings = _settings(tmp_path)
    settings["logs"] = [{"root": str(tmp_path / "logs"), "patterns": ["x}.log"]}]
    result = run_logrotate(make_target(tmp_path, settings))
    assert result.status == FAILED and "logrotate rejects the policy" in result.message
    assert not (tmp_path / "etc" / "ragops").exists()


def test_logrotate_without_log_roots_or_disabled_is_skipped(tmp_path):
    assert run_logrotate(make_target(tmp_path, {})).status == SKIPPED
    off = {**_settings(tmp_path), "logrotate": {"enabled": False}}
    assert run_logrotate(make_target(tmp_path, off)).status == SKIPPED
