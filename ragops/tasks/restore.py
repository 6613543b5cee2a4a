"""restore-test (prove the latest or a given snapshot restores and matches its manifest) and restore."""

from __future__ import annotations

import time
from typing import Any

from invoke import task

from .. import interrupts
from ..config import select_hosts
from ..errors import ConfigError, ExitCode
from ..report import HostResult, RunResult
from ..runner import run_fleet, run_host
from ..seam import Target
from .common import (
    HELP,
    execute,
    finish,
    helps,
    make_run_targets,
    parse_abs_path_flag,
    parse_fleet_flags,
    parse_float_flag,
    parse_host_flag,
    parse_int_flag,
    parse_text_flag,
    usage_errors,
)
from .policies import require_policy

TEST_HELP = {
    "host": "Host(s) whose snapshots are tested (names, @groups; default: local).",
    "on": "Restore and verify on this other host instead (it needs the repository's password file/command too).",
    "snapshot": "Snapshot id (or prefix) to test; default: the host's latest.",
    "keep": "Keep the scratch dir (and say where) for inspection; with --drill also the drill project (remove it with drill.down).",
    "drill": "After the data checks, serve the restored data in a throwaway Compose project of the live images and compare its answers with live (docs/drill.md).",
    "scratch_dir": "Base dir for the scratch dir on the verifying host (default: <backup.staging_dir>-restore-test).",
    "policy": "Backup policy name (default: the host's backup.policy).",
    "min_overlap": "Probe queries: minimum top-k overlap with the recorded ids (default 1.0: exact, same index).",
    "selfcheck": "Stored vectors per collection in the self-retrieval probe (default 50; 0 disables).",
    "read_data_subset": "Override the policy's check.read_data_subset for the repository check ('none' skips reading data).",
    "config": HELP["config"],
    "json": HELP["json"],
    "parallel": HELP["parallel"],
    "fail_percent": HELP["fail_percent"],
    "dry": "With --drill: print the drill's plan (project, images, volumes, ports, questions) and commands; starts "
           "nothing. Refused without --drill (restore-test writes only its own scratch dir).",
}


def mark_verify_failures(results: list[HostResult]) -> None:
    """A failed check of a restore test exits VERIFY_FAILED (5), not STEP_FAILED; a setup error (a
    missing tool, named with its setting) exits CONFIG_ERROR (2)."""
    for hr in results:
        if hr.exit_code == ExitCode.STEP_FAILED and any(s.details.get("setup_error") for s in hr.steps):
            hr.exit_code = ExitCode.CONFIG_ERROR
        elif hr.exit_code == ExitCode.STEP_FAILED and any(s.details.get("verify_failed") for s in hr.steps):
            hr.exit_code = ExitCode.VERIFY_FAILED


def make_options(snapshot: str, keep: bool, scratch_dir: str | None, policy: str | None, min_overlap: Any,
                 selfcheck: Any, read_data_subset: str | None, drill: bool = False) -> Any:
    """restore-test's flags, each validated (ConfigError naming the flag) before anything runs."""
    from ..restore.run import Options
    from .backup import parse_subset

    subset = parse_subset(read_data_subset)
    overlap = parse_float_flag("min_overlap", min_overlap, min=0.0, max=1.0)
    probes = parse_int_flag("selfcheck", selfcheck, min=0)
    return Options(snapshot=parse_text_flag("snapshot", snapshot) or "latest", keep=bool(keep),
                   scratch_dir=parse_abs_path_flag("scratch_dir", scratch_dir), policy=policy,
                   min_overlap=1.0 if overlap is None else overlap, selfcheck=50 if probes is None else probes,
                   read_data_subset="policy" if subset is None else None if subset in ("none", "off") else subset,
                   drill=bool(drill))


def make_step(host: Any, options: Any) -> Any:
    from ..restore.run import make_restore_test_step

    return make_restore_test_step(host, options)


