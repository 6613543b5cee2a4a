"""Chroma held by PAUSING a Compose service (`strategy: pause`, `pause.compose_service`) on the real
stack: the writer's container (here the API: the stack has no separate ingestion service) is frozen
with `docker pause` around the copy and thawed afterwards, also after a SIGTERM mid-backup; the
Chroma server itself is refused (a frozen server's files are only crash-consistent).

One stack for the module (``data_stack``) on the 20.10 engine only (`docker pause` is the same CLI
call on 26.1; the hold's ordering is what is tested).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from ragops.backup.step import run_backup
from ragops.errors import ConfigError
from tests.fixtures.compose_data import Env, events, restore_test, run_and_signal, throwaways
from tests.fixtures.compose_stack import Stack

ONE_ENGINE = pytest.mark.parametrize("stack_engine", ["docker-20"], indirect=True)


def pause_env(stack: Stack, root: Path, service: str = "api", redis: bool = True) -> Env:
    return Env(stack, root, policy_sources={
        "redis": {"sample_keys": 16, "enabled": redis},
        "chroma": {"strategy": "pause", "pause": {"compose_service": service, "timeout_s": 60},
                   "copy_mode": "mirror", "probes": 2, "probe_k": 5}})


def at(e: dict[str, Any]) -> int:
    return int(e.get("timeNano") or e["time"] * 10**9)


@ONE_ENGINE
def test_the_writer_is_paused_for_the_copy_and_unpaused_after(data_stack: Stack, tmp_path: Path) -> None:
    env = pause_env(data_stack, tmp_path)
    api = data_stack.container("api")
    chroma_started = data_stack.container("chroma")["State"]["StartedAt"]
    t0 = time.time()
    result = run_backup(env.target())
    took = time.time() - t0
    assert result.status == "ok", result.message
    seen = events(data_stack, t0)
    mine = [e for e in seen if e.get("id") == api["Id"] and e.get("Action") in ("pause", "unpause")]
    assert [e["Action"] for e in mine] == ["pause", "unpause"], mine
    copies = [e for e in seen if e.get("Action") in ("create", "destroy")
              and (e.get("Actor", {}).get("Attributes") or {}).get("ragops.throwaway") == "chroma-copy"]
    assert [e["Action"] for e in copies] == ["create", "destroy"], copies
    assert at(mine[0]) < at(copies[0]) < at(copies[1]) < at(mine[1])  # the whole copy ran with the writer frozen
    state = data_stack.engine.inspect(api["Id"])[0]["State"]
    assert state["Status"] == "running" and not state["Paused"]
    assert data_stack.container("chroma")["State"]["StartedAt"] == chroma_started  # Chroma never stopped
    chroma = next(r for r in result.details["sources"] if r["kind"] == "chroma")
    assert chroma["strategy"] == "pause" and chroma["hold_s"] > 0
    assert restore_test(env).status == "ok" and throwaways(data_stack) == []
    print(f"backup with the API paused: {took:.1f}s, hold {chroma['hold_s']:.2f}s")


@ONE_ENGINE
def test_sigterm_while_the_writer_is_paused_unpauses_it(data_stack: Stack, tmp_path: Path) -> None:
    env = pause_env(data_stack, tmp_path)
    api = data_stack.container("api")["Id"]
    res = run_and_signal(env, "backup", lambda: data_stack.engine.inspect(api)[0]["State"]["Paused"])
    assert res.returncode == 130 and "interrupted by SIGTERM" in res.stdout + res.stderr, res.stderr[-2000:]
    state = data_stack.engine.inspect(api)[0]["State"]
    assert state["Status"] == "running" and not state["Paused"], state
    assert data_stack.api("/health")[0] == 200
    assert throwaways(data_stack) == [] and env.snapshots() == [] and not list(env.staging.glob("run-*"))


@ONE_ENGINE
def test_pausing_the_chroma_server_itself_is_refused(data_stack: Stack, tmp_path: Path) -> None:
    env = pause_env(data_stack, tmp_path, service="chroma", redis=False)
    with pytest.raises(ConfigError, match="crash-consistent"):  # exit 2 from `invoke backup`
        run_backup(env.target())
    assert not list(env.staging.glob("run-*")) and env.snapshots() == []
    assert not data_stack.engine.inspect(data_stack.container("chroma")["Id"])[0]["State"]["Paused"]


def test_pause_settings_take_one_way_and_the_commands_always_thaw() -> None:
    """No engine: the policy section's validation and the planned commands."""
    from pydantic import ValidationError

    from ragops.backup.policy_sources import PauseSettings
    from ragops.backup.sources.chroma_containers import make_pause_commands

    assert PauseSettings(compose_service="ingest").pre is None
    for bad, why in [({"pre": "a"}, "set pre and post"), ({}, "or compose_service"),
                     ({"compose_service": "w", "post": "b"}, "not both")]:
        with pytest.raises(ValidationError, match=why):
            PauseSettings(**bad)
    pause, thaw = make_pause_commands("docker", ["rag-ingest-1", "rag-ingest-2"])
    assert pause == "docker pause rag-ingest-1 rag-ingest-2 >/dev/null"
    assert "for n in rag-ingest-1 rag-ingest-2" in thaw and 'docker unpause "$n"' in thaw and "exit $rc" in thaw
