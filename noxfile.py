"""nox sessions for ragops: ``lint``, ``typecheck`` and ``tests``.

All sessions run with ``python=False`` (no virtualenv of their own): they use the interpreter
nox itself runs in, i.e. the repo's ``.venv`` built by ``scripts/setup.sh``. Invoke nox as
``.venv/bin/nox`` (``scripts/test.sh`` does), so ``sys.executable`` is ``.venv/bin/python``.

    .venv/bin/nox                      # lint, typecheck, tests
    .venv/bin/nox -s tests -- -k redis # extra arguments go to pytest
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
LINT_PATHS = ["ragops", "tests", "tasks.py", "bench", "scripts"]

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.error_on_missing_interpreters = True


def _env() -> dict[str, str]:
    """Put the venv's bin dir (nox, weed, ...) first on PATH for everything the session runs."""
    bin_dir = str(Path(sys.executable).parent)
    return {"PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")])}


@nox.session(python=False)
def lint(session: nox.Session) -> None:
    """ruff check on the project's Python paths that exist, then import-linter's layer contract."""
    paths = [p for p in LINT_PATHS if (ROOT / p).exists()]
    session.run(sys.executable, "-m", "ruff", "check", *paths, env=_env())
    # Layers one way, no cycles: the contract is [tool.importlinter] in pyproject.toml.
    session.run(str(Path(sys.executable).parent / "lint-imports"), env=_env())


@nox.session(python=False)
def typecheck(session: nox.Session) -> None:
    """mypy on the ragops package (config in pyproject.toml)."""
    session.run(sys.executable, "-m", "mypy", "ragops", env=_env())


@nox.session(python=False)
def tests(session: nox.Session) -> None:
    """pytest; ``session.posargs`` are appended. Exit code 5 (no tests collected) fails the session."""
    verbose = any(a in ("-v", "-vv", "--verbose") for a in session.posargs)
    defaults = ["-ra", "--durations=15"] if verbose else ["-q", "-ra", "--durations=15"]  # the slowest: the 30 min budget
    session.run(sys.executable, "-m", "pytest", *defaults, *session.posargs, env=_env(),
                success_codes=[0])
