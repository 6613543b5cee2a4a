"""The embedded demo deployment: a real redis-server, a real ChromaDB dir, a small RAG API.

``invoke demo.up`` creates it under ``$RAGOPS_DEMO_DIR`` (default /tmp/ragops-demo) and starts the
processes (pids in ``DIR/run``); ``invoke demo.down`` stops them by pid. With no ragops.yaml,
``--host local`` maintains this deployment (see :func:`make_demo_config_text`).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import time
from pathlib import Path

from .demo_config import (
    COLLECTIONS,
    DAY,
    DEFAULT_API_PORT,
    DEFAULT_REDIS_PORT,
    DIMENSION,
    demo_dir,
    read_state,
)
from .demo_config import make_demo_config_text as make_demo_config_text
from .errors import RagopsError, StepError
from .seam import pid_alive, spawn_background, stop_pid

DEMO_POLICY = """# The demo deployment's backups: a local restic repository inside the demo dir.
description: Demo snapshots of Redis, Chroma and the demo's configuration.
repository:
  url: {root}/restic
  password_file: {root}/secrets/restic-password
sources:
  redis: {{enabled: true}}
  chroma: {{enabled: true, strategy: live, live_retries: 3}}
  paths:
    - path: {root}/config
retention: {{keep_last: 3, keep_daily: 7}}
tags: [ragops, demo]
schedule: "0 3 * * *"
check: {{cadence: "0 4 * * 0", read_data_subset: "10%"}}
restore_test: {{cadence: "0 5 * * 0", rto_budget_s: 600}}
"""


def make_backup_setup(root: Path) -> str:
    """The demo's backup policy, restic password (0600), a config dir to back up, an initialized repo."""
    import secrets

    from .seam import run_local

    (root / "policies").mkdir(parents=True, exist_ok=True)
    (root / "policies" / "demo.yaml").write_text(DEMO_POLICY.format(root=root))
    (root / "config").mkdir(parents=True, exist_ok=True)
    (root / "config" / "rag-engine.yaml").write_text("model: demo-random-16d\ncollections: [docs, faq]\n")
    password = root / "secrets" / "restic-password"
    if not password.exists():
        password.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        password.touch(mode=0o600)
        password.write_text(secrets.token_urlsafe(24) + "\n")
    repo = root / "restic"
    if not (repo / "config").exists():
        res = run_local(["restic", "-r", str(repo), "--password-file", str(password), "init"], timeout=60)
        if not res.ok:
            raise StepError(f"demo: restic init {repo} failed: {res.stderr.strip()[-300:]}")
    return str(repo)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_port(port: int, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(port):
            return
        time.sleep(0.05)
    raise StepError(f"demo: {what} did not start listening on 127.0.0.1:{port} within {timeout:.0f}s")


def make_files(root: Path, now: float | None = None) -> dict[str, int]:
    """Log and temp files, old and new, so cleanup has something to do (and something to keep)."""
    now = time.time() if now is None else now
    made = {"old": 0, "new": 0}
    for sub in ("logs", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    specs = [("logs/api.log", 0), ("logs/ingest.log", 1), ("logs/api-2026-01.log", 30), ("logs/worker.log", 12),
             ("logs/notes.txt", 40), ("tmp/upload-new.part", 0), ("tmp/upload-old.part", 3), ("tmp/cache/old.bin", 5)]
    for rel, age_days in specs:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * (4096 * (1 + age_days)))
        os.utime(path, (now - age_days * DAY - 3600, now - age_days * DAY - 3600))
        made["old" if age_days > 1 else "new"] += 1
    return made


def make_chroma(path: Path) -> dict[str, int]:
    """A real ChromaDB persistent dir with explicit embeddings (no model download)."""
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    try:
        import chromadb
        import numpy as np
        from chromadb.config import Settings
    except ImportError as exc:
        raise RagopsError(f"demo: chromadb is not installed ({exc}); run scripts/setup.sh") from None
    client = chromadb.PersistentClient(path=str(path), settings=Settings(anonymized_telemetry=False))
    rng = np.random.default_rng(7)
    counts = {}
    for name, n in COLLECTIONS.items():
        col = client.get_or_create_collection(name, embedding_function=None,
                                              metadata={"hnsw:space": "cosine", "embedding_model": "demo-random-16d"})
        if col.count() < n:
            ids = [f"{name}-{i:05d}" for i in range(n)]
            col.upsert(ids=ids, embeddings=rng.random((n, DIMENSION)).astype("float32").tolist(),
                       documents=[f"{name} document {i}" for i in range(n)],
                       metadatas=[{"source": f"{name}.md", "n": i} for i in range(n)])
        counts[name] = col.count()
    del client
    return counts


def up(root: Path | None = None) -> dict[str, object]:
    """Create (idempotently) and start the demo deployment; returns its state."""
    root = root or demo_dir()
    run = root / "run"
    run.mkdir(parents=True, exist_ok=True)
    for sub in ("redis", "metrics", "logrotate.d"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    state = read_state(root)
    if not (run / "state.json").exists():
        state = {"redis_port": DEFAULT_REDIS_PORT if not port_open(DEFAULT_REDIS_PORT) else free_port(),
                 "api_port": DEFAULT_API_PORT if not port_open(DEFAULT_API_PORT) else free_port()}
        (run / "state.json").write_text(json.dumps(state))
    counts = make_chroma(root / "chroma")
    made = make_files(root)
    repo = make_backup_setup(root)
    redis_pid = _start(run / "redis.pid", state["redis_port"], "redis-server", [
        shutil.which("redis-server") or "redis-server", "--port", str(state["redis_port"]), "--bind", "127.0.0.1",
        "--dir", str(root / "redis"), "--save", "3600 1", "--daemonize", "no", "--logfile", str(root / "logs" / "redis-server.log")],
        root)
    _seed_redis(state["redis_port"])
    api_pid = _start(run / "api.pid", state["api_port"], "demo API", [
        sys.executable, "-m", "ragops.demo_api", "--port", str(state["api_port"]), "--redis-port", str(state["redis_port"]),
        "--chroma", str(root / "chroma")], root)
    return {"dir": str(root), **state, "redis_pid": redis_pid, "api_pid": api_pid, "collections": counts, "files": made,
            "restic_repository": repo}


def _start(pid_file: Path, port: int, what: str, argv: list[str], root: Path) -> int:
    if pid_file.exists():
        pid = int(pid_file.read_text().strip() or 0)
        if pid and pid_alive(pid) and port_open(port):
            return pid
    if port_open(port):
        raise StepError(f"demo: port {port} for the {what} is taken by another process")
    env = dict(os.environ, ANONYMIZED_TELEMETRY="False", PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    pid = spawn_background(argv, log_path=str(root / "run" / f"{pid_file.stem}.out"), env=env)
    pid_file.write_text(str(pid))
    wait_port(port, what)
    return pid


def _seed_redis(port: int) -> None:
    """A few hundred cache keys and one saved RDB, so persistence checks have a real last save."""
    from .demo_api import connect_redis

    client = connect_redis(port)
    if client.dbsize() < 500:
        client.mset({f"cache:query:{i:04d}": f"answer {i}" for i in range(500)})
    client.save()
    client.close()


def down(root: Path | None = None) -> list[str]:
    """Stop the demo processes by pid; data stays (use --purge to remove the directory)."""
    root = root or demo_dir()
    stopped = []
    for name in ("api", "redis"):
        pid_file = root / "run" / f"{name}.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text().strip() or 0)
            if pid and stop_pid(pid):
                stopped.append(f"{name} (pid {pid})")
            pid_file.unlink()
    return stopped
