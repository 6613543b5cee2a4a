"""A real Compose stack of the RAG services on a private test engine (issue 13).

- Images: the tarballs cached by scripts/setup.d/60-images.sh (ragops/chroma, ragops/redis,
  ragops/rag-api; tags and paths from its ``--print``), put into an engine with ``docker load``
  (:func:`load_images`). They are never built here: a missing one raises ImagesMissing.
- :class:`Stack`: services ``chroma`` (the real Chroma server), ``redis`` and ``api``
  (ragops/rag_api.py) with ``network_mode: host`` on free loopback ports (the test engines have no
  bridge network), data in the named volumes ``chroma_data`` and ``redis_data``; ``up()`` waits
  for every HEALTHCHECK; ``seed()`` adds collections through the Chroma server's HTTP API.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from docker_engine import Engine

ROOT = Path(__file__).resolve().parents[1]
IMAGES_SCRIPT = ROOT / "scripts/setup.d/60-images.sh"
STACK_IMAGES = ("chroma", "redis", "rag-api")
# Two collections of different dimensions: the API must embed each query at the collection's own.
SEED = {"docs": (16, 60), "faq": (8, 25)}
WORDS = ("refund policy invoice shipping account password billing delivery warranty return order "
         "support contact address payment card upgrade plan export privacy token limit error").split()


class ImagesMissing(RuntimeError):
    """The cached images for this tree are not built (run scripts/setup.d/60-images.sh)."""


@dataclass(frozen=True)
class CachedImage:
    name: str
    tag: str
    key: str
    tar: Path
    cached: bool
    meta: dict[str, Any] = field(default_factory=dict)


def image_cache() -> dict[str, CachedImage]:
    """What 60-images.sh --print reports: the wanted tag and tarball per image, and if it is cached."""
    proc = subprocess.run(["bash", str(IMAGES_SCRIPT), "--print"], capture_output=True, text=True, timeout=60,
                          env={k: v for k, v in os.environ.items() if k != "RAGOPS_ROOT"})
    if proc.returncode:
        raise ImagesMissing(f"{IMAGES_SCRIPT.name} --print failed: {proc.stderr.strip()[-500:]}")
    out = {}
    for name, info in json.loads(proc.stdout)["images"].items():
        meta = json.loads(Path(info["meta"]).read_text()) if info["cached"] else {}
        out[name] = CachedImage(name, info["tag"], info["key"], Path(info["tar"]), info["cached"], meta)
    return out


def load_images(engine: Engine, names: tuple[str, ...] = STACK_IMAGES) -> dict[str, CachedImage]:
    """`docker load` the cached tarballs of `names` into `engine`; checks the loaded image IDs."""
    cache = image_cache()
    if missing := [cache[n].tag for n in names if not cache[n].cached]:
        raise ImagesMissing(f"images not built for this tree: {', '.join(missing)} "
                            f"(run: bash scripts/setup.d/60-images.sh)")
    for name in names:
        engine.run("load", "-q", "-i", str(cache[name].tar), timeout=600)
        got = engine.inspect(cache[name].tag, kind="image")[0]["Id"]
        if got != cache[name].meta["id"]:
            raise RuntimeError(f"{cache[name].tag}: loaded {got}, the cache says {cache[name].meta['id']}")
    return {n: cache[n] for n in names}


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


COMPOSE_YAML = """\
name: {name}
services:
  chroma:
    image: {chroma}
    network_mode: host
    init: true
    environment:
      CHROMA_HOST: 127.0.0.1
      CHROMA_PORT: "{chroma_port}"
    volumes:
      - chroma_data:/data
    healthcheck:
      interval: 1s
  redis:
    image: {redis}
    network_mode: host
    init: true
    environment:
      REDIS_PORT: "{redis_port}"
      REDIS_BIND: 127.0.0.1
    volumes:
      - redis_data:/data
    healthcheck:
      interval: 1s
  api:
    image: {api}
    network_mode: host
    init: true
    environment:
      RAG_API_HOST: 127.0.0.1
      RAG_API_PORT: "{api_port}"
      CHROMA_URL: http://127.0.0.1:{chroma_port}
      REDIS_URL: redis://127.0.0.1:{redis_port}/0
    depends_on:
      chroma:
        condition: service_healthy
      redis:
        condition: service_healthy
    healthcheck:
      interval: 1s
volumes:
  chroma_data: {{}}
  redis_data: {{}}
