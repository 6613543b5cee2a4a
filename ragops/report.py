"""Results of a run: per-step and per-host records, the summary table, JSON, Prometheus textfiles.

Also the plan's unit, ``Step(name, run)``: domain modules build steps and results from here without
importing the runner (``ragops.runner`` re-exports ``Step`` and ``summarize_status``).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import ExitCode

if TYPE_CHECKING:
    from .seam import Target

OK, DEGRADED, FAILED, SKIPPED = "ok", "degraded", "failed", "skipped"
STATUS_VALUE = {OK: 0, DEGRADED: 1, FAILED: 2, SKIPPED: 0}


@dataclass
class StepResult:
    step: str
    status: str = OK
    message: str = ""
    duration_s: float = 0.0
    bytes_freed: int = 0
    files: int = 0
    dry: bool = False
    details: dict[str, Any] = field(default_factory=dict)
    # extra gauges for the textfile: (metric name, labels, value)
    metrics: list[tuple[str, dict[str, str], float]] = field(default_factory=list)
    # explicit exit code (a ConfigError or VerifyError raised by the step); None: derived from status
    exit_code: ExitCode | None = None

    @property
    def failed(self) -> bool:
        return self.status == FAILED


StepFn = Callable[["Target"], StepResult]


@dataclass
class Step:
    """One unit of a host's plan: ``run(target)`` returns its StepResult (or raises a RagopsError)."""

    name: str
    run: StepFn


def summarize_status(steps: list[StepResult]) -> str:
    """The worst status of the steps: failed > degraded > ok (skipped counts as ok)."""
    if any(s.status == FAILED for s in steps):
        return FAILED
    if any(s.status == DEGRADED for s in steps):
        return DEGRADED
    return OK


@dataclass
class HostResult:
    host: str
    status: str = OK  # ok | degraded | failed | unreachable | locked | not started
    steps: list[StepResult] = field(default_factory=list)
    error: str = ""
    exit_code: int = ExitCode.OK
    duration_s: float = 0.0

    @property
    def bytes_freed(self) -> int:
        return sum(s.bytes_freed for s in self.steps)


@dataclass
class RunResult:
    task: str
    dry: bool
    hosts: list[HostResult]
    started_at: float = field(default_factory=time.time)
    duration_s: float = 0.0

    @property
    def exit_code(self) -> int:
        return max((int(h.exit_code) for h in self.hosts), default=0)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "task": self.task,
            "dry_run": self.dry,
            "started_at": self.started_at,
            "duration_s": round(self.duration_s, 3),
            "exit_code": self.exit_code,
            "ok": self.exit_code == 0,
        }
        hosts: list[dict[str, Any]] = []
        for h in self.hosts:
            hd = asdict(h)
            hd["bytes_freed"] = h.bytes_freed
            for s in hd["steps"]:
                s.pop("metrics", None)
                if s.get("exit_code") is None:  # only an explicit code appears (the JSON stays stable)
                    s.pop("exit_code", None)
                else:
                    s["exit_code"] = int(s["exit_code"])
                s["duration_s"] = round(s["duration_s"], 3)
            hd["duration_s"] = round(h.duration_s, 3)
            hosts.append(hd)
        data["hosts"] = hosts
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False, default=str)


def make_error_document(task: str, error: str, exit_code: int, *, dry: bool = False) -> dict[str, Any]:
    """The --json document of a run that stopped before any host ran (usage or config error, lock
    of the whole run): same top-level keys as a RunResult's, no hosts, and the error."""
    return {"task": task, "dry_run": dry, "started_at": time.time(), "duration_s": 0.0, "exit_code": int(exit_code),
            "ok": False, "error": error, "hosts": []}


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


_STYLE = {OK: "green", DEGRADED: "yellow", FAILED: "bold red", SKIPPED: "dim", "unreachable": "bold red",
          "locked": "bold yellow", "not started": "dim", "interrupted": "bold yellow"}


