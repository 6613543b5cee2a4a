"""The one seam for side effects: every command ragops runs, locally or over SSH, goes through here.

Steps receive a :class:`Target` and call ``target.run(cmd)`` (a read: always runs) or
``target.run(cmd, write=True)`` (a change: printed, not run, under ``--dry``). Underneath sits an
Invoke ``Context`` for the host ``local`` and a Fabric ``Connection`` for every other host, so a
step is written once and runs on either. Process spawning (background daemons for the demo,
controller-side tools) and SSH live only in this module.

Secrets never go into argv: ``secrets={"NAME": value}`` feeds them on the command's stdin and the
remote shell ``read``s them into environment variables of the command.
"""

from __future__ import annotations

import io
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import interrupts, output
from .config import Host, LoadedConfig
from .errors import Interrupted, StepError, UnreachableError
from .seam_runners import LocalGroup, current, make_guarded_command, make_local_runner, make_remote_runner
from .seam_runners import make_fast_runner as make_fast_runner  # re-exported: the runners live there


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


class _ChunkedInput(io.StringIO):
    """Invoke reads non-tty stdin one byte per 10 ms; hand it 64 KiB per read instead."""

    def read(self, size: int | None = -1) -> str:
        return super().read(65536)


class _LineStream(io.TextIOBase):
    """A write-only stream handing complete, masked lines to a callback."""

    def __init__(self, callback: Callable[[str], None], mask: Callable[[str], str]) -> None:
        self._callback, self._mask, self._buffer = callback, mask, ""

    def write(self, text: str) -> int:
        self._buffer += text
        *lines, self._buffer = self._buffer.split("\n")
        for line in lines:
            try:
                self._callback(self._mask(line))
            except Exception:  # noqa: BLE001 - progress display must never break the command
                pass
        return len(text)

    def flush(self) -> None:
        pass


def quote(value: str | Path) -> str:
    return shlex.quote(str(value))


def make_secret_prefix(names: list[str]) -> str:
    """Shell prefix that reads one secret per stdin line into exported variables."""
    for name in names:
        if not name.isidentifier():
            raise ValueError(f"bad secret variable name {name!r}")
    return "".join(f"IFS= read -r {n} && export {n} && " for n in names)


@dataclass
class Target:
    """A host to act on: its resolved settings plus a lazily opened Invoke/Fabric connection."""

    host: Host
    dry: bool = False
    ssh_config_file: str | None = None
    _conn: Any = None
    _secrets: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def name(self) -> str:
        return self.host.name

    @property
    def settings(self):  # noqa: ANN201 - HostSettings
        return self.host.settings

    @property
    def python(self) -> str:
        """The host's Python for ragops' stdlib helper scripts, shell-quoted. On the local host the
        interpreter running ragops: always there, and no version-manager shim (a pyenv shim costs
        ~0.1 s per call, and a backup makes a dozen)."""
        configured = self.host.settings.python
        if configured:
            return quote(configured)
        return quote(sys.executable) if self.host.is_local and sys.executable else "python3"

    # -- connection -------------------------------------------------------------------------

    def connection(self) -> Any:
        with self._lock:
            if self._conn is None:
                self._conn = make_connection(self.host, self.ssh_config_file)
            return self._conn

    def open(self) -> None:
        """Connect now (for remote hosts), turning every SSH failure into UnreachableError."""
        conn = self.connection()
        if self.host.is_local:
            return
        try:
            conn.open()
        except Exception as exc:  # noqa: BLE001 - paramiko raises many unrelated types
            raise UnreachableError(describe_ssh_error(self.host, exc)) from None

    def close(self) -> None:
        if self._conn is not None and not self.host.is_local:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001
                pass

    # -- commands ---------------------------------------------------------------------------

    def mask(self, text: str) -> str:
        for secret in self._secrets:
            if secret:
                text = text.replace(secret, "****")
        return text

    def run(
        self,
        command: str,
        *,
        write: bool = False,
        secrets: dict[str, str] | None = None,
        stdin: str | None = None,
        timeout: float | None = None,
        check: bool = False,
        quiet_dry: bool = False,
        on_line: Callable[[str], None] | None = None,
    ) -> CmdResult:
        """Run a shell command on the host. ``write=True`` commands are only printed under --dry.

        ``on_line`` receives each stdout line as it arrives (progress of long steps); the
        full output is still captured in the result.
        """
        secrets = secrets or {}
        self._secrets.update(v for v in secrets.values() if v)
        shown = self.mask(command)
        if write and self.dry:
            if not quiet_dry:
                output.dry_command(self.name, shown)
            return CmdResult(command=shown, dry=True)
        full = command
        feed = stdin
        if secrets:
            full = make_secret_prefix(list(secrets)) + "{ " + command + "\n}"
            feed = "".join(v.replace("\n", "") + "\n" for v in secrets.values()) + (stdin or "")
        output.debug(self.name, shown)
        conn = self.connection()
        kwargs: dict[str, Any] = {"hide": True, "warn": True, "timeout": timeout}
        if on_line is not None:
            kwargs.update(hide="err", out_stream=_LineStream(on_line, self.mask))
        # Always a finite stream: stdin is closed at its end, so no command can hang reading it.
        kwargs["in_stream"] = _ChunkedInput(feed or "")
        # Its own process group, killed if ragops dies; registered so a signal can stop it.
        guarded = make_guarded_command(full, announce=not self.host.is_local)
        entry = interrupts.begin()
        current.entry = entry
        try:
            try:
                result = conn.run(guarded, **kwargs)
            finally:
                current.entry = None
                interrupts.end(entry)
                if entry.doomed:
                    entry.settle()
        except Exception as exc:  # noqa: BLE001
            if entry.doomed:
                raise Interrupted(f"{self.name}: {interrupts.describe()}") from None
            name = type(exc).__name__
            if name == "CommandTimedOut":
                raise StepError(f"{self.name}: command timed out after {timeout}s: {shown[:200]}") from None
            if self.host.is_local:
                raise
            raise UnreachableError(describe_ssh_error(self.host, exc)) from None
        if entry.doomed:
            raise Interrupted(f"{self.name}: {interrupts.describe()}")
        res = CmdResult(command=shown, stdout=self.mask(result.stdout), stderr=self.mask(result.stderr), exited=result.exited)
        if check and not res.ok:
            raise StepError(f"{self.name}: command failed (exit {res.exited}): {shown[:300]}\n{res.stderr.strip()[-800:]}")
        return res

    def put_text(self, text: str, path: str, *, mode: str = "0644") -> CmdResult:
        """Write a file atomically (temp file + rename in the same dir). A write: obeys --dry."""
        tmp = f"{path}.ragops-tmp.{os.getpid()}"
        cmd = (
            f"mkdir -p {quote(os.path.dirname(path) or '.')} && cat > {quote(tmp)} && "
            f"chmod {mode} {quote(tmp)} && mv -f {quote(tmp)} {quote(path)}"
        )
        if self.dry:
            output.dry_command(self.name, f"write {path} ({len(text.encode())} bytes, mode {mode})")
            return CmdResult(command=cmd, dry=True)
        return self.run(cmd, stdin=text, check=True)

    def read_text(self, path: str) -> str | None:
        """A file's content, or None if it does not exist. A read: runs under --dry too."""
        res = self.run(f"cat {quote(path)} 2>/dev/null || exit 44")
        return None if res.exited == 44 else res.stdout


