"""The drill history on the source host: one JSON object per line, appended by every
`restore-test --drill`, read by `backup.snapshots` (its ``drill`` column).

A file, not a restic tag: ``restic tag`` (0.14) rewrites the snapshot under a new id, which would
break ``--snapshot ID``, off-site copies and the manifest's references. Where:
``restore_test.drill.history_file`` of the policy (default ``/var/lib/ragops/drill-history.jsonl``,
beside ``docker.history_file``). Bounded: after an append the file keeps its last :data:`KEEP` lines.

A record: ``snapshot_id``, ``short_id``, ``time`` (UTC), ``ts``, ``ok``, ``rto_s``,
``answers_matched``, ``answers_total``, ``questions`` (queries | probes), ``project``, ``host``.
The file is untrusted on reading: a line that is not such a record is ignored with a warning.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from .. import output
from ..seam import Target, quote

KEEP = 500
MAX_LINE = 4096


def make_record(report: dict[str, Any], snapshot_id: str, host: str, now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    return {"snapshot_id": snapshot_id, "short_id": snapshot_id[:8], "host": host,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)), "ts": round(now, 3),
            "ok": bool(report.get("ok")), "rto_s": report.get("rto_s"),
            "answers_matched": int(report.get("answers_matched") or 0),
            "answers_total": int(report.get("answers_total") or 0),
            "questions": report.get("questions"), "project": report.get("project")}


def make_append_command(path: str, keep: int = KEEP) -> str:
    """Append stdin's line, then keep the last ``keep`` lines (rewritten through a temp file + mv)."""
    p = quote(path)
    tmp = quote(f"{path}.tmp")
    return (f"mkdir -p {quote(os.path.dirname(path) or '.')} && cat >> {p} && "
            f"if [ \"$(wc -l < {p})\" -gt {int(keep)} ]; then tail -n {int(keep)} {p} > {tmp} && mv -f {tmp} {p}; fi")


def run_append(target: Target, path: str, record: dict[str, Any]) -> None:
    target.run(make_append_command(path), stdin=json.dumps(record, sort_keys=True) + "\n", write=True, check=True)


def check_record(doc: Any) -> bool:
    if not isinstance(doc, dict):
        return False
    sid, ok = doc.get("snapshot_id"), doc.get("ok")
    return isinstance(sid, str) and 8 <= len(sid) <= 128 and sid.isalnum() and isinstance(ok, bool) and \
        isinstance(doc.get("time"), str) and all(doc.get(k) is None or isinstance(doc.get(k), int | float)
                                                 and not isinstance(doc.get(k), bool)
                                                 for k in ("rto_s", "answers_matched", "answers_total"))


def parse_history(text: str | None) -> tuple[list[dict[str, Any]], int]:
    """(records in file order, number of malformed lines ignored)."""
    records: list[dict[str, Any]] = []
    bad = 0
    for line in (text or "").splitlines()[-KEEP * 2:]:
        if not line.strip():
            continue
        try:
            doc = json.loads(line) if len(line) <= MAX_LINE else None
        except ValueError:
            doc = None
        if isinstance(doc, dict) and check_record(doc):
            records.append(doc)
        else:
            bad += 1
    return records, bad


def read_history(target: Target, path: str) -> list[dict[str, Any]]:
    """Every recorded drill of the host (a read: also under --dry); malformed lines: one warning."""
    records, bad = parse_history(target.read_text(path))
    if bad:
        output.warn(target.name, f"{path}: {bad} malformed line(s) ignored")
    return records


def describe_drill(record: dict[str, Any] | None) -> str:
    """One cell for `backup.snapshots`: 'passed 2026-12-01T20:00:00Z (RTO 31.2s, 4/4 answers)' / 'FAILED ...' / 'never'."""
    if record is None:
        return "never"
    rto = f"RTO {record['rto_s']:.1f}s, " if record.get("rto_s") is not None else ""
    answers = f"{record.get('answers_matched') or 0}/{record.get('answers_total') or 0} answers"
    return f"{'passed' if record['ok'] else 'FAILED'} {record['time']} ({rto}{answers})"
