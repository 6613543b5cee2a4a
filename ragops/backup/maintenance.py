"""The repository maintenance tasks for one host, as steps: backup.init (create the policy's
repositories, S3 bucket checked first), backup.forget (apply retention, then prune what it freed)
and backup.check (restic check). The tasks in ``ragops/tasks/backup.py`` only parse flags."""

from __future__ import annotations

from .. import output
from ..report import OK, SKIPPED, StepResult
from ..seam import Target
from . import restic
from .policy import Policy, load_host_policy
from .step import make_tags

NO_POLICY = "no backup policy configured (set backup.policy or pass --policy)"


def load_named_policy(target: Target, policy_name: str | None) -> tuple[str, Policy] | None:
    """(name, policy) for ``--policy`` or the host's ``backup.policy``; None when neither is set."""
    policy = load_host_policy(target.host, policy_name)
    name = policy_name or target.settings.backup.policy
    return (name, policy) if policy is not None and name else None


def make_skipped(step: str) -> StepResult:
    return StepResult(step, SKIPPED, message=NO_POLICY)


def run_init(target: Target, policy_name: str | None = None) -> StepResult:
    """Create the policy's repository and the secondary unless they exist (idempotent); for S3 the
    bucket is checked (or created, if the policy allows) first and its versioning recorded."""
    chosen = load_named_policy(target, policy_name)
    if chosen is None:
        return make_skipped("backup.init")
    name, policy = chosen
    result = StepResult("backup.init", details={"policy": name})
    made = []
    for settings, role in ((policy.repository, "primary"), (policy.secondary, "secondary")):
        if settings is None:
            continue
        repo = restic.make_repo(target, settings, role=role)
        bucket = restic.run_check_bucket(target, repo)
        if bucket is not None and not target.dry:
            result.details[f"{role}_bucket_versioning"] = bucket.versioning
        created = restic.init(target, repo, check_bucket=False)
        made.append(f"{role} {repo.url}: {'created' if created else 'exists' if not target.dry else 'checked'}")
    result.message = "; ".join(made)
    return result


def run_forget(target: Target, policy_name: str | None = None) -> StepResult:
    """Apply the policy's retention to this host's snapshots in the primary repository, then prune
    if any went; under --dry restic lists which would go and nothing is pruned."""
    chosen = load_named_policy(target, policy_name)
    if chosen is None:
        return make_skipped("backup.forget")
    name, policy = chosen
    repo = restic.make_repo(target, policy.repository)
    gone = restic.forget(target, repo, policy.retention, tags=make_tags(policy), host=target.name)
    verb = "would forget" if gone.dry else "forgot"
    for snap in gone.remove:
        output.info(target.name, f"{verb} {snap.short_id} {snap.time[:19]}")
    if gone.remove and not gone.dry:
        restic.prune(target, repo)
    return StepResult("backup.forget", OK, message=f"{verb} {len(gone.remove)}, kept {len(gone.keep)} ({name})",
                      details={"remove": [s.short_id for s in gone.remove], "keep": [s.short_id for s in gone.keep]})


def run_check(target: Target, policy_name: str | None = None, read_data_subset: str | None = None) -> StepResult:
    """`restic check` of the primary repository; ``read_data_subset`` (already validated) overrides
    the policy's check.read_data_subset, "none"/"off" reads no data."""
    chosen = load_named_policy(target, policy_name)
    if chosen is None:
        return make_skipped("backup.check")
    name, policy = chosen
    subset = None if read_data_subset in ("none", "off") else (read_data_subset or policy.check.read_data_subset)
    restic.check(target, restic.make_repo(target, policy.repository), subset)
    return StepResult("backup.check", OK, message=f"no errors (read-data-subset {subset or 'none'}, {name})",
                      details={"read_data_subset": subset})
