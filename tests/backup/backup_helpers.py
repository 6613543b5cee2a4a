"""Helpers for the backup tests and bench/bench_backup.py: real Chroma dirs, filled Redis servers,
a local host config with a backup policy and a real restic repository, restore helpers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
VENV_PYTHON = str(Path(sys.executable))
PROBE = REPO / "ragops" / "remote" / "redis_probe.py"
INSPECT = REPO / "ragops" / "remote" / "chroma_inspect.py"


def make_chroma_dir(path: Path, collections: dict[str, int], dims: int = 32, seed: int = 7,
                    latent: int | None = None) -> dict[str, int]:
    """A real ChromaDB persistent dir: collections of random vectors (first one cosine + model metadata).
    With ``latent``, embedding-like vectors: a ``latent``-d space projected to ``dims`` plus noise (real
    embeddings have a low intrinsic dimension; uniform 384-d vectors are so crowded that HNSW misses
    6-11% of exact self-matches, in the live store too)."""
    import chromadb
    import numpy as np
    from chromadb.config import Settings

    os.environ["ANONYMIZED_TELEMETRY"] = "False"
    client = chromadb.PersistentClient(path=str(path), settings=Settings(anonymized_telemetry=False))
    rng = np.random.default_rng(seed)
    projection = rng.normal(size=(latent, dims)).astype(np.float32) if latent else None
    for i, (name, count) in enumerate(collections.items()):
        meta = {"hnsw:space": "cosine", "embedding_model": "all-MiniLM-L6-v2"} if i == 0 else {"hnsw:space": "l2"}
        col = client.get_or_create_collection(name, embedding_function=None, metadata=meta)
        for start in range(0, count, 5000):
            n = min(5000, count - start)
            if projection is None:
                vectors = rng.random((n, dims), dtype=np.float32)
            else:
                vectors = (rng.normal(size=(n, latent)).astype(np.float32) @ projection
                           + rng.normal(scale=0.05, size=(n, dims))).astype(np.float32)
            col.add(ids=[f"{name}-{start + j}" for j in range(n)], embeddings=vectors.tolist())
    del client
    return collections


def fill_redis(server: Any, n: int) -> None:
    """n string keys (pipelined) plus one hash, list, set and zset; db 1 gets a few keys too."""
    client = server.client()
    pipe = client.pipeline(transaction=False)
    for i in range(n):
        pipe.set(f"key:{i}", f"value-{i}")
        if i % 10000 == 9999:
            pipe.execute()
    pipe.hset("h:1", mapping={"b": "2", "a": "1"})
    pipe.rpush("l:1", "z", "y", "x")
    pipe.sadd("s:1", "q", "p")
    pipe.zadd("z:1", {"m": 1.5, "n": 0.5})
    pipe.execute()
    server.client(db=1).set("other-db", "1")


@dataclass
class BackupEnv:
    root: Path
    repo: Path
    password_file: Path
    policies: Path
    staging: Path
    config: Path
    cache: Path

    def target(self, *, dry: bool = False) -> Any:
        from ragops.config import load_config
        from ragops.seam import Target

        loaded = load_config(str(self.config), environ={})
        return Target(host=loaded.hosts["local"], dry=dry)

    def restic(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = ["restic", "-r", str(self.repo), "--password-file", str(self.password_file),
                "--cache-dir", str(self.cache), *args]
        return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=300)

    def snapshots(self) -> list[dict[str, Any]]:
        return json.loads(self.restic("snapshots", "--json").stdout or "[]")

    def restore(self, snapshot_id: str, dest: Path) -> Path:
        self.restic("restore", snapshot_id, "--target", str(dest))
        return dest

    def manifest(self, restored: Path) -> dict[str, Any]:
        found = list(restored.rglob("ragops-manifest.json"))
        assert len(found) == 1, found
        return json.loads(found[0].read_text())


def make_backup_env(tmp: Path, *, redis: Any = None, chroma_dir: Path | None = None, strategy: str = "live",
                    chroma_extra: dict[str, Any] | None = None, paths: list[dict[str, Any]] | None = None,
                    policy_extra: dict[str, Any] | None = None, staging: Path | None = None,
                    redis_password_env: str | None = None, init: bool = True, repo_url: str | None = None,
                    settings_extra: dict[str, Any] | None = None) -> BackupEnv:
    """ragops.yaml (host local) + backup-policies/t.yaml + an initialized local restic repo."""
    root = tmp / "bk"
    env = BackupEnv(root=root, repo=root / "repo", password_file=root / "restic-pw", policies=root / "policies",
                    staging=staging or root / "staging", config=root / "ragops.yaml", cache=root / "cache")
    env.policies.mkdir(parents=True, exist_ok=True)
    env.password_file.write_text("correct horse battery staple\n")
    chroma = {"enabled": chroma_dir is not None, "strategy": strategy, "data_dir": str(chroma_dir) if chroma_dir else None,
              "probes": 5, "probe_k": 10, **(chroma_extra or {})}
    policy = {
        "repository": {"url": repo_url or str(env.repo), "password_file": str(env.password_file), "cache_dir": str(env.cache)},
        "sources": {"redis": {"enabled": redis is not None, "sample_keys": 256}, "chroma": chroma, "paths": paths or []},
        "retention": {"keep_last": 20}, "tags": ["test"], **(policy_extra or {}),
    }
    (env.policies / "t.yaml").write_text(yaml.safe_dump(policy, sort_keys=False))
    settings: dict[str, Any] = {
        "lock_path": str(root / "ragops.lock"), "metrics_dir": str(root / "metrics"),
        "redis": ({"host": "127.0.0.1", "port": redis.port, **({"password_env": redis_password_env} if redis_password_env else {})}
                  if redis is not None else {"enabled": False}),
        "chroma": {"data_dir": str(chroma_dir)} if chroma_dir else {},
        "backup": {"policy": "t", "policies_dir": str(env.policies), "staging_dir": str(env.staging),
                   "chroma_python": VENV_PYTHON},
        **(settings_extra or {}),
    }
    env.config.write_text(yaml.safe_dump({"defaults": settings}, sort_keys=False))
    if init:
        env.restic("init")
    return env


def run_probe(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ragops/remote/redis_probe.py the way the seam does (script on stdin) and parse its JSON."""
    res = subprocess.run(["python3", "-", *args], input=PROBE.read_text(), capture_output=True, text=True,
                         env={**os.environ, **(env or {})}, timeout=120)
    return json.loads(res.stdout.strip().splitlines()[-1])


