"""Stdlib-only scripts that run ON the target host (``python3 - ARGS`` with the script on stdin).

Every host-side helper lives here, one file per helper. They are read as text by :func:`script`
and shipped through the seam, so they work over SSH without installing ragops on the host.
``script(*names)`` concatenates several into one program (one interpreter start); only the last
one's ``__main__`` block should run, so earlier ones are shipped as libraries (see :func:`library`).

Code several scripts share lives once, in a *piece* (a file without a ``__main__`` block):
:data:`NEEDS` names the pieces each script is shipped with, in front of it, so ``script(name)`` is
always the whole program (``HostScripts``/``ContainerScripts`` and the tests run scripts by name).
A script names what it takes from a piece under ``if TYPE_CHECKING:`` (for ruff and mypy only).
"""

from __future__ import annotations

from pathlib import Path

MAIN_GUARD = 'if __name__ == "__main__":'

# the shared pieces (no __main__ of their own)
PIECES = frozenset({
    "json_result",  # check() entries and the JSON __main__ (run_json_main)
    "chroma_common",  # MODEL_KEYS, find_sparse_files, parse (argv), read_stored_metric
})
# script -> the pieces shipped in front of it, in this order
NEEDS: dict[str, tuple[str, ...]] = {
    "chroma_inspect": ("json_result", "chroma_common"),
    "chroma_record": ("json_result", "chroma_common"),
    "chroma_selfcheck": ("json_result", "chroma_common"),
    "mirror_sync": ("json_result",),
    "restore_guard": ("json_result",),
}


def read(name: str) -> str:
    """One file's own text (no pieces)."""
    return (Path(__file__).parent / f"{name}.py").read_text(encoding="utf-8")


def library(name: str) -> str:
    """A script's own text with its ``__main__`` block disabled (to be composed with another); a
    piece's text as it is."""
    text = read(name)
    if text.count(MAIN_GUARD) != (0 if name in PIECES else 1):
        raise ValueError(f"ragops/remote/{name}.py: expected {'no' if name in PIECES else 'exactly one'} "
                         f"{MAIN_GUARD!r} block")
    return text.replace(MAIN_GUARD, f"if False:  # {name}: shipped as a library")


def make_parts(names: tuple[str, ...]) -> list[str]:
    """Every file the program of ``names`` is made of: each script after its pieces, each once."""
    parts: list[str] = []
    for name in names:
        for part in (*NEEDS.get(name, ()), name):
            if part not in parts:
                parts.append(part)
    return parts


def script(*names: str) -> str:
    """One script's program, or several composed (all but the last as libraries), with the pieces
    they need in front."""
    if not names:
        raise ValueError("script(): name at least one script")
    parts = make_parts(names)
    if parts[-1] != names[-1]:
        raise ValueError(f"script(): {names[-1]} is shipped earlier already")
    return "\n".join([*(library(n) for n in parts[:-1]), read(parts[-1])])
