"""The demo as a Compose project (``invoke demo.up --compose``): the real service images on the host's engine.

Images: ragops/chroma, ragops/redis and ragops/rag-api as scripts/setup.d/60-images.sh builds and
caches them (``--print`` names the tags and tarballs); a tag the engine lacks is ``docker load``ed
from its tarball, never built here. Services with ``network_mode: host`` on free loopback ports
(chroma, redis, api: the seed stack's variables), data in the named volumes ``chroma_data`` and
``redis_data``; ``up -d --wait`` waits for every HEALTHCHECK, then two collections and some cache keys
are added. Beside ``compose.yaml`` the project dir ($RAGOPS_DEMO_COMPOSE_DIR, default
/tmp/ragops-demo-compose) holds a ``ragops.yaml`` (deployment compose, docker.data_tasks containers,
the roles by service name; DOCKER_HOST/DOCKER_CONFIG of the environment kept), a backup policy and an
initialized restic repository, so ``invoke maintain|backup|restore-test --host local --config
DIR/ragops.yaml`` work on it. ``demo.down --compose`` removes the containers, volumes and the dir.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import shutil
import socket
import time
from pathlib import Path
from typing import Any

from .demo import make_files
from .errors import ConfigError, StepError
from .rag_api import embed
from .seam import CmdResult, run_local

PROJECT = "ragops-demo"
IMAGES = ("chroma", "redis", "rag-api")
SEED = {"docs": (16, 60), "faq": (8, 25)}  # collection: (dimension, documents)
WORDS = ("refund policy invoice shipping account password billing delivery warranty return order support "
         "contact address payment card upgrade plan export privacy").split()
IMAGES_SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "setup.d" / "60-images.sh"


def compose_dir(environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    return Path(env.get("RAGOPS_DEMO_COMPOSE_DIR", "/tmp/ragops-demo-compose"))


def make_compose(tags: dict[str, str], ports: dict[str, int]) -> dict[str, Any]:
    """The Compose document (pure): three services on the host network, two named volumes."""
    def service(image: str, env: dict[str, str], volume: str | None) -> dict[str, Any]:
        svc: dict[str, Any] = {"image": image, "network_mode": "host", "init": True, "environment": env,
                               "healthcheck": {"interval": "1s"}, "pull_policy": "never"}
        if volume:
            svc["volumes"] = [f"{volume}:/data"]
        return svc

    chroma, redis, api = ports["chroma"], ports["redis"], ports["api"]
    api_svc = service(tags["rag-api"], {"RAG_API_HOST": "127.0.0.1", "RAG_API_PORT": str(api),
                                        "CHROMA_URL": f"http://127.0.0.1:{chroma}", "REDIS_URL": f"redis://127.0.0.1:{redis}/0"}, None)
    api_svc["depends_on"] = {"chroma": {"condition": "service_healthy"}, "redis": {"condition": "service_healthy"}}
    return {"name": PROJECT, "services": {
        "chroma": service(tags["chroma"], {"CHROMA_HOST": "127.0.0.1", "CHROMA_PORT": str(chroma)}, "chroma_data"),
        "redis": service(tags["redis"], {"REDIS_PORT": str(redis), "REDIS_BIND": "127.0.0.1"}, "redis_data"),
        "api": api_svc}, "volumes": {"chroma_data": {}, "redis_data": {}}}


def make_config(root: Path, ports: dict[str, int], docker: dict[str, str]) -> dict[str, Any]:
    """The ragops.yaml of the project (pure): `local` maintains, backs up and restore-tests it."""
    return {"defaults": {
        "deployment": "compose",
        "api": {"url": f"http://127.0.0.1:{ports['api']}", "timeout_s": 20},
        "redis": {"host": "127.0.0.1", "port": ports["redis"]},
        "logs": [{"root": f"{root}/logs", "patterns": ["*.log"], "max_age_days": 7}],
        "temp": [{"root": f"{root}/tmp", "patterns": ["*"], "max_age_days": 1}],
        "lock_path": f"{root}/run/ragops.lock", "metrics_dir": f"{root}/metrics",
        "logrotate": {"enabled": False},
        "backup": {"policy": "demo", "policies_dir": f"{root}/policies", "staging_dir": f"{root}/staging"},
        "docker": {**docker, "compose_project": PROJECT, "compose_file": f"{root}/compose.yaml",
                   "data_tasks": "containers", "roles": {"chroma": "chroma", "redis": "redis", "api": "api"}},
        "steps": ["cleanup", "health"]}}


def make_policy(root: Path) -> dict[str, Any]:
    queries = [{"path": "/query?q=refund+policy&k=5&collection=docs"}, {"path": "/query?q=reset+password&k=5"}]
    return {"description": "Demo (Compose) snapshots of the Redis and Chroma volumes.",
            "repository": {"url": f"{root}/restic", "password_file": f"{root}/secrets/restic-password"},
            "sources": {"redis": {"enabled": True},
                        "chroma": {"enabled": True, "strategy": "stop", "stop": {"compose_service": "chroma", "timeout_s": 60}}},
            "retention": {"keep_last": 3}, "tags": ["ragops", "demo"], "schedule": "0 3 * * *",
            "restore_test": {"cadence": "0 5 * * 0", "rto_budget_s": 600, "drill": {"queries": queries}}}


def make_docker_settings(environ: dict[str, str], cli: str) -> dict[str, str]:
    out = {"cli": cli}
    if environ.get("DOCKER_HOST"):
        out["docker_host"] = environ["DOCKER_HOST"]
    if environ.get("DOCKER_CONFIG"):
        out["docker_config"] = environ["DOCKER_CONFIG"]
    return out


def run_docker(cli: str, *args: str, timeout: float = 300) -> CmdResult:
    return run_local([cli, *args], timeout=timeout)


def find_images(cli: str) -> dict[str, str]:
    """Tag per image, loaded from the 60-images.sh cache when the engine lacks it; ConfigError (exit 2)
    naming what is missing when docker, Compose or an image is not there."""
    if not shutil.which(cli):
        raise ConfigError(f"demo.up --compose: the docker CLI {cli!r} is not installed (scripts/setup.d/40-docker.sh)")
    info = run_docker(cli, "version", "--format", "{{.Server.Version}}", timeout=30)
    if not info.ok:
        raise ConfigError(f"demo.up --compose: no docker engine answers ({info.stderr.strip()[-200:]}); start dockerd "
                          "or set DOCKER_HOST")
    if not run_docker(cli, "compose", "version", timeout=30).ok:
        raise ConfigError("demo.up --compose: the Compose v2 plugin (`docker compose`) is not installed")
    if not IMAGES_SCRIPT.is_file():
        raise ConfigError(f"demo.up --compose: {IMAGES_SCRIPT} not found (a source checkout is needed for the images)")
    listed = run_local(["bash", str(IMAGES_SCRIPT), "--print"], timeout=60)
    if not listed.ok:
        raise ConfigError(f"demo.up --compose: {IMAGES_SCRIPT.name} --print failed: {listed.stderr.strip()[-300:]}")
    cache = json.loads(listed.stdout)["images"]
    tags, missing = {}, []
    for name in IMAGES:
        tag = cache[name]["tag"]
        tags[name] = tag
        if run_docker(cli, "image", "inspect", tag, timeout=30).ok:
            continue
        if not cache[name]["cached"]:
            missing.append(tag)
            continue
        loaded = run_docker(cli, "load", "-q", "-i", cache[name]["tar"], timeout=600)
        if not loaded.ok:
            raise StepError(f"demo.up --compose: docker load {cache[name]['tar']} failed: {loaded.stderr.strip()[-300:]}")
    if missing:
        raise ConfigError(f"demo.up --compose: images not built: {', '.join(missing)} (run: bash {IMAGES_SCRIPT})")
    return tags


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def write_project(root: Path, tags: dict[str, str], cli: str, environ: dict[str, str]) -> dict[str, int]:
    """compose.yaml, ragops.yaml, the policy, the restic password and repository (idempotent ports)."""
    state_file = root / "run" / "state.json"
    if state_file.exists():
        ports = json.loads(state_file.read_text())["ports"]
    else:
        ports = dict(zip(("chroma", "redis", "api"), free_ports(3), strict=True))
    for sub in ("run", "logs", "tmp", "metrics", "policies", "staging"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "compose.yaml").write_text(json.dumps(make_compose(tags, ports), indent=1) + "\n")
    config = make_config(root, ports, make_docker_settings(environ, cli))
    (root / "ragops.yaml").write_text(json.dumps(config, indent=1) + "\n")
    (root / "policies" / "demo.yaml").write_text(json.dumps(make_policy(root), indent=1) + "\n")
    make_files(root)
    _make_repo(root)
    state_file.write_text(json.dumps({"ports": ports, "tags": tags}))
    return ports


def _make_repo(root: Path) -> None:
    password = root / "secrets" / "restic-password"
    if not password.exists():
        password.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        password.touch(mode=0o600)
        password.write_text(secrets.token_urlsafe(24) + "\n")
    if not (root / "restic" / "config").exists():
        res = run_local(["restic", "-r", str(root / "restic"), "--password-file", str(password), "init"], timeout=60)
        if not res.ok:
            raise StepError(f"demo: restic init {root / 'restic'} failed: {res.stderr.strip()[-300:]}")


def seed(ports: dict[str, int]) -> dict[str, int]:
    """Collections through the Chroma server's HTTP API (texts embedded as the API embeds queries)."""
    import chromadb  # the data extra: only the demo's seeding needs it
    from chromadb.config import Settings

    client = chromadb.HttpClient(host="127.0.0.1", port=ports["chroma"], settings=Settings(anonymized_telemetry=False))
    rng, counts = random.Random(13), {}
    for name, (dim, n) in SEED.items():
        col = client.get_or_create_collection(name, embedding_function=None, configuration={"hnsw": {"space": "cosine"}})
        if col.count() < n:
            texts = {f"{name}-{i:04d}": f"{name} {i} " + " ".join(rng.sample(WORDS, 4)) for i in range(n)}
            vectors: Any = [embed(t, dim) for t in texts.values()]
            col.upsert(ids=list(texts), embeddings=vectors, documents=list(texts.values()))
        counts[name] = col.count()
    return counts


