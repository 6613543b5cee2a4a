"""The one seam for side effects: every command ragops runs, locally or over SSH, goes through here.

Steps receive a :class:`Target` and call ``target.run(cmd)`` (a read: always runs) or
``target.run(cmd, write=True)`` (a change: printed, not run, under ``--dry``). Underneath sits an
Invoke ``Context`` for the host ``local`` and a Fabric ``Connection`` for every other host, so a
step is written once and runs on either. Process spawning and SSH live only behind this module:
``ssh`` (connection set-up, error wording), ``local_processes`` (controller-side tools, daemons),
``seam_runners`` (process groups, fast output reading).

Secrets never go into argv: ``secrets={"NAME": value}`` feeds them on the command's stdin and the
remote shell ``read``s them into environment variables of the command.
"""

from __future__ import annotations

import io
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import interrupts, output
from .config import Host, LoadedConfig
from .controller import controller_write, http_get, write_local_file
from .errors import Interrupted, StepError, ToolNotFoundError, UnreachableError
from .local_processes import pid_alive, run_local, spawn_background, stop_pid
from .seam_runners import CmdResult, current, make_default_sigint_command, make_guarded_command
from .seam_runners import make_fast_runner as make_fast_runner  # re-exported: the runners live there
from .ssh import describe_ssh_error, make_connection

__all__ = [  # also re-exported: the controller-side processes and SSH set-up live next door
    "CmdResult", "Target", "Tool", "describe_ssh_error", "make_connection", "make_fast_runner", "make_secret_prefix",
    "make_targets", "pid_alive", "quote", "run_local", "spawn_background", "stop_pid",
    "controller_write", "http_get", "write_local_file",
]


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


@dataclass(frozen=True)
class Tool:
    """A program a command needs on the host, like pyinfra's ``requires_command``: pass it as
    ``target.run(cmd, requires=tool)`` and a missing program (the shell's exit 127) becomes one
    clear error naming the tool and the setting that points to it, instead of each caller
    re-implementing "exit 127 means not installed"."""

    name: str  # shown: "restic"
    command: str | None = None  # the configured program (default: name)
    setting: str | None = None  # the ragops.yaml setting naming it, e.g. "backup.restic"
    error: type[ToolNotFoundError] = ToolNotFoundError  # a subclass for callers that catch their own

    def describe_missing(self) -> str:
        fix = f"install {self.name}, or set {self.setting}" if self.setting else f"install {self.name}"
        return f"{self.name} binary {self.command or self.name!r} not found on the host ({fix})"


@dataclass
class Target:
    """A host to act on: its resolved settings plus a lazily opened Invoke/Fabric connection."""

    host: Host
    dry: bool = False
    ssh_config_file: str | None = None
    _conn: Any = None
    # Facts learned about the host during this run (restic version, endpoint reachable, ...):
    # one Target per host per run, so they never outlive the run. See ``fact``.
    facts: dict[Any, Any] = field(default_factory=dict, repr=False)
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

    def fact(self, key: Any, compute: Callable[[], Any]) -> Any:
        """``compute()`` once per run of this host (a fact such as a tool's version); a result of
        None is not kept, so a fact that could not be learned is asked again."""
        with self._lock:
            if key in self.facts:
                return self.facts[key]
        value = compute()
        if value is not None:
            with self._lock:
                self.facts.setdefault(key, value)
        return value

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

    def http_get(self, url: str, *, timeout: float, what: str = "GET") -> int | None:
        """A GET from the controller on this host's behalf (a ping): printed under --dry."""
        return http_get(url, timeout=timeout, dry=self.dry, who=self.name, what=what)

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
        requires: Tool | None = None,
    ) -> CmdResult:
        """Run a shell command on the host. ``write=True`` commands are only printed under --dry.

        ``on_line`` receives each stdout line as it arrives (progress of long steps); the
        full output is still captured in the result. ``requires`` names the program the command
        needs: its absence (exit 127) raises ``requires.error`` naming the tool and its setting.
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
        if self.host.is_local and signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
            guarded = make_default_sigint_command(guarded)  # or our SIGINT would not reach restic
        entry = interrupts.begin()
        current.entry = entry
        started, result = time.monotonic(), None
        try:
            try:
                result = conn.run(guarded, **kwargs)
            finally:
                output.debug_done(self.name, shown, time.monotonic() - started, getattr(result, "exited", None))
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
        if requires is not None and res.exited == 127:
            reason = requires.describe_missing()
            raise requires.error(f"{self.name}: {reason}", reason=reason)
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


def make_targets(loaded: LoadedConfig, hosts: list[Host], dry: bool) -> list[Target]:
    return [Target(host=h, dry=dry, ssh_config_file=loaded.config.ssh_config_file) for h in hosts]



