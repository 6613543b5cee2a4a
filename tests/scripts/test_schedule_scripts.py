"""The cron wrapper and the schedule installer, run for real against the demo config."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _config(tmp_path: Path) -> Path:
    logs = tmp_path / "logs"
    logs.mkdir()
    old = logs / "old.log"
    old.write_text("x" * 100)
    os.utime(old, (time.time() - 10 * 86400,) * 2)
    (logs / "new.log").write_text("fresh")
    cfg = tmp_path / "ragops.yaml"
    cfg.write_text(f"""
defaults:
  redis: {{enabled: false}}
  logs: [{{root: "{logs}"}}]
  logrotate: {{path: "{tmp_path}/logrotate/ragops"}}
  lock_path: "{tmp_path}/ragops.lock"
  metrics_dir: "{tmp_path}/metrics"
  steps: [cleanup, logrotate]
""")
    return cfg


def test_cron_wrapper_logs_the_run_and_keeps_the_exit_code(tmp_path):
    cfg = _config(tmp_path)
    log = tmp_path / "maintain.log"
    env = dict(os.environ, RAGOPS_LOG=str(log), RAGOPS_CONFIG=str(cfg))
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "maintenance.sh"), "--host", "local"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, log.read_text()
    text = log.read_text()
    assert "=== ragops maintain start" in text and "exit 0" in text
    assert not (tmp_path / "logs" / "old.log").exists() and (tmp_path / "logs" / "new.log").exists()
    assert "ragops_step_last_success_timestamp_seconds" in (tmp_path / "metrics" / "ragops_cleanup.prom").read_text()


def test_cron_wrapper_passes_a_config_error_through_as_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("defaults: {lock_path: 5}\n")
    env = dict(os.environ, RAGOPS_LOG=str(tmp_path / "m.log"), RAGOPS_CONFIG=str(bad))
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "maintenance.sh")], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "defaults.lock_path: must be a string" in (tmp_path / "m.log").read_text()


def test_schedule_installer_prints_a_systemd_timer_and_a_cron_line_without_installing():
    script = str(ROOT / "scripts" / "install-schedule.sh")
    timer = subprocess.run(["bash", script, "--systemd", "--print", "--", "--host", "prod1"], capture_output=True, text=True, check=True)
    assert "OnCalendar=Sun *-*-* 02:00:00" in timer.stdout and "maintenance.sh --host prod1" in timer.stdout
    cron = subprocess.run(["bash", script, "--cron", "--print", "--task", "backup", "--cron-expr", "0 3 * * *"],
                          capture_output=True, text=True, check=True)
    assert cron.stdout.startswith("/etc/cron.d/ragops-backup: 0 3 * * * root RAGOPS_TASK=backup")


def test_schedule_installer_prints_the_policys_drill_cadence(tmp_path):
    """--task drill --policy FILE: `restore-test --drill --policy NAME` at the policy's
    restore_test.drill.cadence, as a systemd timer (OnCalendar checked by systemd-analyze when present)
    and a cron line; a policy without a drill cadence, or with a bad one, exits 2 naming the field."""
    import shutil

    script = str(ROOT / "scripts" / "install-schedule.sh")
    policy = tmp_path / "prod.yaml"
    base = "repository: {url: /srv/repo, password_file: /etc/pw}\nretention: {keep_last: 3}\n"
    policy.write_text(base + 'restore_test: {cadence: "0 5 * * 0", drill: {cadence: "30 6 * * 1-5"}}\n')
    timer = subprocess.run(["bash", script, "--systemd", "--print", "--task", "drill", "--policy", str(policy), "--",
                            "--host", "prod1"], capture_output=True, text=True, timeout=60)
    assert timer.returncode == 0, timer.stderr
    assert "OnCalendar=Mon..Fri *-*-* 06:30:00" in timer.stdout, timer.stdout
    assert "Environment=RAGOPS_TASK=restore-test" in timer.stdout
    assert "maintenance.sh --drill --policy prod --host prod1" in timer.stdout
    if shutil.which("systemd-analyze"):
        check = subprocess.run(["systemd-analyze", "calendar", "Mon..Fri *-*-* 06:30:00"], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
    cron = subprocess.run(["bash", script, "--cron", "--print", "--task", "drill", "--policy", str(policy)],
                          capture_output=True, text=True, timeout=60)
    assert cron.stdout.strip() == (f"/etc/cron.d/ragops-drill: 30 6 * * 1-5 root RAGOPS_TASK=restore-test "
                                   f"{ROOT}/scripts/maintenance.sh --drill --policy prod"), cron.stdout + cron.stderr
    plain = subprocess.run(["bash", script, "--cron", "--print", "--task", "restore-test", "--policy", str(policy)],
                           capture_output=True, text=True, timeout=60)
    assert plain.stdout.startswith("/etc/cron.d/ragops-restore-test: 0 5 * * 0 root RAGOPS_TASK=restore-test"), plain
    policy.write_text(base)
    none = subprocess.run(["bash", script, "--cron", "--print", "--task", "drill", "--policy", str(policy)],
                          capture_output=True, text=True, timeout=60)
    assert none.returncode == 2 and "restore_test.drill.cadence is not set" in none.stderr and not none.stdout, none
    policy.write_text(base + 'restore_test: {drill: {cadence: "61 6 * * *"}}\n')
    bad = subprocess.run(["bash", script, "--cron", "--print", "--task", "drill", "--policy", str(policy)],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "restore_test.drill.cadence" in bad.stderr and "Traceback" not in bad.stderr, bad
    assert not Path("/etc/cron.d/ragops-drill").exists()
