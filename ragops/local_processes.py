"""Controller-side processes: tools run on the controller (``run_local``) and the demo's daemons
(``spawn_background``, ``pid_alive``, ``stop_pid``). Re-exported by ``ragops.seam``.

Like every command, ``run_local`` runs in its own process group that dies with ragops and is
stopped (raising ``Interrupted``) when the run is cancelled.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time

from . import interrupts
from .errors import Interrupted
from .seam_runners import CmdResult, LocalGroup, make_guarded_command


def run_local(argv: list[str], *, input_text: str | None = None, env: dict[str, str] | None = None,
              timeout: float | None = None, cwd: str | None = None) -> CmdResult:
    """Run a program on the controller (argv, no shell). Never pass secrets in argv.

    Like every command, it runs in its own process group that dies with ragops and is stopped
    (raising Interrupted) when the run is cancelled."""
    command = shlex.join(argv)
    entry = interrupts.begin()
    try:
        try:
            proc = subprocess.Popen(["/bin/sh", "-c", make_guarded_command('"$@"'), "sh", *argv], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd,
                                    start_new_session=True)
        except FileNotFoundError:  # cwd missing
            return CmdResult(command=command, stderr=f"{cwd}: not found", exited=127)
        group = LocalGroup(proc.pid)
        entry.attach(group)
        try:
            stdout, stderr = proc.communicate(input_text, timeout=timeout)
        except subprocess.TimeoutExpired:
            group.signal(signal.SIGKILL)
            proc.communicate()
            return CmdResult(command=command, stderr=f"timed out after {timeout}s", exited=124)
    finally:
        interrupts.end(entry)
        if entry.doomed:
            entry.settle()
    if entry.doomed:
        raise Interrupted(f"controller: {interrupts.describe()}")
    return CmdResult(command=command, stdout=stdout, stderr=stderr, exited=proc.returncode)


def spawn_background(argv: list[str], *, log_path: str, env: dict[str, str] | None = None, cwd: str | None = None) -> int:
    """Start a daemon-like child in its own session, output to log_path; return its pid."""
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, cwd=cwd, start_new_session=True)
    return proc.pid


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child counts as dead
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def stop_pid(pid: int, grace_s: float = 5.0) -> bool:
    """SIGTERM, wait up to grace_s, then SIGKILL. True if a process was stopped."""
    if not pid_alive(pid):
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return True
