"""The live RAG store of one bench_scale round, on the filesystem under test.

On the fs: `chroma/` (the cached dataset copied in; a btrfs subvolume on btrfs), `redis/dump.rdb`,
and later `staging/` (ragops' backup.staging_dir), `staging-restore-test/` (its scratch) and
`plain-restore/`. On the aux tmpfs: both restic repos and caches, ragops.yaml + policy, the Chroma
server's state (scale_ctl), logs. Running: redis-server (free loopback port, --dir on the fs,
--save ''), the Chroma server `chroma run --path chroma/` (the writer; detached, via scale_ctl), and
the query load (scale_load.py).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from scale_data import fill_redis_values
from scale_fs import Fs, sh

from tests.fixtures.services import free_port, start_process, stop_process, wait_for

HERE = Path(__file__).resolve().parent
PY = sys.executable
PASSWORD = "bench-scale correct horse\n"


class Live:
    def __init__(self, fs: Fs, aux: Path, dataset: dict[str, Any], restic: str) -> None:
        self.fs, self.aux, self.dataset, self.restic_bin = fs, aux, dataset, restic
        self.chroma, self.redis_dir = fs.root / "chroma", fs.root / "redis"
        self.staging, self.plain_restore = fs.root / "staging", fs.root / "plain-restore"
        self.state, self.logs = aux / "chroma-state", aux / "logs"
        self.pw = aux / "restic-pw"
        self.repos = {"ragops": aux / "repo-ragops", "plain": aux / "repo-plain"}
        self.caches = {"ragops": aux / "cache-ragops", "plain": aux / "cache-plain"}
        self.redis_proc: subprocess.Popen[bytes] | None = None
        self.load_proc: subprocess.Popen[bytes] | None = None
        self.redis_port = self.chroma_port = 0
        self.keys_added = self.vectors_added = 0

    # ------------------------------------------------------------------ up / down
    def up(self) -> None:
        for d in (self.state, self.logs):
            d.mkdir(parents=True)
        src = Path(self.dataset["dir"])
        self.fs.make_data_dir(self.chroma)
        sh("cp", "-a", "--reflink=never", f"{src / 'chroma'}/.", str(self.chroma))
        self.redis_dir.mkdir()
        sh("cp", "-a", "--reflink=never", str(src / "redis" / "dump.rdb"), str(self.redis_dir))
        subprocess.run(["sync", "-f", str(self.fs.root)], check=False)
        self.redis_port = free_port()
        log = self.logs / "redis.log"
        self.redis_proc = start_process(["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
                                         "--dir", str(self.redis_dir), "--save", "", "--appendonly", "no",
                                         "--logfile", str(log)], self.logs / "redis.stdout")
        wait_for(lambda: self.redis().ping(), "redis-server", self.redis_proc, log, 120)
        while self.redis().info("persistence").get("loading"):
            time.sleep(0.1)
        self.chroma_port = free_port()
        (self.state / "server.json").write_text(json.dumps({"chroma": str(Path(PY).parent / "chroma"),
                                                            "data_dir": str(self.chroma), "port": self.chroma_port}))
        subprocess.run([PY, str(HERE / "scale_ctl.py"), "start", str(self.state)], check=True)
        self.load_proc = start_process([PY, str(HERE / "scale_load.py"), "--port", str(self.chroma_port),
                                        "--log", str(self.latency_log)], self.logs / "load.stdout",
                                       env={**os.environ, "ANONYMIZED_TELEMETRY": "False"})
        self.pw.write_text(PASSWORD)
        for side in self.repos:
            self.restic(side, "init")

    def down(self) -> None:
        if self.load_proc:
            stop_process(self.load_proc, grace=5)
        if self.state.exists():
            subprocess.run([PY, str(HERE / "scale_ctl.py"), "stop", str(self.state)], check=False)
        if self.redis_proc:
            stop_process(self.redis_proc, grace=10)

    @property
    def latency_log(self) -> Path:
        return self.logs / "latency.log"

    @property
    def events(self) -> Path:
        return self.state / "events.jsonl"

    def server_pid(self) -> int | None:
        try:
            return int((self.state / "server.pid").read_text())
        except (OSError, ValueError):
            return None

    # ------------------------------------------------------------------ data changes
    def redis(self) -> Any:
        import redis

        return redis.Redis(host="127.0.0.1", port=self.redis_port, socket_timeout=600)

    def bgsave(self) -> float:
        """BGSAVE and wait for it (the plain baseline backs up the dump on disk, so it must be fresh)."""
        client, t0 = self.redis(), time.monotonic()
        before = client.info("persistence")["rdb_saves"] if "rdb_saves" in client.info("persistence") else None
        last = client.lastsave()
        client.bgsave()
        while True:
            info = client.info("persistence")
            done = (info.get("rdb_saves") != before) if before is not None else client.lastsave() != last
            if not info["rdb_bgsave_in_progress"] and done:
                return round(time.monotonic() - t0, 3)
            time.sleep(0.05)

    def add_keys(self, fraction: float) -> int:
        n = max(1, int(self.dataset["keys"] * fraction))
        fill_redis_values(self.redis(), self.dataset["keys"] + self.keys_added, n, seed=1000 + self.keys_added)
        self.keys_added += n
        return n

    def add_vectors(self, fraction: float) -> int:
        """Add fraction x vectors (split over both collections) through the running Chroma server."""
        import chromadb
        import numpy as np
        from chromadb.config import Settings

        client = chromadb.HttpClient(host="127.0.0.1", port=self.chroma_port, settings=Settings(anonymized_telemetry=False))
        rng = np.random.default_rng(500 + self.vectors_added)
        total = max(2, int(self.dataset["vectors"] * fraction))
        for name, n in (("docs", total // 2), ("faq", total - total // 2)):
            col = client.get_collection(name)
            for start in range(0, n, 1000):
                m = min(1000, n - start)
                vectors = rng.normal(size=(m, self.dataset["dims"])).astype(np.float32)
                col.add(ids=[f"{name}-add{self.vectors_added + start + j}" for j in range(m)], embeddings=vectors)
        self.vectors_added += total
        return total

    # ------------------------------------------------------------------ restic + ragops config
    def restic_argv(self, side: str, *args: str) -> list[str]:
        return [self.restic_bin, "-r", str(self.repos[side]), "--password-file", str(self.pw),
                "--cache-dir", str(self.caches[side]), *args]

    def restic(self, side: str, *args: str) -> str:
        return sh(*self.restic_argv(side, *args))

    def plain_backup_argv(self) -> list[str]:
        return self.restic_argv("plain", "backup", "--json", "--tag", "plain", str(self.chroma), str(self.redis_dir))

    def write_config(self, strategy: str, copy_mode: str | None, server_url: bool) -> Path:
        ctl = f"{shlex.quote(PY)} {shlex.quote(str(HERE / 'scale_ctl.py'))}"
        chroma: dict[str, Any] = {"enabled": True, "strategy": strategy}
        if copy_mode:
            chroma["copy_mode"] = copy_mode
        if server_url:
            chroma["server_url"] = f"http://127.0.0.1:{self.chroma_port}"
        if strategy == "stop":
            chroma["stop"] = {"command": f"{ctl} stop {shlex.quote(str(self.state))}",
                              "start_command": f"{ctl} start {shlex.quote(str(self.state))}", "timeout_s": 600}
        if strategy == "pause":
            chroma["pause"] = {"pre": f"{ctl} pause {shlex.quote(str(self.state))}",
                               "post": f"{ctl} resume {shlex.quote(str(self.state))}", "timeout_s": 600}
        policy = {"repository": {"url": str(self.repos["ragops"]), "password_file": str(self.pw),
                                 "cache_dir": str(self.caches["ragops"])},
                  "sources": {"redis": {"enabled": True}, "chroma": chroma, "paths": []},
                  "retention": {"keep_last": 100}, "tags": ["bench"]}
        policies = self.aux / "policies"
        policies.mkdir(exist_ok=True)
        (policies / "scale.yaml").write_text(yaml.safe_dump(policy, sort_keys=False))
        settings = {"lock_path": str(self.aux / "ragops.lock"), "metrics_dir": str(self.aux / "metrics"),
                    "redis": {"host": "127.0.0.1", "port": self.redis_port},
                    "chroma": {"data_dir": str(self.chroma)},
                    "backup": {"policy": "scale", "policies_dir": str(policies), "staging_dir": str(self.staging),
                               "restic": self.restic_bin, "chroma_python": PY}}
        config = self.aux / "ragops.yaml"
        config.write_text(yaml.safe_dump({"defaults": settings}, sort_keys=False))
        return config
