"""Verified-state: which snapshots passed (or failed) a restore test, and when.

Kept in one JSON file ON THE SOURCE HOST (the host whose data the snapshot holds, also when the
test ran ``--on`` another host): ``<metrics_dir>/ragops-restore-verified.json`` next to the
Prometheus textfiles (node_exporter reads only ``*.prom``), or ``<backup.staging_dir>/...`` when
metrics are disabled. Not a restic tag on purpose: ``restic tag --add`` rewrites the snapshot under
a NEW id, which would break ``--snapshot ID``, off-site copies and the manifest's references.

Also here: the restore test's Prometheus metrics (:func:`make_metrics`) and the last success read
back from its textfile (:func:`read_previous_success`).

Format: ``{"format": 1, "records": [{snapshot_id, short_id, repository, host, verified_on, time,
ts, ok, rto_s, phases, failed_checks}, ...]}``, newest last, the last 200 kept.
``backup.snapshots`` shows the state with :func:`read_verified` + :func:`ragops.report.find_latest_record`.
"""

from __future__ import annotations

import json
import time
from typing import Any

from ..report import find_metric_value
from ..seam import Target

FILE_NAME = "ragops-restore-verified.json"
KEEP = 200


def make_record_path(settings: Any) -> str:
    base = settings.metrics_dir or settings.backup.staging_dir
    return f"{base.rstrip('/')}/{FILE_NAME}"


def parse_records(text: str | None) -> list[dict[str, Any]]:
    if not text:
        return []
    try:
        doc = json.loads(text)
    except ValueError:
        return []
    records = doc.get("records") if isinstance(doc, dict) else None
    return [r for r in records or [] if isinstance(r, dict) and r.get("snapshot_id")]


def make_record(*, snapshot_id: str, repository: str, host: str, verified_on: str, ok: bool, rto_s: float,
                phases: dict[str, float], failed_checks: list[str], now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    return {"snapshot_id": snapshot_id, "short_id": snapshot_id[:8], "repository": repository, "host": host,
            "verified_on": verified_on, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
            "ts": round(now, 3), "ok": ok, "rto_s": round(rto_s, 3),
            "phases": {k: round(v, 3) for k, v in phases.items()}, "failed_checks": failed_checks[:20]}


def add_record(text: str | None, record: dict[str, Any]) -> str:
    records = (parse_records(text) + [record])[-KEEP:]
    return json.dumps({"format": 1, "records": records}, indent=1) + "\n"


def read_verified(target: Target) -> list[dict[str, Any]]:
    """Every recorded restore test of the host, oldest first (a read: also under --dry)."""
    return parse_records(target.read_text(make_record_path(target.settings)))


def run_add_record(target: Target, record: dict[str, Any]) -> str:
    path = make_record_path(target.settings)
    target.put_text(add_record(target.read_text(path), record), path)
    return path


def describe_verification(record: dict[str, Any] | None) -> str:
    """One cell for `backup.snapshots`: 'verified 2026-11-28T21:00:00Z (RTO 12.3s)' / 'FAILED ...' / 'never'."""
    if record is None:
        return "never"
    if record["ok"]:
        return f"verified {record['time']} (RTO {record['rto_s']:.1f}s)"
    return f"FAILED {record['time']}: {', '.join(record.get('failed_checks', [])[:2])}"


def make_metrics(ok: bool, rto: float, phases: dict[str, float], verified: float, budget: float | None,
                 previous_success: float | None, source: str) -> list[tuple[str, dict[str, str], float]]:
    labels = {"source": source}
    metrics = [("ragops_restore_test_rto_seconds", labels, round(rto, 3))]
    metrics += [("ragops_restore_test_rto_seconds", {**labels, "phase": k}, round(v, 3)) for k, v in phases.items()]
    metrics.append(("ragops_restore_test_verified_bytes", labels, verified))
    metrics.append(("ragops_restore_test_success", labels, 1.0 if ok else 0.0))
    if budget:
        metrics.append(("ragops_restore_test_rto_budget_seconds", labels, budget))
    last = time.time() if ok else previous_success
    if last is not None:
        metrics.append(("ragops_restore_test_last_success_timestamp_seconds", labels, round(last, 3)))
    return metrics


def read_previous_success(target: Target, metric: str = "ragops_restore_test_last_success_timestamp_seconds") -> float | None:
    """The last success timestamp ``metric`` in the restore test's textfile (the drill's too), or None."""
    if not target.settings.metrics_dir:
        return None
    return find_metric_value(target.read_text(f"{target.settings.metrics_dir.rstrip('/')}/ragops_restore_verify.prom"), metric)
