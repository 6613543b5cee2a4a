"""Plan-time checks of a task's backup policy: resolved and validated before any host runs, so a
wrong ``--policy``, a broken policy file or a missing password file is a usage error (exit 2)
that records nothing (no lock, no metrics, no ping, no restore-test record)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ..config import Host
from ..errors import ConfigError

if TYPE_CHECKING:
    from ..backup.policy import Policy


def require_policy(host: Host, name: str | None, *, optional: bool = False) -> Policy | None:
    """The host's policy (``--policy`` or ``backup.policy``), validated now. ``optional``: a host
    without any policy is fine (the task reports it skipped); a named one must exist."""
    from ..backup.policy import load_host_policy

    if name is not None and not name.strip():
        raise ConfigError("--policy: must not be empty")
    policy = load_host_policy(host, name)
    if policy is None:
        if optional:
            return None
        raise ConfigError(f"{host.name}: no backup policy configured (set backup.policy or pass --policy)")
    from ..backup.policy import resolve_policies_dir

    where = resolve_policies_dir(host.settings.backup.policies_dir, host.source) / f"{name or host.settings.backup.policy}.yaml"
    check_password_files(host, policy, str(where))
    return policy


def check_password_files(host: Host, policy: Policy, source: str) -> None:
    """A repository password file that is missing or unreadable, named with its field. Checked
    here for the local host (the controller's own files); on a remote host restic reports it."""
    if not host.is_local:
        return
    for role, repo in (("repository", policy.repository), ("secondary", policy.secondary)):
        if repo is None or not repo.password_file:
            continue
        path = os.path.expanduser(repo.password_file)
        if not os.path.isfile(path) or not os.access(path, os.R_OK):
            why = "not readable" if os.path.exists(path) else "does not exist"
            raise ConfigError(f"{source}: {role}.password_file: {repo.password_file} {why} (on host {host.name})")
