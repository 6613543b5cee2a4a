"""When can `restic forget` be skipped? Only when it provably removes nothing.

Every restic invocation that opens the repository pays its password key derivation (~0.5 s on a
2-core VM). After a backup, ragops already holds the snapshot list (the parent lookup) plus the
new snapshot, so for the common case of a young repository it can tell without asking restic:
``keep_last = N`` keeps the N most recent snapshots of each group, and every other rule only keeps
more. So if no group (``group_by``, within the host and tag filter forget uses) holds more than N
snapshots, forget would remove nothing. Anything else (no ``keep_last``, a larger group) is left to
restic: this module never re-implements the calendar rules.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from .policy import RetentionSettings
from .restic import Snapshot


def make_group_key(snap: Snapshot, group_by: str) -> tuple[object, ...]:
    parts: list[object] = []
    for field in group_by.split(","):
        if field == "host":
            parts.append(snap.hostname)
        elif field == "tags":
            parts.append(tuple(sorted(snap.tags)))
        elif field == "paths":
            parts.append(tuple(sorted(snap.paths)))
    return tuple(parts)


def make_forget_skip_reason(retention: RetentionSettings, snapshots: Iterable[Snapshot]) -> str | None:
    """Why forget would remove nothing (a sentence), or None when restic must decide.

    ``snapshots`` must be every snapshot forget's filter matches (same host and tags), the new one
    included."""
    if retention.keep_last is None:
        return None
    groups = Counter(make_group_key(s, retention.group_by) for s in snapshots)
    if not groups:
        return None
    largest = max(groups.values())
    if largest > retention.keep_last:
        return None
    return (f"retention: nothing to forget ({largest} snapshot(s) in the largest group, keep_last "
            f"{retention.keep_last}); restic forget not run")
