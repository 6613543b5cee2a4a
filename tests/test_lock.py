"""The per-host lock, for real on the local host: refuse a live holder, take over a dead one."""

from __future__ import annotations

import json
import os
import socket
import subprocess

import pytest

from ragops.errors import LockHeldError
from ragops.lock import HostLock, is_stale
from tests.fixtures.fleet_helpers import make_target


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_a_live_holder_is_not_stale():
    here = socket.gethostname()
    assert is_stale({"pid": os.getpid(), "origin": here}, age_s=5, ttl_s=300, here=here) is None


def test_a_holder_without_heartbeat_is_stale():
    why = is_stale({"pid": os.getpid(), "origin": "elsewhere"}, age_s=400, ttl_s=300, here="controller")
    assert why == "no heartbeat for 400s (ttl 300s)"


def test_a_dead_holder_on_this_controller_is_stale_but_not_one_elsewhere():
    pid = dead_pid()
    assert is_stale({"pid": pid, "origin": "ctl"}, age_s=1, ttl_s=300, here="ctl") == f"holder pid {pid} on ctl is gone"
    assert is_stale({"pid": pid, "origin": "other"}, age_s=1, ttl_s=300, here="ctl") is None


@pytest.fixture
def lock_target(tmp_path):
    return make_target(tmp_path, {"lock_path": str(tmp_path / "run" / "ragops.lock"), "lock_ttl_s": 60})


def test_the_lock_is_taken_held_and_released(lock_target):
    path = lock_target.settings.lock_path
    with HostLock(lock_target, "maintain") as lock:
        info = json.loads(open(path).read())
        assert info["pid"] == os.getpid() and info["origin"] == socket.gethostname() and info["task"] == "maintain"
        assert lock.held
    assert not os.path.exists(path)


def test_a_second_run_refuses_and_names_the_holder(lock_target):
    with HostLock(lock_target, "maintain") as first:
        with pytest.raises(LockHeldError) as info:
            HostLock(lock_target, "cleanup").acquire()
        started = first.info["started"]
    message = str(info.value)
    assert f"is held by pid {os.getpid()} on {socket.gethostname()}, maintain started {started}" in message
    assert message.endswith("refusing to run")


def test_a_lock_left_by_a_killed_run_is_taken_over_and_logged(lock_target, capsys):
    path = lock_target.settings.lock_path
    os.makedirs(os.path.dirname(path))
    pid = dead_pid()
    with open(path, "w") as fh:
        fh.write(json.dumps({"pid": pid, "origin": socket.gethostname(), "started": "2020-01-01T00:00:00+00:00",
                             "task": "maintain", "run_id": "old"}) + "\n")
    with HostLock(lock_target, "maintain") as lock:
        assert json.loads(open(path).read())["run_id"] == lock.info["run_id"]
    err = capsys.readouterr().err
    assert f"took over stale lock {path} (holder pid {pid} on {socket.gethostname()} is gone" in err


def test_a_lock_without_heartbeat_from_another_controller_is_taken_over(lock_target, capsys):
    path = lock_target.settings.lock_path
    os.makedirs(os.path.dirname(path))
    with open(path, "w") as fh:
        fh.write(json.dumps({"pid": 1, "origin": "other-controller", "started": "x", "run_id": "old"}) + "\n")
    os.utime(path, (0, os.stat(path).st_mtime - 3600))
    with HostLock(lock_target, "maintain"):
        pass
    assert "no heartbeat for 36" in capsys.readouterr().err


def test_releasing_never_removes_a_lock_another_run_took(lock_target):
    lock = HostLock(lock_target, "maintain")
    lock.acquire()
    path = lock_target.settings.lock_path
    with open(path, "w") as fh:
        fh.write(json.dumps({"pid": 1, "origin": "x", "run_id": "someone-else"}) + "\n")
    lock.release()
    assert os.path.exists(path)


def test_a_dry_run_takes_no_lock(tmp_path):
    target = make_target(tmp_path, {"lock_path": str(tmp_path / "run" / "ragops.lock")}, dry=True)
    with HostLock(target, "maintain"):
        assert not os.path.exists(target.settings.lock_path)


@pytest.mark.parametrize("content", ["garbage\n", "", "[1, 2]\n", '{"pid": 1, "orig'])
def test_an_unparsable_lock_is_stale_under_the_free_guard_and_taken_over_saying_so(lock_target, capsys, content):
    path = lock_target.settings.lock_path
    os.makedirs(os.path.dirname(path))
    with open(path, "w") as fh:
        fh.write(content)  # fresh mtime: before, it blocked as "held by pid ? on ?" until lock_ttl_s
    with HostLock(lock_target, "maintain") as lock:
        assert json.loads(open(path).read())["run_id"] == lock.info["run_id"]
    assert f"took over stale lock {path} (its content is not a ragops lock" in capsys.readouterr().err
    assert not os.path.exists(path)


def test_a_lock_directory_is_created_one_level_deep_but_never_a_chain_of_parents(tmp_path):
    from ragops.errors import ConfigError

    one = make_target(tmp_path, {"lock_path": str(tmp_path / "run" / "ragops.lock")})
    with HostLock(one, "maintain"):
        assert (tmp_path / "run" / "ragops.lock").is_file()
    deep = make_target(tmp_path, {"lock_path": str(tmp_path / "nonexistent" / "dir" / "ragops.lock")})
    with pytest.raises(ConfigError, match="lock_path: .*its directory .* does not exist"):
        HostLock(deep, "maintain").acquire()
    assert not (tmp_path / "nonexistent").exists()
