"""Helpers shared by the end-to-end tests and the benchmarks: configs for real sshd "hosts",
trees of old and new files, hashing a tree, and running the ``invoke`` CLI as a subprocess."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
INVOKE = str(Path(sys.executable).parent / "invoke")
DAY = 86400


def make_host_entry(sshd: Any, address: str, **extra: Any) -> dict[str, Any]:
    """An inventory entry reaching ``address`` on the test sshd, with strict host key checking."""
    entry = {"address": address, "port": sshd.port, "user": sshd.user, "key_file": sshd.key_file,
             "known_hosts": sshd.known_hosts, "strict_host_key_checking": True, "connect_timeout_s": 5.0}
    entry.update(extra)
    return entry


def make_host_settings(base: Path, *, name: str = "host") -> dict[str, Any]:
    """Per-host settings rooted in ``base``: own log/temp roots, lock, metrics, logrotate path."""
    return {
        "logs": [{"root": str(base / "logs"), "patterns": ["*.log"], "max_age_days": 7}],
        "temp": [{"root": str(base / "tmp"), "patterns": ["*"], "max_age_days": 1}],
        "lock_path": str(base / "run" / "ragops.lock"),
        "metrics_dir": str(base / "metrics"),
        "logrotate": {"path": str(base / "logrotate.d" / "ragops")},
        "redis": {"enabled": False},
        "disk": {"warn_percent": 99, "fail_percent": 100, "inode_warn_percent": 99, "inode_fail_percent": 100},
    }


def write_config(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def write_fleet_config(path: Path, sshd: Any, addresses: list[str], base: Path, **top: Any) -> dict[str, Path]:
    """A ragops.yaml with hosts h2..hN (one per address), each with its own roots under ``base``.

    Returns host name -> that host's base directory."""
    hosts: dict[str, Any] = {}
    bases: dict[str, Path] = {}
    for address in addresses:
        name = "h" + address.rsplit(".", 1)[1]
        bases[name] = base / name
        hosts[name] = {**make_host_entry(sshd, address), **make_host_settings(bases[name]), "groups": ["fleet"]}
    write_config(path, {"hosts": hosts, **top})
    return bases


def set_age(path: Path, days: float, now: float | None = None) -> None:
    stamp = (time.time() if now is None else now) - days * DAY
    os.utime(path, (stamp, stamp), follow_symlinks=False)


