"""A policy's cadences as scripts/install-schedule.sh installs them (``--policy FILE``): the cron
expression of a task and the same as a systemd ``OnCalendar=``.

Tasks and their policy fields: ``drill`` (``restore-test --drill``) -> ``restore_test.drill.cadence``
(null: the policy schedules no drill), ``restore-test`` -> ``restore_test.cadence`` (``restore_test.enabled``),
``backup.check`` -> ``check.cadence``, ``backup`` -> ``schedule``.

Usage (prints three tab-separated fields: cron, OnCalendar, policy name; exit 2 with one message)::

    python -m ragops.drill.schedule TASK POLICY_FILE
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

DOW = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
NAMES = {n.lower(): i for i, n in enumerate(DOW[:7])} | {
    m: i + 1 for i, m in enumerate(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"])}
TASKS = {"drill": "restore_test.drill.cadence", "restore-test": "restore_test.cadence", "backup.check": "check.cadence",
         "backup": "schedule"}


def _value(text: str, dow: bool) -> str:
    n = NAMES.get(text.lower(), None) if not text.isdigit() else int(text)
    if n is None:
        raise ValueError(f"{text!r} is not a number or name")
    return DOW[n] if dow else f"{n:02d}"


def _field(text: str, dow: bool = False) -> str:
    parts = []
    for part in text.split(","):
        base, _, step = part.partition("/")
        if base == "*" and not step:
            return "*"
        if step:
            if "-" in base or dow:
                raise ValueError(f"{part!r}: a stepped range has no systemd equivalent: give --when")
            parts.append(f"{'0' if base == '*' else _value(base, dow)}/{int(step)}")
        elif "-" in base:
            low, high = base.split("-", 1)
            parts.append(f"{_value(low, dow)}..{_value(high, dow)}")
        else:
            parts.append(_value(base, dow))
    return ",".join(parts)


def make_on_calendar(cron: str) -> str:
    """A 5-field cron expression (validated by the policy) as systemd OnCalendar. Cron ORs a
    restricted day-of-month with a restricted day-of-week, systemd ANDs them: refused (give --when)."""
    minute, hour, dom, month, dow = cron.split()
    if dom != "*" and dow != "*":
        raise ValueError(f"{cron!r}: both day-of-month and day-of-week restricted: cron ORs them, systemd "
                         "would AND them: give --when")
    days = "" if dow == "*" else _field(dow, dow=True) + " "
    return f"{days}*-{_field(month)}-{_field(dom)} {_field(hour)}:{_field(minute)}:00"


def find_cadence(policy: Any, task: str) -> str | None:
    value: Any = policy
    for part in TASKS[task].split("."):
        value = getattr(value, part)
    if task == "restore-test" and not policy.restore_test.enabled:
        return None
    return None if value is None else str(value)


def main(argv: list[str]) -> int:
    from ..backup.policy import load_policy
    from ..errors import ConfigError

    if len(argv) != 2 or argv[0] not in TASKS:
        print(f"usage: python -m ragops.drill.schedule {{{'|'.join(TASKS)}}} POLICY_FILE", file=sys.stderr)
        return 2
    task, path = argv
    file = Path(path)
    try:
        policy = load_policy(file.parent, file.stem)
        cadence = find_cadence(policy, task)
        if cadence is None:
            raise ValueError(f"{TASKS[task]} is not set (or the task is disabled): this policy schedules no {task}")
        print(f"{cadence}\t{make_on_calendar(cadence)}\t{file.stem}")
    except ConfigError as exc:
        print("\n".join(exc.problems), file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
