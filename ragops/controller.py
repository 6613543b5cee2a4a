"""Side effects on the controller (not on a host), each obeying ``--dry`` like
``target.run(cmd, write=True)``: a change is printed as ``(dry run) ...`` and not made.

- ``http_get``: a GET from the controller (healthchecks-style pings); never raises.
- ``write_local_file``: a file written on the controller (release records), atomically.
- ``controller_write``: any other controller-side change (an S3 ``create_bucket`` through boto3).

Re-exported by ``ragops.seam``; ``who`` is the host label of the output lines ("" for the run).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from . import output

T = TypeVar("T")


def http_get(url: str, *, timeout: float, dry: bool, who: str = "", what: str = "GET") -> int | None:
    """GET ``url`` from the controller; its HTTP status, or None when dry or failed (a warning
    naming ``what``, never an exception: a ping must not fail the run). ``requests`` is imported
    lazily."""
    if dry:
        output.dry_command(who, f"{what} {url}")
        return None
    import requests

    try:
        return int(requests.get(url, timeout=timeout).status_code)
    except requests.RequestException as exc:
        output.warn(who, f"{what} failed: {type(exc).__name__}")
        return None


def write_local_file(path: str | Path, text: str, *, dry: bool, who: str = "") -> bool:
    """Write ``text`` (UTF-8) to ``path`` on the controller, creating its directory; atomic
    (temp file + rename). Under dry only printed. True if written."""
    path = Path(path).expanduser()
    if dry:
        output.dry_command(who, f"write {path} ({len(text.encode())} bytes)")
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.ragops-tmp.{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return True


def controller_write(what: str, change: Callable[[], T], *, dry: bool, who: str = "") -> T | None:
    """Make a controller-side change (``change()``), or under dry print ``what`` and return None."""
    if dry:
        output.dry_command(who, what)
        return None
    return change()
