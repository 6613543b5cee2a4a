"""SSH set-up and error wording: the Invoke Context / Fabric Connection behind a ``Target``.

Strict host keys by default; every way a connection fails becomes one clear sentence
(``describe_ssh_error``) raised as ``UnreachableError`` by the seam.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from .config import Host
from .seam_runners import make_local_runner, make_remote_runner


def make_connection(host: Host, ssh_config_file: str | None = None) -> Any:
    """An Invoke Context for `local`, else a Fabric Connection with strict host keys by default."""
    if host.is_local:
        from invoke import Config, Context

        return Context(config=Config(overrides={"run": {"hide": True, "warn": True, "in_stream": False},
                                                "runners": {"local": make_local_runner()}}))
    import paramiko
    from fabric import Config as FabricConfig
    from fabric import Connection
    entry = host.entry
    overrides: dict[str, Any] = {"run": {"hide": True, "warn": True, "in_stream": False}, "load_ssh_configs": True,
                                 "runners": {"remote": make_remote_runner()}}
    cfg = FabricConfig(overrides=overrides, runtime_ssh_path=ssh_config_file) if ssh_config_file else FabricConfig(overrides=overrides)
    connect_kwargs: dict[str, Any] = {"allow_agent": False, "look_for_keys": entry.key_file is None}
    if entry.key_file:
        connect_kwargs["key_filename"] = os.path.expanduser(entry.key_file)
    conn = Connection(
        entry.ssh_alias or entry.address or host.name,
        user=entry.user,
        port=entry.port,
        config=cfg,
        connect_timeout=entry.connect_timeout_s,
        connect_kwargs=connect_kwargs,
    )
    client = conn.client
    if entry.strict_host_key_checking:
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
    else:
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    known = entry.known_hosts or conn.ssh_config.get("userknownhostsfile") or "~/.ssh/known_hosts"
    known = os.path.expanduser(str(known).split()[0])
    if os.path.exists(known):
        client.get_host_keys().load(known)
    return conn


def describe_ssh_error(host: Host, exc: BaseException) -> str:
    """One clear sentence for every way an SSH connection fails."""
    import paramiko

    entry = host.entry
    where = f"{entry.user + '@' if entry.user else ''}{entry.ssh_alias or entry.address or host.name}:{entry.port or 22}"
    if isinstance(exc, paramiko.BadHostKeyException):
        return f"{host.name}: SSH host key mismatch for {where}: the host's key changed (possible MITM); fix known_hosts"
    if isinstance(exc, paramiko.AuthenticationException):
        return f"{host.name}: SSH authentication failed for {where} (key rejected)"
    text = str(exc)
    if isinstance(exc, paramiko.SSHException) and "known_hosts" in text:
        return f"{host.name}: SSH host key of {where} is unknown (not in known_hosts); add it, or set strict_host_key_checking: false for this host"
    if isinstance(exc, (ConnectionRefusedError, paramiko.ssh_exception.NoValidConnectionsError)):
        return f"{host.name}: SSH connection refused by {where}"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return f"{host.name}: SSH connection to {where} timed out"
    if isinstance(exc, socket.gaierror):
        return f"{host.name}: cannot resolve {where}: {exc}"
    if isinstance(exc, (EOFError, paramiko.SSHException, OSError)):
        return f"{host.name}: SSH connection to {where} failed or dropped: {type(exc).__name__}: {text or 'connection lost'}"
    return f"{host.name}: SSH error on {where}: {type(exc).__name__}: {text}"
