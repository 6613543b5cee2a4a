"""Resolved hosts (``Host``, ``LoadedConfig``) and --host selection: names and @groups, with
did-you-mean hints."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from .schema import LOCAL, Connection, HostSettings, RagopsConfig


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