def run_inspect(*args: str) -> dict[str, Any]:
    res = subprocess.run([VENV_PYTHON, "-", *args], input=INSPECT.read_text(), capture_output=True, text=True,
                         env={**os.environ, "ANONYMIZED_TELEMETRY": "False"}, timeout=300)
    return json.loads(res.stdout.strip().splitlines()[-1])


def run_dirs(staging: Path) -> list[str]:
    """The per-run dirs left in a staging dir (each run removes its own; ``stable/`` stays by design)."""
    return sorted(p.name for p in staging.iterdir() if p.name.startswith("run-")) if staging.exists() else []


def files_below(path: Path) -> list[str]:
    """Every file (not dir) below ``path``, relative: what a failed run left taking disk space."""
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if not p.is_dir()) if path.exists() else []


def source_record(manifest: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(s for s in manifest["sources"] if s["kind"] == kind)


def restored_path(restored: Path, path: str) -> Path:
    return restored / path.lstrip("/")


def assert_restored_sources_valid(target: Any, restored: Path, manifest: dict[str, Any], workdir: Path) -> None:
    """The restored Chroma copy verifies against its record (chroma_inspect verify, in the venv that
    has chromadb) and the restored Redis dump passes redis-check-rdb and loads with the recorded keys."""
    from ragops.backup.sources.redis import run_dump_digest

    (workdir / "m.json").write_text(json.dumps(manifest))
    chroma = source_record(manifest, "chroma")
    verify = subprocess.run([VENV_PYTHON, "-", "verify", str(restored_path(restored, chroma["path"])), str(workdir / "m.json")],
                            input=INSPECT.read_text(), capture_output=True, text=True, timeout=300)
    doc = json.loads(verify.stdout.strip().splitlines()[-1])
    assert doc["ok"], [c for c in doc["checks"] if not c["ok"]]
    if not any(s["kind"] == "redis" for s in manifest["sources"]):
        return
    rec = source_record(manifest, "redis")
    dump = restored_path(restored, rec["path"])
    dump = dump / "dump.rdb" if dump.is_dir() else dump
    check = subprocess.run(["redis-check-rdb", str(dump)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout[-500:]
    loaded = run_dump_digest(target, str(dump.parent), sample=rec.get("sample_size") or 0)
    if rec.get("sample_digest"):
        assert loaded["db_keys"] == rec["db_keys"] and loaded["sample_digest"] == rec["sample_digest"]
    if isinstance(rec.get("keys_read"), int):  # check-rdb record: keys read by redis-check-rdb, expired ones included
        assert sum(loaded["db_keys"].values()) == rec["keys_read"] - int(rec.get("already_expired") or 0)

