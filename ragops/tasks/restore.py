"""restore-test (prove the latest or a given snapshot restores and matches its manifest) and restore."""

from __future__ import annotations

import time
from typing import Any

from invoke import Exit, task

from ..config import select_hosts
from ..errors import ExitCode, RagopsError
from ..report import HostResult, RunResult
from ..runner import run_fleet, run_host
from ..seam import Target
from .common import HELP, execute, finish, helps, make_run_targets

TEST_HELP = {
    "host": "Host(s) whose snapshots are tested (names, @groups; default: local).",
    "on": "Restore and verify on this other host instead (it needs the repository's password file/command too).",
    "snapshot": "Snapshot id (or prefix) to test; default: the host's latest.",
    "keep": "Keep the scratch dir (and say where) for inspection.",
    "scratch_dir": "Base dir for the scratch dir on the verifying host (default: <backup.staging_dir>-restore-test).",
    "policy": "Backup policy name (default: the host's backup.policy).",
    "min_overlap": "Probe queries: minimum top-k overlap with the recorded ids (default 1.0: exact, same index).",
    "selfcheck": "Stored vectors per collection in the self-retrieval probe (default 50; 0 disables).",
    "read_data_subset": "Override the policy's check.read_data_subset for the repository check ('none' skips reading data).",
    "config": HELP["config"],
    "json": HELP["json"],
}


def mark_verify_failures(results: list[HostResult]) -> None:
    """A failed check of a restore test exits VERIFY_FAILED (5), not STEP_FAILED."""
    for hr in results:
        if hr.exit_code == ExitCode.STEP_FAILED and any(s.details.get("verify_failed") for s in hr.steps):
            hr.exit_code = ExitCode.VERIFY_FAILED


def make_options(snapshot: str, keep: bool, scratch_dir: str | None, policy: str | None, min_overlap: Any,
                 selfcheck: Any, read_data_subset: str | None) -> Any:
    subset: str | None = "policy" if read_data_subset is None else read_data_subset
    if subset in ("none", "off", ""):
        subset = None
    try:
        from ..restore.run import Options

        return Options(snapshot=snapshot or "latest", keep=bool(keep), scratch_dir=scratch_dir, policy=policy,
                       min_overlap=1.0 if min_overlap is None else float(min_overlap), selfcheck=int(selfcheck), read_data_subset=subset)
    except ValueError as exc:
        raise Exit(f"restore-test: bad flag value: {exc}", code=int(ExitCode.CONFIG_ERROR)) from None


def make_step(host: Any, options: Any) -> Any:
    from ..restore.run import make_restore_test_step

    return make_restore_test_step(host, options)


@task(help=TEST_HELP)
def restore_test(c, host=None, on=None, snapshot="latest", keep=False, scratch_dir=None, policy=None, min_overlap=None,
                 selfcheck=50, read_data_subset=None, config=None, json_=False):
    """Restore a snapshot into a scratch dir, start Redis on it, verify files/Redis/Chroma against its manifest; report RTO."""
    options = make_options(snapshot, keep, scratch_dir, policy, min_overlap, selfcheck, read_data_subset)
    loaded, targets = make_run_targets(c, config, host, False)
    started, t0 = time.time(), time.monotonic()
    if on:
        try:
            on_hosts = select_hosts(loaded, on)
        except RagopsError as exc:
            raise Exit(f"config error:\n{exc}", code=int(exc.exit_code)) from None
        if len(on_hosts) != 1:
            raise Exit("--on: name exactly one host", code=int(ExitCode.CONFIG_ERROR))
        results = []
        for src in targets:  # one after the other: they share the verifying host (and its lock)
            runner = Target(host=on_hosts[0], dry=False, ssh_config_file=loaded.config.ssh_config_file)
            hr = run_host(runner, "restore-test", [make_step(src.host, options)])
            hr.host = f"{src.name} (on {on_hosts[0].name})"
            results.append(hr)
    else:
        results = run_fleet(targets, lambda t: run_host(t, "restore-test", [make_step(t.host, options)]),
                            parallel=loaded.config.parallel, fail_percent=loaded.config.fail_percent)
    mark_verify_failures(results)
    finish(RunResult(task="restore-test", dry=False, hosts=results, started_at=started,
                     duration_s=time.monotonic() - t0), bool(json_))


RESTORE_HELP = {
    **helps("host", "config", "dry", "json"),
    "snapshot": "Snapshot id (or prefix), default latest.",
    "target": "Absolute directory on the host to restore into (snapshot paths are recreated below it).",
    "force": "Restore into a non-empty target dir.",
    "policy": "Backup policy name (default: the host's backup.policy).",
}


@task(help=RESTORE_HELP)
def restore(c, host=None, snapshot="latest", target=None, force=False, policy=None, config=None, dry=False, json_=False):
    """Restore a snapshot into --target (refusing a non-empty one without --force) and print how to serve from it."""
    if not target:
        raise Exit("restore: --target DIR is required (an empty absolute directory on the host)", code=int(ExitCode.CONFIG_ERROR))
    from ..restore.apply import RestoreOptions, make_restore_step

    options = RestoreOptions(target_dir=target, snapshot=snapshot or "latest", force=bool(force), policy=policy)
    execute(c, "restore", lambda h: [make_restore_step(options)], host=host, config=config, dry=dry, json_out=bool(json_))
