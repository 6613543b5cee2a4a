"""Stdlib-only scripts that run ON the target host (``python3 - ARGS`` with the script on stdin).

They are read as text by :func:`script` and shipped through the seam, so they work over SSH
without installing ragops on the host.
"""

from __future__ import annotations

from pathlib import Path


def script(name: str) -> str:
    return (Path(__file__).parent / f"{name}.py").read_text(encoding="utf-8")
