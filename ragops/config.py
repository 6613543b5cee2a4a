"""ragops.yaml: the schema, loading, merging and error reporting.

Every field carries a description (rendered into the README by ``invoke config.reference``),
unknown fields are rejected, and every problem is reported at once as
``<file>: <dotted.field>: <message>``.

Precedence: task flag > environment (``RAGOPS_*``) > ragops.yaml > built-in default.
"""

from __future__ import annotations

import difflib
import gc
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from .errors import ConfigError

CONFIG_NAME = "ragops.yaml"
LOCAL = "local"
StepName = Literal["cleanup", "logrotate", "health", "docker", "backup"]
DEFAULT_STEPS: list[StepName] = ["cleanup", "logrotate", "health"]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, validate_default=True)


class ApiSettings(Model):
    url: str | None = Field(None, description="Base URL of the RAG API as seen from the host, e.g. http://127.0.0.1:8000; unset skips the API checks.")
    health_path: str = Field("/health", description="Path of the liveness endpoint.")
    status_path: str = Field("/status", description="Path of the status endpoint that reports indexed document counts.")
    timeout_s: float = Field(5.0, gt=0, description="Timeout of one HTTP request, seconds.")
    retries: int = Field(2, ge=0, le=20, description="Extra attempts after a failed request.")
    retry_delay_s: float = Field(1.0, ge=0, description="Pause between attempts, seconds.")
    expect_status: int = Field(200, ge=100, le=599, description="HTTP status code that counts as healthy.")
    expect_body: str | None = Field(None, description="Substring the /health body must contain (e.g. \"ok\").")
    min_documents: int | None = Field(None, ge=0, description="Degraded when /status reports fewer documents than this.")


class RedisSettings(Model):
    enabled: bool = Field(True, description="Check (and later back up) Redis on this host.")
    host: str = Field("127.0.0.1", description="Redis address as seen from the host.")
    port: int = Field(6379, ge=1, le=65535, description="Redis port.")
    password_file: str | None = Field(None, description="File on the controller holding the Redis password (never put the password itself in the config).")
    password_env: str | None = Field(None, description="Environment variable on the controller holding the Redis password.")
    max_save_age_s: int = Field(86400, ge=1, description="Degraded when the last successful RDB save is older than this (seconds).")


class ChromaSettings(Model):
    data_dir: str | None = Field(None, description="ChromaDB persistent directory (holds chroma.sqlite3); unset skips the Chroma checks.")
    min_documents: int | None = Field(None, ge=0, description="Degraded when all collections together hold fewer items than this.")


