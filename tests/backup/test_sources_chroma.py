"""Chroma source against a real ChromaDB dir: live copy + validation, stop/pause always resume."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ragops.backup.policy_sources import ChromaSource, StopSettings
from ragops.backup.sources import run_staging
from ragops.backup.sources.chroma import make_live_copy_commands, make_stop_commands, stage
from ragops.errors import StepError


def test_stop_commands_cover_compose_systemd_and_plain_commands():
    assert make_stop_commands(StopSettings(compose_service="chroma", compose_project_dir="/srv/rag")) == (
        "cd /srv/rag && docker compose stop chroma", "cd /srv/rag && docker compose start chroma")
    assert make_stop_commands(StopSettings(systemd_unit="rag-ingest.service")) == (
        "systemctl stop rag-ingest.service", "systemctl start rag-ingest.service")


def test_live_copy_backs_up_sqlite_before_the_segment_folders():
    cmds = make_live_copy_commands("/srv/chroma", "/st/run-1/chroma")
    assert "src.backup(dst)" in cmds[1] and "find /srv/chroma" in cmds[2] and "! -name 'chroma.sqlite3*'" in cmds[2]


def test_a_live_copy_is_validated_and_recorded_per_collection(chroma_dataset, backup_env):
    env = backup_env(chroma_dir=chroma_dataset)
    target = env.target()
    with run_staging(target, str(env.staging)) as run_dir:
        staged = stage(target, ChromaSource(data_dir=str(chroma_dataset), probes=3, probe_k=4), run_dir)
    # the copy is the mirror at the stable path (ext4 here: no reflinks), kept for the next run
    assert (env.staging / "stable" / "chroma" / "chroma.sqlite3").is_file()
    rec = staged.record
    assert rec["strategy"] == "live" and rec["attempts"] == 1 and rec["integrity_check"] == "ok"
    assert rec["copy_mode"] == "mirror" and rec["path"] == str(env.staging / "stable" / "chroma")
    assert staged.backup_paths == [rec["path"]] and staged.cleanup is None
    cols = {c["name"]: c for c in rec["collections"]}
    assert (cols["docs"]["count"], cols["faq"]["count"]) == (6000, 4500)
    assert cols["docs"]["metric"] == "cosine" and cols["docs"]["embedding_model"] == "all-MiniLM-L6-v2"
    assert all(len(p["top_k"]) == 4 for p in cols["faq"]["probes"]) and len(cols["faq"]["ids_digest"]) == 64


def _marker_commands(tmp_path: Path) -> tuple[str, str, Path]:
    log = tmp_path / "writer.log"
    return f"echo stopped >> {log}", f"echo started >> {log}", log


@pytest.mark.parametrize("strategy", ["stop", "pause"])
@pytest.mark.parametrize("copy_mode", ["full", "mirror"])
def test_the_writer_is_resumed_even_when_the_copy_fails(strategy, copy_mode, tmp_path, backup_env, chroma_dataset):
    before, after, log = _marker_commands(tmp_path)
    held = {"stop": {"command": before, "start_command": after}} if strategy == "stop" else {"pause": {"pre": before, "post": after}}
    env = backup_env(chroma_dir=chroma_dataset)
    target = env.target()
    source = ChromaSource.model_validate({"data_dir": str(chroma_dataset), "strategy": strategy, "copy_mode": copy_mode,
                                          **held})
    mirror = env.staging / "stable" / "chroma"
    try:
        with pytest.raises(StepError, match="copy of" if copy_mode == "full" else "updating the mirror"), \
                run_staging(target, str(env.staging)) as run_dir:
            if copy_mode == "full":
                (Path(run_dir) / "chroma").write_text("a file where the copy's directory should go")
            else:  # an immutable mirror dir: every write into it fails (EPERM) while the writer is held
                mirror.mkdir(parents=True)
                subprocess.run(["chattr", "+i", str(mirror)], check=True)
            stage(target, source, run_dir)
    finally:
        if mirror.exists():
            subprocess.run(["chattr", "-i", str(mirror)], check=True)
    assert log.read_text().split() == ["stopped", "started"]
    assert [p.name for p in env.staging.iterdir()] == ([] if copy_mode == "full" else ["stable"])


def test_a_stopped_writer_is_started_again_after_a_good_copy(tmp_path, backup_env, chroma_dataset):
    before, after, log = _marker_commands(tmp_path)
    env = backup_env(chroma_dir=chroma_dataset)
    target = env.target()
    source = ChromaSource.model_validate({"data_dir": str(chroma_dataset), "strategy": "stop", "probes": 1,
                                          "stop": {"command": before, "start_command": after}})
    with run_staging(target, str(env.staging)) as run_dir:
        rec = stage(target, source, run_dir).record
    assert rec["strategy"] == "stop" and log.read_text().split() == ["stopped", "started"]


def test_a_live_copy_that_keeps_failing_validation_is_retried_then_fails_loudly(tmp_path, backup_env, chroma_dataset):
    """The validator is replaced by a script that always reports a broken copy (a fake: a real
    live copy only breaks under a racing writer, which test_consistency exercises)."""
    counter = tmp_path / "attempts"
    fake = tmp_path / "fake-python"
    fake.write_text(f"#!/bin/sh\ncat >/dev/null; echo x >> {counter}\n"
                    "echo '{\"ok\": false, \"checks\": [{\"check\": \"sqlite integrity_check\", \"ok\": false, \"evidence\": \"page 7: btree corrupt\"}]}'\n")
    fake.chmod(0o755)
    env = backup_env(chroma_dir=chroma_dataset, settings_extra={})
    target = env.target()
    object.__setattr__(target.settings.backup, "chroma_python", str(fake))
    with pytest.raises(StepError, match=r"no valid copy .* after 3 attempt\(s\) \(live\).*btree corrupt"):
        with run_staging(target, str(env.staging)) as run_dir:
            stage(target, ChromaSource(data_dir=str(chroma_dataset), live_retries=2), run_dir)
    assert len(counter.read_text().split()) == 3
    assert [p.name for p in env.staging.iterdir()] == ["stable"]  # the run dir is gone; the mirror stays
