"""SIGTERM, SIGINT and SIGHUP at a real ``invoke backup`` in each phase (hold, copy, validate, restic),
and ``kill -9`` of it: the Chroma writer runs again, the staging dir is gone, no child is left,
exit 130 with one JSON document, the failed-run metrics are written.

Real parts: a ChromaDB dir, a restic repository, a writer process that the ``stop`` strategy really
stops (SIGSTOP) and starts (SIGCONT), ``pause`` hooks that create and remove a marker. To know the
phase and make it last, one step sleeps after writing a phase marker: the pause/stop command
(hold), the host ``python`` wrapper while it runs the mirror update (copy) or the sqlite record
of the copy (validate); in the restic phase the real restic runs, slowed by ``--limit-upload 1``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.fixtures.backup_helpers import VENV_PYTHON, make_backup_env, make_chroma_dir
from tests.fixtures.fleet_helpers import make_host_entry, procs_mentioning, start_invoke

pytestmark = pytest.mark.slow

PHASES = ["hold", "copy", "validate", "restic"]
SIGNALS = [signal.SIGTERM, signal.SIGINT, signal.SIGHUP]
REAL_RESTIC = shutil.which("restic")


def process_state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rsplit(")", 1)[1].split()[0]


def wait_until(condition, timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def small_chroma(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("signals-chroma") / "chroma"
    make_chroma_dir(path, {"docs": 300}, dims=8)
    return path


@pytest.fixture(scope="module")
def shared_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One initialized repository for every case (an interrupted backup adds no snapshot to it)."""
    return make_backup_env(tmp_path_factory.mktemp("signals-repo")).repo


def write_script(path: Path, text: str) -> str:
    path.write_text("#!/bin/sh\n" + text)
    path.chmod(0o755)
    return str(path)


class SignalCase:
    """A backup config whose ``phase`` lasts until it is signalled; the writer it holds."""

    def __init__(self, tmp: Path, chroma: Path, repo: Path, strategy: str, phase: str) -> None:
        self.tmp, self.strategy, self.phase = tmp, strategy, phase
        self.phases, self.bin, self.paused = tmp / "phases", tmp / "bin", tmp / "writer-paused"
        self.phases.mkdir()
        self.bin.mkdir()
        (tmp / "slow-phase").write_text(phase)
        def slow(phase: str, then: str) -> str:  # in `phase`: write its marker, then `then`
            return f'[ "$(cat {tmp}/slow-phase)" = {phase} ] && {{ touch {self.phases}/{phase}; {then}; }}'

        # the host's Python runs the mirror update (`- SRC DST MODE`: copy) and the sqlite record (`- record DIR`: validate)
        helpers = write_script(self.bin / "host-python",
                               f'[ "$2" = record ] && {slow("validate", "sleep 100")}\n'
                               f'case "$4" in copy|reflink|auto) {slow("copy", "sleep 100")};; esac\n'
                               f'exec {VENV_PYTHON} "$@"\n')
        limited = slow("restic", f'exec {REAL_RESTIC} --limit-upload 1 "$@"')
        restic = write_script(self.bin / "restic", f'for a; do [ "$a" = backup ] && {limited}; done\nexec {REAL_RESTIC} "$@"\n')
        hold = slow("hold", "sleep 100") + "; true"
        self.writer = subprocess.Popen(["sh", "-c", f"while :; do echo x >> {tmp}/writer.log; sleep 0.1; done"],
                                       start_new_session=True)
        if strategy == "pause":
            extra = {"pause": {"pre": f"touch {self.paused}; {hold}", "post": f"rm -f {self.paused}"}}
        else:
            extra = {"stop": {"command": f"kill -STOP {self.writer.pid}; {hold}", "start_command": f"kill -CONT {self.writer.pid}"}}
        dest = tmp / "chroma-live"
        shutil.copytree(chroma, dest)
        self.env = make_backup_env(tmp, chroma_dir=dest, strategy=strategy, chroma_extra=extra, init=False, repo_url=str(repo))
        self.env.repo = repo
        doc = yaml.safe_load(self.env.config.read_text())
        doc["defaults"]["backup"].update(restic=restic)
        doc["defaults"]["python"] = helpers
        self.config = self.env.config
        self.config.write_text(yaml.safe_dump(doc, sort_keys=False))

    def use_ssh_host(self, sshd, address: str) -> str:
        doc = yaml.safe_load(self.config.read_text())
        doc["hosts"] = {"h2": make_host_entry(sshd, address)}
        self.config.write_text(yaml.safe_dump(doc, sort_keys=False))
        return "h2"

    def start(self, *extra: str) -> subprocess.Popen[str]:
        env = {"PATH": f"{self.bin}:{os.environ['PATH']}"}
        proc = start_invoke("backup", "--config", str(self.config), *extra, env=env)
        wait_until(lambda: (self.phases / self.phase).exists() or proc.poll() is not None, what=f"phase {self.phase}")
        assert proc.poll() is None, proc.communicate()
        if self.phase == "restic":  # the real restic is running, not only its wrapper
            wait_until(lambda: any(" backup " in p for p in self.restic_processes()), what="restic backup")
            self.wait_for_lock()
        return proc

    def wait_for_lock(self) -> None:
        """Until restic holds its lock: a SIGINT while restic 0.14 is still creating it (key derivation,
        then the lock file) can leave the lock behind, a restic race the tests must not hit by chance."""
        wait_until(lambda: any((self.env.repo / "locks").iterdir()), what="restic's repository lock")

    def restic_processes(self) -> list[str]:
        return [p for p in procs_mentioning(str(self.tmp)) if "--limit-upload" in p]

    def writer_runs(self) -> bool:
        size = (self.tmp / "writer.log").stat().st_size
        time.sleep(0.4)
        return process_state(self.writer.pid) != "T" and (self.tmp / "writer.log").stat().st_size > size

    def left_running(self) -> list[str]:
        return procs_mentioning(str(self.tmp), but=(self.writer.pid,))

    def repo_locks(self) -> list[str]:
        res = self.env.restic("list", "locks", "--no-lock")
        return res.stdout.split()

    def stop(self) -> None:
        self.writer.kill()
        self.writer.wait()