def up(root: Path | None = None, environ: dict[str, str] | None = None) -> dict[str, Any]:
    root = root or compose_dir()
    env = dict(os.environ if environ is None else environ)
    cli = shutil.which("docker") or "docker"
    tags = find_images(cli)
    ports = write_project(root, tags, cli, env)
    t0 = time.monotonic()
    res = run_docker(cli, "compose", "-p", PROJECT, "-f", str(root / "compose.yaml"), "up", "-d", "--wait",
                     "--wait-timeout", "180", timeout=300)
    if not res.ok:
        raise StepError(f"demo.up --compose: compose up failed (remove what it made: invoke demo.down --compose): "
                        f"{res.stderr.strip()[-500:]}")
    counts = seed(ports)
    return {"dir": str(root), "project": PROJECT, "config": str(root / "ragops.yaml"), "ports": ports,
            "images": tags, "collections": counts, "up_s": round(time.monotonic() - t0, 1)}


def leftovers(cli: str) -> list[str]:
    flt = ["--filter", f"label=com.docker.compose.project={PROJECT}"]
    return (run_docker(cli, "ps", "-aq", *flt, timeout=30).stdout.split()
            + run_docker(cli, "volume", "ls", "-q", *flt, timeout=30).stdout.split())


def down(root: Path | None = None) -> list[str]:
    """Remove the project's containers and volumes, then the project dir; returns what is left (empty)."""
    root = root or compose_dir()
    cli = shutil.which("docker") or "docker"
    if shutil.which(cli) and run_docker(cli, "version", timeout=30).ok:
        files = ["-f", str(root / "compose.yaml")] if (root / "compose.yaml").exists() else []
        run_docker(cli, "compose", "-p", PROJECT, *files, "down", "-v", "--remove-orphans", "-t", "5", timeout=300)
        left = leftovers(cli)
        if left:
            return left
    shutil.rmtree(root, ignore_errors=True)
    return [str(root)] if root.exists() else []