def make_connection(host: Host, ssh_config_file: str | None = None) -> Any:
    """An Invoke Context for `local`, else a Fabric Connection with strict host keys by default."""
    if host.is_local:
        from invoke import Config, Context

        return Context(config=Config(overrides={"run": {"hide": True, "warn": True, "in_stream": False},
                                                "runners": {"local": make_local_runner()}}))
    import paramiko
    from fabric import Config as FabricConfig
    from fabric import Connection
    entry = host.entry
    overrides: dict[str, Any] = {"run": {"hide": True, "warn": True, "in_stream": False}, "load_ssh_configs": True,
                                 "runners": {"remote": make_remote_runner()}}
    cfg = FabricConfig(overrides=overrides, runtime_ssh_path=ssh_config_file) if ssh_config_file else FabricConfig(overrides=overrides)
    connect_kwargs: dict[str, Any] = {"allow_agent": False, "look_for_keys": entry.key_file is None}
    if entry.key_file:
        connect_kwargs["key_filename"] = os.path.expanduser(entry.key_file)
    conn = Connection(
        entry.ssh_alias or entry.address or host.name,
        user=entry.user,
        port=entry.port,
        config=cfg,
        connect_timeout=entry.connect_timeout_s,
        connect_kwargs=connect_kwargs,
    )
    client = conn.client
    if entry.strict_host_key_checking:
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
    else:
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    known = entry.known_hosts or conn.ssh_config.get("userknownhostsfile") or "~/.ssh/known_hosts"
    known = os.path.expanduser(str(known).split()[0])
    if os.path.exists(known):
        client.get_host_keys().load(known)
    return conn


def describe_ssh_error(host: Host, exc: BaseException) -> str:
    """One clear sentence for every way an SSH connection fails."""
    import paramiko

    entry = host.entry
    where = f"{entry.user + '@' if entry.user else ''}{entry.ssh_alias or entry.address or host.name}:{entry.port or 22}"
    if isinstance(exc, paramiko.BadHostKeyException):
        return f"{host.name}: SSH host key mismatch for {where}: the host's key changed (possible MITM); fix known_hosts"
    if isinstance(exc, paramiko.AuthenticationException):
        return f"{host.name}: SSH authentication failed for {where} (key rejected)"
    text = str(exc)
    if isinstance(exc, paramiko.SSHException) and "known_hosts" in text:
        return f"{host.name}: SSH host key of {where} is unknown (not in known_hosts); add it, or set strict_host_key_checking: false for this host"
    if isinstance(exc, (ConnectionRefusedError, paramiko.ssh_exception.NoValidConnectionsError)):
        return f"{host.name}: SSH connection refused by {where}"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return f"{host.name}: SSH connection to {where} timed out"
    if isinstance(exc, socket.gaierror):
        return f"{host.name}: cannot resolve {where}: {exc}"
    if isinstance(exc, (EOFError, paramiko.SSHException, OSError)):
        return f"{host.name}: SSH connection to {where} failed or dropped: {type(exc).__name__}: {text or 'connection lost'}"
    return f"{host.name}: SSH error on {where}: {type(exc).__name__}: {text}"


def make_targets(loaded: LoadedConfig, hosts: list[Host], dry: bool) -> list[Target]:
    return [Target(host=h, dry=dry, ssh_config_file=loaded.config.ssh_config_file) for h in hosts]


# ---------------------------------------------------------------- controller-side processes


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