@pytest.fixture
def signal_case(tmp_path, small_chroma, shared_repo):
    cases: list[SignalCase] = []

    def make(strategy: str, phase: str) -> SignalCase:
        cases.append(SignalCase(tmp_path, small_chroma, shared_repo, strategy, phase))
        return cases[-1]

    yield make
    for case in cases:
        case.stop()


@pytest.mark.parametrize("phase", PHASES)
@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_a_signal_in_each_phase_of_a_backup_resumes_the_writer_removes_staging_and_exits_130(signal_case, sig, phase):
    strategy = "stop" if (PHASES.index(phase) + SIGNALS.index(sig)) % 2 == 0 else "pause"
    case = signal_case(strategy, phase)
    proc = case.start("--json")
    try:
        os.kill(proc.pid, sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    name = sig.name
    assert proc.returncode == 130, err
    doc = json.loads(out)  # exactly one JSON document on stdout
    host = doc["hosts"][0]
    assert (doc["exit_code"], doc["ok"], host["status"], host["exit_code"]) == (130, False, "interrupted", 130)
    assert host["steps"][0]["status"] == "failed" and host["steps"][0]["message"] == f"local: interrupted by {name}"
    assert "Traceback" not in err and err.count(f"{name} received") == 1, err
    assert err.strip().splitlines()[-1].startswith("ragops backup:"), err
    # the writer runs again
    assert case.writer_runs()
    if strategy == "pause":
        assert not case.paused.exists()
    # no staging dir, nothing left running, the lock released, the failed-run metrics written
    assert not [p.name for p in case.env.staging.glob("run-*")]
    assert case.left_running() == []
    assert not (case.env.root / "ragops.lock").exists()
    metrics = case.env.root / "metrics"
    assert 'ragops_step_success{host="local",step="backup"} 0' in (metrics / "ragops_backup.prom").read_text()
    assert 'ragops_step_status{host="local",step="backup"} 2' in (metrics / "ragops_backup.prom").read_text()
    if phase == "restic":
        assert case.repo_locks() == []  # restic got SIGINT first and removed its lock


def test_a_backup_interrupted_without_json_prints_nothing_on_stdout_and_one_exit_message(signal_case):
    case = signal_case("pause", "copy")
    proc = case.start()
    os.kill(proc.pid, signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and out == ""
    lines = err.strip().splitlines()
    assert [line for line in lines if "received" in line] == ["SIGTERM received: stopping; cleanup still runs (resume what was paused, remove scratch data)"]
    assert "Traceback" not in err and lines[-1].startswith("ragops backup: ") and lines[-1].endswith("local"), err
    assert not case.paused.exists() and case.left_running() == []


def kill_and_check(case: SignalCase, proc: subprocess.Popen[str]) -> None:
    assert case.left_running()
    proc.kill()  # SIGKILL: no handler runs, no finally
    proc.communicate()
    wait_until(lambda: not case.left_running(), timeout=15, what="children of the killed ragops to exit")
    # (restic may leave its lock here: it dies of SIGPIPE writing "cleaning up" to the dead parent's
    # pipe; `restic unlock` of the next run removes such stale locks)


# validate: the inspect helper writes nothing until it is done, so without its watcher it would run
# on (restic, which prints progress, would die of SIGPIPE by itself)
@pytest.mark.parametrize("phase", ["validate", "restic"])
def test_children_of_a_backup_die_with_ragops_when_it_is_killed_with_sigkill(signal_case, phase):
    case = signal_case("pause", phase)
    kill_and_check(case, case.start())


def test_remote_children_of_a_backup_die_with_ragops_when_it_is_killed_with_sigkill(signal_case, sshd):
    case = signal_case("stop", "validate")
    host = case.use_ssh_host(sshd, "127.0.0.5")
    kill_and_check(case, case.start("--host", host))


def test_started_with_sigint_ignored_ragops_still_stops_restic_with_sigint_and_its_lock_goes(signal_case):
    """`invoke backup &` from a script (or a supervisor) starts ragops with SIGINT ignored, and every
    child inherits that: restic (< 0.16) would ignore the SIGINT ragops sends first and keep its
    repository lock. ragops re-execs its local commands with SIGINT at its default."""
    from tests.fixtures.fleet_helpers import INVOKE

    case = signal_case("pause", "restic")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGOPS_")}
    env.update(PATH=f"{case.bin}:{os.environ['PATH']}", COLUMNS="200", NO_COLOR="1")
    proc = subprocess.Popen(["sh", "-c", 'trap "" INT; exec "$0" "$@"', INVOKE, "backup", "--config", str(case.config),
                             "--json"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_until(lambda: any(" backup " in p for p in case.restic_processes()) or proc.poll() is not None,
                   what="restic backup")
        assert proc.poll() is None, proc.communicate()
        case.wait_for_lock()
        status = Path(f"/proc/{proc.pid}/status").read_text()
        assert int(next(x for x in status.splitlines() if x.startswith("SigIgn")).split()[1], 16) & 0x2  # ignored
        os.kill(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert case.left_running() == []
    assert case.repo_locks() == []  # restic got the SIGINT and removed its lock
