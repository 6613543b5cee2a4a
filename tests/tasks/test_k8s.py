"""The k8s.render task through the Invoke CLI (offline): --check, --overlay, --root, config errors."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INVOKE = str(Path(sys.executable).parent / "invoke")


def run_invoke(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([INVOKE, *args], capture_output=True, text=True, cwd=ROOT, timeout=120)


def copy_project(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "k8s", tmp_path / "k8s")
    shutil.copytree(ROOT / "backup-policies", tmp_path / "backup-policies")
    return tmp_path


def test_render_check_passes_on_the_committed_tree() -> None:
    res = run_invoke("k8s.render", "--check")
    assert res.returncode == 0, res.stderr
    assert "up to date" in res.stderr


def test_a_changed_policy_schedule_makes_check_fail_until_rendered(tmp_path: Path) -> None:
    root = copy_project(tmp_path)
    policy = root / "backup-policies" / "default.yaml"
    policy.write_text(policy.read_text().replace('schedule: "0 3 * * *"', 'schedule: "45 23 * * *"'))
    res = run_invoke("k8s.render", "--check", "--root", str(root))
    assert res.returncode == 1 and "changed: base/cronjobs.yaml" in res.stderr
    assert run_invoke("k8s.render", "--root", str(root)).returncode == 0
    assert "schedule: 45 23 * * *" in (root / "k8s/base/cronjobs.yaml").read_text()
    built = run_invoke("k8s.render", "--root", str(root), "--overlay", "prod")
    assert built.returncode == 0, built.stderr
    assert "image: ragops:0.1.0" in built.stdout and "kind: CronJob" in built.stdout


def test_an_unknown_render_setting_is_a_config_error_naming_file_and_field(tmp_path: Path) -> None:
    root = copy_project(tmp_path)
    settings = root / "k8s" / "render.yaml"
    settings.write_text(settings.read_text().replace("backoff_limit: 1", "backof_limit: 1"))
    res = run_invoke("k8s.render", "--root", str(root))
    assert res.returncode == 2
    assert "render.yaml: backof_limit: unknown field (did you mean 'backoff_limit'?)" in res.stderr


def test_an_unknown_overlay_is_refused(tmp_path: Path) -> None:
    res = run_invoke("k8s.render", "--root", str(copy_project(tmp_path)), "--overlay", "staging")
    assert res.returncode == 2 and "--overlay 'staging'" in res.stderr