def make_tree(base: Path, *, old: int = 3, new: int = 3, size: int = 100) -> dict[str, set[Path]]:
    """logs/ and tmp/ under ``base`` with old (deletable) and new (kept) files.

    Old: ``*.log`` of 10 days in logs/ (also in a subdir), temp files of 3 days. Kept: new logs,
    old files not matching the pattern, new temp files. Returns {"old": paths, "keep": paths}."""
    now = time.time()
    out: dict[str, set[Path]] = {"old": set(), "keep": set()}
    for sub in ("logs/app", "tmp/cache"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    for i in range(old):
        for rel, days in ((f"logs/old-{i}.log", 10), (f"logs/app/old-{i}.log", 30), (f"tmp/old-{i}.part", 3),
                          (f"tmp/cache/old-{i}.bin", 2)):
            p = base / rel
            p.write_bytes(b"o" * size)
            set_age(p, days, now)
            out["old"].add(p)
    for i in range(new):
        for rel, days in ((f"logs/new-{i}.log", 0), (f"logs/app/new-{i}.log", 6), (f"logs/old-{i}.txt", 40),
                          (f"tmp/new-{i}.part", 0)):
            p = base / rel
            p.write_bytes(b"n" * size)
            set_age(p, days, now)
            out["keep"].add(p)
    return out


def hash_tree(root: Path) -> dict[str, tuple[str, int, str]]:
    """Every entry below ``root`` (not following symlinks): kind, mtime_ns and content hash / link target."""
    result: dict[str, tuple[str, int, str]] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            if os.path.islink(p):
                result[p] = ("link", st.st_mtime_ns, os.readlink(p))
            elif os.path.isdir(p):
                result[p] = ("dir", st.st_mtime_ns, "")
            else:
                with open(p, "rb") as fh:
                    result[p] = ("file", st.st_mtime_ns, hashlib.sha256(fh.read()).hexdigest())
    return result


def files_under(root: Path) -> set[Path]:
    return {Path(d) / f for d, _, fs in os.walk(root) for f in fs}


@dataclass
class Cli:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def run_invoke(*args: str, env: dict[str, str] | None = None, timeout: float = 120, cwd: Path = REPO) -> Cli:
    """``invoke ARGS`` from the repo root, as a user runs it; returns exit code and output."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("RAGOPS_")}
    full_env.update({"COLUMNS": "200", "NO_COLOR": "1"})
    full_env.update(env or {})
    proc = subprocess.run([INVOKE, *args], cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)
    return Cli(proc.returncode, proc.stdout, proc.stderr)


def start_invoke(*args: str, env: dict[str, str] | None = None, cwd: Path = REPO) -> subprocess.Popen[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("RAGOPS_")}
    full_env.update({"COLUMNS": "200", "NO_COLOR": "1"})
    full_env.update(env or {})
    return subprocess.Popen([INVOKE, *args], cwd=cwd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, stdin=subprocess.DEVNULL, start_new_session=True)


def make_target(tmp_path: Path, settings: dict[str, Any] | None = None, *, host: str = "local", dry: bool = False,
                hosts: dict[str, Any] | None = None) -> Any:
    """A real ``Target`` for ``host`` from a ragops.yaml written in tmp_path (defaults: ``settings``)."""
    from ragops.config import load_config
    from ragops.seam import Target

    path = write_config(tmp_path / "cfg" / "ragops.yaml", {"defaults": settings or {}, "hosts": hosts or {}})
    loaded = load_config(str(path), environ={})
    return Target(host=loaded.hosts[host], dry=dry)


# ------------------------------------------------------------------ the real RAG stack for health
@dataclass
class RagStack:
    """A real ChromaDB dir, the real redis-server fixture and the demo API process in front of them."""

    chroma_dir: Path
    counts: dict[str, int]
    redis_port: int
    api_url: str
    failing_api_url: str  # the same API started with --fail-health: /health answers 503


def start_demo_api(workdir: Path, port: int, redis_port: int, chroma_dir: Path, *extra: str) -> Any:
    from services import port_open, start_process, wait_for

    log = workdir / f"api-{port}.log"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = start_process([sys.executable, "-m", "ragops.demo_api", "--port", str(port), "--redis-port",
                          str(redis_port), "--chroma", str(chroma_dir), *extra], log, env=env)
    wait_for(lambda: port_open("127.0.0.1", port), "demo API", proc, log, 20)
    return proc


_STACK: dict[str, RagStack] = {}


@pytest.fixture(scope="session")
def rag_stack(tmp_path_factory: pytest.TempPathFactory, redis_server: Any) -> Iterator[RagStack]:
    """Session-wide (shared by every module that imports it): built once per test process."""
    from services import free_port, stop_process

    from ragops.demo import make_chroma

    if "stack" in _STACK:
        yield _STACK["stack"]
        return
    work = tmp_path_factory.mktemp("ragstack")
    counts = make_chroma(work / "chroma")
    redis_server.client().set("seed", "1")
    api_port, failing_port = free_port(), free_port()
    procs = [start_demo_api(work, api_port, redis_server.port, work / "chroma"),
             start_demo_api(work, failing_port, redis_server.port, work / "chroma", "--fail-health")]
    _STACK["stack"] = RagStack(work / "chroma", counts, redis_server.port, f"http://127.0.0.1:{api_port}",
                               f"http://127.0.0.1:{failing_port}")
    try:
        yield _STACK["stack"]
    finally:
        _STACK.clear()
        for proc in procs:
            stop_process(proc, grace=2)


# ------------------------------------------------------------------ Prometheus textfile format
SAMPLE = re.compile(r'^[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? -?[0-9]+(\.[0-9]+)?$')


def parse_textfile(text: str) -> dict[str, list[str]]:
    """Check the node_exporter text format (one TYPE per family, samples grouped) and return samples."""
    assert text.endswith("\n")
    families: dict[str, list[str]] = {}
    order: list[str] = []
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            name = line.split()[2]
            assert name not in families, f"second TYPE line for {name}"
            families[name] = []
            order.append(name)
            continue
        assert SAMPLE.match(line), line
        name = line.split("{")[0].split(" ")[0]
        assert order and order[-1] == name, f"sample of {name} outside its group"
        families[name].append(line)
    return families


def procs_mentioning(text: str, *, but: tuple[int, ...] = ()) -> list[str]:
    """Live (non-zombie) processes whose command line contains ``text`` (not this one, not ``but``)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmdline = fh.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{pid}/stat") as fh:
                state = fh.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if text in cmdline and state != "Z" and int(pid) not in (os.getpid(), *but):
            found.append(f"{pid}: {cmdline}")
    return found