def render_summary(run: RunResult) -> Any:
    """The per-host, per-step summary table (a rich Table)."""
    from rich.table import Table

    title = f"ragops {run.task}" + (" (dry run)" if run.dry else "") + f" — {len(run.hosts)} host(s), {run.duration_s:.1f}s"
    table = Table(title=title, title_justify="left")
    for col in ("host", "step", "result", "duration", "freed", "detail"):
        table.add_column(col, justify="right" if col in ("duration", "freed") else "left", overflow="fold")
    for h in run.hosts:
        if not h.steps:
            table.add_row(h.host, "-", f"[{_STYLE.get(h.status, '')}]{h.status}[/]", f"{h.duration_s:.1f}s", "-", h.error)
        for i, s in enumerate(h.steps):
            table.add_row(
                h.host if i == 0 else "",
                s.step,
                f"[{_STYLE.get(s.status, '')}]{s.status}[/]" + (" (dry)" if s.dry else ""),
                f"{s.duration_s:.1f}s",
                format_bytes(s.bytes_freed) if s.bytes_freed else "-",
                s.message,
            )
        if h.steps and h.error:
            table.add_row("", "-", f"[{_STYLE.get(h.status, '')}]{h.status}[/]", "", "", h.error)
    return table


# ---------------------------------------------------------------- Prometheus textfile


def format_value(value: float) -> str:
    """Full precision (timestamps must not become 1.7959e+09)."""
    if float(value).is_integer():
        return str(int(value))
    return repr(round(float(value), 6))


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def find_latest_record(records: list[dict[str, Any]], snapshot_id: str, original: str | None = None) -> dict[str, Any] | None:
    """The latest of ragops' own records (restore tests, drills) of a snapshot: matched by its full id,
    or by the original of an off-site copy; None when there is none."""
    ids = {i for i in (snapshot_id, original) if i}
    hits = [r for r in records if r["snapshot_id"] in ids]
    return hits[-1] if hits else None


def find_metric_value(text: str | None, metric: str) -> float | None:
    """The value of the first sample of ``metric`` (any labels) in a Prometheus textfile, or None."""
    match = re.search(rf"^{re.escape(metric)}\{{[^}}]*\}} ([0-9.eE+]+)$", text or "", re.M)
    return float(match.group(1)) if match else None


def make_metrics_text(host: str, step: StepResult, now: float, previous: str | None) -> str:
    """node_exporter textfile content for one host and step; carries the last success time over."""
    labels = {"host": host, "step": step.step}
    last_success = now if step.status in (OK, DEGRADED) else None
    if last_success is None and previous:
        last_success = find_metric_value(previous, "ragops_step_last_success_timestamp_seconds")
    lines = []

    def gauge(name: str, help_text: str, value: float, extra: dict[str, str] | None = None) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} gauge")
        lines.append(f"{name}{_labels({**labels, **(extra or {})})} {format_value(value)}")

    gauge("ragops_step_last_run_timestamp_seconds", "When the step last ran.", round(now, 3))
    if last_success is not None:
        gauge("ragops_step_last_success_timestamp_seconds", "When the step last succeeded.", round(last_success, 3))
    gauge("ragops_step_success", "1 if the last run of the step succeeded (ok or degraded).", 1 if step.status in (OK, DEGRADED) else 0)
    gauge("ragops_step_status", "0 ok, 1 degraded, 2 failed.", STATUS_VALUE.get(step.status, 2))
    gauge("ragops_step_duration_seconds", "Duration of the last run.", round(step.duration_s, 3))
    gauge("ragops_step_bytes_freed", "Bytes freed by the last run.", step.bytes_freed)
    families: dict[str, list[str]] = {}  # the text format wants each metric's samples in one group
    for name, extra, value in step.metrics:
        families.setdefault(name, []).append(f"{name}{_labels({**labels, **extra})} {format_value(value)}")
    for name, samples in families.items():
        lines.append(f"# TYPE {name} gauge")
        lines.extend(samples)
    return "\n".join(lines) + "\n"


def metrics_file_name(step: str) -> str:
    """One file per step, whichever task ran it (maintain or the step alone)."""
    return f"ragops_{re.sub(r'[^a-z0-9_]', '_', step)}.prom"
