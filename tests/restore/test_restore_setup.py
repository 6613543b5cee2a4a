"""restore-test's setup and freshness (issue 10 items 5-8, restore side), on the real stack: a missing
redis-server / redis-check-rdb is a setup error naming its setting (fast, exit 2, not 5); a dump that
crashes the throwaway server fails at once; a vanished newest snapshot is noticed; dead runs'
scratch dirs and throwaway redis-servers are removed; the scratch dir gets a free-space preflight."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import yaml

from ragops.restore import freshness
from tests.fixtures.restore_helpers import (
    INVOKE,
    ROOT,
    craft_snapshot,
    failed_checks,
    invoke,
    run_backup,
    run_test,
)


def set_setting(path: Path, dotted: str, value: object, *, defaults: bool = True) -> None:
    doc = yaml.safe_load(path.read_text())
    node = doc["defaults"] if defaults else doc
    *parents, last = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def test_a_redis_server_setting_pointing_nowhere_fails_fast_as_a_setup_error_naming_the_setting(clone_world, tmp_path):
    w = clone_world()
    set_setting(w.env.config, "backup.redis_server", str(tmp_path / "no" / "redis-server"))
    t0 = time.monotonic()
    res = invoke("restore-test", "--config", str(w.env.config))
    assert time.monotonic() - t0 < 10, "a missing tool must not cost a wait"
    assert res.returncode == 2, (res.returncode, res.stderr[-1500:])
    assert "backup.redis_server" in res.stderr and "not installed" in res.stderr and "Traceback" not in res.stderr


def make_path_without(tmp_path: Path, tool: str) -> str:
    """A PATH holding every binary of the host but ``tool`` (the host "has no redis-server")."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for d in ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"):
        for entry in os.scandir(d) if os.path.isdir(d) else []:
            if entry.name != tool and not (bin_dir / entry.name).exists():
                os.symlink(entry.path, bin_dir / entry.name)
    return str(bin_dir)


def test_a_host_without_redis_server_fails_fast_with_exit_2_not_a_600s_wait_and_damage(clone_world, tmp_path):
    w = clone_world()
    t0 = time.monotonic()
    res = subprocess.run([INVOKE, "restore-test", "--config", str(w.env.config)], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, env={**os.environ, "PATH": make_path_without(tmp_path, "redis-server")})
    assert time.monotonic() - t0 < 10
    assert res.returncode == 2, (res.returncode, res.stderr[-1500:])
    assert "'redis-server'" in res.stderr and "backup.redis_server" in res.stderr


def test_a_missing_redis_check_rdb_names_its_setting_in_restore_test_and_backup_never_says_rejected(clone_world, tmp_path):
    w = clone_world()
    policy = w.env.policies / "t.yaml"
    doc = yaml.safe_load(policy.read_text())
    doc["sources"]["redis"]["check_rdb"] = str(tmp_path / "no" / "redis-check-rdb")
    policy.write_text(yaml.safe_dump(doc, sort_keys=False))
    res = invoke("restore-test", "--config", str(w.env.config))
    assert res.returncode == 2 and "sources.redis.check_rdb" in res.stderr, res.stderr[-1500:]
    backup = invoke("backup", "--config", str(w.env.config))
    assert backup.returncode != 0 and "sources.redis.check_rdb" in backup.stderr, backup.stderr[-1500:]
    assert "rejected the staged dump" not in backup.stderr


