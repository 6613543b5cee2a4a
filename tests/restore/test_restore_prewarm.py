"""The Chroma verify process started before the restore (real local process, real ChromaDB import)."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

from ragops.backup.restic import parse_restored_snapshot
from ragops.backup.sources.chroma_prewarm import ChromaPrewarm
from ragops.config import Host, HostEntry, HostSettings
from ragops.restore.plan import Layout
from ragops.seam import Target


def local_target() -> Target:
    return Target(Host(name="local", entry=HostEntry(), settings=HostSettings(), source="test"))


def test_restics_restoring_line_names_the_snapshot_restored() -> None:
    out = "restoring <Snapshot 5cc9a0d4 of [/srv/st/run-1 /etc/rag] at 2026-11-28 23:38:55 by root@web1> to /scratch/restore\n"
    assert parse_restored_snapshot(out) == "5cc9a0d4"
    assert parse_restored_snapshot("Summary: Restored 12 files") is None


def test_an_unused_prewarmed_process_stops_when_told(tmp_path: Path) -> None:
    layout = Layout(str(tmp_path / "scratch"))
    Path(layout.root).mkdir()
    warm = ChromaPrewarm(local_target(), sys.executable, layout)
    assert warm.available
    t0 = time.monotonic()
    warm.close("restore failed")
    assert warm.future is not None and warm.future.done()
    assert warm.future.result()["error"] == "aborted: restore failed"
    assert time.monotonic() - t0 < 30


def test_a_prewarmed_process_gives_up_when_the_scratch_dir_is_removed(tmp_path: Path) -> None:
    layout = Layout(str(tmp_path / "scratch"))
    Path(layout.root).mkdir()
    warm = ChromaPrewarm(local_target(), sys.executable, layout)
    shutil.rmtree(layout.root)
    assert warm.future is not None
    assert "is gone" in warm.future.result(timeout=60)["error"]


def test_a_prewarmed_process_runs_the_order_it_is_given(tmp_path: Path) -> None:
    layout = Layout(str(tmp_path / "scratch"))
    Path(layout.root).mkdir()
    warm = ChromaPrewarm(local_target(), sys.executable, layout)
    doc = warm.run(["both", str(tmp_path / "no-such-store"), str(tmp_path / "m.json"), "1.0", "0"])
    assert doc == {"ok": False, "error": f"no chroma.sqlite3 in {tmp_path / 'no-such-store'}"}
    assert not warm.available


def test_a_prewarmed_process_whose_caller_died_exits_by_itself(tmp_path: Path) -> None:
    """A launcher starts `serve` and exits at once (as a killed ragops would): the orphan notices
    its parent is gone and stops instead of waiting for an order that never comes."""
    import json
    import subprocess

    from ragops.backup.sources.chroma import make_combined_script

    scratch, out = tmp_path / "scratch", tmp_path / "serve.out"
    scratch.mkdir()
    launcher = ("import subprocess, sys\n"
                f"p = subprocess.Popen([sys.executable, '-', 'serve', {str(scratch / 'go.json')!r}], "
                f"stdin=subprocess.PIPE, stdout=open({str(out)!r}, 'w'), stderr=subprocess.DEVNULL)\n"
                "p.stdin.write(sys.stdin.read().encode()); p.stdin.close(); print(p.pid)\n"
                "import time; time.sleep(1)\n")  # let it start and note its parent, then die
    pid = int(subprocess.run([sys.executable, "-c", launcher], input=make_combined_script(), capture_output=True,
                             text=True, check=True, timeout=60).stdout)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not out.read_text().strip():
        time.sleep(0.1)
    assert json.loads(out.read_text()) == {"ok": False, "error": "gave up: the process that started it is gone"}
    stat = Path(f"/proc/{pid}/stat")

    def exited() -> bool:  # gone, or a zombie until init reaps it
        try:
            return stat.read_text().split(") ")[1][0] == "Z"
        except (FileNotFoundError, ProcessLookupError):
            return True

    while time.monotonic() < deadline and not exited():
        time.sleep(0.1)
    assert exited()
