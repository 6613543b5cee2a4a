"""World, hash_tree and run_backup for the restore tests (a module of its own: `conftest` is a
name every test directory has, so importing it from a test picks whichever was loaded first)."""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "backup"))
from backup_helpers import BackupEnv  # noqa: E402


@dataclass
class World:
    env: BackupEnv
    redis: Any
    chroma: Path
    snapshot_id: str

    def host(self) -> Any:
        from ragops.config import load_config

        return load_config(str(self.env.config), environ={}).hosts["local"]


def hash_tree(*roots: Path) -> dict[str, str]:
    """sha256 of every file below the roots (the live data): compared before/after a test."""
    out = {}
    for root in roots:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def run_backup(env: BackupEnv) -> str:
    from ragops.backup.step import run_backup as backup_step

    result = backup_step(env.target())
    assert result.status == "ok", result.message
    return str(result.details["snapshot_id"])
