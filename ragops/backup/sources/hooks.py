"""What every data source works with: where its helpers run, the restore-test context, checks.

A data source (``redis``, ``chroma``, ``paths``, ...) is ONE module exporting the verbs listed in
:mod:`ragops.backup.sources.registry`. It never builds ``python - ...`` command strings for
``ragops/remote`` helpers itself: it asks a :class:`Scripts` executor (``run_script(name, args)``).
:class:`HostScripts` runs them on the host through the seam; a container or a pod executor is
one more implementation of the same two methods, not a branch in every source.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from ...errors import ConfigError
from ...remote import script
from ...seam import Target, quote
from ...seam_runners import CmdResult


@dataclass
class Check:
    """One restore-test check: a name, pass/fail, one line of evidence and figures for the report."""

    check: str
    ok: bool
    evidence: str = ""
    figures: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Scripts(Protocol):
    """Where a source's ``ragops/remote`` helpers run (host today; a container or a pod later)."""

    def command(self, args: list[str], *, python: str | None = None, env: dict[str, str] | None = None) -> str: ...

    def run_script(self, names: str | tuple[str, ...], args: list[str], *, python: str | None = None,
                   env: dict[str, str] | None = None, write: bool = False, timeout: float | None = None,
                   secrets: dict[str, str] | None = None) -> CmdResult: ...


class HostScripts:
    """Runs ``ragops/remote`` scripts on the target's host: ``PYTHON - ARGS`` with the script on stdin."""

    def __init__(self, target: Target) -> None:
        self.target = target

    def command(self, args: list[str], *, python: str | None = None, env: dict[str, str] | None = None) -> str:
        prefix = "".join(f"{k}={quote(v)} " for k, v in (env or {}).items())
        interpreter = quote(python) if python else self.target.python
        # Every helper runs under resources.nice/ionice and the memory cap (ragops.resources): the cap
        # is per process, so the light stdlib helpers never near it and a new heavy one cannot forget it.
        from ...resources import wrap_capped

        return prefix + wrap_capped(self.target, f"{interpreter} - " + " ".join(quote(str(a)) for a in args))

    def run_script(self, names: str | tuple[str, ...], args: list[str], *, python: str | None = None,
                   env: dict[str, str] | None = None, write: bool = False, timeout: float | None = None,
                   secrets: dict[str, str] | None = None) -> CmdResult:
        text = script(*((names,) if isinstance(names, str) else names))
        return self.target.run(self.command(args, python=python, env=env), stdin=text, write=write, timeout=timeout,
                               secrets=secrets)


class Layout(Protocol):
    """The restore-test scratch layout (``ragops.restore.plan.Layout``), as a source sees it."""

    @property
    def root(self) -> str: ...

    def restored(self, path: str) -> str: ...


@dataclass
class TestContext:
    """One restore test, as a source's ``begin``/``start``/``verify``/``end`` verbs see it.

    ``target`` restores and verifies; ``live_target`` is the source host (its live data is only
    ever read); ``options`` carries ``min_overlap`` and ``selfcheck``; ``state`` keeps what a
    source started (a throwaway server's port, a pre-started process) from one verb to the next."""

    target: Target
    live_target: Target
    policy: Any
    layout: Layout
    options: Any
    scripts: Scripts
    manifest_path: str = ""
    state: dict[str, Any] = field(default_factory=dict)

    def restored(self, path: str) -> str:
        return self.layout.restored(path)

    def scratch(self, name: str) -> str:
        """The source's own dir in the scratch dir (created with it, removed with it)."""
        return f"{self.layout.root}/{name}"


def is_safe_path(path: Any) -> bool:
    """Absolute, normalized (no '.', '..', '//', trailing '/'), no NUL or newline."""
    return (isinstance(path, str) and path.startswith("/") and os.path.normpath(path) == path
            and "\0" not in path and "\n" not in path and ".." not in path.split("/"))


def is_inside(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def check_staged_path(where: str, rec: dict[str, Any], staging: str) -> list[str]:
    """A record's ``path`` must be a normalized absolute path strictly inside the staging run dir or
    strictly inside the stable root beside it (``<staging_dir>/stable``, see ``sources.stable``)."""
    from .stable import stable_root_of_run_dir

    path = rec.get("path")
    stable = stable_root_of_run_dir(staging) if is_safe_path(staging) else None
    if isinstance(path, str) and is_safe_path(path) and any(
            is_inside(path, base) and path != base for base in (staging, stable) if base):
        return []
    return [f"{where}.path {str(path)[:80]!r}: not a normalized absolute path inside the staging dir {staging}"
            + (f" or {stable}" if stable else "")]


def make_missing_tool_error(target: Target, tool: str, setting: str, role: str) -> ConfigError:
    return ConfigError(f"{target.name}: {tool!r} ({role}) is not installed or not executable on the host: install it "
                       f"or point the setting {setting} at it; nothing was restored")


def find_missing_tool(target: Target, tools: list[tuple[str, str, str]]) -> tuple[str, str, str] | None:
    """The first (tool, setting, role) whose binary the host's shell cannot find (``command -v``)."""
    for tool, setting, role in tools:
        if not target.run(f"command -v {quote(tool)} >/dev/null 2>&1").ok:
            return tool, setting, role
    return None
