"""What every task shares: flags, their parsing and validation, config loading, host selection,
fleet run, summary, exit code, and the one JSON document of ``--json`` on every exit path."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from invoke import Exit

from .. import interrupts, output
from ..config import Host, LoadedConfig, load_config, select_hosts
from ..errors import ConfigError, ExitCode, RagopsError
from ..report import RunResult, make_error_document, render_summary
from ..runner import Step, run_fleet, run_host
from ..seam import Target, make_targets

HELP = {
    "host": "Host(s): 'local', inventory names and @groups, comma-separated (default: local).",
    "config": "Path to ragops.yaml (default: $RAGOPS_CONFIG, then ./ragops.yaml, then the embedded demo config).",
    "dry": "Show exactly what would run and change; change nothing.",
    "json": "Print one JSON document for the whole run on stdout (human output stays on stderr).",
    "parallel": "Hosts run at once, 1-256 (default: config 'parallel', 8).",
    "fail_percent": "Stop starting new hosts once this % of hosts failed, 0-100 (default: config, 100).",
}
SHARED = ("host", "config", "dry", "json", "parallel", "fail_percent")


# ---------------------------------------------------------------- flag values (one place)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def parse_int_flag(name: str, value: Any, *, min: int | None = None, max: int | None = None) -> int | None:
    """``--name`` as an integer in [min, max]; None stays None (not given). ConfigError names the flag."""
    if value is None:
        return None
    text = str(value).strip()
    try:
        number = int(text)
    except ValueError:
        raise ConfigError(f"{_flag(name)}: must be an integer (got {value!r})") from None
    if (min is not None and number < min) or (max is not None and number > max):
        bounds = f"between {min} and {max}" if min is not None and max is not None else (
            f"at least {min}" if min is not None else f"at most {max}")
        raise ConfigError(f"{_flag(name)}: must be {bounds} (got {number})")
    return number


def parse_float_flag(name: str, value: Any, *, min: float | None = None, max: float | None = None,
                     above: float | None = None) -> float | None:
    """``--name`` as a finite number in [min, max] (and > above); None stays None."""
    if value is None:
        return None
    try:
        number = float(str(value).strip())
    except ValueError:
        raise ConfigError(f"{_flag(name)}: must be a number (got {value!r})") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise ConfigError(f"{_flag(name)}: must be a finite number (got {value!r})")
    if (min is not None and number < min) or (max is not None and number > max) or (above is not None and number <= above):
        lo = f"above {above}" if above is not None else (f"at least {min}" if min is not None else "")
        hi = f"at most {max}" if max is not None else ""
        raise ConfigError(f"{_flag(name)}: must be {' and '.join(x for x in (lo, hi) if x)} (got {value!r})")
    return number


def parse_text_flag(name: str, value: Any, *, required: bool = False) -> str | None:
    """A string flag: given but empty (``--name ''``) is an error; so is a missing required one."""
    if value is None:
        if required:
            raise ConfigError(f"{_flag(name)}: required")
        return None
    if not str(value).strip():
        raise ConfigError(f"{_flag(name)}: must not be empty")
    return str(value)


def parse_abs_path_flag(name: str, value: Any, *, required: bool = False) -> str | None:
    """A path on the host that must be absolute (and without '..')."""
    text = parse_text_flag(name, value, required=required)
    if text is None:
        return None
    if not os.path.isabs(text):
        raise ConfigError(f"{_flag(name)}: must be an absolute path (got {text!r})")
    if ".." in text.split("/"):
        raise ConfigError(f"{_flag(name)}: must not contain '..' (got {text!r})")
    return text


def parse_choice_flag(name: str, value: Any, choices: tuple[str, ...]) -> str | None:
    if value is None:
        return None
    if value not in choices:
        raise ConfigError(f"{_flag(name)}: must be one of {', '.join(choices)} (got {value!r})")
    return str(value)


def parse_host_flag(value: Any, name: str = "host") -> str:
    """--host: None means local; an empty or blank value is an error, never 'local'."""
    if value is None:
        return "local"
    if not str(value).strip():
        raise ConfigError(f"{_flag(name)}: must not be empty (use --host local, inventory names or @group)")
    return str(value)


def parse_fleet_flags(parallel: Any, fail_percent: Any) -> tuple[int | None, int | None]:
    """The shared --parallel (1-256, like the config's ``parallel``) and --fail-percent (0-100)."""
    return parse_int_flag("parallel", parallel, min=1, max=256), parse_int_flag("fail_percent", fail_percent, min=0, max=100)


# ---------------------------------------------------------------- usage errors and --json


def emit_error(task: str, message: str, code: int, json_out: bool, *, dry: bool = False) -> Exit:
    """The one JSON error document on stdout (with --json), and the Exit whose message invoke prints
    on stderr: one message, no traceback."""
    if json_out:
        sys.stdout.write(json.dumps(make_error_document(task, message, code, dry=dry), indent=2) + "\n")
        sys.stdout.flush()
    return Exit(message, code=code)


@contextmanager
def usage_errors(task: str, json_out: Any, *, dry: Any = False) -> Iterator[None]:
    """Wrap a task body: a RagopsError raised before hosts run (a bad flag, config, policy, host
    list) becomes one message + its exit code (2 for usage/config), and with --json one document."""
    try:
        yield
    except RagopsError as exc:
        prefix = "config error:\n" if isinstance(exc, ConfigError) and len(exc.problems) > 1 else ""
        raise emit_error(task, f"{task}: {prefix}{exc}", int(exc.exit_code), bool(json_out), dry=bool(dry)) from None


def helps(*names: str) -> dict[str, str]:
    """A fresh help dict for a task's flags (Invoke consumes the dict it is given)."""
    return {name: HELP[name] for name in names}


def load(config: str | None) -> LoadedConfig:
    """The loaded config; a ConfigError propagates (``usage_errors`` turns it into exit 2)."""
    return load_config(parse_text_flag("config", config))


def make_run_targets(c: Any, config: str | None, host: str | None, dry: bool) -> tuple[LoadedConfig, list[Target]]:
    loaded = load(config)
    hosts = select_hosts(loaded, parse_host_flag(host))
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
        stopped = [h.host for h in run.hosts if h.exit_code == ExitCode.INTERRUPTED]
        if stopped:
            raise Exit(f"ragops {run.task}: {stopped_reason(run)} on {len(stopped)} of {len(run.hosts)} host(s): "
                       f"{', '.join(stopped)}", code=run.exit_code)
        raise Exit(f"ragops {run.task}: failed on {len(bad)} of {len(run.hosts)} host(s): {', '.join(bad)}",
                   code=run.exit_code)


def stopped_reason(run: RunResult) -> str:
    """'interrupted by SIGTERM' from the first interrupted host's error, else 'interrupted'."""
    for h in run.hosts:
        if h.exit_code == ExitCode.INTERRUPTED and h.error and "interrupted by " in h.error:
            return "interrupted by " + h.error.split("interrupted by ", 1)[1].split(";")[0].split()[0]
    return "interrupted"


def execute(
    c: Any,
    task: str,
    plan: Callable[[Host], list[Step]],
    *,
    host: str | None,
    config: str | None,
    dry: bool,
    json_out: bool,
    parallel: Any = None,
    fail_percent: Any = None,
    lock: bool = True,
    strict: bool = False,
) -> RunResult:
    """Validate the flags, load the config, plan every host's steps (all before anything runs on a
    host: a usage error records nothing), run them on the fleet, print the summary, exit."""
    with usage_errors(task, json_out, dry=dry):
        par, fail = parse_fleet_flags(parallel, fail_percent)
        loaded, targets = make_run_targets(c, config, host, dry)
        plans = {t.name: plan(t.host) for t in targets}
    started = time.time()
    t0 = time.monotonic()
    # SIGTERM/SIGINT/SIGHUP: running commands stop, cleanup runs, hosts end "interrupted" (exit 130)
    # and the summary + JSON below still come out.
    with interrupts.handling():
        results = run_fleet(
            targets,
            lambda t: run_host(t, task, plans[t.name], lock=lock, strict=strict),
            parallel=par or loaded.config.parallel,
            fail_percent=loaded.config.fail_percent if fail is None else fail,
        )
    run = RunResult(task=task, dry=targets[0].dry if targets else bool(dry), hosts=results, started_at=started,
                    duration_s=time.monotonic() - t0)
    finish(run, json_out)
    return run
