"""The proof that a data source is one module and one registry line: a test-only source
(``textfile_source.py``) goes through a real backup (real restic) and a real restore test, and its
checks appear in the report; breaking its restored file makes exactly its check fail."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragops.backup.sources import registry
from ragops.backup.step import run_backup
from ragops.restore.run import Options, make_restore_test_step
from ragops.runner import run_host
from tests.backup import textfile_source


@pytest.fixture
def textfile(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    live = tmp_path / "live" / "notes.txt"
    live.parent.mkdir()
    live.write_text("alpha\nbeta\ngamma\n")
    monkeypatch.setattr(textfile_source, "SETTINGS", textfile_source.Settings(path=str(live)))
    monkeypatch.setitem(registry.SOURCES, "textfile", textfile_source)  # THE registry line
    return live


def host_of(env):
    from ragops.config import load_config

    return load_config(str(env.config), environ={}).hosts["local"]


def test_a_registered_source_is_backed_up_and_proven_by_a_restore_test(textfile, backup_env):
    env = backup_env()  # no Redis, no Chroma: only the test-only source has data
    result = run_backup(env.target())
    assert result.status == "ok", result.message
    recorded = {d["kind"]: d for d in result.details["sources"]}
    assert recorded["textfile"]["lines"] == 3 and recorded["textfile"]["live"] == str(textfile)

    step = run_host(env.target(), "restore-test", [make_restore_test_step(host_of(env), Options())]).steps[0]
    assert step.status == "ok", step.message
    checks = {c["check"]: c for c in step.details["checks"]}
    assert checks["textfile: content"]["ok"], checks["textfile: content"]
    assert "3 line(s)" in checks["textfile: content"]["evidence"]
    assert "textfile: content" in step.details["plan"]
    assert "textfile" in step.details["verify_timings"]


def test_the_source_own_check_fails_when_its_restored_file_differs(textfile, backup_env, monkeypatch):
    env = backup_env()
    assert run_backup(env.target()).status == "ok"
    real_verify = textfile_source.verify

    def tampered(ctx, record):  # the manifest now promises other content than the snapshot holds
        return real_verify(ctx, {**record, "digest": "0" * 64})

    monkeypatch.setattr(textfile_source, "verify", tampered)
    step = run_host(env.target(), "restore-test", [make_restore_test_step(host_of(env), Options())]).steps[0]
    assert step.status == "failed"
    failed = [c["check"] for c in step.details["checks"] if not c["ok"]]
    assert failed == ["textfile: content"], json.dumps(step.details["checks"], indent=1)


def test_register_refuses_a_module_without_the_required_verbs():
    import types

    with pytest.raises(TypeError, match="does not export stage, verify, plan_checks"):
        registry.register("empty", types.ModuleType("empty"))
    assert "empty" not in registry.SOURCES
