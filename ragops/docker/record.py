"""The release record: one markdown page (for the release log / change ticket) and one JSON
document per release, written on the controller under ``docker.release.record_dir``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..report import RunResult
from ..seam import write_local_file


def make_release_markdown(run: RunResult, meta: dict[str, Any]) -> str:
    status = "SUCCEEDED" if run.exit_code == 0 else "FAILED"
    lines = [f"# Release {meta['version']} — {status}", "",
             f"- release id: `{meta['release_id']}`", f"- started: {meta['started']} by {meta['who']}",
             f"- hosts: {', '.join(meta['hosts'])} in batches of {meta['batch_size']}",
             f"- duration: {run.duration_s:.1f}s", f"- options: {json.dumps(meta['options'])}", ""]
    if meta.get("stopped_after_batch") is not None:
        lines += [f"**Stopped after batch {meta['stopped_after_batch']}**: {meta.get('stop_reason', '')}", ""]
    lines += ["| host | step | result | duration | detail |", "|---|---|---|---|---|"]
    for h in run.hosts:
        if not h.steps:
            lines.append(f"| {h.host} | - | {h.status} | {h.duration_s:.1f}s | {_cell(h.error)} |")
        for i, s in enumerate(h.steps):
            lines.append(f"| {h.host if i == 0 else ''} | {s.step} | {s.status} | {s.duration_s:.1f}s | {_cell(s.message)} |")
        if h.steps and h.error:
            lines.append(f"| | (host) | {h.status} | {h.duration_s:.1f}s | {_cell(h.error)} |")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")[:300]


def write_release_record(directory: str, run: RunResult, meta: dict[str, Any]) -> tuple[Path, Path]:
    """Write <release_id>.md and <release_id>.json through the seam (under --dry, i.e. ``run.dry``,
    only printed); return their paths."""
    out = Path(directory).expanduser()
    md, js = out / f"{meta['release_id']}.md", out / f"{meta['release_id']}.json"
    write_local_file(md, make_release_markdown(run, meta), dry=run.dry)
    write_local_file(js, json.dumps({**meta, "run": run.to_dict()}, indent=2, default=str) + "\n", dry=run.dry)
    return md, js
