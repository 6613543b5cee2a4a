"""A real `invoke backup` (real ChromaDB, real restic) killed with SIGKILL at three points: while it
stages, while it validates the staged copy, while restic runs. The run and all its children are
killed at once (what the OOM killer or a cgroup kill does), so nothing is left to clean up but what
the run left on disk. Every next run removes the dead run's staging dir; a successful
run sees only its own and leaves none. Also: a stale restic lock left by a killed `restic prune`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.fixtures.backup_helpers import run_dirs
from tests.fixtures.fleet_helpers import INVOKE, REPO

ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}


def start_backup(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen([INVOKE, "backup", "--host", "local", "--config", str(config), "--json"], cwd=REPO,
                                stdout=out, stderr=subprocess.STDOUT, env=ENV)


def descendants(pid: int) -> list[int]:
    """pid and every process below it (ragops starts each command in its own session, so a process
    group kill would miss them)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def running_below(pid: int, *needles: str) -> bool:
    return any(all(n in cmdline(p) for n in needles) for p in descendants(pid)[1:])


def wait_for(check: Callable[[], bool], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def kill_tree(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the run and all its children at once (what the OOM killer or a cgroup kill does)."""
    victims = descendants(proc.pid)
    for _ in range(2):  # a child forked meanwhile is caught by the second pass
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        victims = [p for p in descendants(proc.pid) if p != proc.pid] + victims
    proc.wait(timeout=30)
    wait_for(lambda: not any(Path(f"/proc/{p}").exists() and "Z" not in state(p) for p in victims),
             "the killed processes to be gone", timeout=30)


def state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "Z"


def test_runs_killed_while_staging_validating_and_in_restic_leave_nothing_behind_the_next_runs(
        chroma_dataset, backup_env, tmp_path):
    hold, hit, listing = tmp_path / "hold", tmp_path / "hit", tmp_path / "listing"
    env = backup_env(chroma_dir=chroma_dataset, strategy="pause", chroma_extra={"pause": {
        "pre": "true", "post": f"ls {env_staging(tmp_path)} > {listing}; if [ -e {hold} ]; then touch {hit}; sleep 60; fi"}})
    staging, logs = env.staging, tmp_path / "logs"
    logs.mkdir()
    points = {
        "staging": lambda pid: hit.exists(),  # the Chroma copy is staged, the writer not yet resumed
        "validation": lambda pid: running_below(pid, " record ", f"{staging}/stable/chroma"),
        "restic": lambda pid: running_below(pid, "restic", " backup ") and any(
            "-tmp-" not in p.name for p in (env.repo / "locks").iterdir()),
    }
    killed: list[tuple[str, Path]] = []
    for point, reached in points.items():
        if point == "staging":
            hold.touch()
        else:
            hold.unlink(missing_ok=True)
        proc = start_backup(env.config, logs / f"{point}.log")
        wait_for(lambda r=reached, p=proc: r(p.pid) or p.poll() is not None, f"the {point} phase")  # type: ignore[misc]
        assert proc.poll() is None, f"the run ended before {point}: {(logs / f'{point}.log').read_text()[-2000:]}"
        kill_tree(proc)
        left = [staging / name for name in run_dirs(staging)]
        # The run just killed left exactly its own dir: the previous dead run's dir was removed by it.
        assert len(left) == 1, (point, left)
        owner = json.loads((left[0] / ".ragops-owner.json").read_text())
        assert owner["pid"] == proc.pid and owner["origin"] == os.uname().nodename
        if point == "staging":
            # the copy is the mirror at the stable path (kept by design, updated in place next run)
            assert (staging / "stable" / "chroma" / "chroma.sqlite3").is_file()
        if killed:
            assert killed[-1][1] not in left
            assert f"removing leftover staging dir {killed[-1][1]}" in (logs / f"{point}.log").read_text()
        killed.append((point, left[0]))

    hold.unlink(missing_ok=True)
    ok = subprocess.run([INVOKE, "backup", "--host", "local", "--config", str(env.config), "--json"], cwd=REPO,
                        capture_output=True, text=True, env=ENV, timeout=300)
    assert ok.returncode == 0, ok.stderr[-3000:]
    step = json.loads(ok.stdout)["hosts"][0]["steps"][0]
    assert [r["path"] for r in step["details"]["leftovers"]["removed"]] == [str(killed[-1][1])]
    assert "removed 1 leftover staging dir(s) of dead runs" in step["message"]
    own = [n for n in listing.read_text().split() if n.startswith("run-")]
    assert len(own) == 1 and own[0] == Path(step["details"]["staging_dir"]).name, own  # only its own run dir
    assert run_dirs(staging) == []
    snap = env.snapshots()[-1]
    assert not any(p.endswith(".ragops-owner.json") for p in snap["paths"])
    nodes = [json.loads(line) for line in env.restic("ls", "--json", snap["id"]).stdout.splitlines()]
    names = [n["name"] for n in nodes if n.get("struct_type") == "node"]
    assert "chroma.sqlite3" in names and ".ragops-owner.json" not in names  # the marker stays out of the snapshot


def env_staging(tmp_path: Path) -> Path:
    return tmp_path / "bk" / "staging"  # make_backup_env's default staging dir


def test_a_stale_restic_lock_from_a_killed_prune_is_removed_and_the_backup_says_so(chroma_dataset, backup_env):
    env = backup_env(chroma_dir=chroma_dataset)
    env.restic("backup", str(chroma_dataset))
    argv = ["restic", "-r", str(env.repo), "--password-file", str(env.password_file), "--cache-dir", str(env.cache), "prune"]
    prune = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: any("-tmp-" not in p.name for p in (env.repo / "locks").iterdir()) or prune.poll() is not None,
             "prune's exclusive lock")
    prune.kill()
    prune.wait()
    assert any((env.repo / "locks").iterdir()), "prune finished before it could be killed"
    res = subprocess.run([INVOKE, "backup", "--host", "local", "--config", str(env.config), "--json"], cwd=REPO,
                         capture_output=True, text=True, env=ENV, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"is locked by PID {prune.pid}" in res.stderr and "removing a stale lock" in res.stderr
    assert not any((env.repo / "locks").iterdir()) and len(env.snapshots()) == 2
