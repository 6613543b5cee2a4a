"""Loading ragops.yaml: merging defaults, host entries and the environment, validated linearly.

Precedence: task flag > environment (``RAGOPS_*``) > ragops.yaml > built-in default.
"""

from __future__ import annotations

import difflib
import gc
import os
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from ..errors import ConfigError
from .hosts import Host, LoadedConfig
from .messages import make_error_lines
from .schema import (
    CONNECTION_FIELDS,
    HOST_SETTING_FIELDS,
    LOCAL,
    Connection,
    HostEntry,
    HostSettings,
    RagopsConfig,
)
from .yaml_read import find_config_path, read_yaml


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
        from ..demo_config import make_demo_config_text

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
