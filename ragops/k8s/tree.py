"""The committed k8s/ tree: load the render inputs, compare with a fresh render, write it.

Generated files carry ``render.HEADER`` as their first line; a generated file that a fresh render no
longer produces (a removed overlay) is deleted, hand-written files (render.yaml, README) are never
touched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .render import HEADER, make_files
from .settings import RenderSettings, load_render_settings


@dataclass
class RenderInputs:
    settings: RenderSettings
    policies: dict[str, Any]
    policies_dir: Path


@dataclass
class Drift:
    changed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.changed or self.missing or self.stale)

    def describe(self) -> str:
        parts = [f"{what}: {', '.join(names)}" for what, names in
                 (("changed", self.changed), ("missing", self.missing), ("stale", self.stale)) if names]
        return "; ".join(parts) or "up to date"


def load_inputs(k8s_dir: Path, policies_dir: Path) -> RenderInputs:
    """k8s/render.yaml and every policy in backup-policies/ (an empty or absent directory: no policies)."""
    settings = load_render_settings(k8s_dir / "render.yaml")
    policies: dict[str, Any] = {}
    if policies_dir.is_dir() and any(p.suffix in (".yaml", ".yml") for p in policies_dir.iterdir()):
        from ..backup.policy import load_policies

        policies = load_policies(policies_dir)
    return RenderInputs(settings=settings, policies=policies, policies_dir=policies_dir)


def find_generated(k8s_dir: Path) -> set[str]:
    found = set()
    for path in k8s_dir.rglob("*.yaml"):
        try:
            with path.open(encoding="utf-8") as fh:
                first = fh.readline()
        except OSError:
            continue
        if first == HEADER:
            found.add(path.relative_to(k8s_dir).as_posix())
    return found


def make_drift(k8s_dir: Path, files: dict[str, str]) -> Drift:
    drift = Drift()
    for rel, text in sorted(files.items()):
        path = k8s_dir / rel
        if not path.is_file():
            drift.missing.append(rel)
        elif path.read_text(encoding="utf-8") != text:
            drift.changed.append(rel)
    drift.stale = sorted(find_generated(k8s_dir) - set(files))
    return drift


def write_tree(k8s_dir: Path, files: dict[str, str]) -> Drift:
    """Write what changed, delete stale generated files; return what was different before."""
    drift = make_drift(k8s_dir, files)
    for rel in drift.changed + drift.missing:
        path = k8s_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(files[rel], encoding="utf-8")
        tmp.replace(path)
    for rel in drift.stale:
        (k8s_dir / rel).unlink()
    return drift


def render_tree(k8s_dir: Path, policies_dir: Path, api_version: str = "batch/v1") -> dict[str, str]:
    inputs = load_inputs(k8s_dir, policies_dir)
    return make_files(inputs.settings, inputs.policies, api_version)


def find_project_dirs(root: str | None) -> tuple[Path, Path]:
    """(k8s dir, backup-policies dir) under ``root`` (default: the current directory)."""
    base = Path(root or ".").resolve()
    k8s_dir = base / "k8s"
    if not (k8s_dir / "render.yaml").is_file():
        raise ConfigError(f"{k8s_dir}/render.yaml: not found (run k8s.render from the project root or pass --root)")
    return k8s_dir, base / "backup-policies"
