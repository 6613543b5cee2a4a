"""Pure planning: scratch layout, live-path safety, staging path, commands, the check plan."""

from __future__ import annotations

import pytest

from ragops.backup.sources.redis import make_server_command
from ragops.config import HostSettings
from ragops.errors import SafetyError
from ragops.restore import plan


def test_the_scratch_dir_sits_beside_the_staging_dir_unless_given():
    assert plan.make_scratch_base("/var/tmp/ragops-staging/") == "/var/tmp/ragops-staging-restore-test"
    assert plan.make_scratch_base("/x", "/srv/scratch") == "/srv/scratch"
    with pytest.raises(SafetyError):
        plan.make_scratch_base("/x", "/")
    with pytest.raises(SafetyError):
        plan.make_scratch_base("/x", "relative/dir")


def test_the_layout_restores_absolute_snapshot_paths_below_its_restore_dir():
    layout = plan.make_layout("/s", now=0, rand="abcdef")
    assert layout.root == "/s/restore-test-19700101T000000Z-abcdef"
    assert layout.restored("/var/tmp/st/run-1/redis/dump.rdb") == layout.root + "/restore/var/tmp/st/run-1/redis/dump.rdb"
    with pytest.raises(SafetyError):
        layout.restored("relative/path")


@pytest.mark.parametrize("live", ["/srv", "/srv/scratch", "/srv/scratch/restore-test-19700101T000000Z-abcdef/x"])
def test_a_scratch_dir_overlapping_a_live_path_is_refused(live):
    scratch = "/srv/scratch/restore-test-19700101T000000Z-abcdef"
    with pytest.raises(SafetyError, match="overlaps the live data path"):
        plan.check_scratch_safe(scratch, [live])
    plan.check_scratch_safe(scratch, ["/srv/chroma", "/srv/scratchy"])


def test_only_a_restore_test_dir_is_ever_removed():
    with pytest.raises(SafetyError):
        plan.make_remove_command(plan.Layout("/srv/chroma"))
    cmd = plan.make_remove_command(plan.make_layout("/s", now=0, rand="abcdef"))
    assert "rm -rf --one-file-system" in cmd and "[ ! -L" in cmd


def test_live_paths_come_from_settings_policy_and_manifest():
    settings = HostSettings.model_validate({"chroma": {"data_dir": "/srv/chroma"}, "metrics_dir": None})
    manifest = {"sources": [{"kind": "chroma", "data_dir": "/data/chroma"},
                            {"kind": "paths", "entries": [{"path": "/etc/rag"}]}]}
    live = plan.collect_live_paths([settings], None, manifest)
    assert {"/srv/chroma", "/data/chroma", "/etc/rag"} <= set(live)


def test_the_staging_dir_is_found_among_the_snapshot_paths():
    assert plan.find_staging_path(["/etc/rag", "/var/tmp/st/run-20261128T210000Z-abc123"]) == "/var/tmp/st/run-20261128T210000Z-abc123"
    assert plan.find_staging_path(["/etc/rag"]) is None


def test_the_throwaway_redis_binds_loopback_saves_nothing_and_has_a_pidfile():
    cmd = make_server_command("redis-server", "/s/redis", port=6390)
    assert "--bind 127.0.0.1" in cmd and "--port 6390" in cmd and cmd.endswith("--save ''")
    assert "--pidfile /s/redis/redis.pid" in cmd and "--appendonly no" in cmd
    assert "--appenddirname appendonlydir" in make_server_command("redis-server", "/d", port=1, aof_dir="appendonlydir")


def test_the_check_plan_follows_the_manifest_sources():
    checks = plan.make_check_plan({"sources": [{"kind": "redis"}]}, read_data_subset="10%", selfcheck=0, compat=False)
    assert "redis: key counts" in checks and not any(c.startswith("chroma") for c in checks)
    assert checks[-1] == "repository: restic check --read-data-subset=10%"


def test_stopping_the_throwaway_redis_returns_as_soon_as_it_is_a_zombie_or_gone(tmp_path):
    """A real child left unreaped (a zombie) must count as stopped: init may reap it late."""
    import subprocess
    import time

    from ragops.backup.sources.redis import make_server_stop_command as make_redis_stop_command

    child = subprocess.Popen(["sleep", "30"])  # we do not wait() on it until the end: it stays a zombie
    (tmp_path / "redis.pid").write_text(str(child.pid))
    started = time.monotonic()
    subprocess.run(["sh", "-c", make_redis_stop_command(str(tmp_path))], check=True, timeout=10)
    assert time.monotonic() - started < 1.0
    assert child.wait(timeout=5) == -9