def test_a_dump_that_crashes_the_throwaway_redis_fails_at_once_naming_redis(clone_world, tmp_path, live_untouched):
    w = clone_world()

    def truncate_dump(staging: Path, manifest) -> None:
        dump = staging / "redis" / "dump.rdb"
        dump.write_bytes(dump.read_bytes()[: dump.stat().st_size // 2])

    sid = craft_snapshot(w, tmp_path, truncate_dump)
    t0 = time.monotonic()
    result, step = run_test(w, snapshot=sid, selfcheck=0)
    assert time.monotonic() - t0 < 60
    assert step.details["phases"]["start"] < 10, step.details["phases"]
    loads = next(c for c in step.details["checks"] if c["check"] == "redis: dump loads")
    assert not loads["ok"] and "the throwaway redis-server exited" in loads["evidence"], loads["evidence"]
    assert result.exit_code != 0


def test_a_deleted_newest_snapshot_is_noticed_against_the_recorded_backup(clone_world):
    w = clone_world()
    newest = run_backup(w.env)  # records itself in <metrics_dir>/ragops-last-backup.json
    assert newest in (w.env.root / "metrics" / "ragops-last-backup.json").read_text()
    files = [p for p in (w.env.repo / "snapshots").iterdir() if p.name.startswith(newest)]
    assert len(files) == 1
    files[0].unlink()
    _, step = run_test(w, selfcheck=0)
    assert step.status == "failed", step.message
    assert freshness.CHECK in failed_checks(step)
    check = next(c for c in step.details["checks"] if c["check"] == freshness.CHECK)
    assert f"snapshot {newest[:8]}" in check["evidence"] and "MISSING" in check["evidence"], check


def test_the_schedule_bounds_how_old_the_verified_snapshot_may_be():
    from ragops.backup.restic import Snapshot

    assert freshness.longest_interval_s("0 3 * * *") == 86400
    assert freshness.longest_interval_s("*/15 * * * *") == 900
    assert freshness.longest_interval_s("0 5 * * 0") == 7 * 86400
    assert freshness.longest_interval_s("0 3 1 * *") == 31 * 86400
    assert freshness.longest_interval_s("0 3,15 * * mon-fri") == 3 * 86400 - 12 * 3600
    snap = Snapshot(id="ab" * 32, short_id="abababab", time="2026-01-10T03:00:00.123456789+00:00", hostname="h", paths=[])
    taken = freshness.parse_time(snap.time)
    assert taken is not None
    assert freshness.find_stale(snap, "0 3 * * *", now=taken + 1.5 * 86400) is None
    stale = freshness.find_stale(snap, "0 3 * * *", now=taken + 2.5 * 86400)
    assert stale is not None and "60.0h old" in stale and "scheduled backups are missing" in stale


def start_leftover_redis(scratch: Path) -> int:
    d = scratch / "redis"
    d.mkdir(parents=True)
    with socket.socket() as s:  # a free loopback port (a unix socket path this deep is too long)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(d),
                    "--daemonize", "yes", "--pidfile", str(d / "redis.pid"), "--logfile", str(d / "redis.log"),
                    "--save", ""], check=True)
    for _ in range(200):
        if (d / "redis.pid").exists():
            return int((d / "redis.pid").read_text())
        time.sleep(0.02)
    raise AssertionError("leftover redis-server did not start")


def is_running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def test_leftovers_of_dead_runs_are_removed_and_only_their_own_redis_is_killed(clone_world, tmp_path, live_untouched):
    w = clone_world()
    base = w.env.root / "staging-restore-test"
    dead = base / "restore-test-20200101T000000Z-aaaaaa"
    other = base / "restore-test-20200101T000000Z-bbbbbb"
    (dead / "restore" / "x").mkdir(parents=True)
    leftover = start_leftover_redis(dead)
    bystander = subprocess.Popen(["sleep", "300"], cwd=tmp_path)  # a reused pid: not in the dir
    (other / "redis").mkdir(parents=True)
    (other / "redis" / "redis.pid").write_text(f"{bystander.pid}\n")
    unrelated = base / "not-a-scratch-dir"
    unrelated.mkdir()
    try:
        _, step = run_test(w, selfcheck=0)
        assert step.status == "ok", step.message
        assert not dead.exists() and not other.exists(), list(base.iterdir())
        assert not is_running(leftover), "the dead run's throwaway redis-server is still running"
        assert bystander.poll() is None, "a process merely named by a stale pidfile was killed"
        assert unrelated.exists()
    finally:
        bystander.kill()
        bystander.wait()
        if is_running(leftover):
            os.kill(leftover, signal.SIGKILL)


def test_a_scratch_dir_without_room_for_the_snapshot_is_refused_before_restoring(clone_world, tmp_path):
    w = clone_world()
    mount = tmp_path / "small"
    mount.mkdir()
    script = (f"mount -t tmpfs -o size=1m tmpfs {mount} && exec {INVOKE} restore-test --config {w.env.config} "
              f"--scratch-dir {mount}/scratch")
    res = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode not in (0, 5), (res.returncode, res.stderr[-1500:])
    assert "restore-test scratch dir needs" in res.stderr and "refused before writing anything" in res.stderr, res.stderr[-1500:]
    assert "Traceback" not in res.stderr
