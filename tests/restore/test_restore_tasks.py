"""The CLI: `invoke restore-test` / `invoke restore` for real (subprocess), exit codes, JSON, metrics,
the scheduled-run wrapper (scripts/maintenance.sh with RAGOPS_TASK=restore-test) and its pings."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import threading

import pytest
import yaml

from tests.fixtures.backup_helpers import make_chroma_dir
from tests.fixtures.restore_helpers import ROOT, invoke


def test_restore_test_json_reports_checks_phases_and_writes_metrics(clone_world):
    w = clone_world()
    res = invoke("restore-test", "--config", str(w.env.config), "--json", "--selfcheck", "5")
    assert res.returncode == 0, res.stderr[-2000:]
    doc = json.loads(res.stdout)
    step = doc["hosts"][0]["steps"][0]
    assert step["step"] == "restore-verify" and step["details"]["ok"] is True
    assert set(step["details"]["phases"]) == {"restore", "start", "verify"}
    assert all({"check", "ok", "evidence"} <= set(c) for c in step["details"]["checks"])
    prom = (w.env.root / "metrics" / "ragops_restore_verify.prom").read_text()
    for line in ("ragops_restore_test_last_success_timestamp_seconds{", 'ragops_restore_test_rto_seconds{host="local",phase="restore"',
                 "ragops_restore_test_verified_bytes{"):
        assert line in prom, line
    assert 'ragops_step_success{host="local",step="restore-test"} 1' in (w.env.root / "metrics" / "ragops_task_restore_test.prom").read_text()
    listing = invoke("backup.snapshots", "--config", str(w.env.config), "--json")
    rows = json.loads(listing.stdout)["hosts"][0]["steps"][0]["details"]["snapshots"]
    tested = [r for r in rows if r["verified"]]
    assert len(tested) == 1 and tested[0]["id"] == step["details"]["snapshot"][:8] and tested[0]["verified"]["ok"]
    assert f"{tested[0]['id']} " in listing.stderr and "restore-test=verified " in listing.stderr


def test_a_missing_snapshot_exits_5_with_one_clear_message_and_no_traceback(clone_world):
    w = clone_world()
    res = invoke("restore-test", "--config", str(w.env.config), "--snapshot", "deadbeef")
    assert res.returncode == 5, res.stderr[-2000:]
    assert "no snapshot with id 'deadbeef'" in res.stderr and "Traceback" not in res.stderr


class Pings(http.server.BaseHTTPRequestHandler):
    seen: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        Pings.seen.append(self.path)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_a_scheduled_restore_test_writes_its_metrics_and_pings_on_failure(clone_world, tmp_path):
    w = clone_world()
    server = http.server.HTTPServer(("127.0.0.1", 0), Pings)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        cfg = yaml.safe_load(w.env.config.read_text())
        cfg["defaults"]["pings"] = {"url": f"http://127.0.0.1:{server.server_port}/ping/restore"}
        w.env.config.write_text(yaml.safe_dump(cfg))
        log = tmp_path / "restore-test.log"
        env = {"RAGOPS_TASK": "restore-test", "RAGOPS_LOG": str(log), "RAGOPS_CONFIG": str(w.env.config)}
        res = subprocess.run(["bash", str(ROOT / "scripts" / "maintenance.sh"), "--host", "local", "--snapshot", "deadbeef"],
                             capture_output=True, text=True, timeout=600, env={**os.environ, **env})
    finally:
        server.shutdown()
    assert res.returncode == 5, log.read_text()[-2000:]
    assert "=== ragops restore-test start" in log.read_text() and "exit 5" in log.read_text()
    assert Pings.seen == ["/ping/restore/start", "/ping/restore/fail"]
    task_prom = (w.env.root / "metrics" / "ragops_task_restore_test.prom").read_text()
    assert 'ragops_step_success{host="local",step="restore-test"} 0' in task_prom
    assert "ragops_restore_test_success" in (w.env.root / "metrics" / "ragops_restore_verify.prom").read_text()


def test_restore_refuses_a_non_empty_target_unless_forced_and_dry_runs_change_nothing(clone_world, tmp_path):
    w = clone_world()
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("x")
    res = invoke("restore", "--config", str(w.env.config), "--target", str(busy))
    assert res.returncode != 0 and "is not empty" in res.stderr and "--force" in res.stderr
    dry_dir = tmp_path / "dry"
    res = invoke("restore", "--config", str(w.env.config), "--target", str(dry_dir), "--dry")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "(dry run)" in res.stderr and "restore" in res.stderr and not dry_dir.exists()


def test_restore_restores_into_an_empty_target_and_prints_the_bring_up_steps(clone_world, tmp_path):
    w = clone_world()
    dest = tmp_path / "restored"
    res = invoke("restore", "--config", str(w.env.config), "--target", str(dest), "--json")
    assert res.returncode == 0, res.stderr[-2000:]
    steps = json.loads(res.stdout)["hosts"][0]["steps"][0]["details"]["steps"]
    assert any(s.startswith("Redis: stop the server") for s in steps) and any(s.startswith("Chroma: mv ") for s in steps)
    assert list(dest.rglob("dump.rdb")) and list(dest.rglob("chroma.sqlite3"))
    assert "Chroma: restored persistent dir" in res.stderr


def test_restore_refuses_a_snapshot_whose_dimension_differs_from_the_live_collection(clone_world, tmp_path):

    w = clone_world()
    live = tmp_path / "chroma-768"
    make_chroma_dir(live, {"docs": 10}, dims=16)
    policy = w.env.policies / "t.yaml"
    policy.write_text(policy.read_text().replace(str(w.chroma), str(live)))
    res = invoke("restore", "--config", str(w.env.config), "--target", str(tmp_path / "r"))
    assert res.returncode != 0
    assert "refusing to restore snapshot" in res.stderr and "dimension is 32 in the snapshot but 16 live" in res.stderr
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_restore_test_on_another_host_verifies_over_ssh_and_records_on_the_source(clone_world, sshd):
    w = clone_world()
    cfg = yaml.safe_load(w.env.config.read_text())
    cfg["hosts"] = {"verify1": {"address": "127.0.0.3", "port": sshd.port, "user": sshd.user, "key_file": sshd.key_file,
                                "known_hosts": sshd.known_hosts}}
    w.env.config.write_text(yaml.safe_dump(cfg))
    res = invoke("restore-test", "--config", str(w.env.config), "--host", "local", "--on", "verify1", "--json",
                 "--selfcheck", "5")
    assert res.returncode == 0, res.stderr[-3000:]
    host = json.loads(res.stdout)["hosts"][0]
    assert host["host"] == "local (on verify1)"
    details = host["steps"][0]["details"]
    assert details["verified_on"] == "verify1" and details["source"] == "local" and details["ok"]
    records = json.loads((w.env.root / "metrics" / "ragops-restore-verified.json").read_text())["records"]
    assert records[-1]["verified_on"] == "verify1" and records[-1]["snapshot_id"] == details["snapshot"]
