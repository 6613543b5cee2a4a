"""ragops.yaml: the schema, loading, merging and error reporting.

- ``schema``: the pydantic models (every field described, unknown fields rejected);
- ``messages``: validation errors as ``<file>: <dotted.field>: <message>`` lines;
- ``yaml_read``: finding the file, reading YAML (UTF-8, duplicate keys refused);
- ``load``: merging defaults < host entry < environment, linear in the inventory;
- ``hosts``: resolved ``Host`` / ``LoadedConfig`` and ``--host`` selection.

Callers import from ``ragops.config``; the names below are its public surface.
"""

from __future__ import annotations

from .hosts import Host, LoadedConfig, did_you_mean, select_hosts
from .load import (
    NOT_SETTINGS,
    check_host,
    deep_merge,
    freeze,
    load_config,
    make_env_overrides,
    make_hosts,
    make_settings,
)
from .messages import format_loc, make_error_lines
from .schema import (
    CONFIG_NAME,
    CONNECTION_FIELDS,
    DEFAULT_STEPS,
    HOST_SETTING_FIELDS,
    LOCAL,
    ApiSettings,
    BackupSettings,
    CannedQuery,
    ChromaSettings,
    CleanupRoot,
    Connection,
    DiskSettings,
    DockerServiceSettings,
    DockerSettings,
    HostEntry,
    HostSettings,
    LogrotateSettings,
    Model,
    PingSettings,
    RagopsConfig,
    RedisSettings,
    ReleaseSettings,
    StepName,
    TempRoot,
)
from .yaml_read import UniqueKeyLoader, describe_bad_utf8, find_config_path, read_yaml

__all__ = [
    "CONFIG_NAME", "CONNECTION_FIELDS", "DEFAULT_STEPS", "HOST_SETTING_FIELDS", "LOCAL", "NOT_SETTINGS",
    "ApiSettings", "BackupSettings", "CannedQuery", "ChromaSettings", "CleanupRoot", "Connection",
    "DiskSettings", "DockerServiceSettings", "DockerSettings", "Host", "HostEntry", "HostSettings",
    "LoadedConfig", "LogrotateSettings", "Model", "PingSettings", "RagopsConfig", "RedisSettings",
    "ReleaseSettings", "StepName", "TempRoot", "UniqueKeyLoader",
    "check_host", "deep_merge", "describe_bad_utf8", "did_you_mean", "find_config_path", "format_loc",
    "freeze", "load_config", "make_env_overrides", "make_error_lines", "make_hosts", "make_settings",
    "read_yaml", "select_hosts",
]
