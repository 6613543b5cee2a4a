"""Helpers of the restore-drill tests (tests/compose/test_drill.py): a ragops.yaml + policies for the
real Compose stack (``docker.data_tasks: containers``, api.url of the live API, drill queries), the
live stack's state (container ids and start times, hashes of the live volumes) and the drill objects
left on the engine."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import yaml

from ragops.config import load_config
from ragops.restore.run import Options, make_restore_test_step
from ragops.runner import run_host
from ragops.seam import Target
from tests.fixtures.backup_helpers import ResticRepoReads
from tests.fixtures.compose_stack import Stack

PW = "correct horse battery staple\n"


def make_queries(stack: Stack, nonce: str, n: int = 4) -> list[dict[str, Any]]:
    """/query paths whose texts no other test asks (the API caches answers in Redis for 300 s)."""
    out = []
    for name, ids in stack.seeded.items():
        for doc_id in ids[: n // 2]:
            q = f"{stack.documents[name][doc_id]} {nonce}"
            out.append({"path": f"/query?q={quote_plus(q)}&k=5&collection={name}"})
    return out


class DrillEnv(ResticRepoReads):
    """ragops.yaml (host local, deployment compose, data_tasks containers, api.url) + a restic repo +
    policies: ``t`` (the drill's defaults plus ``drill``) and any added with :meth:`add_policy`."""

    def __init__(self, stack: Stack, root: Path, drill: dict[str, Any]) -> None:
        self.stack, self.root = stack, root
        root.mkdir(parents=True, exist_ok=True)
        self.repo, self.pw, self.staging = root / "repo", root / "pw", root / "staging"
        self.history = root / "state" / "drill-history.jsonl"  # restore_test.drill.history_file of every policy
        self.pw.write_text(PW)
        (root / "policies").mkdir(exist_ok=True)
        self.add_policy("t", drill)
        engine = stack.engine
        settings = {
            "deployment": "compose", "lock_path": str(root / "lock"), "metrics_dir": str(root / "metrics"),
            "redis": {"host": "127.0.0.1", "port": stack.redis_port},
            "api": {"url": f"http://127.0.0.1:{stack.api_port}", "timeout_s": 20},
            "backup": {"policy": "t", "policies_dir": str(root / "policies"), "staging_dir": str(self.staging)},
            "docker": {"docker_host": engine.host, "docker_config": engine.overrides["DOCKER_CONFIG"],
                       "cli": str(engine.docker), "compose_project": stack.name, "compose_file": str(stack.file),
                       "data_tasks": "containers"},
        }
        self.config = root / "ragops.yaml"
        self.config.write_text(yaml.safe_dump({"defaults": settings}, sort_keys=False))
        self.restic("init")

    # -- what tests.fixtures.restore_helpers.craft_snapshot uses (``w.env.*``, ``w.snapshot_id``)
    @property
    def env(self) -> DrillEnv:
        return self

    def restic(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["restic", "-r", str(self.repo), "--password-file", str(self.pw), "--cache-dir",
                               str(self.root / "cache"), *args], capture_output=True, text=True, check=check, timeout=300)


    def add_policy(self, name: str, drill: dict[str, Any], budget: float | None = None) -> None:
        policy = {"repository": {"url": str(self.repo), "password_file": str(self.pw), "cache_dir": str(self.root / "cache")},
                  "sources": {"redis": {"sample_keys": 64},
                              "chroma": {"strategy": "stop", "stop": {"compose_service": "chroma", "timeout_s": 60},
                                         "copy_mode": "mirror", "probes": 3, "probe_k": 5}},
                  "retention": {"keep_last": 50}, "tags": ["test"],
                  "restore_test": {"drill": {"history_file": str(self.history), **drill},
                                   **({"rto_budget_s": budget} if budget else {})}}
        (self.root / "policies" / f"{name}.yaml").write_text(yaml.safe_dump(policy, sort_keys=False))

    def host(self) -> Any:
        return load_config(str(self.config), environ={}).hosts["local"]

    def target(self) -> Target:
        return Target(host=self.host())

    def backup(self) -> str:
        from ragops.backup.step import run_backup

        result = run_backup(self.target())
        assert result.status == "ok", result.message
        return str(result.details["snapshot_id"])

    def drill(self, **options: Any) -> Any:
        """restore-test --drill in-process; returns the step result."""
        opts = Options(drill=True, **options)
        return run_host(self.target(), "restore-test", [make_restore_test_step(self.host(), opts)]).steps[0]


def failed(step: Any) -> list[str]:
    return [c["check"] for c in step.details["checks"] if not c["ok"]]


def check(step: Any, name: str) -> dict[str, Any]:
    found = [c for c in step.details["checks"] if c["check"] == name]
    assert found, (name, [c["check"] for c in step.details["checks"]])
    return dict(found[0])


def hash_volume(path: Path) -> dict[str, str]:
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


def live_state(stack: Stack) -> dict[str, Any]:
    """What a drill must never change: each live container's id, start time and image, and every
    file of the live volumes (by sha256)."""
    containers = {s: (c["Id"], c["State"]["StartedAt"], c["Image"])
                  for s in ("chroma", "redis", "api") for c in [stack.container(s)]}
    return {"containers": containers, "chroma_data": hash_volume(stack.mountpoint("chroma_data")),
            "redis_data": hash_volume(stack.mountpoint("redis_data"))}


def drill_objects(stack: Stack) -> dict[str, list[str]]:
    """Every drill container, volume and fill container on the engine (none after a drill)."""
    e = stack.engine
    return {k: v for k, v in {
        "containers": e.run("ps", "-a", "--filter", "label=ragops.drill", "--format", "{{.Names}}").stdout.split(),
        "volumes": e.run("volume", "ls", "-q", "--filter", "label=ragops.drill").stdout.split(),
        "throwaways": e.run("ps", "-a", "--filter", "label=ragops.throwaway", "--format", "{{.Names}}").stdout.split(),
    }.items() if v}


def scratch_dirs(env: DrillEnv) -> list[Path]:
    return list((env.root / "staging-restore-test").glob("restore-test-*"))


def read_metrics(env: DrillEnv) -> str:
    return (env.root / "metrics" / "ragops_restore_verify.prom").read_text()


def report_json(stdout: str) -> dict[str, Any]:
    return dict(json.loads(stdout))
