"""What every task shares: flags, config loading, host selection, fleet run, summary, exit code."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from invoke import Exit

from .. import output
from ..config import Host, LoadedConfig, load_config, select_hosts
from ..errors import ExitCode, RagopsError
from ..report import RunResult, render_summary
from ..runner import Step, run_fleet, run_host
from ..seam import Target, make_targets

HELP = {
    "host": "Host(s): 'local', inventory names and @groups, comma-separated (default: local).",
    "config": "Path to ragops.yaml (default: $RAGOPS_CONFIG, then ./ragops.yaml, then the embedded demo config).",
    "dry": "Show exactly what would run and change; change nothing.",
    "json": "Print one JSON document for the whole run on stdout (human output stays on stderr).",
    "parallel": "Hosts run at once (default: config 'parallel', 8).",
    "fail_percent": "Stop starting new hosts once this % of hosts failed (default: config, 100).",
}


def helps(*names: str) -> dict[str, str]:
    """A fresh help dict for a task's flags (Invoke consumes the dict it is given)."""
    return {name: HELP[name] for name in names}


def load(config: str | None) -> LoadedConfig:
    try:
        return load_config(config)
    except RagopsError as exc:
        raise Exit(f"config error:\n{exc}", code=int(exc.exit_code)) from None


def make_run_targets(c: Any, config: str | None, host: str | None, dry: bool) -> tuple[LoadedConfig, list[Target]]:
    loaded = load(config)
    try:
        hosts = select_hosts(loaded, host or "local")
    except RagopsError as exc:
        raise Exit(f"config error:\n{exc}", code=int(exc.exit_code)) from None
    dry = bool(dry or getattr(c.config.run, "dry", False))
    return loaded, make_targets(loaded, hosts, dry)


def finish(run: RunResult, json_out: bool) -> None:
    """Summary table on stderr, JSON on stdout if asked, exit code from the worst host."""
    output.console().print(render_summary(run))
    if json_out:
        sys.stdout.write(run.to_json() + "\n")
        sys.stdout.flush()
    if run.exit_code != ExitCode.OK:
        bad = [h.host for h in run.hosts if h.exit_code != ExitCode.OK]
        raise Exit(f"ragops {run.task}: failed on {len(bad)} of {len(run.hosts)} host(s): {', '.join(bad)}",
                   code=run.exit_code)


def execute(
    c: Any,
    task: str,
    plan: Callable[[Host], list[Step]],
    *,
    host: str | None,
    config: str | None,
    dry: bool,
    json_out: bool,
    parallel: int | None = None,
    fail_percent: int | None = None,
    lock: bool = True,
    strict: bool = False,
) -> RunResult:
    """Plan the steps per host, run them on the fleet, print the summary, exit with the right code."""
    loaded, targets = make_run_targets(c, config, host, dry)
    try:
        plans = {t.name: plan(t.host) for t in targets}
    except RagopsError as exc:
        raise Exit(f"{exc}", code=int(exc.exit_code)) from None
    started = time.time()
    t0 = time.monotonic()
    results = run_fleet(
        targets,
        lambda t: run_host(t, task, plans[t.name], lock=lock, strict=strict),
        parallel=parallel or loaded.config.parallel,
        fail_percent=loaded.config.fail_percent if fail_percent is None else fail_percent,
    )
    run = RunResult(task=task, dry=targets[0].dry if targets else bool(dry), hosts=results, started_at=started,
                    duration_s=time.monotonic() - t0)
    finish(run, json_out)
    return run
