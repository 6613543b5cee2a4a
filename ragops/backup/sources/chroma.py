"""Chroma source: a consistent copy of the persistent dir, described for restore tests.

How the writer is held (``sources.chroma.strategy``):
- ``stop``: stop the writer (compose service, systemd unit or a command), copy, start it again in
  ``finally`` (also when the copy fails);
- ``pause``: ``pause.pre`` before the copy, ``pause.post`` always after (or ``docker pause`` / ``unpause``
  of ``pause.compose_service``'s containers: ``chroma_containers``);
- ``live``: not held: sqlite online backup of chroma.sqlite3 FIRST, then the segment folders, then
  the copy is validated (chroma_inspect: integrity, count == get() ids, probe ids are stored ids,
  self retrieval) and retried up to ``live_retries`` times before failing loudly.
How the copy is made (``copy_mode``: snapshot, reflink, mirror at the stable path, or full): see
``chroma_copy``. A held copy is consistent by construction and is described from its sqlite file by
streaming (``chroma_record``: no index in RAM); the record (per collection: name, count, dimension,
metric, model, ids digest, probes) always describes the STAGED copy.

The restore-test verbs (``begin``, ``verify``, ``end``, ``plan_checks``) live in ``chroma_verify``
and are re-exported here; a real restore refuses an incompatible snapshot (``refuse_restore``) and
prints the operator's steps (``bring_up``).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ... import interrupts, output
from ...errors import StepError
from ...remote import script
from ...seam import Target, quote
from ..policy_sources import ChromaSource, PauseSettings, StopSettings
from . import Staged, parse_json_line, run_or_fail
from .chroma_containers import (
    ChromaPlace,
    in_containers,
    make_scripts,
    run_hold_commands,
    run_pause_commands,
    run_place,
)
from .hooks import HostScripts, Scripts, check_staged_path, is_count, is_safe_path
from .stable import stable_root
from .throwaway import Mount

KEY = "chroma"
TELEMETRY_OFF = {"ANONYMIZED_TELEMETRY": "False"}


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
        f"{python} -c {quote(script('sqlite_backup'))} {quote(data_dir + '/chroma.sqlite3')} {quote(dest + '/chroma.sqlite3')}",
        # `-exec ... +` (not `\;`): find then exits non-zero when a cp fails (e.g. ENOSPC mid-copy)
        f"find {quote(data_dir)} -mindepth 1 -maxdepth 1 ! -name 'chroma.sqlite3*' -exec cp -a --reflink=auto -t {quote(dest)} -- {{}} +",
    ]


def make_inspect_args(directory: str, probes: int, k: int) -> list[str]:
    return ["inspect", directory, "--probes", str(int(probes)), "--k", str(int(k))]


@contextmanager
def hold_writer(target: Target, source: ChromaSource) -> Iterator[None]:
    """Stop or pause the writer for the copy; ALWAYS start/resume it, and say so loudly if that fails."""
    if source.strategy == "live":
        yield
        return
    if source.strategy == "stop":
        stop_cfg: StopSettings = source.stop  # type: ignore[assignment]
        before, after = run_hold_commands(target, stop_cfg) if in_containers(target) and stop_cfg.compose_service \
            else make_stop_commands(stop_cfg)
        timeout = stop_cfg.timeout_s
    else:
        pause: PauseSettings = source.pause  # type: ignore[assignment]
        before, after = run_pause_commands(target, pause) if pause.compose_service else (str(pause.pre), str(pause.post))
        timeout = pause.timeout_s
    try:
        run_or_fail(target, before, f"chroma {source.strategy} ({before})", timeout=timeout)
        yield
    finally:
        with interrupts.shielded():  # a signal arriving now must not stop the resume
            res = target.run(after, write=True, timeout=timeout)
        if not res.ok:
            raise StepError(f"{target.name}: the Chroma writer was NOT resumed: `{after}` failed (exit {res.exited}): "
                            f"{res.stderr.strip()[-300:]}; start it by hand")


def run_inspect(target: Target, python: str, directory: str, probes: int, k: int,
                scripts: Scripts | None = None) -> dict[str, Any]:
    res = (scripts or HostScripts(target)).run_script("chroma_inspect", make_inspect_args(directory, probes, k),
                                                      python=python, env=TELEMETRY_OFF)
    if res.exited == 127 or "No module named 'chromadb'" in res.stdout + res.stderr:
        raise StepError(f"{target.name}: {python} cannot import chromadb: set backup.chroma_python to a Python that has it")
    return parse_json_line(res.stdout, f"chroma inspect {directory}")


def make_record(doc: dict[str, Any], source: ChromaSource, data_dir: str, dest: str, attempts: int) -> dict[str, Any]:
    return {"kind": "chroma", "name": "chroma", "strategy": source.strategy, "data_dir": data_dir, "path": dest,
            "attempts": attempts, "integrity_check": doc.get("integrity_check"), "collections": doc.get("collections", []),
            "checks": doc.get("checks", [])}


def run_record(target: Target, source: ChromaSource, directory: str, scripts: Scripts | None = None) -> dict[str, Any]:
    """Describe a copy that is consistent by construction from its sqlite file (streaming, no index
    in RAM; ``chroma_record.py``); the probes' top-k come from ``server_url`` when one is set."""
    args = ["record", directory, "--probes", str(int(source.probes)), "--k", str(int(source.probe_k))]
    args += ["--server", source.server_url] if source.server_url else []
    if directory.startswith(stable_root(target.settings.backup.staging_dir) + "/"):
        args += ["--cache", f"{stable_root(target.settings.backup.staging_dir)}/.chroma-record-cache.json"]
    res = (scripts or HostScripts(target)).run_script("chroma_record", args, write=True)
    return parse_json_line(res.stdout, f"chroma record {directory}")


