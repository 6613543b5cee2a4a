"""The data sources, keyed by the policy's ``sources.<key>``; backup and restore iterate this registry.

Each source is ONE module exporting the same verbs (borgmatic's data-source hooks are the model:
dispatch calls a verb on every source, a source that has nothing to do returns nothing):

backup
  ``stage(target, settings, run_dir) -> Staged | None``  stage (or name) what goes into the snapshot;
      ``Staged.record`` is its manifest record (``kind`` = the key); None: nothing to back up
  ``staging_paths(target, settings) -> list[str]``  what the run will copy (free-space preflight)
  ``describe(record) -> dict``  the short summary of its record in the backup report
restore test (``ctx``: :class:`~ragops.backup.sources.hooks.TestContext`)
  ``check_record(where, record, staging) -> list[str]``  problems of an untrusted manifest record
  ``live_paths(settings, host_settings, records) -> list[str | None]``  live data never to touch
  ``plan_checks(record, options) -> list[str]``  the names of its checks (``--json`` plan, docs)
  ``preflight(target, source_host, settings)``  its tools exist (raise ConfigError), before restoring
  ``begin(ctx)``  before restic restores (e.g. pre-start a slow import)
  ``start(ctx, record) -> list[Check]``  the "start" phase of the RTO (e.g. a throwaway server)
  ``verify(ctx, record) -> list[Check]``  its checks, run in parallel with the other sources'
  ``end(ctx)``  always, in ``finally``: stop what ``begin``/``start`` started
real restore
  ``refuse_restore(target, settings, record) -> str | None``  why the snapshot must not be restored
  ``bring_up(record, target_dir, host_settings) -> list[str]``  the operator's steps to serve from it
settings
  ``settings(policy)``  optional: its settings (default: ``policy.sources.<key>``)

Only ``stage``, ``verify`` and ``plan_checks`` are required; a missing optional verb does nothing
(see :data:`DEFAULTS`). A new source is one module and one :func:`register` call (or one line in
:data:`SOURCES`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

from . import chroma, paths, redis

SOURCES: dict[str, ModuleType] = {"redis": redis, "chroma": chroma, "paths": paths}
REQUIRED = ("stage", "verify", "plan_checks")


def _none(*_args: Any, **_kw: Any) -> None:
    return None


def _empty(*_args: Any, **_kw: Any) -> list[Any]:
    return []


def _describe(record: dict[str, Any]) -> dict[str, Any]:
    return dict(record)


def _check_record(where: str, record: dict[str, Any], staging: str) -> list[str]:
    from .hooks import check_staged_path

    return check_staged_path(where, record, staging) if "path" in record else []


DEFAULTS: dict[str, Callable[..., Any]] = {
    "staging_paths": _empty, "describe": _describe, "check_record": _check_record, "live_paths": _empty,
    "preflight": _none, "begin": _none, "start": _empty, "end": _none, "refuse_restore": _none, "bring_up": _empty,
}


def register(key: str, module: ModuleType) -> None:
    """Add (or replace) a source; it must export the required verbs."""
    missing = [verb for verb in REQUIRED if not callable(getattr(module, verb, None))]
    if missing:
        raise TypeError(f"data source {key!r} ({module.__name__}) does not export {', '.join(missing)}")
    SOURCES[key] = module


def unregister(key: str) -> None:
    SOURCES.pop(key, None)


def hook(key: str, verb: str) -> Callable[..., Any]:
    """The source's function for ``verb``, or the do-nothing default of an optional verb."""
    fn = getattr(SOURCES[key], verb, None)
    if fn is None:
        return DEFAULTS[verb]
    return fn  # type: ignore[no-any-return]


def settings_of(key: str, policy: Any) -> Any:
    """The source's settings in the policy (``policy.sources.<key>``), None without a policy."""
    own = getattr(SOURCES[key], "settings", None)
    if own is not None:
        return own(policy)
    return getattr(policy.sources, key, None) if policy is not None else None


def keys() -> list[str]:
    return list(SOURCES)


def records_by_key(manifest: dict[str, Any] | None) -> Iterator[tuple[str, dict[str, Any]]]:
    """(key, record) for every manifest record of a registered source, in manifest order."""
    for rec in (manifest or {}).get("sources", []):
        if isinstance(rec, dict) and rec.get("kind") in SOURCES:
            yield str(rec["kind"]), rec

