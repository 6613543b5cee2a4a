"""Backup policies: the shipped files validate, broken ones report every error with file and field."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from ragops.backup.policy import Policy, load_host_policy, load_policies, load_policy, resolve_policies_dir
from ragops.config import load_config
from ragops.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "backup-policies"

MINIMAL = """
repository: {url: /var/backups/r, password_file: /etc/pw}
retention: {keep_daily: 7}
"""


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.yaml"
    path.write_text(text)
    return path


def test_every_shipped_policy_validates() -> None:
    policies = load_policies(SHIPPED)
    assert {"default", "offsite-s3"} <= set(policies)
    default = policies["default"]
    assert (default.retention.keep_daily, default.retention.keep_weekly, default.retention.keep_monthly) == (7, 4, 6)
    assert default.repository.url == "/var/backups/ragops/restic"
    assert default.repository.password_file == "/etc/ragops/restic-password"
    assert default.schedule == "0 3 * * *" and default.check.read_data_subset == "10%"
    offsite = policies["offsite-s3"]
    assert offsite.repository.url.startswith("s3:https://") and offsite.secondary is not None
    assert offsite.secondary.url.startswith("sftp:") and offsite.schedule.split()[1] == "*"


def test_a_broken_policy_reports_every_error_with_its_file_and_field(tmp_path: Path) -> None:
    d = tmp_path / "backup-policies"
    write(d, "good", MINIMAL)
    write(d, "bad", """
repository: {url: relative/dir, password_file: /etc/pw, password_env: PW}
retention: {keep_daily: seven, keep_hourlyy: 3}
schedule: "0 25 * * *"
check: {read_data_subset: "150%"}
sources:
  chroma: {strategy: stop}
  paths: [{path: etc/ragops}]
tags: ["a,b"]
""")
    write(d, "worse", "retention: [1, 2]\n")
    with pytest.raises(ConfigError) as info:
        load_policies(d)
    text = str(info.value)
    bad = f"{d}/bad.yaml"
    for expected in (
        f"{bad}: repository.url: ",
        f"{bad}: retention.keep_daily: must be an integer",
        f"{bad}: retention.keep_hourlyy: unknown field (did you mean 'keep_hourly'?)",
        f"{bad}: schedule: '0 25 * * *': hour 25 is outside 0-23",
        f"{bad}: check.read_data_subset: ",
        f"{bad}: sources.chroma: strategy stop needs a `stop:` section",
        f"{bad}: sources.paths[0].path: must be an absolute path",
        f"{bad}: tags: ",
        f"{d}/worse.yaml: repository: required field is missing",
        f"{d}/worse.yaml: retention: must be a mapping",
    ):
        assert expected in text, f"missing {expected!r} in:\n{text}"
    assert "good.yaml" not in text


def test_repository_needs_exactly_one_password_source(tmp_path: Path) -> None:
    d = tmp_path / "p"
    write(d, "none", "repository: {url: /r}\nretention: {keep_last: 1}\n")
    write(d, "two", "repository: {url: /r, password_file: /a, password_command: cat /a}\nretention: {keep_last: 1}\n")
    with pytest.raises(ConfigError) as info:
        load_policies(d)
    assert f"{d}/none.yaml: repository: set exactly one of password_file, password_command, password_env" in str(info.value)
    assert "(got password_file, password_command)" in str(info.value)


@pytest.mark.parametrize("url", [
    "/var/backups/r", "sftp:backup@vault:/srv/restic", "sftp:backup@vault:2222/srv/restic",
    "s3:http://127.0.0.1:9000/bucket", "s3:https://s3.eu-central-1.amazonaws.com/acme-rag/prod",
    "s3:s3.amazonaws.com/acme-rag", "rest:https://backup.example:8000/rag",
])
def test_repository_urls_of_every_backend_are_accepted(url: str) -> None:
    Policy.model_validate({"repository": {"url": url, "password_file": "/pw"}, "retention": {"keep_last": 1}})


@pytest.mark.parametrize("url, message", [
    ("backups/r", "is not a repository URL"),
    ("s3:http://host/ab", "is not a repository URL"),  # bucket names need >= 3 characters
    ("rest:https://user:secret@host/rag", "must not carry credentials"),
    ("/var/../r", "must not contain '..'"),
])
def test_bad_repository_urls_are_refused_with_the_reason(url: str, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        Policy.model_validate({"repository": {"url": url, "password_file": "/pw"}, "retention": {"keep_last": 1}})
    assert message in str(info.value)


def test_s3_settings_need_both_keys_and_an_s3_url() -> None:
    base = {"retention": {"keep_last": 1}}
    with pytest.raises(ValidationError, match="set secret_key_env or secret_key_file"):
        Policy.model_validate({**base, "repository": {"url": "s3:http://h/bucket", "password_file": "/p",
                                                      "s3": {"access_key_env": "K"}}})
    with pytest.raises(ValidationError, match="s3: is only valid for an s3: repository URL"):
        Policy.model_validate({**base, "repository": {"url": "/r", "password_file": "/p",
                                                      "s3": {"access_key_env": "K", "secret_key_env": "S"}}})


def test_an_empty_retention_is_refused_because_it_would_keep_everything() -> None:
    with pytest.raises(ValidationError, match="set at least one keep_"):
        Policy.model_validate({"repository": {"url": "/r", "password_file": "/p"}, "retention": {}})


@pytest.mark.parametrize("cron", ["0 3 * * *", "*/15 * * * *", "0 4 * * sun", "30 2 1-7 jan,jul 1-5", "0 0 1 */3 *"])
def test_valid_cron_expressions_are_accepted(cron: str) -> None:
    Policy.model_validate({"repository": {"url": "/r", "password_file": "/p"}, "retention": {"keep_last": 1},
                           "schedule": cron, "check": {"cadence": cron}})


@pytest.mark.parametrize("cron", ["0 3 * *", "61 * * * *", "* * 0 * *", "*/0 * * * *", "5-1 * * * *", "@daily"])
def test_invalid_cron_expressions_are_refused(cron: str) -> None:
    with pytest.raises(ValidationError, match="schedule"):
        Policy.model_validate({"repository": {"url": "/r", "password_file": "/p"}, "retention": {"keep_last": 1},
                               "schedule": cron})


def test_an_unknown_policy_name_lists_the_available_ones(tmp_path: Path) -> None:
    d = tmp_path / "p"
    write(d, "default", MINIMAL)
    write(d, "offsite", MINIMAL)
    with pytest.raises(ConfigError) as info:
        load_policy(d, "defualt")
    assert "no backup policy named 'defualt' (did you mean 'default'?); available: default, offsite" in str(info.value)
    assert load_policy(d, "offsite").retention.keep_daily == 7


def test_a_missing_policy_directory_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="backup policy directory not found"):
        load_policies(tmp_path / "nope")


def test_a_host_finds_its_policy_next_to_its_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "backup-policies", "nightly", MINIMAL)
    config = tmp_path / "ragops.yaml"
    config.write_text("hosts:\n  prod1: {address: 10.0.0.1, backup: {policy: nightly}}\n  bare: {address: 10.0.0.2}\n")
    monkeypatch.chdir("/")
    loaded = load_config(str(config), environ={})
    assert resolve_policies_dir("backup-policies", loaded.source) == tmp_path / "backup-policies"
    policy = load_host_policy(loaded.hosts["prod1"])
    assert policy is not None and policy.retention.keep_daily == 7
    assert load_host_policy(loaded.hosts["bare"]) is None
    with pytest.raises(ConfigError, match="no backup policy named 'other'"):
        load_host_policy(loaded.hosts["bare"], "other")
