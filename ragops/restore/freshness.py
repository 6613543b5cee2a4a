"""Is the snapshot a restore test verifies the one it should be? (issue: the newest snapshot vanished
from the repository and the restore test happily verified the previous one.)

The backup step records its last snapshot per repository and tag set on the host
(``ragops.backup.last_backup.run_record_backup``). The restore test compares:

- the recorded snapshot must still be in the repository: if it is gone, the check FAILS (a snapshot
  was lost or deleted; whatever is verified instead is older than the last backup);
- the verified snapshot (``latest``) must not be older than twice the longest interval of the
  policy's ``schedule`` (one missed run is tolerated, two are not): otherwise the run is DEGRADED.
"""

from __future__ import annotations

import calendar
import re
import time
from datetime import datetime
from typing import Any

from ..backup import restic
from .compare import Check

CHECK = "snapshot: the last recorded backup is present"
_NAMES = {"jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6, "jul": 7, "aug": 8, "sep": 9, "oct": 10,
          "nov": 11, "dec": 12, "sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.\d+)?(Z|[+-]\d\d:\d\d)?$")


def expand_field(text: str, low: int, high: int) -> set[int]:
    out: set[int] = set()
    for part in text.lower().split(","):
        base, _, step = part.partition("/")
        if base == "*":
            lo, hi = low, high
        elif "-" in base:
            a, b = base.split("-", 1)
            lo, hi = int(_NAMES.get(a, a)), int(_NAMES.get(b, b))
        else:
            lo = int(_NAMES.get(base, base))
            hi = high if step else lo
        out.update(range(lo, hi + 1, int(step) if step else 1))
    return out


def longest_interval_s(cron: str, days: int = 800) -> float | None:
    """The longest gap between two runs of a 5-field cron schedule (over ``days`` days), seconds."""
    minute, hour, dom, month, dow = cron.split()
    minutes = sorted(h * 60 + m for h in expand_field(hour, 0, 23) for m in expand_field(minute, 0, 59))
    doms, months = expand_field(dom, 1, 31), expand_field(month, 1, 12)
    dows = {d % 7 for d in expand_field(dow, 0, 7)}
    start = calendar.timegm((2024, 1, 1, 0, 0, 0))
    matching = []
    for i in range(days):
        t = time.gmtime(start + i * 86400)
        day_ok, week_ok = t.tm_mday in doms, (t.tm_wday + 1) % 7 in dows
        restricted = dom != "*" and dow != "*"
        if t.tm_mon in months and ((day_ok or week_ok) if restricted else (day_ok and week_ok)):
            matching.append(i)
    if not minutes or len(matching) < 2:
        return None
    gaps = [b - a for a, b in zip(minutes, minutes[1:], strict=False)]
    gaps += [(d2 - d1) * 1440 - minutes[-1] + minutes[0] for d1, d2 in zip(matching, matching[1:], strict=False)]
    return max(gaps) * 60.0


def parse_time(text: str) -> float | None:
    """restic's snapshot time (RFC 3339 with nanoseconds) as a Unix timestamp."""
    match = _TIME.match(text or "")
    if not match:
        return None
    zone = match.group(2) or "Z"
    return datetime.fromisoformat(match.group(1) + ("+00:00" if zone == "Z" else zone)).timestamp()


def check_recorded(recorded: dict[str, Any] | None, listed: list[restic.Snapshot], verified: restic.Snapshot,
                   repository: str) -> Check:
    """The last backup recorded for the host is still listed by the repository."""
    if recorded is None:
        return Check(CHECK, True, "no backup recorded on the host for this repository and tags yet: not compared")
    rid, when = str(recorded["snapshot_id"]), str(recorded.get("time", "?"))
    if any(s.matches(rid) for s in listed):
        same = verified.matches(rid)
        return Check(CHECK, True, f"last recorded backup {rid[:8]} ({when}) is in the repository"
                     + ("" if same else f"; verified {verified.short_id} ({verified.time[:19]})"), {"recorded": rid})
    return Check(CHECK, False, f"the last backup ragops recorded for {recorded.get('host', '?')}, snapshot {rid[:8]} "
                 f"taken {when}, is MISSING from {repository}; the snapshot verified instead, {verified.short_id} "
                 f"({verified.time[:19]}), is older: a snapshot was lost or deleted", {"recorded": rid, "missing": True})


def find_stale(verified: restic.Snapshot, schedule: str, now: float | None = None) -> str | None:
    """Why the verified snapshot is older than the policy's schedule allows, or None."""
    taken = parse_time(verified.time)
    interval = longest_interval_s(schedule)
    if taken is None or interval is None:
        return None
    age = (time.time() if now is None else now) - taken
    if age <= 2 * interval:
        return None
    return (f"snapshot {verified.short_id} is {age / 3600:.1f}h old but the policy's schedule {schedule!r} runs at least "
            f"every {interval / 3600:.1f}h (allowed: {2 * interval / 3600:.1f}h): scheduled backups are missing")
