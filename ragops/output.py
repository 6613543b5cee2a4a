"""Human output: one stderr console shared by all host threads, each line prefixed by its host.

stdout is reserved for machine output (``--json``); everything for people goes to stderr.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from rich.console import Console
from rich.markup import escape

_console: Console | None = None
_lock = threading.Lock()
VERBOSE = os.environ.get("RAGOPS_DEBUG_COMMANDS") == "1"


def console() -> Console:
    global _console
    if _console is None:
        _console = Console(stderr=True, highlight=False, soft_wrap=True)
    return _console


def _emit(host: str, text: str, style: str = "") -> None:
    prefix = f"[bold cyan]\\[{escape(host)}][/] " if host else ""
    body = f"[{style}]{escape(text)}[/]" if style else escape(text)
    with _lock:
        console().print(prefix + body)


def info(host: str, text: str) -> None:
    _emit(host, text)


def warn(host: str, text: str) -> None:
    _emit(host, text, "yellow")


def error(host: str, text: str) -> None:
    _emit(host, text, "bold red")


def dry_command(host: str, command: str) -> None:
    _emit(host, f"(dry run) {command}", "magenta")


def debug(host: str, command: str) -> None:
    if VERBOSE:
        _emit(host, f"$ {command}", "dim")


def debug_done(host: str, command: str, seconds: float, exited: int | None) -> None:
    """With RAGOPS_DEBUG_COMMANDS=1: how long a command took (where a run's time goes)."""
    if VERBOSE:
        _emit(host, f"  {seconds:.3f}s exit {exited}: {command[:120]}", "dim")


def status(text: str) -> Any:
    """A spinner for a long step (no-op context when stderr is not a terminal)."""
    return console().status(text)
