"""Chroma source, restore-test side: verify the restored copy against its record.

``begin`` pre-starts the verify process (``chroma_prewarm``: ChromaDB's import overlaps restic);
``verify`` runs ``chroma_inspect.py verify`` (+ ``chroma_selfcheck.py``) on the restored copy and
compares the live collections' schema (read-only) with the record; ``end`` stops what ``begin``
started. ``compare_compat``/``run_live_schema`` also serve the real restore's refusal.
"""

from __future__ import annotations

from typing import Any

from ...errors import StepError
from ...remote import script
from ...seam import Target, quote
from . import parse_json_line
from .hooks import Check, HostScripts, Scripts, TestContext

KEY = "chroma"
# ChromaDB opens the restored copy in place and may write it (log applied, sqlite rewritten): the
# restore test hashes the restored files before this source's verify starts (restore/run.py)
WRITES_RESTORED_FILES = True
TELEMETRY_OFF = {"ANONYMIZED_TELEMETRY": "False"}


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


SCRIPTS = "chroma-scripts"  # ctx.state: the executor of the chroma helpers (a Compose host: throwaway containers)


def chroma_scripts(ctx: TestContext) -> tuple[Scripts, str]:
    """(executor, python) of the restore test's chroma helpers: the host's (backup.chroma_python), or on a
    Compose host throwaway containers of the chroma service's image with the scratch dir mounted."""
    if SCRIPTS not in ctx.state:
        if ctx.target.settings.docker.data_tasks == "containers":
            from .chroma_containers import make_scripts, run_image
            from .throwaway import Mount

            # read-write: ChromaDB opens the restored copy in place (the files are hashed before)
            ctx.state[SCRIPTS] = (make_scripts(ctx.target, run_image(ctx.target), [Mount(ctx.layout.root, read_only=False)],
                                               "chroma-verify"), ctx.target.settings.docker.roles.python)
        else:
            ctx.state[SCRIPTS] = (ctx.scripts, ctx.target.settings.backup.chroma_python)
    return ctx.state[SCRIPTS]  # type: ignore[no-any-return]


def preflight(target: Target, source_host: Any, source: Any) -> None:
    """A Compose host: the chroma service (whose image verifies the copy) must be found."""
    if source is not None and source.enabled and target.settings.docker.data_tasks == "containers":
        from .compose_roles import run_discover

        run_discover(target).container("chroma", target.name)


def begin(ctx: TestContext) -> None:
    """Before restic restores: pre-start the verify process (its ChromaDB import overlaps the restore)."""
    if ctx.policy.sources.chroma.enabled:
        from .chroma_prewarm import ChromaPrewarm

        scripts, python = chroma_scripts(ctx)
        ctx.state[KEY] = ChromaPrewarm(ctx.target, python, ctx.layout, scripts=scripts)


def run_checks(ctx: TestContext, record: dict[str, Any]) -> list[Check]:
    """Integrity, collections, counts, ids digests, dimension, metric, probe top-k, embedding model,
    self-retrieval of the restored copy (in the pre-started process when there is one)."""
    scripts, python = chroma_scripts(ctx)
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
        doc = run_json(scripts, COMBINED, ["both", directory, ctx.manifest_path, str(min_overlap), str(selfcheck)],
                       python, "chroma verify", name)
        own = doc.get("selfcheck")
    else:
        doc = run_json(scripts, "chroma_inspect", ["verify", directory, ctx.manifest_path, "--min-overlap", str(min_overlap)],
                       python, "chroma verify", name)
        own = None
        if selfcheck and doc.get("collections"):
            own = run_json(scripts, "chroma_selfcheck", ["selfcheck", directory, "--sample", str(selfcheck)], python,
                           "chroma selfcheck", name)
    checks = convert_checks(doc) + compare_models(record, doc.get("collections", []))
    return checks + (convert_checks(own) if own else [])


def verify(ctx: TestContext, record: dict[str, Any]) -> list[Check]:
    if not record.get("path"):
        return []
    checks = run_checks(ctx, record)
    if ctx.live_target.settings.docker.data_tasks == "containers":
        compat = run_compat_in_container(ctx.live_target, record, ctx.policy.sources.chroma)
    else:
        live_dir = ctx.policy.sources.chroma.data_dir or ctx.live_target.settings.chroma.data_dir
        compat = run_compat_check(ctx.live_target, record, live_dir)
    return checks + ([compat] if compat else [])


def end(ctx: TestContext) -> None:
    prewarm = ctx.state.pop(KEY, None)
    try:
        if prewarm is not None:
            prewarm.close()
    finally:
        scripts = ctx.state.pop(SCRIPTS, (None, ""))[0]
        if hasattr(scripts, "close"):  # throwaway containers: remove any still there (a pre-started verify)
            scripts.close()


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


def run_compat_in_container(target: Target, record: dict[str, Any], source: Any) -> Check | None:
    """The live schema read (sqlite, read-only) with ``docker exec`` in the running Chroma container."""
    from .chroma_containers import make_live_scripts, run_place

    place = run_place(target, source)
    if not place.container.running:
        return Check("compatibility with live collections", False, f"the chroma container {place.container.name} is "
                     f"{place.container.state}: the live schema cannot be read")
    doc = run_json(make_live_scripts(target, place), "chroma_selfcheck", ["schema", place.container_path], "",
                   "chroma schema", target.name)
    if not doc.get("ok"):
        raise StepError(f"{target.name}: cannot read the live Chroma schema in {place.container.name}:"
                        f"{place.container_path}: {doc.get('error')}")
    problems = compare_compat(record, doc["collections"])
    return Check("compatibility with live collections", not problems,
                 "; ".join(problems) or f"{len(doc['collections'])} live collection(s) in {place.container.name}:"
                 f"{place.container_path}: same dimension, metric, model")


def run_compat_check(target: Target, record: dict[str, Any], data_dir: str | None) -> Check | None:
    live = run_live_schema(target, data_dir)
    if live is None:
        return None
    problems = compare_compat(record, live)
    return Check("compatibility with live collections", not problems,
                 "; ".join(problems) or f"{len(live)} live collection(s) in {data_dir}: same dimension, metric, model")
