"""backup-policies/<name>.yaml: one backup policy per file, validated by a pydantic schema.

Same conventions as ragops.yaml (``ragops/config.py``): unknown fields are rejected, every field has a
description, and every problem of every file is reported at once as ``FILE: dotted.field: message``.
The sources part of the schema (what is backed up) lives in ``policy_sources.py``.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator

from ..config import Host, Model, make_error_lines, read_yaml
from ..errors import ConfigError
from .policy_drill import DrillSettings
from .policy_sources import SourcesSettings, check_cron

URL_FORMS = "an absolute path, sftp:user@host:/path, s3:http(s)://endpoint/bucket[/prefix] or rest:http(s)://..."
_DURATION = re.compile(r"^([0-9]+[ymdh])+$")
_SUBSET = re.compile(r"^([0-9]+(\.[0-9]+)?%|[0-9]+/[0-9]+|[0-9]+[KMGT]?)$")


def check_repo_url(url: str) -> str:
    if url.startswith("/"):
        if ".." in Path(url).parts:
            raise ValueError("must not contain '..'")
        return url
    if url.startswith("sftp:") and re.match(r"^sftp:(//)?[^/:@\s]+(@[^/:\s]+)?(:[0-9]+)?[:/].+", url):
        return url
    if url.startswith("s3:") and re.match(r"^s3:(https?://)?[^/\s]+/[a-z0-9][a-z0-9.\-]{2,62}(/\S*)?$", url):
        return url
    if re.match(r"^rest:https?://[^@/\s]+@", url):
        raise ValueError("must not carry credentials (user:password@): they would show in argv and `ps`")
    if re.match(r"^rest:https?://\S+$", url):
        return url
    raise ValueError(f"{url!r} is not a repository URL: use {URL_FORMS} (bucket names: 3-63 lowercase characters)")


class S3Credentials(Model):
    access_key_env: str | None = Field(None, description="Environment variable on the controller holding the S3 access key id.")
    secret_key_env: str | None = Field(None, description="Environment variable on the controller holding the S3 secret key.")
    access_key_file: str | None = Field(None, description="File on the controller holding the S3 access key id (alternative to access_key_env).")
    secret_key_file: str | None = Field(None, description="File on the controller holding the S3 secret key (alternative to secret_key_env).")
    region: str | None = Field(None, description="S3 region (passed as -o s3.region=...); unset lets restic pick us-east-1 / the endpoint's default.")
    create_bucket: bool = Field(True, description="Create the bucket (with boto3, from the controller) if it does not exist before `backup.init`.")

    @model_validator(mode="after")
    def _one_source_per_key(self) -> S3Credentials:
        for key in ("access_key", "secret_key"):
            env, file = getattr(self, f"{key}_env"), getattr(self, f"{key}_file")
            if env and file:
                raise ValueError(f"set {key}_env or {key}_file, not both")
            if not env and not file:
                raise ValueError(f"set {key}_env or {key}_file (the keys reach restic only through its environment)")
        return self


class RepositorySettings(Model):
    """Where snapshots go and how restic opens the repository. Secrets never appear in the file."""

    url: str = Field(description=f"Repository URL as restic on the host sees it: {URL_FORMS}.")
    password_file: str | None = Field(None, description="File ON THE HOST (where restic runs) holding the repository password (--password-file).")
    password_command: str | None = Field(None, description="Command run ON THE HOST that prints the password (--password-command), e.g. `pass show restic`.")
    password_env: str | None = Field(None, description="Environment variable on the CONTROLLER holding the password; it reaches restic as RESTIC_PASSWORD through stdin, never argv.")
    s3: S3Credentials | None = Field(None, description="S3 credentials and bucket handling; only for s3: URLs. Without it restic uses the host's own AWS environment.")
    sftp_command: str | None = Field(None, description="SSH command restic uses for sftp: URLs (-o sftp.command=...), e.g. `ssh -F /etc/ragops/ssh_config backup1 -s sftp`.")
    cache_dir: str | None = Field(None, description="restic cache directory on the host (--cache-dir); unset: restic's default (~/.cache/restic).")
    options: dict[str, str] = Field(default_factory=dict, description="Extra backend options passed as -o KEY=VALUE (e.g. s3.storage-class: STANDARD_IA).")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_repo_url(value)

    @model_validator(mode="after")
    def _consistent(self) -> RepositorySettings:
        given = [n for n in ("password_file", "password_command", "password_env") if getattr(self, n)]
        if len(given) != 1:
            raise ValueError("set exactly one of password_file, password_command, password_env"
                             + (f" (got {', '.join(given)})" if given else ""))
        if self.s3 is not None and not self.url.startswith("s3:"):
            raise ValueError("s3: is only valid for an s3: repository URL")
        if self.sftp_command and not self.url.startswith("sftp:"):
            raise ValueError("sftp_command is only valid for an sftp: repository URL")
        for key in self.options:
            if not re.match(r"^[a-z0-9]+\.[a-z0-9.\-]+$", key):
                raise ValueError(f"options: {key!r} is not a restic backend option name (like s3.region)")
        return self


class RetentionSettings(Model):
    """restic forget rules, applied per host and tag set (--group-by host,tags)."""

    keep_last: int | None = Field(None, ge=1, description="Keep the N most recent snapshots.")
    keep_hourly: int | None = Field(None, ge=1, description="Keep the last snapshot of each of the N most recent hours.")
    keep_daily: int | None = Field(None, ge=1, description="Keep the last snapshot of each of the N most recent days.")
    keep_weekly: int | None = Field(None, ge=1, description="Keep the last snapshot of each of the N most recent weeks.")
    keep_monthly: int | None = Field(None, ge=1, description="Keep the last snapshot of each of the N most recent months.")
    keep_yearly: int | None = Field(None, ge=1, description="Keep the last snapshot of each of the N most recent years.")
    keep_within: str | None = Field(None, description="Keep every snapshot younger than this, relative to the newest (restic duration: 2y5m7d3h).")
    keep_tags: list[str] = Field(default_factory=list, description="Always keep snapshots carrying any of these tags (e.g. `keep`, `pre-upgrade`).")
    group_by: str = Field("host,tags", pattern=r"^(host|tags|paths)(,(host|tags|paths))*$", description="How snapshots are grouped before the rules apply (restic --group-by). Not `paths`: staging paths can change per run.")

    @field_validator("keep_within")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None and not _DURATION.match(value):
            raise ValueError(f"{value!r} is not a restic duration like 7d, 2y5m or 1m15d3h")
        return value

    @model_validator(mode="after")
    def _some_rule(self) -> RetentionSettings:
        rules = [self.keep_last, self.keep_hourly, self.keep_daily, self.keep_weekly, self.keep_monthly,
                 self.keep_yearly, self.keep_within]
        if all(r is None for r in rules) and not self.keep_tags:
            raise ValueError("set at least one keep_* rule (without one, forget would keep every snapshot)")
        return self


class CheckSettings(Model):
    cadence: str = Field("0 4 * * 0", description="When `backup.check` runs (5-field cron; rendered into timers/CronJobs).")
    read_data_subset: str | None = Field("10%", description="Data read and verified per check: `10%`, `1/5` (part 1 of 5) or a size like `500M`; null checks structure only.")

    cadence_is_cron = field_validator("cadence")(check_cron)

    @field_validator("read_data_subset")
    @classmethod
    def _subset(cls, value: str | None) -> str | None:
        if value is not None:
            if not _SUBSET.match(value):
                raise ValueError(f"{value!r} must look like 10%, 1/5 or 500M")
            if "/" in value:
                n, total = (int(x) for x in value.split("/"))
                if not 1 <= n <= total:
                    raise ValueError(f"{value!r}: the part must be between 1 and the total")
            if value.endswith("%") and not 0 < float(value[:-1]) <= 100:
                raise ValueError(f"{value!r}: the percentage must be in (0, 100]")
        return value


class RestoreTestSettings(Model):
    enabled: bool = Field(True, description="Run scheduled restore tests for this policy.")
    cadence: str = Field("0 5 * * 0", description="When the restore test runs (5-field cron).")
    rto_budget_s: float | None = Field(None, gt=0, description="Fail the restore test if restoring takes longer than this (recovery time objective), seconds.")
    drill: DrillSettings = Field(default_factory=DrillSettings, description="`restore-test --drill`: the restored data served by a throwaway Compose project, its answers compared with live (docs/drill.md).")

    cadence_is_cron = field_validator("cadence")(check_cron)


class HooksSettings(Model):
    """Shell commands run on the host; RAGOPS_SNAPSHOT_ID, RAGOPS_POLICY and RAGOPS_HOST are exported."""

    before: list[str] = Field(default_factory=list, description="Run before the sources are staged; a failure aborts the backup.")
    after: list[str] = Field(default_factory=list, description="Run after a successful backup (RAGOPS_SNAPSHOT_ID is set).")
    on_failure: list[str] = Field(default_factory=list, description="Run when the backup failed (RAGOPS_SNAPSHOT_ID empty unless a snapshot was made).")
    timeout_s: float = Field(300, gt=0, description="Timeout of each hook command, seconds.")


class Policy(Model):
    """One backup policy: where to, what, how long to keep, how often."""

    description: str = Field("", description="Free text shown by `backup.snapshots` and the docs.")
    repository: RepositorySettings = Field(description="The primary repository.")
    secondary: RepositorySettings | None = Field(None, description="Off-site copy: after each backup the new snapshot is `restic copy`'d here and its presence checked.")
    sources: SourcesSettings = Field(default_factory=SourcesSettings, description="What is backed up.")
    retention: RetentionSettings = Field(description="Which snapshots `forget` keeps (per host and tag set).")
    tags: list[str] = Field(default_factory=lambda: ["ragops"], description="Tags put on every snapshot; forget only considers snapshots with exactly these tags.")
    schedule: str = Field("0 3 * * *", description="When backups run (5-field cron: minute hour day-of-month month day-of-week).")
    check: CheckSettings = Field(default_factory=CheckSettings, description="Repository verification cadence and depth.")
    restore_test: RestoreTestSettings = Field(default_factory=RestoreTestSettings, description="Restore test cadence and time budget.")
    hooks: HooksSettings = Field(default_factory=HooksSettings, description="Commands run around each backup.")

    schedule_is_cron = field_validator("schedule")(check_cron)

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        for tag in value:
            if not tag or "," in tag or tag.strip() != tag:
                raise ValueError(f"tag {tag!r} must be non-empty, without commas or surrounding spaces")
        return value

    @model_validator(mode="after")
    def _distinct_secondary(self) -> Policy:
        if self.secondary is not None and self.secondary.url == self.repository.url:
            raise ValueError("secondary: must be a different repository than repository.url")
        return self


# ---------------------------------------------------------------- loading


def find_policy_files(directory: str | Path) -> list[Path]:
    path = Path(directory)
    if not path.is_dir():
        raise ConfigError(f"{directory}: backup policy directory not found")
    return sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def validate_policy(raw: Any, source: str) -> tuple[Policy | None, list[str]]:
    if not isinstance(raw, dict):
        return None, [f"{source}: (top level): must be a mapping of policy settings"]
    try:
        return Policy.model_validate(raw), []
    except ValidationError as exc:
        return None, make_error_lines(source, exc, Policy)


def load_policies(directory: str | Path) -> dict[str, Policy]:
    """Every policy in the directory by name (file stem); ConfigError listing every problem of every file."""
    policies: dict[str, Policy] = {}
    problems: list[str] = []
    for path in find_policy_files(directory):
        source = str(Path(directory) / path.name)
        try:
            raw = read_yaml(source)
        except ConfigError as exc:
            problems += exc.problems
            continue
        policy, errors = validate_policy(raw, source)
        problems += errors
        if policy is not None:
            if path.stem in policies:
                problems.append(f"{source}: policy {path.stem!r} is defined twice (.yaml and .yml)")
            policies[path.stem] = policy
    if problems:
        raise ConfigError(problems)
    return policies


def load_policy(directory: str | Path, name: str) -> Policy:
    """One policy by name; only that file is validated. Unknown names list the available ones."""
    files = {p.stem: p for p in find_policy_files(directory)}
    if name not in files:
        close = difflib.get_close_matches(name, list(files), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        available = ", ".join(sorted(files)) or "none"
        raise ConfigError(f"{directory}: no backup policy named {name!r}{hint}; available: {available}")
    source = str(Path(directory) / files[name].name)
    policy, errors = validate_policy(read_yaml(source), source)
    if errors or policy is None:
        raise ConfigError(errors)
    return policy


def resolve_policies_dir(policies_dir: str, config_source: str) -> Path:
    """An absolute policies_dir as is; a relative one against the config file's directory, or the
    current directory when no config file is in use (the embedded demo config)."""
    path = Path(policies_dir).expanduser()
    if path.is_absolute():
        return path
    if os.path.isfile(config_source):
        return Path(config_source).resolve().parent / path
    return Path.cwd() / path


def load_host_policy(host: Host, name: str | None = None) -> Policy | None:
    """The policy a host uses: ``name`` (a --policy flag) or its ``backup.policy``; None if neither."""
    backup = host.settings.backup
    chosen = name or backup.policy
    if not chosen:
        return None
    return load_policy(resolve_policies_dir(backup.policies_dir, host.source), chosen)
