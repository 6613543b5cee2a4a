"""Chroma source: a consistent copy of the persistent dir, validated and described for restore tests.

Strategies (``sources.chroma.strategy``):
- ``stop``: stop the writer (compose service, systemd unit or a command), copy, start it again in
  ``finally`` (also when the copy fails);
- ``pause``: ``pause.pre`` before the copy, ``pause.post`` always after;
- ``live``: sqlite online backup of chroma.sqlite3 FIRST, then the segment folders, then the copy
  is validated (chroma_inspect: integrity, count == get() ids, probe ids are stored ids, self
  retrieval) and retried up to ``live_retries`` times before failing loudly.
The manifest record (per collection: name, count, dimension, metric, model, ids digest, probes with
top-k ids) comes from inspecting the STAGED copy, so a restore compares against the same index.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ... import interrupts, output
from ...errors import StepError
from ...remote import script
from ...seam import Target, quote
from ..policy_sources import ChromaSource, PauseSettings, StopSettings
from . import Staged, make_copy_command, parse_json_line, run_or_fail

SQLITE_BACKUP = (
    "import sqlite3,sys\n"
    "src=sqlite3.connect(sys.argv[1],timeout=60)\n"
    "dst=sqlite3.connect(sys.argv[2])\n"
    "src.backup(dst)\n"
    "dst.close();src.close()\n"
)


def make_stop_commands(stop: StopSettings) -> tuple[str, str]:
    """(stop command, start command) for the writer."""
    if stop.compose_service:
        cd = f"cd {quote(stop.compose_project_dir)} && " if stop.compose_project_dir else ""
        svc = quote(stop.compose_service)
        return f"{cd}docker compose stop {svc}", f"{cd}docker compose start {svc}"
    if stop.systemd_unit:
        unit = quote(stop.systemd_unit)
        return f"systemctl stop {unit}", f"systemctl start {unit}"
    assert stop.command and stop.start_command  # the schema guarantees both
    return stop.command, stop.start_command


def make_live_copy_commands(data_dir: str, dest: str, python: str = "python3") -> list[str]:
    """sqlite online backup first, then every other entry of the dir (the HNSW segment folders)."""
    return [
        f"mkdir -p {quote(dest)}",
        f"{python} -c {quote(SQLITE_BACKUP)} {quote(data_dir + '/chroma.sqlite3')} {quote(dest + '/chroma.sqlite3')}",
        # `-exec ... +` (not `\;`): find then exits non-zero when a cp fails (e.g. ENOSPC mid-copy)
        f"find {quote(data_dir)} -mindepth 1 -maxdepth 1 ! -name 'chroma.sqlite3*' -exec cp -a --reflink=auto -t {quote(dest)} -- {{}} +",
    ]


def make_inspect_command(python: str, directory: str, probes: int, k: int) -> str:
    return f"ANONYMIZED_TELEMETRY=False {quote(python)} - inspect {quote(directory)} --probes {int(probes)} --k {int(k)}"


@contextmanager
def hold_writer(target: Target, source: ChromaSource) -> Iterator[None]:
    """Stop or pause the writer for the copy; ALWAYS start/resume it, and say so loudly if that fails."""
    if source.strategy == "live":
        yield
        return
    if source.strategy == "stop":
        stop_cfg: StopSettings = source.stop  # type: ignore[assignment]
        before, after = make_stop_commands(stop_cfg)
        timeout = stop_cfg.timeout_s
    else:
        pause: PauseSettings = source.pause  # type: ignore[assignment]
        before, after, timeout = pause.pre, pause.post, pause.timeout_s
    try:
        run_or_fail(target, before, f"chroma {source.strategy} ({before})", timeout=timeout)
        yield
    finally:
        with interrupts.shielded():  # a signal arriving now must not stop the resume
            res = target.run(after, write=True, timeout=timeout)
        if not res.ok:
            raise StepError(f"{target.name}: the Chroma writer was NOT resumed: `{after}` failed (exit {res.exited}): "
                            f"{res.stderr.strip()[-300:]}; start it by hand")


def run_inspect(target: Target, python: str, directory: str, probes: int, k: int) -> dict[str, Any]:
    res = target.run(make_inspect_command(python, directory, probes, k), stdin=script("chroma_inspect"))
    if res.exited == 127 or "No module named 'chromadb'" in res.stdout + res.stderr:
        raise StepError(f"{target.name}: {python} cannot import chromadb: set backup.chroma_python to a Python that has it")
    return parse_json_line(res.stdout, f"chroma inspect {directory}")


def make_record(doc: dict[str, Any], source: ChromaSource, data_dir: str, dest: str, attempts: int) -> dict[str, Any]:
    return {"kind": "chroma", "name": "chroma", "strategy": source.strategy, "data_dir": data_dir, "path": dest,
            "attempts": attempts, "integrity_check": doc.get("integrity_check"), "collections": doc.get("collections", []),
            "checks": doc.get("checks", [])}


def run_stage(target: Target, source: ChromaSource, run_dir: str) -> Staged | None:
    data_dir = source.data_dir or target.settings.chroma.data_dir
    if not source.enabled or not data_dir:
        return None
    started = time.monotonic()
    dest = f"{run_dir}/chroma"
    python = target.settings.backup.chroma_python
    copy: Callable[[], None]
    if source.strategy == "live":
        def copy() -> None:
            for cmd in make_live_copy_commands(data_dir, dest, target.python):
                run_or_fail(target, cmd, f"live copy of {data_dir}")
    else:
        def copy() -> None:
            run_or_fail(target, make_copy_command(data_dir, dest), f"copy of {data_dir}")
    if not target.run(f"[ -f {quote(data_dir + '/chroma.sqlite3')} ]").ok:
        raise StepError(f"{target.name}: {data_dir} is not a Chroma persistent dir (no chroma.sqlite3)")
    attempts = 1 + (source.live_retries if source.strategy == "live" else 0)
    failures: list[str] = []
    for attempt in range(1, attempts + 1):
        with hold_writer(target, source):
            copy()
        if target.dry:
            output.dry_command(target.name, f"would validate {dest} and record collections, ids digests and probes")
            return Staged("chroma", {"kind": "chroma", "strategy": source.strategy, "data_dir": data_dir, "path": dest},
                          duration_s=time.monotonic() - started)
        doc = run_inspect(target, python, dest, source.probes, source.probe_k)
        if doc.get("ok"):
            return Staged("chroma", make_record(doc, source, data_dir, dest, attempt), duration_s=time.monotonic() - started)
        bad = [f"{c['check']}: {c['evidence']}" for c in doc.get("checks", []) if not c["ok"]] or [str(doc.get("error"))]
        failures.append(f"attempt {attempt}: " + "; ".join(bad)[:400])
        output.warn(target.name, f"chroma copy failed validation ({failures[-1]})")
        target.run(f"rm -rf -- {quote(dest)}", write=True)
    raise StepError(f"{target.name}: no valid copy of {data_dir} after {attempts} attempt(s) ({source.strategy}): "
                    + " | ".join(failures))
