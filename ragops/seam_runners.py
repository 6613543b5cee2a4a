"""The seam's Invoke/Fabric runners: fast output reading, one process group per command, and
children that die with ragops, locally and over SSH. Used by ``ssh.make_connection``
and ``local_processes.run_local``; ``CmdResult`` (re-exported by ``ragops.seam``) is what a command returns.

Every command runs inside :func:`make_guarded_command`: a POSIX shell that owns a process group
(locally: a new session per command; over SSH: the session sshd creates per channel), runs the
command in a subshell and keeps a tiny watcher next to it. When ragops dies (``kill -9``, the SSH
connection drops), the watcher sees its parent gone and kills the group (SIGINT, SIGTERM, SIGKILL),
so no ``restic``, ``redis-cli --bgsave``, inspect script or ``cp`` keeps running. The command's
stdin (secrets, scripts) is untouched: the watcher reads /dev/null.

For a cancelled run (:mod:`ragops.interrupts`) each running command gets a killer: locally
``killpg`` of its group; over SSH the remote shell announces its pid on stderr (one marker line,
removed from the output) and the killer runs ``kill -TERM -<pid>`` in a new channel of the same
connection, so the remote processes are really gone before ``Target.run`` returns. Both send SIGINT
first (restic before 0.16 removes its repository lock on SIGINT only), SIGTERM ``INT_GRACE_S`` (2 s: restic runs under nice/ionice) later,
SIGKILL after ``interrupts.GRACE_S``.
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
import threading
import time
from dataclasses import dataclass
from subprocess import PIPE, Popen
from subprocess import run as run_process
from typing import Any

from . import interrupts


@dataclass
class CmdResult:
    command: str
    stdout: str = ""
    stderr: str = ""
    exited: int = 0
    dry: bool = False

    @property
    def ok(self) -> bool:
        return self.exited == 0


MARK = b"\x1eragops-pid "
INT_GRACE_S = 2.0  # SIGINT first: restic (< 0.16) removes its repository lock on SIGINT, not SIGTERM
current = threading.local()  # .entry: the interrupts.Running of the command this thread starts

GUARD = (
    "ragops_s=$$ ragops_p=$PPID\n"
    "( while kill -0 $ragops_p 2>/dev/null && kill -0 $ragops_s 2>/dev/null; do sleep 1; done\n"
    "  kill -0 $ragops_p 2>/dev/null || { trap '' INT TERM; kill -INT 0; sleep 1; kill -TERM 0; sleep 2; kill -KILL 0; }\n"
    ") </dev/null >/dev/null 2>&1 &\n"
    "ragops_w=$!\n"
    "(\n{command}\n)\n"
    "ragops_r=$?; kill $ragops_w 2>/dev/null; exit $ragops_r"
)


_ENV_DEFAULT_SIGNAL: list[bool] = []  # does this machine's `env` know --default-signal (coreutils >= 8.31)?


def make_default_sigint_command(script: str) -> str:
    """``script`` (a bash script) run with SIGINT at its default disposition.

    A process started with SIGINT ignored (``cmd &`` from a non-interactive shell, some supervisors)
    passes that on to every child, and a shell cannot un-ignore it; restic (< 0.16) removes its
    lock only on the SIGINT ragops sends first. ``exec`` keeps the pid (the guard's ``$$``/``$PPID``)."""
    if not _ENV_DEFAULT_SIGNAL:
        try:
            ok = run_process(["env", "--default-signal=INT", "true"], capture_output=True).returncode == 0
        except OSError:
            ok = False
        _ENV_DEFAULT_SIGNAL.append(ok)
    if _ENV_DEFAULT_SIGNAL[0]:
        return f"exec env --default-signal=INT bash -c {shlex.quote(script)}"
    reset = "import os,signal,sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execvp('bash', ['bash', '-c', sys.argv[1]])"
    return f"exec {shlex.quote(sys.executable)} -c {shlex.quote(reset)} {shlex.quote(script)}"


def make_guarded_command(command: str, *, announce: bool = False) -> str:
    """``command`` in a subshell next to a watcher that kills the process group when the parent
    (ragops, or the sshd session) is gone. ``announce``: first print the group's pid on stderr."""
    head = "printf '\\036ragops-pid %s\\n' $$ >&2\n" if announce else ""
    return head + GUARD.replace("{command}", command)


def make_remote_kill_command(pid: int, grace_s: float) -> str:
    """SIGINT the remote process group (restic removes its lock on SIGINT only, before 0.16), SIGTERM
    after ``INT_GRACE_S``, SIGKILL whatever is left after ``grace_s``."""
    group, first, rounds = f"-{int(pid)}", max(1, int(INT_GRACE_S * 10)), max(2, int(grace_s * 10))
    return (f"kill -INT {group} 2>/dev/null; i=0; while kill -0 {group} 2>/dev/null; do "
            f"if [ $i -eq {first} ]; then kill -TERM {group} 2>/dev/null; fi; "
            f"if [ $i -ge {rounds} ]; then kill -KILL {group} 2>/dev/null; break; fi; sleep 0.1; i=$((i+1)); done; true")


def group_alive(pgid: int) -> bool:
    """Does a local process group still have a live (non-zombie) member?"""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if fields[2] == str(pgid) and fields[0] != "Z":
                return True
    return False


class LocalGroup:
    """Killer of a local command: its own process group (session) created at spawn."""

    def __init__(self, pgid: int) -> None:
        self.pgid = pgid

    def signal(self, sig: int) -> None:
        try:
            os.killpg(self.pgid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def terminate(self) -> None:
        """SIGINT now (restic cleans up its lock), SIGTERM after INT_GRACE_S if anything is left."""
        self.signal(signal.SIGINT)
        timer = threading.Timer(INT_GRACE_S, self._escalate)
        timer.daemon = True
        timer.start()

    def _escalate(self) -> None:
        if group_alive(self.pgid):
            self.signal(signal.SIGTERM)

    def wait_gone(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while group_alive(self.pgid):
            if time.monotonic() > deadline:
                self.signal(signal.SIGKILL)
                deadline = time.monotonic() + 60
            time.sleep(0.02)


class RemoteGroup:
    """Killer of a remote command: ``kill`` of its process group in a new channel (same connection)."""

    def __init__(self, connection: Any, pid: int) -> None:
        self.connection, self.pid = connection, pid
        self._thread: threading.Thread | None = None

    def _kill(self) -> None:
        try:
            channel = self.connection.create_session()
            channel.exec_command(make_remote_kill_command(self.pid, interrupts.GRACE_S))
            channel.recv_exit_status()
            channel.close()
        except Exception:  # noqa: BLE001 - connection gone: the remote watcher kills the group
            pass

    def terminate(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._kill, name=f"kill-remote-{self.pid}", daemon=True)
            self._thread.start()

    def wait_gone(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout + 10)


def make_fast_runner(base: type) -> type:
    """An Invoke/Fabric runner that reads output in 64 KiB chunks and skips the watcher scan.

    Invoke reads 1000 bytes at a time and, after every chunk, joins the whole output captured so far
    to feed its (here unused) watchers: quadratic in the output size. A cleanup of 100k files prints
    ~6 MB, which took ~10 s instead of ~1 s (bench/bench_cleanup.py).
    """

    class FastRunner(base):  # type: ignore[valid-type, misc]
        read_chunk_size = 65536
        input_sleep = 0.003  # Invoke polls for exit/stdin every 10 ms: most of a short command's cost

        def respond(self, buffer_: list[str]) -> None:
            if self.watchers:
                super().respond(buffer_)

    FastRunner.__name__ = f"Fast{base.__name__}"
    return FastRunner


def make_local_runner() -> type:
    """Invoke's Local runner, each command in a new session (its own process group)."""
    from invoke import Local

    class GroupLocal(make_fast_runner(Local)):  # type: ignore[misc]
        def start(self, command: str, shell: str, env: dict[str, Any]) -> None:
            if self.using_pty:
                super().start(command, shell, env)
                return
            self.process = Popen(command, shell=True, executable=shell, env=env, stdout=PIPE, stderr=PIPE, stdin=PIPE,
                                 start_new_session=True)
            entry = getattr(current, "entry", None)
            if entry is not None:
                entry.attach(LocalGroup(self.process.pid))

        def kill(self) -> None:  # a timeout: the whole group, not only the shell
            if self.using_pty:
                super().kill()
            else:
                LocalGroup(self.process.pid).signal(signal.SIGKILL)

    return GroupLocal


def make_remote_runner() -> type:
    """Fabric's Remote runner that learns the remote shell's pid from its first stderr line."""
    from fabric.runners import Remote

    class GroupRemote(make_fast_runner(Remote)):  # type: ignore[misc]
        def start(self, command: str, shell: str, env: dict[str, Any], *args: Any, **kwargs: Any) -> None:
            self._entry = getattr(current, "entry", None)
            self._head: bytes | None = b""
            self._group: RemoteGroup | None = None
            super().start(command, shell, env, *args, **kwargs)

        def read_proc_stderr(self, num_bytes: int) -> bytes:
            while True:
                data = super().read_proc_stderr(num_bytes)
                if self._head is None:
                    return data
                if not data:  # EOF before any marker: give back what was held
                    data, self._head = self._head, None
                    return data
                rest = self._take_marker(self._head + data)
                if rest:
                    return rest

        def _take_marker(self, head: bytes) -> bytes:
            """Strip the marker line; b"" while it is still incomplete (or nothing else came)."""
            start = head.find(MARK)
            end = head.find(b"\n", start) if start >= 0 else -1
            if end < 0:
                if len(head) < 4096:
                    self._head = head
                    return b""
                self._head = None
                return head
            self._head = None
            try:
                self._group = RemoteGroup(self.context, int(head[start + len(MARK):end]))
            except ValueError:
                return head
            if self._entry is not None:
                self._entry.attach(self._group)
            return head[:start] + head[end + 1:]

        def kill(self) -> None:  # a timeout: stop the remote processes too, not only the channel
            if self._group is not None:
                self._group.terminate()
            super().kill()

    return GroupRemote
