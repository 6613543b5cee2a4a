"""Usage and config errors through the real ``invoke`` CLI: one message naming the flag or file and
field, exit 2, no traceback, exactly one JSON document on stdout with --json, and nothing recorded
(no metrics or verified-state file, no lock file), because everything is validated before a host runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragops.errors import ExitCode
from tests.fixtures.fleet_helpers import run_invoke, write_config

POLICY = """repository: {{url: {repo}, password_file: {pw}}}
retention: {{keep_last: 3}}
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A config whose every host-side effect lands under one temp dir: metrics, lock, policies."""
    base = tmp_path_factory.mktemp("usage")
    for d in ("metrics", "run", "policies", "staging", "logs"):
        (base / d).mkdir()
    (base / "pw").write_text("secret\n")
    (base / "policies" / "good.yaml").write_text(POLICY.format(repo=base / "repo", pw=base / "pw"))
    (base / "policies" / "nopw.yaml").write_text(POLICY.format(repo=base / "repo", pw=base / "missing-pw"))
    settings = {
        "lock_path": str(base / "run" / "ragops.lock"), "metrics_dir": str(base / "metrics"),
        "logrotate": {"path": str(base / "logrotate.d" / "ragops")}, "redis": {"enabled": False},
        "logs": [{"root": str(base / "logs")}],
        "backup": {"policy": "good", "policies_dir": str(base / "policies"), "staging_dir": str(base / "staging")},
    }
    write_config(base / "ragops.yaml", {"defaults": settings})
    (base / "latin1.yaml").write_bytes(b"defaults:\n  metrics_dir: /tmp/caf\xe9\n")
    (base / "dup.yaml").write_text(f"defaults:\n  metrics_dir: {base / 'metrics'}\n  redis: {{enabled: false}}\n"
                                   f"  metrics_dir: /elsewhere\n")
    return base


def assert_nothing_recorded(base: Path) -> None:
    assert sorted(p.name for p in (base / "metrics").iterdir()) == []  # no textfile, no verified/backup record
    assert sorted(p.name for p in (base / "run").iterdir()) == []  # no lock, no guard
    assert sorted(p.name for p in (base / "staging").iterdir()) == []


CASES = [
    # (task and flags, config file name, what the one message must name)
    (["maintain", "--parallel", "abc"], "ragops.yaml", "--parallel: must be an integer"),
    (["maintain", "--parallel", "0"], "ragops.yaml", "--parallel: must be between 1 and 256"),
    (["maintain", "--parallel", "-3"], "ragops.yaml", "--parallel: must be between 1 and 256"),
    (["maintain", "--fail-percent", "abc"], "ragops.yaml", "--fail-percent: must be an integer"),
    (["maintain", "--fail-percent", "150"], "ragops.yaml", "--fail-percent: must be between 0 and 100"),
    (["maintain", "--fail-percent", "-1"], "ragops.yaml", "--fail-percent: must be between 0 and 100"),
    (["health", "--parallel", "x"], "ragops.yaml", "--parallel: must be an integer"),
    (["cleanup", "--host", ""], "ragops.yaml", "--host: must not be empty"),
    (["cleanup", "--host", "local,"], "ragops.yaml", "--host 'local,': an empty name"),
    (["restore-test", "--selfcheck", "-5"], "ragops.yaml", "--selfcheck: must be at least 0"),
    (["restore-test", "--selfcheck", "many"], "ragops.yaml", "--selfcheck: must be an integer"),
    (["restore-test", "--min-overlap", "7"], "ragops.yaml", "--min-overlap: must be at least 0.0 and at most 1.0"),
    (["restore-test", "--read-data-subset", "abc"], "ragops.yaml", "--read-data-subset: 'abc' must look like"),
    (["restore-test", "--scratch-dir", "rel/dir"], "ragops.yaml", "--scratch-dir: must be an absolute path"),
    (["restore-test", "--policy", "nopw"], "ragops.yaml", "nopw.yaml: repository.password_file:"),
    (["backup", "--policy", "nosuch"], "ragops.yaml", "no backup policy named 'nosuch'"),
    (["backup", "--policy", "nopw"], "ragops.yaml", "nopw.yaml: repository.password_file:"),
    (["backup.check", "--read-data-subset", "150%"], "ragops.yaml", "--read-data-subset: '150%'"),
    (["restore", "--target", "relative"], "ragops.yaml", "--target: must be an absolute path"),
    (["docker.prune", "--until", "soon"], "ragops.yaml", "--until: must look like 168h"),
    (["release", "--version", "1.0", "--batch", "0"], "ragops.yaml", "--batch: must be at least 1"),
    (["k8s.run-now", "--cronjob", "ragops-backup", "--timeout", "abc"], "ragops.yaml", "--timeout: must be a number"),
    (["maintain"], "latin1.yaml", "latin1.yaml: line 2, column 24: not valid UTF-8 (byte 0xe9)"),
    (["maintain"], "dup.yaml", "dup.yaml: line 4, column 3: duplicate key 'metrics_dir' (first at line 2)"),
]


@pytest.mark.parametrize(("args", "config", "message"), CASES, ids=[" ".join(c[0]) + f" [{c[1]}]" for c in CASES])
def test_a_usage_error_is_one_message_exit_2_one_json_document_and_records_nothing(site, args, config, message):
    res = run_invoke(*args, "--config", str(site / config), "--json", timeout=60)
    assert res.returncode == ExitCode.CONFIG_ERROR, (res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], res.stderr
    doc = json.loads(res.stdout)  # the whole of stdout: exactly one document
    assert doc["ok"] is False and doc["exit_code"] == 2 and message in doc["error"] and doc["hosts"] == []
    assert doc["task"] == args[0]
    assert_nothing_recorded(site)


def test_without_json_a_usage_error_prints_nothing_on_stdout(site):
    res = run_invoke("maintain", "--parallel", "0", "--config", str(site / "ragops.yaml"), timeout=60)
    assert res.returncode == ExitCode.CONFIG_ERROR and res.stdout == ""
    assert res.stderr.strip() == "maintain: --parallel: must be between 1 and 256 (got 0)"


def test_every_host_task_accepts_the_shared_flags_the_readme_lists(site):
    res = run_invoke("health", "--fail-percent", "50", "--parallel", "2", "--dry", "--config", str(site / "ragops.yaml"),
                     "--json", timeout=60)
    assert res.returncode == ExitCode.OK, res.stderr
    assert json.loads(res.stdout)["hosts"][0]["status"] == "ok"


def test_a_step_failure_with_json_still_prints_exactly_one_document(site, tmp_path):
    cfg = yaml_with(site, tmp_path, disk={"paths": [str(tmp_path)], "warn_percent": 1, "fail_percent": 1},
                    metrics_dir=None)
    res = run_invoke("health", "--config", str(cfg), "--json", timeout=60)
    assert res.returncode == ExitCode.STEP_FAILED, res.stderr
    doc = json.loads(res.stdout)
    assert doc["ok"] is False and doc["hosts"][0]["steps"][0]["status"] == "failed"


def yaml_with(site: Path, tmp_path: Path, **settings: object) -> Path:
    import yaml

    data = yaml.safe_load((site / "ragops.yaml").read_text())
    data["defaults"].update(settings)
    return write_config(tmp_path / "ragops.yaml", data)


def test_a_lock_path_that_is_a_directory_is_a_config_error_naming_lock_path(site, tmp_path):
    (tmp_path / "lockdir").mkdir()
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    cfg = yaml_with(site, tmp_path, lock_path=str(tmp_path / "lockdir"), metrics_dir=str(metrics))
    res = run_invoke("cleanup", "--config", str(cfg), "--json", timeout=60)
    assert res.returncode == ExitCode.CONFIG_ERROR, res.stderr
    assert f"lock_path: {tmp_path / 'lockdir'} is a directory" in json.loads(res.stdout)["hosts"][0]["error"]
    assert list(metrics.iterdir()) == [], "a config error records nothing"


def test_a_lock_under_a_missing_directory_chain_is_refused_not_created(site, tmp_path):
    lock = tmp_path / "nonexistent" / "dir" / "ragops.lock"
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    cfg = yaml_with(site, tmp_path, lock_path=str(lock), metrics_dir=str(metrics))
    res = run_invoke("cleanup", "--config", str(cfg), "--json", timeout=60)
    assert res.returncode == ExitCode.CONFIG_ERROR, res.stderr
    assert "lock_path:" in json.loads(res.stdout)["hosts"][0]["error"]
    assert list(metrics.iterdir()) == [], "a config error records nothing"
    assert not (tmp_path / "nonexistent").exists()
