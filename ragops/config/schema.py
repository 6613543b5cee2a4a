"""ragops.yaml's schema: every setting with its default and description.

Every field carries a description (rendered into the README by ``invoke config.reference``) and
unknown fields are rejected. """

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..resources import ResourceSettings

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
    """The controller talks to Redis with redis-py (ragops/redis_client.py): directly for `local`, through an SSH tunnel (Fabric forward_local) for a remote host."""

    enabled: bool = Field(True, description="Check (and later back up) Redis on this host.")
    host: str = Field("127.0.0.1", description="Redis address as seen from the host (for a remote host ragops connects through an SSH tunnel, so 127.0.0.1 is the host's own loopback).")
    port: int = Field(6379, ge=1, le=65535, description="Redis port (the TLS port when tls is on).")
    username: str | None = Field(None, min_length=1, description="ACL user (Redis 6+) to authenticate as, with the password of password_file / password_env; unset: the default user. Health and backups use it alike: health needs +ping +info +time (docs/health.md), a backup +ping +info +lastsave +bgsave (+time before Redis 7; docs/backup-redis.md).")
    password_file: str | None = Field(None, description="File on the controller holding the Redis password (never put the password itself in the config).")
    password_env: str | None = Field(None, description="Environment variable on the controller holding the Redis password.")
    tls: bool = Field(False, description="Talk TLS to Redis (redis-server --tls-port), also through the SSH tunnel: health and backups alike (not for a Compose Redis with no port on the host, asked with redis-cli in its container).")
    tls_ca_file: str | None = Field(None, description="CA certificate (PEM file on the controller) that signed the server's certificate; unset: the controller's system CAs.")
    tls_cert_file: str | None = Field(None, description="Client certificate (PEM file on the controller) for servers that check clients (tls-auth-clients yes, Redis' default).")
    tls_key_file: str | None = Field(None, description="Private key (PEM file on the controller) of tls_cert_file; unset: the key is in tls_cert_file.")
    tls_check_hostname: bool = Field(True, description="Require the server certificate to name redis.host (checked against that name also through the tunnel); turn off only for a certificate without it (the chain is still verified).")
    timeout_s: float = Field(5.0, gt=0, le=300, description="Connect and reply timeout of one Redis command from the controller, seconds.")
    max_save_age_s: int = Field(86400, ge=1, description="Degraded when the last successful RDB save is older than this (seconds).")
    memory_warn_percent: int = Field(90, ge=1, le=100, description="Degraded when used memory reaches this percentage of maxmemory under maxmemory-policy noeviction (a full Redis then refuses writes); with an eviction policy a full cache is normal and only reported.")

    @model_validator(mode="after")
    def _tls_files_need_tls(self) -> RedisSettings:
        files = [name for name in ("tls_ca_file", "tls_cert_file", "tls_key_file") if getattr(self, name)]
        if files and not self.tls:
            raise ValueError(f"{', '.join(files)} set but tls is false: set redis.tls: true (or remove them)")
        if self.tls_key_file and not self.tls_cert_file:
            raise ValueError("tls_key_file is set without tls_cert_file")
        return self


class ChromaSettings(Model):
    data_dir: str | None = Field(None, description="ChromaDB persistent directory (holds chroma.sqlite3); without url, health reads its counts from the sqlite file; unset (and no url) skips the Chroma checks.")
    url: str | None = Field(None, pattern=r"^https?://[^/\s]+/?$", description="Base URL of a Chroma server as seen from the host, e.g. http://127.0.0.1:8000 (a Compose stack's chroma service, or `chroma run` on a bare host): health checks its heartbeat (/api/v2/heartbeat) and per-collection counts over the HTTP API, for a remote host through an SSH tunnel, instead of reading data_dir.")
    tenant: str = Field("default_tenant", min_length=1, description="Chroma tenant whose collections health counts over the HTTP API (url).")
    database: str = Field("default_database", min_length=1, description="Chroma database (of tenant) whose collections health counts over the HTTP API (url).")
    timeout_s: float = Field(10.0, gt=0, le=300, description="Timeout of one request to the Chroma server (url), seconds.")
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


SERVICE_NAME = r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$"  # a Compose service (or project) name


class ComposeRoles(Model):
    """Which Compose services of the project are the RAG stack's Chroma, Redis and API (docker.data_tasks: containers)."""

    chroma: str | None = Field(None, pattern=SERVICE_NAME, description="Compose service running the Chroma server. Unset: the service named `chroma`, else the only one whose image name contains `chroma` (the API's image is excluded by the api role).")
    redis: str | None = Field(None, pattern=SERVICE_NAME, description="Compose service running Redis. Unset: the service named `redis`, else the only one whose image name contains `redis`.")
    api: str | None = Field(None, pattern=SERVICE_NAME, description="Compose service running the RAG API. Unset: the service named `api` or `rag-api`, else the only one whose image name contains `rag-api`; none is fine (backups do not need it).")
    chroma_path: str = Field("/data", pattern=r"^/[^\n]*$", description="Chroma's persistent dir INSIDE its container (a named volume or bind mount there; `/data` in the official 1.x image). Its host directory is found with docker inspect.")
    redis_port: int | None = Field(None, ge=1, le=65535, description="Redis' port inside its container, used by helpers run in it. Unset: the container port published as `redis.port`, else `redis.port` itself (network_mode: host).")
    python: str = Field("python3", pattern=r"^[^\s'\"]+$", description="Python inside the chroma and redis images that runs ragops' helper scripts (ragops/remote); the chroma image's must import chromadb.")


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
    data_tasks: Literal["host", "containers"] = Field("host", description="Where backup and restore-test find Chroma and Redis. host: processes and directories on the host (chroma.data_dir, redis:, backup.chroma_python, backup.redis_server). containers: the services of the Compose project (compose_project, else the project of compose_file) named by `roles`; their volumes, images and mount points come from docker inspect, helpers run in the service containers or in throwaway containers of the services' own images: nothing but docker (and restic) needed on the host.")
    roles: ComposeRoles = Field(default_factory=ComposeRoles, description="Which Compose services play chroma, redis and api (data_tasks: containers); defaults by service name and image.")

    @model_validator(mode="after")
    def _project_known(self) -> DockerSettings:
        if self.data_tasks == "containers" and not (self.compose_project or self.compose_file):
            raise ValueError("data_tasks: containers needs the Compose project: set docker.compose_project "
                             "(or docker.compose_file)")
        return self


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
    resources: ResourceSettings = Field(default_factory=ResourceSettings, description="CPU/I/O priority and the memory cap of heavy commands (restic, Chroma helpers, the throwaway redis-server); see docs/resources.md.")

    @model_validator(mode="after")
    def _containers_need_compose(self) -> HostSettings:
        if self.docker.data_tasks == "containers" and self.deployment != "compose":
            raise ValueError(f"docker.data_tasks: containers is for deployment: compose (this host is {self.deployment})")
        return self


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
