"""cleanup against a hostile user racing it: a parent of a root swapped between a real directory and
a symlink to another tree in a tight loop (a separate process) while cleanup runs 40 times. Bounded:
the swapper stops on a stop file or after 60 s, and is waited for by PID."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from ragops.report import OK
from ragops.steps.cleanup import run_cleanup
from tests.fixtures.fleet_helpers import hash_tree, make_target, set_age

SWAPPER = """
import ctypes, os, sys, time
path, link, stop = sys.argv[1:4]
parked = path + ".link"
os.symlink(link, parked)
renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
AT_FDCWD, RENAME_EXCHANGE = -100, 2
deadline = time.monotonic() + 60
while not os.path.exists(stop) and time.monotonic() < deadline:  # an even number of swaps per round
    for _ in range(2):  # path: the symlink to the other tree, then the real directory again (atomically)
        if renameat2(AT_FDCWD, path.encode(), AT_FDCWD, parked.encode(), RENAME_EXCHANGE) != 0:
            raise OSError(ctypes.get_errno(), "renameat2")
"""


def _old_logs(directory: Path, count: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (directory / f"old-{i}.log").write_bytes(b"o" * 10)
        set_age(directory / f"old-{i}.log", 30)


def test_a_parent_swapped_for_a_symlink_never_leads_outside_the_root(tmp_path):
    other = tmp_path / "other"
    _old_logs(other / "logs", 50)
    before = hash_tree(other)
    moving = tmp_path / "x" / "p"  # the directory the loop swaps
    root = moving / "logs"  # through the symlink: other/logs
    _old_logs(root, 5)
    target = make_target(tmp_path, {"logs": [{"root": str(root)}]})
    stop = tmp_path / "stop"
    swapper = subprocess.Popen([sys.executable, "-c", SWAPPER, str(moving), str(other), str(stop)])
    statuses = []
    try:
        time.sleep(0.2)
        for _ in range(40):
            statuses.append(run_cleanup(target).status)
    finally:
        stop.touch()
        swapper.wait(timeout=10)
    assert hash_tree(other) == before
    assert OK in statuses  # some runs found the real root and cleaned it: the check did not just refuse all
    assert not os.path.islink(moving) and not list(root.glob("old-*.log"))
