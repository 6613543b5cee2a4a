"""The restore-test checks, executed on the host through the seam. Each returns Checks with evidence.

- files: sha256 of every restored staged file against the manifest (part B's hash script);
- redis: a throwaway ``redis-server`` (``backup.redis_server``) on a free loopback port, in the scratch
  dir, loading a copy of the restored dump and saving nothing (its start and death are watched by
  ``ragops/remote/restore_guard.py wait-redis``); ``redis-check-rdb``; per-db counts and the
  sample digest via ``ragops/remote/redis_probe.py``; stopped by :func:`run_redis_stop` (always);
- chroma: ``ragops/remote/chroma_inspect.py verify`` in a separate process (integrity, collections,
  counts, ids digests, dimension, metric, probe top-k), the embedding model compared here, and the
  self-retrieval probe of ``ragops/remote/chroma_selfcheck.py``;
- compatibility: the live collections' schema (sqlite read-only) against the snapshot's;
- repository: ``restic check`` with the policy's ``read_data_subset``.
"""

from __future__ import annotations

from typing import Any

from ..backup import restic
from ..backup.errors import ResticError
from ..backup.manifest import make_hash_command
from ..backup.sources import parse_json_line
from ..errors import StepError
from ..remote import script
from ..seam import Target, quote
from .compare import (
    Check,
    compare_compat,
    compare_files,
    compare_models,
    compare_redis,
    convert_chroma_checks,
)
from .plan import Layout, make_free_port_command, make_redis_start_command, make_redis_stop_command
from .setup import make_missing_tool_error


def run_json(target: Target, command: str, stdin: str, what: str, timeout: float | None = None) -> dict[str, Any]:
    res = target.run(command, stdin=stdin, timeout=timeout)
    if "No module named 'chromadb'" in res.stdout + res.stderr:
        raise StepError(f"{target.name}: {what}: the Python used cannot import chromadb (set backup.chroma_python)")
    try:
        return parse_json_line(res.stdout, what)
    except StepError:
        return {"ok": False, "error": f"{what}: no result (exit {res.exited}): {(res.stderr or res.stdout).strip()[-300:]}"}


def run_files_check(target: Target, layout: Layout, manifest: dict[str, Any]) -> Check:
    staging = layout.restored(manifest["staging_dir"])
    res = target.run(make_hash_command(staging, target.python))
    if not res.ok:
        return Check("files: sha256", False, f"hashing {staging} failed: {res.stderr.strip()[-300:]}")
    hashes = parse_json_line(res.stdout, "hash restored files").get("files", {})
    return compare_files(manifest.get("files", {}), hashes, layout.restore_dir)


def run_redis_start(target: Target, layout: Layout, record: dict[str, Any], *, server: str | None = None,
                    timeout: float = 600) -> tuple[int | None, Check]:
    """Start the throwaway server on a COPY of the restored dump in its own dir; (port, 'redis: dump
    loads' check). A server that did not start or died (a dump that crashes it) is seen at once; a
    missing redis-server is a setup error naming ``backup.redis_server``."""
    server = server or target.settings.backup.redis_server
    src = layout.restored(record["path"])
    d = layout.redis_dir
    aof_dir = record.get("aof_dir") if record.get("method") == "aof" else None
    dest = f"{d}/{aof_dir}" if aof_dir else f"{d}/dump.rdb"
    res = target.run(f"cp -a --reflink=auto -- {quote(src)} {quote(dest)}")
    if not res.ok:
        return None, Check("redis: dump loads", False, f"restored dump {src} missing: {res.stderr.strip()[-200:]}")
    port = 0
    for _ in range(3):  # a port can be taken between picking and binding: pick again
        port = int(target.run(make_free_port_command(target.python), check=True).stdout.strip())
        started = target.run(make_redis_start_command(server, d, port, aof_dir=aof_dir))
        if started.exited in (126, 127):
            raise make_missing_tool_error(target, server, "backup.redis_server (ragops.yaml)", "loads the restored dump")
        if started.ok:
            break
    if not started.ok:
        return None, Check("redis: dump loads", False, f"throwaway redis-server did not start (exit {started.exited}): "
                           f"{(started.stderr or started.stdout).strip()[-300:]}")
    waited = run_json(target, f"{target.python} - wait-redis {quote(d)} {port} {int(timeout)}",
                      script("restore_guard"), "redis load", timeout=timeout + 30)
    if not waited.get("ok"):
        return None, Check("redis: dump loads", False, f"throwaway redis-server did not load {src}: {waited.get('error')}"[:700])
    return port, Check("redis: dump loads", True, f"{src} loaded by a throwaway redis-server on 127.0.0.1:{port}")