"""


@dataclass
class Stack:
    engine: Engine
    name: str
    dir: Path
    images: dict[str, CachedImage]
    chroma_port: int
    redis_port: int
    api_port: int
    seeded: dict[str, list[str]] = field(default_factory=dict)  # collection -> ids
    documents: dict[str, dict[str, str]] = field(default_factory=dict)  # collection -> id -> text

    @property
    def file(self) -> Path:
        return self.dir / "compose.yaml"

    def compose(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        return self.engine.run("compose", "-p", self.name, "-f", str(self.file), *args, check=check,
                               timeout=timeout, cwd=self.dir)

    def up(self, timeout: int = 120) -> float:
        """`compose up -d --wait`: returns the seconds until every service was healthy."""
        t0 = time.monotonic()
        self.compose("up", "-d", "--wait", "--wait-timeout", str(timeout), timeout=timeout + 60)
        return time.monotonic() - t0

    def down(self) -> None:
        self.compose("down", "-v", "--remove-orphans", "-t", "2", check=False)

    def container(self, service: str) -> dict[str, Any]:
        ids = self.engine.run("ps", "-aq", "--no-trunc", "--filter", f"label=com.docker.compose.project={self.name}",
                              "--filter", f"label=com.docker.compose.service={service}").stdout.split()
        assert len(ids) == 1, f"{service}: containers {ids}"
        return self.engine.inspect(ids[0])[0]

    def volume(self, name: str) -> str:
        """Engine-level name of the project's volume `name` (chroma_data, redis_data)."""
        return f"{self.name}_{name}"

    def mountpoint(self, name: str) -> Path:
        return Path(self.engine.inspect(self.volume(name), kind="volume")[0]["Mountpoint"])

    def leftovers(self) -> list[str]:
        """Containers and volumes of this project that still exist."""
        flt = ["--filter", f"label=com.docker.compose.project={self.name}"]
        return (self.engine.run("ps", "-aq", *flt).stdout.split()
                + self.engine.run("volume", "ls", "-q", *flt).stdout.split())

    def api(self, path: str, body: dict[str, Any] | None = None, timeout: float = 30) -> tuple[int, Any]:
        """GET (or POST `body` as JSON to) the API; returns (status, decoded JSON)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.api_port}{path}", data=data,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def chroma(self) -> Any:
        """A chromadb.HttpClient (the host .venv's, same version as the server) to the stack's server."""
        import chromadb
        from chromadb.config import Settings

        return chromadb.HttpClient(host="127.0.0.1", port=self.chroma_port,
                                   settings=Settings(anonymized_telemetry=False))

    def redis(self) -> Any:
        import redis

        return redis.Redis(host="127.0.0.1", port=self.redis_port, socket_timeout=5)

    def seed(self, spec: dict[str, tuple[int, int]] = SEED) -> dict[str, list[str]]:
        """Create collections {name: (dimension, count)} through the Chroma HTTP API; documents are
        short word lists embedded with rag_api.embed (what the API does with a query)."""
        from ragops.rag_api import embed

        client, rng = self.chroma(), random.Random(13)
        for name, (dim, n) in spec.items():
            col = client.get_or_create_collection(name, embedding_function=None,
                                                  configuration={"hnsw": {"space": "cosine"}})
            texts = {f"{name}-{i:04d}": f"{name} {i} " + " ".join(rng.sample(WORDS, 4)) for i in range(n)}
            col.add(ids=list(texts), embeddings=[embed(t, dim) for t in texts.values()],
                    documents=list(texts.values()), metadatas=[{"n": i} for i in range(n)])
            self.seeded[name], self.documents[name] = list(texts), texts
        return self.seeded


def make_stack(engine: Engine, images: dict[str, CachedImage], base_dir: Path, name: str) -> Stack:
    """Write `base_dir/name/compose.yaml` for `images` on three free loopback ports (not started)."""
    chroma_port, redis_port, api_port = free_ports(3)
    stack = Stack(engine, name, base_dir / name, images, chroma_port, redis_port, api_port)
    stack.dir.mkdir(parents=True, exist_ok=True)
    stack.file.write_text(COMPOSE_YAML.format(
        name=name, chroma=images["chroma"].tag, redis=images["redis"].tag, api=images["rag-api"].tag,
        chroma_port=chroma_port, redis_port=redis_port, api_port=api_port))
    return stack
