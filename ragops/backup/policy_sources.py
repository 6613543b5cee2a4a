"""The `sources:` part of a backup policy (what is staged and snapshotted) and the cron checker."""

from __future__ import annotations

import os
import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from ..config import Model

_CRON_RANGES = [("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7)]
_NAMES = {
    "month": ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"],
    "day of week": ["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
}


def _cron_value(text: str, what: str, low: int) -> int:
    names = _NAMES.get(what, [])
    if text.lower() in names:
        return names.index(text.lower()) + (1 if what == "month" else 0)
    if not text.isdigit():
        raise ValueError(f"{what} {text!r} is not a number")
    return int(text)


def check_cron(cls: object, value: str) -> str:
    """A 5-field cron expression (minute hour dom month dow) with *, lists, ranges, steps, names."""
    fields = value.split()
    if len(fields) != 5:
        raise ValueError(f"{value!r} must have 5 fields (minute hour day-of-month month day-of-week), got {len(fields)}")
    for field, (what, low, high) in zip(fields, _CRON_RANGES, strict=True):
        for part in field.split(","):
            base, _, step = part.partition("/")
            if step and (not step.isdigit() or int(step) == 0):
                raise ValueError(f"{value!r}: {what} step {step!r} must be a positive number")
            if base == "*":
                continue
            bounds = [_cron_value(b, what, low) for b in base.split("-", 1)]
            for b in bounds:
                if not low <= b <= high:
                    raise ValueError(f"{value!r}: {what} {b} is outside {low}-{high}")
            if len(bounds) == 2 and bounds[0] > bounds[1]:
                raise ValueError(f"{value!r}: {what} range {base!r} is reversed")
    return value


class RedisSource(Model):
    enabled: bool = Field(True, description="Back up the host's Redis (connection from ragops.yaml `redis:`).")
    aof_fallback: bool = Field(True, description="On an AOF-only server: true = take an RDB with BGSAVE anyway; false = stage the AOF directory consistently (rewrites held off during the copy). The manifest says which was used.")
    verify: bool = Field(True, description="Validate the staged dump with redis-check-rdb before it is snapshotted.")
    check_rdb: str = Field("redis-check-rdb", description="redis-check-rdb binary on the host.")
    data_dir: str | None = Field(None, description="Redis' working dir on the host (holds dump.rdb / the AOF dir); unset: asked from the server (CONFIG GET dir).")
    bgsave_timeout_s: float = Field(900, gt=0, description="Fail when BGSAVE has not finished (LASTSAVE advanced) after this many seconds.")
    dump_check: Literal["check-rdb", "load"] = Field("check-rdb", description="How the staged dump is described at backup time: check-rdb = redis-check-rdb (checksum, keys and expires read; streams the file, little RAM); load = also load it in a throwaway redis-server for per-db key counts and the key-sample digest (RAM in proportion to the dump; the restore test loads it anyway).")
    sample_keys: int = Field(1000, ge=0, le=1_000_000, description="Keys in the deterministic sample whose digest goes into the manifest (0 disables).")


class StopSettings(Model):
    """How the `stop` strategy stops and starts the Chroma writer. Exactly one way."""

    compose_service: str | None = Field(None, description="docker compose service to stop/start (in compose_project_dir).")
    compose_project_dir: str | None = Field(None, description="Directory of the compose project on the host (for compose_service).")
    systemd_unit: str | None = Field(None, description="systemd unit to stop/start.")
    command: str | None = Field(None, description="Shell command that stops the writer (needs start_command).")
    start_command: str | None = Field(None, description="Shell command that starts the writer again (with command).")
    timeout_s: float = Field(120, gt=0, description="Timeout for stopping and for starting, seconds.")

    @model_validator(mode="after")
    def _one_way(self) -> StopSettings:
        ways = [n for n in ("compose_service", "systemd_unit", "command") if getattr(self, n)]
        if len(ways) != 1:
            raise ValueError("set exactly one of compose_service, systemd_unit, command" + (f" (got {', '.join(ways)})" if ways else ""))
        if self.command and not self.start_command:
            raise ValueError("command needs start_command (the writer is always started again)")
        if self.start_command and not self.command:
            raise ValueError("start_command is only used with command")
        if self.compose_project_dir and not self.compose_service:
            raise ValueError("compose_project_dir is only used with compose_service")
        return self


class PauseSettings(Model):
    """How the `pause` strategy holds the writer: your pre/post commands, or `docker pause` of a Compose
    service (the writer, NOT the Chroma server: a frozen server's files are only crash-consistent). One way."""

    pre: str | None = Field(None, description="Shell command that pauses ingestion (writes stop, reads go on); with post.")
    post: str | None = Field(None, description="Shell command that resumes ingestion; always run, also when the copy fails; with pre.")
    compose_service: str | None = Field(None, description="Compose service (the ingestion / API writer, not Chroma) whose running containers are frozen with `docker pause` for the copy and thawed with `docker unpause` afterwards, always (also on failure and SIGTERM/SIGINT/SIGHUP). Needs docker.data_tasks: containers.")
    timeout_s: float = Field(60, gt=0, description="Timeout of each command, seconds.")

    @model_validator(mode="after")
    def _one_way(self) -> PauseSettings:
        hooks = self.pre is not None or self.post is not None
        if self.compose_service and hooks:
            raise ValueError("set either compose_service or pre + post, not both")
        if not self.compose_service and not (self.pre and self.post):
            raise ValueError("set pre and post (shell commands), or compose_service (docker pause of that service)")
        return self


class ChromaSource(Model):
    enabled: bool = Field(True, description="Back up the Chroma persistent directory.")
    data_dir: str | None = Field(None, description="Chroma persistent directory on the host; unset: ragops.yaml `chroma.data_dir`.")
    strategy: Literal["stop", "pause", "live"] = Field("live", description="stop: stop the writer, copy, start it; pause: run pause.pre/post around the copy; live: sqlite online backup, then segments, then validate the copy and retry.")
    stop: StopSettings | None = Field(None, description="How to stop/start the writer (strategy stop).")
    pause: PauseSettings | None = Field(None, description="Pause/resume hooks (strategy pause).")
    copy_mode: Literal["auto", "snapshot", "reflink", "mirror", "full"] = Field("auto", description="How the consistent copy is made, at the stable path <staging_dir>/stable/chroma so restic skips unchanged files: snapshot = btrfs read-only snapshot of the data dir (a subvolume; the staging dir on the same btrfs), the writer held for milliseconds; reflink = a mirror whose changed files are reflink copies (btrfs, XFS; near-zero extra disk); mirror = a mirror updated in place (only changed files rewritten, unchanged ones keep inode and mtime; the mirror stays on disk); full = a full copy into the run dir, removed after (the pre-0.3 behaviour); auto = snapshot where possible, else reflink, else mirror.")
    server_url: str | None = Field(None, description="URL of the Chroma server that serves this data dir (e.g. http://127.0.0.1:8000): the probe queries' top-k ids are asked from its loaded index (no extra RAM on the host). Unset: probes record only stored ids and the restore test checks self-retrieval.")
    live_retries: int = Field(3, ge=0, le=20, description="Extra attempts when a live copy fails validation; then the backup fails loudly.")
    probes: int = Field(5, ge=0, le=100, description="Probe queries per collection (stored vectors) recorded in the manifest for the restore test.")
    probe_k: int = Field(10, ge=1, le=1000, description="Top-k ids recorded per probe query.")

    @model_validator(mode="after")
    def _strategy_settings(self) -> ChromaSource:
        if self.strategy == "stop" and self.stop is None:
            raise ValueError("strategy stop needs a `stop:` section (compose_service, systemd_unit or command)")
        if self.strategy == "pause" and self.pause is None:
            raise ValueError("strategy pause needs a `pause:` section (pre and post commands, or compose_service)")
        return self


class PathSource(Model):
    path: str = Field(description="Absolute file or directory on the host (configuration, models, custom data).")
    exclude: list[str] = Field(default_factory=list, description="restic --exclude patterns (globs) below this path.")

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not os.path.isabs(value):
            raise ValueError(f"must be an absolute path (got {value!r}): restic stores relative paths under / and restores then match nothing")
        if ".." in value.split("/") or re.search(r"[\n\r]", value):
            raise ValueError("must not contain '..' or newlines")
        return value


class SourcesSettings(Model):
    redis: RedisSource = Field(default_factory=RedisSource, description="The Redis dump.")
    chroma: ChromaSource = Field(default_factory=ChromaSource, description="The Chroma persistent directory.")
    paths: list[PathSource] = Field(default_factory=list, description="Extra files and directories, each with its excludes.")
