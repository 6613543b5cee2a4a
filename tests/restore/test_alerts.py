"""The shipped Prometheus rules: valid, and each alert fires (only) on its sample series."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

MON = Path(__file__).resolve().parents[2] / "monitoring"
PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.skipif(PROMTOOL is None, reason="promtool missing: apt-get install prometheus (scripts/apt-packages.txt)")


def test_the_rules_file_is_valid():
    res = subprocess.run([str(PROMTOOL), "check", "rules", str(MON / "ragops-alerts.rules.yml")], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS: 6 rules found" in res.stdout


def test_every_alert_fires_on_its_sample_metrics_and_stays_quiet_otherwise():
    res = subprocess.run([str(PROMTOOL), "test", "rules", "ragops-alerts.test.yml"], cwd=MON, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_every_alert_of_the_rules_file_has_a_unit_test():
    rules = (MON / "ragops-alerts.rules.yml").read_text()
    tests = (MON / "ragops-alerts.test.yml").read_text()
    names = [line.split(":", 1)[1].strip() for line in rules.splitlines() if line.strip().startswith("- alert:")]
    assert len(names) == 6
    for name in names:
        assert f"alertname: {name}" in tests, name