def stage(target: Target, source: ChromaSource, run_dir: str) -> Staged | None:
    """Copy (``chroma_copy``: snapshot, reflink or plain mirror at the stable path, or a full copy),
    then describe: from sqlite when the copy is consistent by construction (the writer was held);
    a live copy is opened and validated (``chroma_inspect``) and retried."""
    from .chroma_copy import Copy, run_cleanup, run_copy

    if not source.enabled:
        return None
    place = run_place(target, source) if in_containers(target) else None
    data_dir = place.data_dir if place else source.data_dir or target.settings.chroma.data_dir
    if not data_dir:
        return None
    started = time.monotonic()
    python = target.settings.docker.roles.python if place else target.settings.backup.chroma_python
    if not target.run(f"[ -f {quote(data_dir + '/chroma.sqlite3')} ]").ok:
        raise StepError(f"{target.name}: {data_dir} is not a Chroma persistent dir (no chroma.sqlite3)")
    attempts = 1 + (source.live_retries if source.strategy == "live" else 0)
    failures: list[str] = []
    for attempt in range(1, attempts + 1):
        copy: Copy = run_copy(target, source, data_dir, run_dir, place)
        done = False
        try:
            if target.dry:
                output.dry_command(target.name, f"would describe {copy.path} and record collections, ids digests and probes")
                done = True
                return make_staged(target, copy, {"kind": "chroma", "strategy": source.strategy, "data_dir": data_dir,
                                                  "path": copy.path}, started)
            live = source.strategy == "live"
            scripts = make_copy_scripts(target, place, copy.path, live, source) if place else None
            doc = run_inspect(target, python, copy.path, source.probes, source.probe_k, scripts) if live \
                else run_record(target, source, copy.path, scripts)
            if doc.get("ok"):
                record = make_record(doc, source, data_dir, copy.path, attempt)
                if place:
                    record["container"] = place.describe()
                record.update(copy_mode=copy.mode, hold_s=round(copy.hold_s, 4), described_by=doc.get("described_by", "chromadb"),
                              record_cached=bool(doc.get("cached")))
                if copy.stats:
                    record["copy_stats"] = {k: copy.stats.get(k) for k in ("files", "changed", "bytes_written", "bytes_total")}
                done = True
                return make_staged(target, copy, record, started)
        finally:
            if not done:
                run_cleanup(target, copy)
        bad = [f"{c['check']}: {c['evidence']}" for c in doc.get("checks", []) if not c["ok"]] or [str(doc.get("error"))]
        failures.append(f"attempt {attempt}: " + "; ".join(bad)[:400])
        output.warn(target.name, f"chroma copy failed validation ({failures[-1]})")
        if not copy.stable:
            target.run(f"rm -rf -- {quote(copy.path)}", write=True)
    raise StepError(f"{target.name}: no valid copy of {data_dir} after {attempts} attempt(s) ({source.strategy}): "
                    + " | ".join(failures))