class CleanupRoot(Model):
    root: str = Field(description="Absolute directory to clean. Never '/', never a symlink, never followed out of.")
    patterns: list[str] = Field(default_factory=lambda: ["*.log"], description="File name globs (names only, no '/' or '..').")
    max_age_days: int = Field(7, ge=0, description="Delete matching files modified more than this many days ago (find -mtime +N).")
    cross_filesystems: bool = Field(False, description="Descend into other mounted filesystems below the root.")

    @field_validator("root")
    @classmethod
    def _safe_root(cls, value: str) -> str:
        if not os.path.isabs(value):
            raise ValueError(f"must be an absolute path (got {value!r})")
        if ".." in Path(value).parts:
            raise ValueError(f"must not contain '..' (got {value!r})")
        if not os.path.normpath(value).strip("/"):  # '/', '//' (normpath keeps it), '/./'
            raise ValueError("refusing to clean '/'")
        return value

    @field_validator("patterns")
    @classmethod
    def _names_only(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("must list at least one pattern")
        for pattern in value:
            if not pattern or "/" in pattern or pattern in (".", "..") or ".." in pattern.split("*"):
                raise ValueError(f"pattern {pattern!r} must be a file name glob without '/' or '..'")
        return value


class TempRoot(CleanupRoot):
    patterns: list[str] = Field(default_factory=lambda: ["*"], description="File name globs (names only).")
    max_age_days: int = Field(1, ge=0, description="Delete matching files modified more than this many days ago.")


class DiskSettings(Model):
    paths: list[str] = Field(default_factory=list, description="Directories whose filesystem is checked; empty = the Chroma dir and every log/temp root.")
    warn_percent: int = Field(80, ge=1, le=100, description="Degraded at or above this percentage of space used.")
    fail_percent: int = Field(90, ge=1, le=100, description="Failed at or above this percentage of space used.")
    inode_warn_percent: int = Field(80, ge=1, le=100, description="Degraded at or above this percentage of inodes used.")
    inode_fail_percent: int = Field(90, ge=1, le=100, description="Failed at or above this percentage of inodes used.")
    min_free_percent: int = Field(10, ge=0, le=99, description="A backup (or restore-test scratch copy) is refused before writing anything if it would leave less than this percentage of its filesystem free (and never past fail_percent).")


class LogrotateSettings(Model):
    enabled: bool = Field(True, description="Install a logrotate policy for the log roots.")
    path: str = Field("/etc/logrotate.d/ragops", description="Where the policy file is written on the host.")
    size: str = Field("10M", pattern=r"^[0-9]+[kMG]?$", description="Rotate when a log exceeds this size (logrotate syntax: 10M).")
    rotate: int = Field(3, ge=1, le=1000, description="Rotated files to keep.")
    compress: bool = Field(True, description="Compress rotated files.")


class PingSettings(Model):
    url: str | None = Field(None, description="healthchecks-style base URL: pinged at start (/start), success (URL) and failure (/fail).")
    timeout_s: float = Field(5.0, gt=0, description="Timeout of one ping, seconds.")


class BackupSettings(Model):
    policy: str | None = Field(None, description="Backup policy name (a file in policies_dir without .yaml); unset: no backup on this host (maintain's backup step reports skipped).")
    policies_dir: str = Field("backup-policies", description="Directory of backup policy files; a relative path is taken from the config file's directory (from the current directory with the embedded demo config).")
    staging_dir: str = Field("/var/tmp/ragops-staging", description="Directory on the host under which each backup run stages its dumps (removed afterwards, also on failure).")
    restic: str = Field("restic", description="restic binary on the host.")
    chroma_python: str = Field("python3", description="Python on the host that can import chromadb (validates live Chroma copies).")
    redis_server: str = Field("redis-server", description="redis-server binary on the host: restore-test loads the restored dump in a throwaway server with it.")


class DockerServiceSettings(Model):
    name: str = Field(description="Compose service name (e.g. api).")
    image: str | None = Field(None, description="Image template for `release --version V`, e.g. registry.local/rag-api:{version}; unset: release leaves the service alone.")
    health_command: str | None = Field(None, description="Extra health gate run in each new replica with `docker exec` (e.g. wget -q -O /dev/null http://127.0.0.1:8080/health); exit 0 passes. Runs after the HEALTHCHECK is healthy.")


class CannedQuery(Model):
    path: str = Field(description="Path on the API (api.url + path), e.g. /query?q=refund+policy.")
    expect_status: int = Field(200, ge=100, le=599, description="Expected HTTP status.")
    expect_body: str | None = Field(None, description="Substring the response body must contain.")


class ReleaseSettings(Model):
    batch_size: int = Field(1, ge=1, description="Hosts released at once (a batch); the release stops after the first batch with a failure.")
    record_dir: str = Field("release-records", description="Directory on the controller for the markdown + JSON release records.")
    queries: list[CannedQuery] = Field(default_factory=list, description="Canned queries run against the live API after the upgrade (post-verification).")
    check_document_counts: bool = Field(True, description="Post-verification fails when /status document counts differ from the preflight ones.")
    rollback_released_hosts: bool = Field(False, description="When a batch fails, also roll back hosts of earlier, successful batches (from the history file).")


class DockerSettings(Model):
    docker_host: str | None = Field(None, description="DOCKER_HOST for the docker CLI on the host (e.g. unix:///run/docker.sock); unset: the CLI's default.")
    docker_config: str | None = Field(None, description="DOCKER_CONFIG directory on the host (its cli-plugins/ holds docker-compose); unset: ~/.docker.")
    cli: str = Field("docker", description="The docker CLI on the host.")
    compose_file: str | None = Field(None, description="The Compose file of the RAG stack on the host (upgrade, release, audit-logs).")
    compose_project: str | None = Field(None, description="Compose project name (default: the `name:` in the file, else its directory name).")
    override_file: str | None = Field(None, description="Compose override ragops writes to pin service images (default compose.ragops.yaml next to compose_file).")
    prune_until: str = Field("168h", pattern=r"^([0-9]+[dhms])+$", description="docker.prune and maintain's docker step: only unused images / build cache older than this (e.g. 168h, 7d, 90m).")
    protected_volumes: list[str] = Field(default_factory=lambda: ["*chroma*", "*redis*"], description="Volume name globs never pruned (matched against the volume name and its Compose name). Default: the Chroma and Redis data volumes.")
    protected_label: str = Field("ragops.protected=true", pattern=r"^[^=]+=.*$", description="Containers, images, volumes and networks carrying this label (key=value) are never pruned.")
    services: list[DockerServiceSettings] = Field(default_factory=list, description="Compose services upgraded by `release`, in this order.")
    health_timeout_s: float = Field(120.0, gt=0, description="How long a new replica may take to become healthy.")
    stop_timeout_s: int = Field(10, ge=0, description="Grace period when stopping an old replica (docker stop -t).")
    history_file: str = Field("/var/lib/ragops/docker-history.jsonl", description="JSON-lines history of upgrades on the host, read by release.rollback.")
    release: ReleaseSettings = Field(default_factory=ReleaseSettings, description="The release runbook.")


class HostSettings(Model):
    """What to maintain on a host; `defaults:` sets these for every host, a host entry overrides them."""

    deployment: Literal["compose", "kubernetes", "bare"] = Field("compose", description="How the RAG system is deployed on this host.")
    api: ApiSettings = Field(default_factory=ApiSettings, description="The RAG API health endpoints.")
    redis: RedisSettings = Field(default_factory=RedisSettings, description="The Redis cache.")
    chroma: ChromaSettings = Field(default_factory=ChromaSettings, description="The ChromaDB vector store.")
    logs: list[CleanupRoot] = Field(default_factory=list, description="Log roots cleaned by the cleanup step (default pattern *.log, 7 days).")
    temp: list[TempRoot] = Field(default_factory=list, description="Temp roots cleaned by the cleanup step (default pattern *, 1 day).")
    disk: DiskSettings = Field(default_factory=DiskSettings, description="Disk and inode thresholds.")
    logrotate: LogrotateSettings = Field(default_factory=LogrotateSettings, description="The logrotate policy for the log roots.")
    python: str | None = Field(None, description="Python 3 on the host for ragops' stdlib helper scripts (health, Redis probes, hashing, sqlite copies). Default: `python3` on remote hosts, the interpreter running ragops on the local host.")
    lock_path: str = Field("/run/lock/ragops.lock", description="Per-host lock file; a second run on the host refuses while it is held.")
    lock_ttl_s: int = Field(300, ge=10, description="A lock whose heartbeat is older than this is stale and taken over.")
    metrics_dir: str | None = Field("/var/lib/prometheus/node-exporter", description="node_exporter textfile directory for ragops_*.prom files; null disables.")
    steps: list[StepName] = Field(
        default_factory=lambda: list(DEFAULT_STEPS), description="Steps `maintain` runs, in order."
    )
    continue_on_error: list[str] = Field(default_factory=list, description="Steps whose failure does not stop the host's maintain run.")
    pings: PingSettings = Field(default_factory=PingSettings, description="Start/success/failure pings per run.")
    backup: BackupSettings = Field(default_factory=BackupSettings, description="Backups of this host: which policy, where to stage, which restic.")
    docker: DockerSettings = Field(default_factory=DockerSettings, description="Docker: pruning, log audit, Compose upgrades and releases.")


class Connection(Model):
    """How to reach a host: the connection fields of an inventory entry (one small object per host)."""

    address: str | None = Field(None, description="Host name or IP to SSH to (default: the entry's name, resolved through ssh_config).")
    port: int | None = Field(None, ge=1, le=65535, description="SSH port (default 22 or ssh_config's).")
    user: str | None = Field(None, description="SSH user (default: ssh_config's or the current user).")
    key_file: str | None = Field(None, description="Private key file for SSH.")
    ssh_alias: str | None = Field(None, description="Host alias in ssh_config to connect through (its HostName/Port/User/IdentityFile apply).")
    groups: list[str] = Field(default_factory=list, description="Groups this host belongs to, addressed as --host @group.")
    strict_host_key_checking: bool = Field(True, description="Refuse unknown or changed host keys. Turning it off is explicit, per host.")
    known_hosts: str | None = Field(None, description="known_hosts file (default ~/.ssh/known_hosts).")
    connect_timeout_s: float = Field(10.0, gt=0, description="SSH connect timeout, seconds.")


class HostEntry(Connection, HostSettings):
    """An inventory entry: how to reach the host plus any HostSettings overrides."""


class RagopsConfig(Model):
    defaults: HostSettings = Field(default_factory=HostSettings, description="Settings every host starts from.")
    hosts: dict[str, HostEntry] = Field(default_factory=dict, description="The inventory; `local` is special: it runs here, without SSH.")
    parallel: int = Field(8, ge=1, le=256, description="Hosts maintained at once.")
    fail_percent: int = Field(100, ge=0, le=100, description="Stop starting new hosts once this percentage of hosts failed.")
    ssh_config_file: str | None = Field(None, description="ssh_config file to read (default ~/.ssh/config).")


HOST_SETTING_FIELDS = set(HostSettings.model_fields)
CONNECTION_FIELDS = set(HostEntry.model_fields) - HOST_SETTING_FIELDS


@dataclass(frozen=True, eq=False, slots=True)
class Host:
    """A resolved host: name, connection parameters, effective settings, where they came from.

    Hosts with the same overrides share one ``settings`` object (never mutate it)."""

    name: str
    entry: Connection
    settings: HostSettings
    source: str

    @property
    def is_local(self) -> bool:
        return self.name == LOCAL


@dataclass(frozen=True, eq=False, slots=True)
class LoadedConfig:
    config: RagopsConfig  # its ``hosts`` stays empty: the inventory is in ``hosts`` below
    source: str  # file path, or "embedded demo config"
    hosts: dict[str, Host]


# ---------------------------------------------------------------- error formatting

_MESSAGES = {
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "missing": "required field is missing",
}


def format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _known_fields(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names valid at the parent of ``loc`` (for did-you-mean hints)."""
    current: Any = model
    skip_key = False
    for part in loc[:-1]:
        if skip_key:  # the key of a dict-valued field (hosts.<name>): the value's model applies
            skip_key = False
            continue
        if isinstance(part, int) or current is None:
            continue
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                if current is RagopsConfig:
                    return []
                current = None
                continue
            ann = field.annotation
            args = getattr(ann, "__args__", ())
            candidates = [a for a in (ann, *args) if isinstance(a, type) and issubclass(a, BaseModel)]
            current = candidates[0] if candidates else (HostEntry if part == "hosts" else None)
            skip_key = getattr(ann, "__origin__", None) is dict
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def make_error_lines(source: str, error: ValidationError, model: type[BaseModel], prefix: tuple[Any, ...] = ()) -> list[str]:
    lines = []
    for item in error.errors():
        loc = prefix + tuple(item["loc"])
        kind = item["type"]
        if kind == "extra_forbidden":
            msg = "unknown field"
            close = difflib.get_close_matches(str(loc[-1]), _known_fields(model, tuple(item["loc"])), n=1)
            if close:
                msg += f" (did you mean {close[0]!r}?)"
        elif kind == "literal_error":
            msg = "must be one of: " + str(item.get("ctx", {}).get("expected", ""))
        elif kind in _MESSAGES:
            msg = _MESSAGES[kind]
        else:
            msg = item["msg"]
            if msg.startswith("Value error, "):
                msg = msg[len("Value error, "):]
            msg = msg[:1].lower() + msg[1:]
            msg = msg.replace("input should be", "must be")
        lines.append(f"{source}: {format_loc(loc)}: {msg}")
    return lines


# ---------------------------------------------------------------- loading


def find_config_path(explicit: str | None, environ: dict[str, str] | None = None) -> Path | None:
    """--config > RAGOPS_CONFIG > ./ragops.yaml; None means: use the embedded demo config."""
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found (from --config)")
        return path
    env = (os.environ if environ is None else environ).get("RAGOPS_CONFIG")
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found (from RAGOPS_CONFIG)")
        return path
    path = Path.cwd() / CONFIG_NAME
    return path if path.is_file() else None


_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ~20x faster on a big inventory


class UniqueKeyLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    """yaml's safe loader that refuses a mapping with the same key twice (YAML says keys are unique;
    PyYAML silently keeps the last one)."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                scalar = isinstance(key_node, yaml.ScalarNode)  # cheap: no second construction
                key = (key_node.tag, key_node.value) if scalar else self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                    seen.setdefault(key, key_node.start_mark.line + 1)
                except TypeError:  # an unhashable key: the constructor below reports it
                    continue
                if first is not None:
                    shown = key[1] if scalar else key
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {shown!r} (first at line {first})", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


UniqueKeyLoader.add_constructor("tag:yaml.org,2002:map", UniqueKeyLoader.construct_yaml_map)


def describe_bad_utf8(data: bytes, exc: UnicodeDecodeError) -> str:
    line = data.count(b"\n", 0, exc.start) + 1
    column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
    return f"line {line}, column {column}: not valid UTF-8 (byte 0x{data[exc.start]:02x}); save the file as UTF-8"


def read_yaml(path: Path | str, text: str | None = None) -> Any:
    """Parse YAML, turning every problem (unreadable, not UTF-8, syntax, duplicate key) into one
    ConfigError naming the file, line and column."""
    try:
        if text is None:
            data = Path(path).read_bytes()
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ConfigError(f"{path}: {describe_bad_utf8(data, exc)}") from None
        return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        kind = "" if str(problem).startswith("duplicate key") else "invalid YAML: "
        raise ConfigError(f"{path}: {where}{kind}{problem}") from None


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


# ragops' own environment variables that are not settings (scripts, demo, debugging).
NOT_SETTINGS = {"RAGOPS_CONFIG", "RAGOPS_DEMO_DIR", "RAGOPS_LOG", "RAGOPS_TASK", "RAGOPS_ROOT",
                "RAGOPS_SETUP_HOOKS", "RAGOPS_DEBUG_COMMANDS"}


def make_env_overrides(environ: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """RAGOPS_PARALLEL / RAGOPS_FAIL_PERCENT (top level) and RAGOPS_<SECTION>__<FIELD> (every host)."""
    top: dict[str, Any] = {}
    host: dict[str, Any] = {}
    problems: list[str] = []
    for name, raw in sorted(environ.items()):
        if not name.startswith("RAGOPS_") or name in NOT_SETTINGS:
            continue
        key = name[len("RAGOPS_"):].lower()
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        if key in ("parallel", "fail_percent"):
            top[key] = value
            continue
        parts = key.split("__")
        if parts[0] not in HOST_SETTING_FIELDS:
            close = difflib.get_close_matches(parts[0], [*HOST_SETTING_FIELDS, "parallel", "fail_percent"], n=1, cutoff=0.8)
            if len(parts) == 1 and not close:
                continue  # another tool's variable (RAGOPS_DEBUG_COMMANDS, RAGOPS_DOCKER_*): not a setting
            hint = f" (did you mean RAGOPS_{close[0].upper()}?)" if close else ""
            problems.append(f"environment {name}: unknown setting (expected RAGOPS_PARALLEL, RAGOPS_FAIL_PERCENT or RAGOPS_<SECTION>__<FIELD>){hint}")
            continue
        node = host
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return top, host, problems


def load_config(explicit: str | None = None, environ: dict[str, str] | None = None) -> LoadedConfig:
    """Load, validate and resolve the whole configuration; raise ConfigError with every problem.

    Linear in the inventory and lean: each distinct set of host overrides is validated once and
    its HostSettings shared by every host that has it; the cyclic GC is paused meanwhile (its full
    collections over a growing heap made a 250k-host load quadratic). bench/bench_config_load.py."""
    paused = gc.isenabled()
    gc.disable()
    try:
        return _load_config(explicit, environ)
    finally:
        if paused:
            gc.enable()


def _load_config(explicit: str | None, environ: dict[str, str] | None) -> LoadedConfig:
    environ = dict(os.environ if environ is None else environ)
    path = find_config_path(explicit, environ)
    if path is None:
        from .demo_config import make_demo_config_text

        source = "embedded demo config"
        raw = read_yaml(source, make_demo_config_text(environ))
    else:
        source = str(path)
        raw = read_yaml(path)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: (top level): must be a mapping of settings")
    env_top, env_host, env_problems = make_env_overrides(environ)
    problems: list[str] = []  # file problems first, then the environment's
    inventory = raw.get("hosts") or {}
    top = {**raw, "hosts": {}} if isinstance(inventory, dict) else raw
    try:
        config = RagopsConfig.model_validate(top)
    except ValidationError as exc:  # still check the inventory (every problem at once), on empty defaults
        problems = make_error_lines(source, exc, RagopsConfig)
        config = RagopsConfig()
    hosts, host_problems = make_hosts(config, source, inventory if isinstance(inventory, dict) else {}, env_host)
    problems += host_problems + env_problems
    if env_top:
        try:
            config = RagopsConfig.model_validate({**top, **env_top})
        except ValidationError as exc:
            problems += make_error_lines("environment", exc, RagopsConfig)
    if problems:
        raise ConfigError(problems)
    return LoadedConfig(config=config, source=source, hosts=hosts)


def freeze(value: Any) -> Any:
    """A hashable key for a YAML value that keeps types apart (True vs 1, "1" vs 1)."""
    if isinstance(value, dict):
        return ("{", tuple(sorted(((repr(k), freeze(v)) for k, v in value.items()))))
    if isinstance(value, list):
        return ("[", tuple(freeze(v) for v in value))
    return (type(value).__name__, repr(value))


_CONNECTIONS: TypeAdapter[dict[str, Connection]] = TypeAdapter(dict[str, Connection])


def make_hosts(config: RagopsConfig, source: str, inventory: dict[Any, Any], env_host: dict[str, Any]
               ) -> tuple[dict[str, Host], list[str]]:
    """Effective settings per host: built-in defaults < defaults: < host entry < environment.

    One pass over the raw entries: connection fields are validated for all hosts in one call;
    the settings overrides are grouped, and each distinct group validated (and merged) once."""
    base = config.defaults.model_dump(exclude_unset=True)
    problems: list[str] = []
    connections: dict[str, dict[str, Any]] = {}
    overrides: dict[str, dict[str, Any]] = {}
    for name, entry in inventory.items():
        if not isinstance(name, str):
            problems.append(f"{source}: hosts.{name}: a host name must be a string")
            continue
        if not isinstance(entry, dict):
            problems.append(f"{source}: hosts.{name}: must be a mapping")
            continue
        conn: dict[str, Any] = {}
        own: dict[str, Any] = {}
        for key, value in entry.items():
            (conn if key in CONNECTION_FIELDS else own)[key] = value
        connections[name], overrides[name] = conn, own
    connections.setdefault(LOCAL, {})
    overrides.setdefault(LOCAL, {})
    try:
        checked = _CONNECTIONS.validate_python(connections)
    except ValidationError as exc:  # report them, and still check every host's settings
        problems += make_error_lines(source, exc, HostEntry, ("hosts",))
        checked = {}
    shared: dict[Any, HostSettings | ValidationError | list[str]] = {}
    hosts: dict[str, Host] = {}
    for name, own in overrides.items():
        key = freeze(own) if own else ()
        settings = shared.get(key)
        if settings is None:
            settings = shared[key] = make_settings(base, own, env_host, source)
        if isinstance(settings, HostSettings):
            problems += check_host(source, name, settings)
            if name in checked:
                hosts[name] = Host(name=name, entry=checked[name], settings=settings, source=source)
        elif isinstance(settings, ValidationError):
            where = source if settings.title == "HostEntry" or not env_host else "environment"
            problems += make_error_lines(where, settings, HostEntry, ("hosts", name))
    return hosts, problems


def make_settings(base: dict[str, Any], own: dict[str, Any], env_host: dict[str, Any], source: str
                  ) -> HostSettings | ValidationError:
    """One group's settings, or its validation error: the entry's own overrides first (errors name
    the file), then merged onto defaults: and the environment."""
    if own:
        try:
            HostEntry.model_validate(own)
        except ValidationError as exc:
            return exc
    try:
        return HostSettings.model_validate(deep_merge(deep_merge(base, own), env_host))
    except ValidationError as exc:
        return exc


def check_host(source: str, name: str, settings: HostSettings) -> list[str]:
    """Cross-field checks the schema cannot express."""
    problems = []
    unknown = set(settings.continue_on_error) - set(settings.steps)
    for step in sorted(unknown):
        problems.append(f"{source}: hosts.{name}.continue_on_error: {step!r} is not one of the host's steps")
    # root safety (absolute, not '/', no '..') is checked by CleanupRoot's validator, with the schema
    if settings.disk.warn_percent > settings.disk.fail_percent:
        problems.append(f"{source}: hosts.{name}.disk.warn_percent: must not exceed fail_percent")
    if settings.redis.password_file and settings.redis.password_env:
        problems.append(f"{source}: hosts.{name}.redis: set password_file or password_env, not both")
    return problems


def select_hosts(loaded: LoadedConfig, spec: str | None) -> list[Host]:
    """--host: comma list of names and @groups; 'local' is always known. Unknown names are errors."""
    if spec is None or not spec.strip():
        raise ConfigError("--host: no host given (use --host local, a name from the inventory, or @group)")
    tokens = [t.strip() for t in spec.split(",")]
    if any(not t for t in tokens):
        raise ConfigError(f"--host {spec!r}: an empty name in the list")
    chosen: dict[str, Host] = {}
    problems = []
    groups: dict[str, list[Host]] | None = None
    for token in tokens:
        if token.startswith("@"):
            if groups is None:  # one pass over the inventory, whatever the number of @groups
                groups = {}
                for h in loaded.hosts.values():
                    for g in h.entry.groups:
                        groups.setdefault(g, []).append(h)
            members = groups.get(token[1:], [])
            if not members:
                problems.append(f"{loaded.source}: --host {token}: no host is in group {token[1:]!r}")
            for m in members:
                chosen.setdefault(m.name, m)
        elif token in loaded.hosts:
            chosen.setdefault(token, loaded.hosts[token])
        else:
            problems.append(f"{loaded.source}: --host {token}: unknown host{did_you_mean(token, loaded.hosts)}")
    if problems:
        raise ConfigError(problems)
    return list(chosen.values())


def did_you_mean(token: str, names: dict[str, Any], limit: int = 5000) -> str:
    """A close name, looked for among the names of similar length (difflib over 250k names takes
    seconds); beyond ``limit`` candidates, only those sharing the first character."""
    candidates = [n for n in names if abs(len(n) - len(token)) <= 2]
    if len(candidates) > limit:
        candidates = [n for n in candidates if n[:1] == token[:1]][:limit]
    close = difflib.get_close_matches(token, candidates, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
