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

The restore test pre-starts the verify process (``begin``: ChromaDB's import overlaps restic, see
``chroma_prewarm``), then runs ``chroma_inspect.py verify`` + ``chroma_selfcheck.py`` on the restored
copy and compares the live collections' schema (read-only) with the record; a real restore refuses
an incompatible snapshot (``refuse_restore``) and prints the operator's steps (``bring_up``).
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
from .hooks import Check, HostScripts, Scripts, TestContext, check_staged_path, is_count, is_safe_path

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
    res = HostScripts(target).run_script("chroma_inspect", make_inspect_args(directory, probes, k), python=python,
                                         env=TELEMETRY_OFF)
    if res.exited == 127 or "No module named 'chromadb'" in res.stdout + res.stderr:
        raise StepError(f"{target.name}: {python} cannot import chromadb: set backup.chroma_python to a Python that has it")
    return parse_json_line(res.stdout, f"chroma inspect {directory}")


def make_record(doc: dict[str, Any], source: ChromaSource, data_dir: str, dest: str, attempts: int) -> dict[str, Any]:
    return {"kind": "chroma", "name": "chroma", "strategy": source.strategy, "data_dir": data_dir, "path": dest,
            "attempts": attempts, "integrity_check": doc.get("integrity_check"), "collections": doc.get("collections", []),
            "checks": doc.get("checks", [])}


def run_record(target: Target, source: ChromaSource, directory: str) -> dict[str, Any]:
    """Describe a copy that is consistent by construction from its sqlite file (streaming, no index
    in RAM; ``chroma_record.py``); the probes' top-k come from ``server_url`` when one is set."""
    args = ["record", directory, "--probes", str(int(source.probes)), "--k", str(int(source.probe_k))]
    args += ["--server", source.server_url] if source.server_url else []
    res = HostScripts(target).run_script("chroma_record", args)
    return parse_json_line(res.stdout, f"chroma record {directory}")


def stage(target: Target, source: ChromaSource, run_dir: str) -> Staged | None:
    """Copy (``chroma_copy``: snapshot, reflink or plain mirror at the stable path, or a full copy),
    then describe: from sqlite when the copy is consistent by construction (the writer was held);
    a live copy is opened and validated (``chroma_inspect``) and retried."""
    from .chroma_copy import Copy, run_cleanup, run_copy

    data_dir = source.data_dir or target.settings.chroma.data_dir
    if not source.enabled or not data_dir:
        return None
    started = time.monotonic()
    python = target.settings.backup.chroma_python
    if not target.run(f"[ -f {quote(data_dir + '/chroma.sqlite3')} ]").ok:
        raise StepError(f"{target.name}: {data_dir} is not a Chroma persistent dir (no chroma.sqlite3)")
    attempts = 1 + (source.live_retries if source.strategy == "live" else 0)
    failures: list[str] = []
    for attempt in range(1, attempts + 1):
        copy: Copy = run_copy(target, source, data_dir, run_dir)
        done = False
        try:
            if target.dry:
                output.dry_command(target.name, f"would describe {copy.path} and record collections, ids digests and probes")
                done = True
                return make_staged(target, copy, {"kind": "chroma", "strategy": source.strategy, "data_dir": data_dir,
                                                  "path": copy.path}, started)
            live = source.strategy == "live"
            doc = run_inspect(target, python, copy.path, source.probes, source.probe_k) if live \
                else run_record(target, source, copy.path)
            if doc.get("ok"):
                record = make_record(doc, source, data_dir, copy.path, attempt)
                record.update(copy_mode=copy.mode, hold_s=round(copy.hold_s, 4), described_by=doc.get("described_by", "chromadb"))
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


def make_staged(target: Target, copy: Any, record: dict[str, Any], started: float) -> Staged:
    from .chroma_copy import run_cleanup

    stable = [copy.path] if copy.stable else []
    return Staged("chroma", record, backup_paths=stable, hash_paths=stable, duration_s=time.monotonic() - started,
                  cleanup=functools.partial(run_cleanup, target, copy) if copy.cleanup else None)


# -- backup: staging size, report summary, manifest record checks -------------------------------

def data_dir_of(target: Target, source: ChromaSource) -> str | None:
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


# -- restore test -------------------------------------------------------------------------------

def plan_checks(record: dict[str, Any], options: dict[str, Any]) -> list[str]:
    plan = ["chroma: sqlite integrity, collections, counts, ids digests, dimension, metric, probes", "chroma: embedding model"]
    plan += ["chroma: self-retrieval"] if options.get("selfcheck") else []
    plan += ["compatibility with live collections"] if options.get("compat") else []
    return plan


def parse_result(res: Any, what: str) -> dict[str, Any]:
    if "No module named 'chromadb'" in res.stdout + res.stderr:
        raise StepError(f"{what}: the Python used cannot import chromadb (set backup.chroma_python)")
    try:
        return parse_json_line(res.stdout, what)
    except StepError:
        return {"ok": False, "error": f"{what}: no result (exit {res.exited}): {(res.stderr or res.stdout).strip()[-300:]}"}


def run_json(scripts: Scripts, names: str | tuple[str, ...], args: list[str], python: str, what: str,
             target_name: str = "") -> dict[str, Any]:
    """A chroma helper's JSON answer; a Python without chromadb is a StepError naming the setting."""
    res = scripts.run_script(names, args, python=python or None, env=TELEMETRY_OFF if python else None)
    try:
        return parse_result(res, what)
    except StepError as exc:
        raise StepError(f"{target_name}: {exc}" if target_name else str(exc)) from None


COMBINED = ("chroma_inspect", "chroma_selfcheck")  # one process, one ChromaDB import


