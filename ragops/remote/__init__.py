"""Stdlib-only scripts that run ON the target host (``python3 - ARGS`` with the script on stdin).

Every host-side helper lives here, one file per helper. They are read as text by :func:`script`
and shipped through the seam, so they work over SSH without installing ragops on the host.
``script(*names)`` concatenates several into one program (one interpreter start); only the last
one's ``__main__`` block should run, so earlier ones are shipped as libraries (see :func:`library`).
"""

from __future__ import annotations

from pathlib import Path

MAIN_GUARD = 'if __name__ == "__main__":'


def library(name: str) -> str:
    """A script's text with its ``__main__`` block disabled (to be composed with another)."""
    text = script(name)
    if text.count(MAIN_GUARD) != 1:
        raise ValueError(f"ragops/remote/{name}.py: expected exactly one {MAIN_GUARD!r} block")
    return text.replace(MAIN_GUARD, f"if False:  # {name}: shipped as a library")


def script(*names: str) -> str:
    """One script's text, or several composed (all but the last as libraries)."""
    if not names:
        raise ValueError("script(): name at least one script")
    if len(names) > 1:
        return "\n".join([*(library(n) for n in names[:-1]), script(names[-1])])
    return (Path(__file__).parent / f"{names[0]}.py").read_text(encoding="utf-8")
