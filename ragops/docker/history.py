"""The upgrade history on the host: one JSON object per line, appended by every upgrade, release
and rollback, read by `release.rollback` to find "the previous recorded version".

A record: id, kind (upgrade | release | rollback), ts, who, host, project, service,
from {image, id, digests}, to {image, id, digests}, result (ok | rolled_back | rollback_failed),
failing_replica, durations, message, release_id, undoes (the id a rollback reverted).
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import uuid
from datetime import UTC, datetime
from typing import Any

from .. import output
from ..seam import Target, quote


def make_who() -> str:
    """Who ran it: the operator (SUDO_USER if sudo'ed) at the controller."""
    try:
        user = os.environ.get("SUDO_USER") or getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def make_record(*, kind: str, host: str, project: str, service: str, from_ref: dict[str, Any], to_ref: dict[str, Any],
                result: str, **extra: Any) -> dict[str, Any]:
    return {"id": uuid.uuid4().hex[:12], "kind": kind, "ts": datetime.now(UTC).isoformat(timespec="seconds"),
            "who": make_who(), "host": host, "project": project, "service": service,
            "from": from_ref, "to": to_ref, "result": result, **extra}


def append_record(target: Target, record: dict[str, Any]) -> None:
    """Append one line (a write: printed under --dry)."""
    path = target.settings.docker.history_file
    line = json.dumps(record, sort_keys=True, default=str)
    target.run(f"mkdir -p {quote(os.path.dirname(path) or '.')} && cat >> {quote(path)}", stdin=line + "\n",
               write=True, check=True, quiet_dry=True)
    if target.dry:
        output.dry_command(target.name, f"append to {path}: {record['kind']} {record['service']} "
                                        f"{record['from'].get('image')} -> {record['to'].get('image')}")


def parse_history(text: str | None) -> list[dict[str, Any]]:
    """Records in file order; a damaged line is skipped, not fatal."""
    records = []
    for line in (text or "").splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and "service" in doc:
            records.append(doc)
    return records


def read_history(target: Target) -> list[dict[str, Any]]:
    return parse_history(target.read_text(target.settings.docker.history_file))


def find_rollback_targets(records: list[dict[str, Any]], project: str, services: list[str]) -> dict[str, dict[str, Any]]:
    """Per service, the latest successful upgrade/release not yet undone by a rollback: rolling
    back means going to its ``from``. Repeated rollbacks walk further back through the history."""
    stacks: dict[str, list[dict[str, Any]]] = {s: [] for s in services}
    for rec in records:
        if rec.get("project") != project or rec.get("service") not in stacks or rec.get("result") != "ok":
            continue
        stack = stacks[rec["service"]]
        if rec.get("kind") == "rollback":
            stack[:] = [r for r in stack if r.get("id") != rec.get("undoes")]
        else:
            stack.append(rec)
    return {svc: stack[-1] for svc, stack in stacks.items() if stack}