def run_redis_checks(target: Target, layout: Layout, record: dict[str, Any], port: int | None,
                     check_rdb: str = "redis-check-rdb") -> list[Check]:
    checks = []
    if record.get("method") != "aof":
        src = layout.restored(record["path"])
        res = target.run(f"{quote(check_rdb)} {quote(src)}")
        if res.exited in (126, 127):
            raise make_missing_tool_error(target, check_rdb, "sources.redis.check_rdb (backup policy)", "validates the restored dump")
        tail = (res.stdout + res.stderr).strip().splitlines()
        checks.append(Check("redis: redis-check-rdb", res.ok, (tail[-1] if tail else f"exit {res.exited}")[:300]))
    if port is None:
        return checks + [Check("redis: key counts", False, "not compared: the dump did not load")]
    sample = int(record.get("sample_size") or 256)
    probe = run_json(target, f"{target.python} - probe --host 127.0.0.1 --port {port} --sample {sample}",
                     script("redis_probe"), "redis probe")
    if not probe.get("ok"):
        return checks + [Check("redis: key counts", False, f"probe failed: {probe.get('error')}")]
    return checks + compare_redis(record, probe)


def run_redis_stop(target: Target, layout: Layout) -> None:
    target.run(make_redis_stop_command(layout.redis_dir))


def make_chroma_command(python: str, mode: str, *args: str) -> str:
    return f"ANONYMIZED_TELEMETRY=False {quote(python)} - {mode} " + " ".join(quote(a) for a in args)


def make_combined_script() -> str | None:
    """chroma_inspect (its __main__ block disabled) + chroma_selfcheck: one process, one ChromaDB import.
    None if chroma_inspect's layout changed (then the two run as separate processes)."""
    guard = 'if __name__ == "__main__":'
    inspect = script("chroma_inspect")
    if inspect.count(guard) != 1 or "def run_verify(" not in inspect:
        return None
    return inspect.replace(guard, "if False:  # ragops.restore: shipped with chroma_selfcheck") + "\n" + script("chroma_selfcheck")


def run_chroma_checks(target: Target, python: str, layout: Layout, record: dict[str, Any], manifest_path: str, *,
                      min_overlap: float = 1.0, selfcheck: int = 50, prewarm: Any = None) -> list[Check]:
    """``prewarm``: a ``ChromaPrewarm`` whose process already imported ChromaDB (used once)."""
    directory = layout.restored(record["path"])
    combined = make_combined_script() if selfcheck else None
    warm = prewarm.run(["both", directory, manifest_path, str(min_overlap), str(selfcheck)]) \
        if prewarm is not None and prewarm.available else None
    if warm is not None:
        doc = warm
        own = doc.get("selfcheck")
    elif combined:
        doc = run_json(target, make_chroma_command(python, "both", directory, manifest_path, str(min_overlap), str(selfcheck)),
                       combined, "chroma verify")
        own = doc.get("selfcheck")
    else:
        doc = run_json(target, make_chroma_command(python, "verify", directory, manifest_path, "--min-overlap", str(min_overlap)),
                       script("chroma_inspect"), "chroma verify")
        own = None
        if selfcheck and doc.get("collections"):
            own = run_json(target, make_chroma_command(python, "selfcheck", directory, "--sample", str(selfcheck)),
                           script("chroma_selfcheck"), "chroma selfcheck")
    checks = convert_chroma_checks(doc) + compare_models(record, doc.get("collections", []))
    return checks + (convert_chroma_checks(own) if own else [])


def run_live_schema(target: Target, data_dir: str | None) -> list[dict[str, Any]] | None:
    """The live collections (sqlite read-only), or None when the host has no live Chroma dir."""
    if not data_dir or not target.run(f"[ -f {quote(data_dir + '/chroma.sqlite3')} ]").ok:
        return None
    doc = run_json(target, f"{target.python} - schema {quote(data_dir)}", script("chroma_selfcheck"), "chroma schema")
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


def run_repository_check(target: Target, repo: restic.Repo, subset: str | None) -> Check:
    name = "repository: restic check" + (f" --read-data-subset={subset}" if subset else "")
    try:
        res = restic.check(target, repo, subset, raise_on_damage=False)
    except ResticError as exc:
        return Check(name, False, str(exc)[-500:])
    lines = [x for x in res.output.strip().splitlines() if x.strip()]
    return Check(name, res.ok, (lines[-1] if lines else "no output")[-500:], {"read_data_subset": subset})