@task(help=TEST_HELP)
def restore_test(c, host=None, on=None, snapshot="latest", keep=False, scratch_dir=None, policy=None, min_overlap=None,
                 selfcheck=None, read_data_subset=None, config=None, json_=False, dry=False, parallel=None, fail_percent=None,
                 drill=False):
    """Restore a snapshot into a scratch dir, start Redis on it, verify files/Redis/Chroma against its manifest; report RTO."""
    with usage_errors("restore-test", json_):
        if dry and not drill:
            raise ConfigError("--dry: restore-test changes nothing outside its own scratch dir and cannot run dry; "
                              "run it without --dry (--dry --drill prints the drill's plan)")
        options = make_options(snapshot, keep, scratch_dir, policy, min_overlap, selfcheck, read_data_subset, drill)
        par, fail = parse_fleet_flags(parallel, fail_percent)
        loaded, targets = make_run_targets(c, config, host, bool(dry))
        for t in targets:  # a wrong --policy, policy file or password file: exit 2, nothing recorded
            require_policy(t.host, policy)
            if drill:
                require_drill(t.host, policy)
        on_hosts = select_hosts(loaded, parse_host_flag(on, "on")) if on is not None else []
        if on is not None and len(on_hosts) != 1:
            raise ConfigError(f"--on {on!r}: name exactly one host (got {len(on_hosts)})")
    started, t0 = time.time(), time.monotonic()
    if dry:  # --dry --drill: the drill's plan and commands, from reads only (ragops/drill/dry.py)
        results = list(run_fleet(targets, lambda t: run_host(t, "restore-test", [make_dry_drill_step(t, policy)], lock=False),
                                 parallel=par or loaded.config.parallel,
                                 fail_percent=loaded.config.fail_percent if fail is None else fail))
        finish(RunResult(task="restore-test", dry=True, hosts=results, started_at=started,
                         duration_s=time.monotonic() - t0), bool(json_))
        return
    with interrupts.handling():  # SIGTERM: running commands stop, cleanup (scratch dir, drill project) still runs
        results = run_restore_tests(targets, on_hosts, options, loaded, par, fail)
    mark_verify_failures(results)
    finish(RunResult(task="restore-test", dry=False, hosts=results, started_at=started,
                     duration_s=time.monotonic() - t0), bool(json_))


def make_dry_drill_step(target: Target, policy: str | None) -> Any:
    from ..drill.dry import run_drill_dry
    from ..runner import Step

    chosen = require_policy(target.host, policy)
    assert chosen is not None  # require_policy raises without one
    return Step("restore-test.drill", lambda t: run_drill_dry(t, chosen))


def require_drill(host: Any, policy: str | None) -> None:
    """--drill needs a Compose host and the live API's URL: exit 2 before anything runs (no queries
    configured: the manifest's Chroma probes are asked by vector, ragops/drill/probes.py)."""
    settings = host.settings
    if settings.deployment != "compose":
        raise ConfigError(f"{host.source}: hosts.{host.name}.deployment: --drill needs a Compose host (got {settings.deployment})")
    if not settings.api.url:
        raise ConfigError(f"{host.source}: hosts.{host.name}.api.url: --drill compares with the live API: set its URL")


def run_restore_tests(targets: list[Any], on_hosts: list[Any], options: Any, loaded: Any, par: Any, fail: Any) -> list[HostResult]:
    if on_hosts:
        results = []
        for src in targets:  # one after the other: they share the verifying host (and its lock)
            runner = Target(host=on_hosts[0], dry=False, ssh_config_file=loaded.config.ssh_config_file)
            hr = run_host(runner, "restore-test", [make_step(src.host, options)])
            hr.host = f"{src.name} (on {on_hosts[0].name})"
            results.append(hr)
        return results
    return list(run_fleet(targets, lambda t: run_host(t, "restore-test", [make_step(t.host, options)]),
                          parallel=par or loaded.config.parallel,
                          fail_percent=loaded.config.fail_percent if fail is None else fail))


RESTORE_HELP = {
    **helps("host", "config", "dry", "json", "parallel", "fail_percent"),
    "snapshot": "Snapshot id (or prefix), default latest.",
    "target": "Absolute directory on the host to restore into (snapshot paths are recreated below it).",
    "force": "Restore into a non-empty target dir.",
    "policy": "Backup policy name (default: the host's backup.policy).",
    "into_volumes": "Compose hosts: restore into NEW named volumes beside the live ones (labelled ragops.restore) and "
                    "print the switch-over and roll-back steps (not with --target; docs/restore.md).",
}


@task(help=RESTORE_HELP)
def restore(c, host=None, snapshot="latest", target=None, force=False, policy=None, config=None, dry=False, json_=False,
            parallel=None, fail_percent=None, into_volumes=False):
    """Restore a snapshot into --target (or, on Compose, --into-volumes) and print how to serve from it."""
    from ..restore.into_volumes import IntoVolumesOptions, make_into_volumes_step, require_compose
    from ..restore.real_restore import RestoreOptions, make_restore_step

    with usage_errors("restore", json_, dry=dry):
        wanted = parse_text_flag("snapshot", snapshot) or "latest"
        if into_volumes and (target is not None or force):
            raise ConfigError("--into-volumes restores into new Docker volumes: not with --target or --force")
        if into_volumes:
            step = make_into_volumes_step(IntoVolumesOptions(snapshot=wanted, policy=policy))
        else:
            target_dir = parse_abs_path_flag("target", target, required=True)
            step = make_restore_step(RestoreOptions(target_dir=str(target_dir), snapshot=wanted, force=bool(force),
                                                    policy=policy))

    def plan(h: Any) -> list[Any]:
        require_policy(h, policy)
        if into_volumes:
            require_compose(h)
        return [step]

    execute(c, "restore", plan, host=host, config=config, dry=dry, json_out=bool(json_), parallel=parallel,
            fail_percent=fail_percent)