def make_copy_scripts(target: Target, place: ChromaPlace, path: str, live: bool, source: ChromaSource) -> Scripts:
    """Where the copy is described: a throwaway container of the chroma image, the copy read-only (a
    live copy is opened by chromadb, which may write it: read-write), the stable root for the cache."""
    mounts = [Mount(stable_root(target.settings.backup.staging_dir), read_only=False)] \
        if path.startswith(stable_root(target.settings.backup.staging_dir) + "/") else []
    mounts.append(Mount(path, read_only=not live))
    return make_scripts(target, place, mounts, "chroma-record", network="host" if source.server_url else "none")


def make_staged(target: Target, copy: Any, record: dict[str, Any], started: float) -> Staged:
    from .chroma_copy import run_cleanup

    stable = [copy.path] if copy.stable else []
    return Staged("chroma", record, backup_paths=stable, hash_paths=stable, duration_s=time.monotonic() - started,
                  cleanup=functools.partial(run_cleanup, target, copy) if copy.cleanup else None)


# -- backup: staging size, report summary, manifest record checks -------------------------------

def data_dir_of(target: Target, source: ChromaSource) -> str | None:
    if in_containers(target):
        return run_place(target, source).data_dir if source.enabled else None
    return source.data_dir or target.settings.chroma.data_dir


def staging_paths(target: Target, source: ChromaSource) -> list[str]:
    """What the run will copy (free-space preflight): the data dir for a full copy or a first mirror;
    nothing for a snapshot or an existing mirror (updated in place: it grows by what changed)."""
    from .chroma_copy import resolve_mode
    from .stable import stable_dir

    data_dir = data_dir_of(target, source)
    if not source.enabled or not data_dir:
        return []
    mode = resolve_mode(target, source, data_dir)
    if mode == "snapshot" or (mode != "full" and target.run(f"[ -d {quote(stable_dir(target, 'chroma'))} ]").ok):
        return []
    return [data_dir]


def describe(record: dict[str, Any]) -> dict[str, Any]:
    keep = {k: v for k, v in record.items() if k not in ("collections", "checks")}
    if "collections" in record:
        keep["collections"] = {c["name"]: c.get("count") for c in record["collections"]}
    return keep


def check_record(where: str, rec: dict[str, Any], staging: str) -> list[str]:
    bad = check_staged_path(where, rec, staging)
    if rec.get("data_dir") is not None and not is_safe_path(rec["data_dir"]):
        bad.append(f"{where}.data_dir {str(rec['data_dir'])[:80]!r}: not a normalized absolute path")
    cols = rec.get("collections", [])
    if not isinstance(cols, list) or not all(isinstance(c, dict) and isinstance(c.get("name"), str)
                                             and is_count(c.get("count", 0)) for c in cols):
        bad.append(f"{where}.collections: not a list of {{name, count, ...}} objects")
    return bad


def live_paths(source: ChromaSource | None, hosts: list[Any], records: list[dict[str, Any]]) -> list[str | None]:
    return [*[h.chroma.data_dir for h in hosts], source.data_dir if source is not None else None,
            *[r.get("data_dir") for r in records]]


# -- restore test: chroma_verify (re-exported: the registry calls the verbs on this module) ------

from .chroma_verify import (  # noqa: E402,F401 - the source's verbs and their helpers
    COMBINED,
    WRITES_RESTORED_FILES,
    begin,
    compare_compat,
    compare_models,
    convert_checks,
    end,
    make_combined_script,
    plan_checks,
    preflight,
    run_compat_check,
    run_json,
    run_live_schema,
    verify,
)

# -- real restore -------------------------------------------------------------------------------

def refuse_restore(target: Target, source: ChromaSource, record: dict[str, Any]) -> str | None:
    """Why a snapshot must not replace the live store (the application could not query it), or None."""
    live = run_live_schema(target, source.data_dir or target.settings.chroma.data_dir)
    problems = compare_compat(record, live or [])
    if not problems:
        return None
    return "over the live Chroma store: " + "; ".join(problems) + " — the running application could not query it"


def bring_up(record: dict[str, Any], target_dir: str, settings: Any) -> list[str]:
    if not record.get("path"):
        return []
    restored = target_dir + record["path"]
    live = record.get("data_dir") or settings.chroma.data_dir or "<chroma data dir>"
    return [f"Chroma: restored persistent dir: {restored}",
            "Chroma: stop the RAG API / Chroma server (the writer) so nothing holds the store",
            f"Chroma: mv {quote(live)} {quote(live + '.before-restore')} && cp -a {quote(restored)} {quote(live)}",
            "Chroma: start the API again; collections: "
            + ", ".join(f"{c['name']} ({c.get('count')} x {c.get('dimension')}-d {c.get('metric')})"
                        for c in record.get("collections", []))]