def make_combined_script() -> str | None:
    """chroma_inspect (its __main__ block disabled) + chroma_selfcheck: one process, one ChromaDB import.
    None if chroma_inspect's layout changed (then the two run as separate processes)."""
    try:
        text = script(*COMBINED)
    except ValueError:
        return None
    return text if "def run_verify(" in text else None


def begin(ctx: TestContext) -> None:
    """Before restic restores: pre-start the verify process (its ChromaDB import overlaps the restore)."""
    if ctx.policy.sources.chroma.enabled:
        from .chroma_prewarm import ChromaPrewarm

        ctx.state[KEY] = ChromaPrewarm(ctx.target, ctx.target.settings.backup.chroma_python, ctx.layout,
                                       scripts=ctx.scripts)


def run_checks(ctx: TestContext, record: dict[str, Any]) -> list[Check]:
    """Integrity, collections, counts, ids digests, dimension, metric, probe top-k, embedding model,
    self-retrieval of the restored copy (in the pre-started process when there is one)."""
    python = ctx.target.settings.backup.chroma_python
    min_overlap, selfcheck = ctx.options.min_overlap, ctx.options.selfcheck
    directory = ctx.restored(record["path"])
    combined = make_combined_script() if selfcheck else None
    prewarm = ctx.state.get(KEY)
    warm = prewarm.run(["both", directory, ctx.manifest_path, str(min_overlap), str(selfcheck)]) \
        if prewarm is not None and prewarm.available else None
    name = ctx.target.name
    if warm is not None:
        doc = warm
        own = doc.get("selfcheck")
    elif combined:
        doc = run_json(ctx.scripts, COMBINED, ["both", directory, ctx.manifest_path, str(min_overlap), str(selfcheck)],
                       python, "chroma verify", name)
        own = doc.get("selfcheck")
    else:
        doc = run_json(ctx.scripts, "chroma_inspect", ["verify", directory, ctx.manifest_path, "--min-overlap", str(min_overlap)],
                       python, "chroma verify", name)
        own = None
        if selfcheck and doc.get("collections"):
            own = run_json(ctx.scripts, "chroma_selfcheck", ["selfcheck", directory, "--sample", str(selfcheck)], python,
                           "chroma selfcheck", name)
    checks = convert_checks(doc) + compare_models(record, doc.get("collections", []))
    return checks + (convert_checks(own) if own else [])


def verify(ctx: TestContext, record: dict[str, Any]) -> list[Check]:
    if not record.get("path"):
        return []
    checks = run_checks(ctx, record)
    live_dir = ctx.policy.sources.chroma.data_dir or ctx.live_target.settings.chroma.data_dir
    compat = run_compat_check(ctx.live_target, record, live_dir)
    return checks + ([compat] if compat else [])


def end(ctx: TestContext) -> None:
    prewarm = ctx.state.pop(KEY, None)
    if prewarm is not None:
        prewarm.close()


def convert_checks(doc: dict[str, Any]) -> list[Check]:
    """chroma_inspect's verify (or selfcheck) output as Checks, prefixed ``chroma:``."""
    checks = [Check(f"chroma: {c['check']}", bool(c["ok"]), str(c.get("evidence", ""))) for c in doc.get("checks", [])]
    if not checks or (doc.get("error") and doc.get("ok") is False and not any(not c.ok for c in checks)):
        checks.append(Check("chroma: opens", False, str(doc.get("error") or "no result from the Chroma check")))
    return checks


def compare_models(record: dict[str, Any], restored: list[dict[str, Any]]) -> list[Check]:
    """The embedding model recorded per collection (if any) is the restored collection's."""
    have = {c.get("name"): c for c in restored}
    out = []
    for col in record.get("collections", []):
        cur = have.get(col["name"])
        if cur is None or "error" in cur:
            continue
        out.append(Check(f"chroma: {col['name']}: embedding_model matches", cur.get("embedding_model") == col.get("embedding_model"),
                         f"manifest {col.get('embedding_model')}, dir {cur.get('embedding_model')}"))
    return out


def compare_compat(record: dict[str, Any], live: list[dict[str, Any]]) -> list[str]:
    """Differences that make the snapshot unusable for the live application: per collection present
    in both, dimension / metric / embedding model. Empty list: compatible."""
    live_by_name = {c["name"]: c for c in live}
    problems = []
    for col in record.get("collections", []):
        cur = live_by_name.get(col["name"])
        if cur is None:
            continue
        for key in ("dimension", "metric", "embedding_model"):
            snap, now = col.get(key), cur.get(key)
            if snap is not None and now is not None and snap != now:
                problems.append(f"collection {col['name']}: {key} is {snap} in the snapshot but {now} live")
    return problems


def run_live_schema(target: Target, data_dir: str | None) -> list[dict[str, Any]] | None:
    """The live collections (sqlite read-only), or None when the host has no live Chroma dir."""
    if not data_dir or not target.run(f"[ -f {quote(data_dir + '/chroma.sqlite3')} ]").ok:
        return None
    doc = run_json(HostScripts(target), "chroma_selfcheck", ["schema", data_dir], "", "chroma schema", target.name)
    if not doc.get("ok"):
        raise StepError(f"{target.name}: cannot read the live Chroma schema in {data_dir}: {doc.get('error')}")
    collections: list[dict[str, Any]] = doc["collections"]
    return collections


def run_compat_check(target: Target, record: dict[str, Any], data_dir: str | None) -> Check | None:
    live = run_live_schema(target, data_dir)
    if live is None:
        return None
    problems = compare_compat(record, live)
    return Check("compatibility with live collections", not problems,
                 "; ".join(problems) or f"{len(live)} live collection(s) in {data_dir}: same dimension, metric, model")


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
