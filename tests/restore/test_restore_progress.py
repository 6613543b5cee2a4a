"""The restore progress line (restic 0.14's restore prints nothing while it runs): pure parts, and
the watcher on a real directory that grows while it watches."""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

import pytest

from ragops import output
from ragops.restore import progress
from tests.fixtures.fleet_helpers import make_target


def test_the_line_has_percent_bytes_rate_and_eta() -> None:
    line = progress.make_progress_line(400 * 2**20, 1000 * 2**20, 10.0)
    assert line.startswith("restore 40%: ")
    assert "MiB/s" in line or "MB/s" in line
    assert re.search(r"ETA 0m15s$", line), line  # 600 MiB left at 40 MiB/s


def test_the_line_without_a_total_or_a_rate_says_so() -> None:
    assert progress.make_progress_line(0, 0, 0.0) == "restore ?%: 0 B/?"
    assert "ETA" not in progress.make_progress_line(10, 10, 1.0)  # done: no ETA
    assert progress.make_progress_line(20, 10, 1.0).startswith("restore 100%")  # never above 100


def test_du_output_is_parsed_and_garbage_is_not_a_number() -> None:
    assert progress.parse_du_bytes("123456\n") == 123456
    assert progress.parse_du_bytes("123\t/x\n") == 123
    assert progress.parse_du_bytes("") is None
    assert progress.parse_du_bytes("du: cannot access") is None


def test_the_watcher_reports_a_growing_directory_and_stops_with_the_block(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    lines: list[str] = []
    monkeypatch.setattr(output, "info", lambda host, text: lines.append(text))
    target = make_target(tmp_path / "cfg")
    stop = threading.Event()
    data = tmp_path / "data"
    data.mkdir()

    def grow() -> None:
        with open(data / "data.bin", "wb") as f:
            while not stop.is_set():
                f.write(os.urandom(64 * 1024))
                f.flush()
                time.sleep(0.01)

    writer = threading.Thread(target=grow)
    writer.start()
    try:
        with progress.watch(target, str(data), 50 * 2**20, every_s=0.1):
            time.sleep(1.0)
    finally:
        stop.set()
        writer.join()
    n = len(lines)
    assert n >= 3, lines
    done = [int(m.group(1)) for m in (re.match(r"restore (\d+)%", x) for x in lines) if m]
    assert done == sorted(done) and done[-1] > done[0], lines  # it grew, and the lines say so
    time.sleep(0.3)
    assert len(lines) == n  # the thread ended with the block
    assert not [t for t in threading.enumerate() if t.name.startswith("progress-")]


def test_no_watcher_when_the_interval_is_zero(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(output, "info", lambda host, text: pytest.fail(text))
    with progress.watch(make_target(tmp_path / "cfg"), str(tmp_path), 1, every_s=0):
        time.sleep(0.2)
