"""Real signals at ragops and real kills of ragops: the running command and its children stop,
cleanup commands still run, and nothing ragops started outlives it, locally and over SSH.

"Left running" is checked by scanning /proc for processes whose command line names the test's
temp dir (every command here mentions it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from ragops import interrupts
from ragops.errors import Interrupted, StepError
from ragops.seam import run_local
from tests.fixtures.fleet_helpers import REPO, make_host_entry, make_target, procs_mentioning


def wait_until(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def remote_target(tmp_path, sshd, address):
    return make_target(tmp_path, {}, host="h", hosts={"h": make_host_entry(sshd, address)})


def run_until_signalled(target, tmp_path: Path, sig: int) -> dict:
    """In a worker thread (as the fleet does): a command with a child, both sleeping; then a cleanup
    command. The main thread sends ``sig`` to this process once the command runs."""
    started, outcome = tmp_path / "started", {}

    def work() -> None:
        try:
            outcome["result"] = target.run(f"sh -c 'sleep 60 # {tmp_path}' & touch {started}; sleep 60 # {tmp_path}")
        except Interrupted as exc:
            outcome["error"] = exc
        outcome["cleanup"] = target.run(f"echo cleanup # {tmp_path}").stdout

    before = signal.getsignal(sig)
    with interrupts.handling():
        worker = threading.Thread(target=work)
        t0 = time.monotonic()
        worker.start()
        wait_until(started.exists)
        os.kill(os.getpid(), sig)
        worker.join(30)
        outcome["seconds"] = time.monotonic() - t0
        outcome["signal"] = interrupts.signal_name()
    assert signal.getsignal(sig) is before  # the previous handler is back
    assert not interrupts.cancelled()  # over with the run
    return outcome


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_signal_stops_the_running_local_command_and_its_children_and_later_commands_still_run(tmp_path, sig):
    outcome = run_until_signalled(make_target(tmp_path, {}), tmp_path, sig)
    assert str(outcome["error"]) == f"local: interrupted by {signal.Signals(sig).name}"
    assert outcome["cleanup"] == "cleanup\n" and outcome["seconds"] < 10
    assert outcome["signal"] == signal.Signals(sig).name
    wait_until(lambda: not procs_mentioning(str(tmp_path)), timeout=5)


@pytest.mark.slow
def test_a_signal_stops_the_remote_command_and_its_remote_children(tmp_path, sshd):
    target = remote_target(tmp_path, sshd, "127.0.0.2")
    try:
        outcome = run_until_signalled(target, tmp_path, signal.SIGTERM)
        assert str(outcome["error"]) == "h: interrupted by SIGTERM"
        assert outcome["cleanup"] == "cleanup\n" and outcome["seconds"] < 10
        # the kill ran on the host before Target.run returned: nothing is left there already
        assert procs_mentioning(str(tmp_path)) == []
    finally:
        target.close()


@pytest.mark.slow
def test_the_remote_pid_marker_never_reaches_the_output_and_names_the_remote_process_group(tmp_path, sshd):
    target = remote_target(tmp_path, sshd, "127.0.0.3")
    try:
        res = target.run("echo err >&2; ps -o pid= -o pgid= $$; cat", stdin="in\n")
        pid, pgid = res.stdout.split()[:2]
        assert pid == pgid and res.stdout.endswith("in\n")
        assert res.stderr == "err\n"
    finally:
        target.close()


def test_a_second_signal_while_cleaning_up_does_not_cut_the_cleanup_short(tmp_path):
    target = make_target(tmp_path, {})
    started, cleaning = tmp_path / "started", tmp_path / "cleaning"
    outcome: dict = {}

    def work() -> None:
        try:
            target.run(f"touch {started}; sleep 60 # {tmp_path}")
        except Interrupted:
            outcome["cleanup"] = target.run(f"touch {cleaning}; sleep 1; echo resumed # {tmp_path}").stdout

    with interrupts.handling():
        worker = threading.Thread(target=work)
        worker.start()
        wait_until(started.exists)
        os.kill(os.getpid(), signal.SIGTERM)
        wait_until(cleaning.exists)
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)
        worker.join(30)
        assert interrupts.signal_name() == "SIGTERM"  # the first one counts
    assert outcome["cleanup"] == "resumed\n"


def test_a_shielded_cleanup_command_running_when_the_signal_arrives_completes(tmp_path):
    target = make_target(tmp_path, {})
    started, outcome = tmp_path / "started", {}

    def work() -> None:
        with interrupts.shielded():
            outcome["resume"] = target.run(f"touch {started}; sleep 1; echo resumed # {tmp_path}").stdout

    with interrupts.handling():
        worker = threading.Thread(target=work)
        worker.start()
        wait_until(started.exists)
        os.kill(os.getpid(), signal.SIGTERM)
        worker.join(30)
        assert interrupts.cancelled()
    assert outcome["resume"] == "resumed\n"


def test_an_ignored_sighup_stays_ignored_under_nohup():
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with interrupts.handling():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_a_controller_side_tool_is_stopped_by_the_signal_too(tmp_path):
    outcome: dict = {}

    def work() -> None:
        try:
            run_local(["sh", "-c", f"touch {tmp_path}/started; sleep 60 # {tmp_path}"])
        except Interrupted as exc:
            outcome["error"] = exc

    with interrupts.handling():
        worker = threading.Thread(target=work)
        worker.start()
        wait_until((tmp_path / "started").exists)
        os.kill(os.getpid(), signal.SIGTERM)
        worker.join(30)
    assert str(outcome["error"]) == "controller: interrupted by SIGTERM"
    wait_until(lambda: not procs_mentioning(str(tmp_path)), timeout=5)


def test_a_command_that_times_out_takes_its_children_with_it(tmp_path):
    t0 = time.monotonic()
    with pytest.raises(StepError, match="timed out"):
        make_target(tmp_path, {}).run(f"sh -c 'sleep 30 # {tmp_path}'; echo never", timeout=0.5)
    assert time.monotonic() - t0 < 5  # a child left alive would hold the output pipe open
    wait_until(lambda: not procs_mentioning(str(tmp_path)), timeout=5)


# ------------------------------------------------------------------ kill -9 of ragops itself

HOLDER = textwrap.dedent("""
    import os, sys, threading
    sys.path.insert(0, os.environ["RAGOPS_REPO"])
    from ragops.config import load_config
    from ragops.seam import Target, run_local
    tmp, host = os.environ["T_DIR"], os.environ["T_HOST"]
    target = Target(host=load_config(os.environ["T_CONFIG"], environ={}).hosts[host])
    if host == "local":  # a controller-side tool too, from another thread
        threading.Thread(target=run_local, args=(["sh", "-c", f"sleep 60 # {tmp}"],), daemon=True).start()
    target.run(f"sh -c 'sleep 60 # {tmp}' & touch {tmp}/started; sleep 60 # {tmp}")
""")


def kill_holder_and_check(tmp_path: Path, host: str, config: Path) -> None:
    env = {**os.environ, "RAGOPS_REPO": str(REPO), "T_DIR": str(tmp_path), "T_HOST": host, "T_CONFIG": str(config)}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER], env=env, stdin=subprocess.DEVNULL)
    try:
        wait_until((tmp_path / "started").exists)
        time.sleep(0.3)
        assert len(procs_mentioning(str(tmp_path))) >= 3
    finally:
        holder.kill()  # SIGKILL: no handler, no finally, nothing of ragops runs
        holder.wait()
    wait_until(lambda: not procs_mentioning(str(tmp_path)), timeout=10)


def test_children_die_with_ragops_when_it_is_killed_with_sigkill(tmp_path):
    make_target(tmp_path, {})  # writes the config
    kill_holder_and_check(tmp_path, "local", tmp_path / "cfg" / "ragops.yaml")


@pytest.mark.slow
def test_remote_children_die_when_ragops_is_killed_with_sigkill(tmp_path, sshd):
    remote_target(tmp_path, sshd, "127.0.0.4")  # writes the config
    kill_holder_and_check(tmp_path, "h", tmp_path / "cfg" / "ragops.yaml")
