"""backup tasks: backup (default), backup.init, backup.snapshots, backup.forget, backup.check."""

from __future__ import annotations

from collections.abc import Callable

from invoke import task

from .. import output
from ..config import Host
from ..report import OK, StepResult
from ..runner import Step
from ..seam import Target
from .common import SHARED, execute, helps, parse_text_flag, usage_errors
from .policies import require_policy

POLICY_HELP = "Backup policy name (a file in backup.policies_dir); default: the host's backup.policy."


def _flags(*names: str) -> dict[str, str]:
    return {**helps(*names), "policy": POLICY_HELP}


def _plan(name: str, fn: Callable[[Target], StepResult], policy: str | None) -> Callable[[Host], list[Step]]:
    def plan(host: Host) -> list[Step]:
        require_policy(host, policy, optional=True)  # a wrong --policy or policy file: exit 2 before any host runs
        return [Step(name, fn)]

    return plan


def parse_subset(value: str | None) -> str | None:
    """--read-data-subset like the policy's check.read_data_subset (5%, 1/5, 500M); 'none' skips."""
    from pydantic import ValidationError

    from ..backup.policy import CheckSettings
    from ..errors import ConfigError

    text = parse_text_flag("read_data_subset", value)
    if text is None or text in ("none", "off"):
        return text
    try:
        CheckSettings(read_data_subset=text)
    except ValidationError as exc:
        reason = exc.errors()[0]["msg"].removeprefix("Value error, ")
        raise ConfigError(f"--read-data-subset: {reason}") from None
    return text


@task(default=True, help=_flags(*SHARED))
def backup(c, host=None, config=None, policy=None, dry=False, json_=False, parallel=None, fail_percent=None):
    """Snapshot Redis, Chroma and the configured paths into restic now, then apply retention."""
    from ..backup.step import run_backup

    execute(c, "backup", _plan("backup", lambda t: run_backup(t, policy), policy), host=host, config=config, dry=dry,
            json_out=json_, parallel=parallel, fail_percent=fail_percent)


@task(help=_flags(*SHARED))
def init(c, host=None, config=None, policy=None, dry=False, json_=False, parallel=None, fail_percent=None):
    """Create the policy's repository (and the secondary), idempotently; S3 buckets are created/checked first."""
    from ..backup.maintenance import run_init

    execute(c, "backup.init", _plan("backup.init", lambda t: run_init(t, policy), policy), host=host, config=config,
            dry=dry, json_out=json_, parallel=parallel, fail_percent=fail_percent)


@task(help={**_flags(*SHARED), "dry": "Accepted for symmetry: listing snapshots only reads."})
def snapshots(c, host=None, config=None, policy=None, dry=False, json_=False, parallel=None, fail_percent=None):
    """List the host's snapshots with time, size, tags, where each one exists (primary/secondary), restore tests and drills."""
    from ..backup import restic
    from ..backup.maintenance import load_named_policy, make_skipped

    def run(target: Target) -> StepResult:
        chosen = load_named_policy(target, policy)
        if chosen is None:
            return make_skipped("backup.snapshots")
        name, pol = chosen
        primary = restic.snapshots(target, restic.make_repo(target, pol.repository), host=target.name)
        second = []
        if pol.secondary is not None:
            second = restic.snapshots(target, restic.make_repo(target, pol.secondary, role="secondary"), host=target.name)
        from ..drill.history import describe_drill, read_history
        from ..report import find_latest_record
        from ..restore.record import describe_verification, read_verified

        verified = read_verified(target)  # restore-test outcomes (ragops/restore/record.py)
        drills = read_history(target, pol.restore_test.drill.history_file)  # drill outcomes (ragops/drill/history.py)
        rows = []
        for snap in primary:
            summary = snap.raw.get("summary") or {}
            where = ["primary"] + (["secondary"] if any(s.matches(snap.id) for s in second) else [])
            found = find_latest_record(verified, snap.id, snap.original)
            drilled = find_latest_record(drills, snap.id, snap.original)
            rows.append({"id": snap.short_id, "time": snap.time[:19], "tags": snap.tags, "paths": snap.paths,
                         "bytes": summary.get("total_bytes_processed"), "files": summary.get("total_files_processed"),
                         "in": where, "verified": found, "drill": drilled})
            size = f"{rows[-1]['bytes']} B" if rows[-1]["bytes"] is not None else "size n/a (restic < 0.17)"
            output.info(target.name, f"{snap.short_id} {snap.time[:19]} {size} tags={','.join(snap.tags)} in={'+'.join(where)}"
                        f" restore-test={describe_verification(found)} drill={describe_drill(drilled)}")
        return StepResult("backup.snapshots", OK, message=f"{len(rows)} snapshot(s) ({name})",
                          details={"policy": name, "snapshots": rows})

    execute(c, "backup.snapshots", _plan("backup.snapshots", run, policy), host=host, config=config, dry=dry,
            json_out=json_, lock=False, parallel=parallel, fail_percent=fail_percent)


@task(help=_flags(*SHARED))
def forget(c, host=None, config=None, policy=None, dry=False, json_=False, parallel=None, fail_percent=None):
    """Apply the policy's retention to this host's snapshots (--dry lists which would go); prune after."""
    from ..backup.maintenance import run_forget

    execute(c, "backup.forget", _plan("backup.forget", lambda t: run_forget(t, policy), policy), host=host,
            config=config, dry=dry, json_out=json_, parallel=parallel, fail_percent=fail_percent)


@task(help={**_flags(*SHARED), "dry": "Accepted for symmetry: restic check only reads.",
            "read_data_subset": "Verify this part of the data too: 5%, 1/5 or 500M, or none (default: the policy's check.read_data_subset)."})
def check(c, host=None, config=None, policy=None, read_data_subset=None, dry=False, json_=False, parallel=None,
          fail_percent=None):
    """Verify the repository's structure and a subset of its data (restic check)."""
    from ..backup.maintenance import run_check

    with usage_errors("backup.check", json_, dry=dry):
        read_data_subset = parse_subset(read_data_subset)
    execute(c, "backup.check", _plan("backup.check", lambda t: run_check(t, policy, read_data_subset), policy),
            host=host, config=config, dry=dry, json_out=json_, parallel=parallel, fail_percent=fail_percent)
