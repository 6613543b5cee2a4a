"""The RAG API of the Compose stack (image ragops/rag-api): a real Chroma HTTP client with a Redis cache.

Run ``python3 rag_api.py`` (the image copies this one file) or ``python -m ragops.rag_api``.
Settings (flags, or the environment): ``--host``/RAG_API_HOST (0.0.0.0), ``--port``/RAG_API_PORT
(8080), ``--chroma-url``/CHROMA_URL (http://chroma:8000), ``--redis-url``/REDIS_URL
(redis://redis:6379/0), ``--cache-ttl``/RAG_API_CACHE_TTL_S (300; 0 disables the cache).

- ``GET /health``: 200 when the Chroma server's heartbeat and Redis' PING answer, else 503.
- ``GET /status``: document count and dimension per collection, Redis state and key count.
- ``GET /query?q=TEXT&k=N[&collection=NAME]`` or ``POST /query`` with that JSON object: the top-k
  ids (of one collection, or of all merged by distance). The text is embedded deterministically by
  :func:`embed` (feature hashing to a unit vector of the collection's dimension: no model, no
  download); answers are cached in Redis under ``rag:query:v1:<sha256>`` (``"cached": true``).

Needs only the standard library, chromadb and redis-py (no ragops import).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

CACHE_PREFIX = "rag:query:v1:"
MAX_K = 100
_KEY = b"ragops-embed-v1"


def embed(text: str, dimension: int) -> list[float]:
    """Deterministic unit vector for `text`: each lower-cased word adds +-1 at two hashed positions.

    Texts sharing words are close in cosine distance; the same text always gives the same vector
    (across processes, machines and Python versions: blake2b, not hash())."""
    if dimension < 1:
        raise ValueError("dimension must be >= 1")
    vec = [0.0] * dimension
    for token in re.findall(r"\w+", text.lower()) or [text]:
        digest = hashlib.blake2b(token.encode(), digest_size=16, key=_KEY).digest()
        for part in (digest[:8], digest[8:]):
            n = int.from_bytes(part, "big")
            vec[n % dimension] += 1.0 if n >> 63 else -1.0
    norm = math.sqrt(sum(v * v for v in vec))
    if norm == 0.0:  # the words cancelled out: fall back to one seeded position for the whole text
        n = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8, key=_KEY).digest(), "big")
        vec[n % dimension], norm = 1.0, 1.0
    return [v / norm for v in vec]


def cache_key(q: str, k: int, collection: str | None) -> str:
    return CACHE_PREFIX + hashlib.sha256(json.dumps([collection, k, q]).encode()).hexdigest()


class Backends:
    """Lazily connected chromadb.HttpClient and redis.Redis; a failed client is rebuilt next time."""

    def __init__(self, chroma_url: str, redis_url: str, cache_ttl: int):
        self.chroma_url, self.redis_url, self.cache_ttl = chroma_url, redis_url, cache_ttl
        self._chroma: Any = None
        self._redis: Any = None
        self._lock = threading.Lock()

    def chroma(self) -> Any:
        with self._lock:
            if self._chroma is None:
                import chromadb
                from chromadb.config import Settings

                url = urlsplit(self.chroma_url)
                self._chroma = chromadb.HttpClient(
                    host=url.hostname or "127.0.0.1", port=url.port or 8000, ssl=url.scheme == "https",
                    settings=Settings(anonymized_telemetry=False))
            return self._chroma

    def redis(self) -> Any:
        with self._lock:
            if self._redis is None:
                import redis

                self._redis = redis.Redis.from_url(self.redis_url, socket_timeout=2, socket_connect_timeout=2)
            return self._redis

    def reset_chroma(self) -> None:
        with self._lock:
            self._chroma = None

    def chroma_ok(self) -> bool:
        try:
            self.chroma().heartbeat()
            return True
        except Exception:  # noqa: BLE001 - any failure means "not healthy"; rebuild the client
            self.reset_chroma()
            return False

    def redis_ok(self) -> bool:
        try:
            return bool(self.redis().ping())
        except Exception:  # noqa: BLE001
            return False

    def status(self) -> dict[str, Any]:
        chroma_ok, redis_ok = self.chroma_ok(), self.redis_ok()
        docs: dict[str, int] = {}
        dims: dict[str, int | None] = {}
        if chroma_ok:
            for col in self.chroma().list_collections():
                docs[col.name] = col.count()
                dims[col.name] = col.get_model().dimension
        keys = self.redis().dbsize() if redis_ok else None
        return {"status": "ok" if chroma_ok and redis_ok else "degraded", "chroma": chroma_ok, "redis": redis_ok,
                "documents": docs, "dimensions": dims, "total_documents": sum(docs.values()), "redis_keys": keys}

    def query(self, q: str, k: int, collection: str | None) -> dict[str, Any]:
        """Top-k ids for `q`; raises LookupError for an unknown collection."""
        key = cache_key(q, k, collection)
        cache = self.cache_ttl > 0 and self.redis_ok()
        if cache and (hit := self.redis().get(key)) is not None:
            return json.loads(hit) | {"cached": True}
        client = self.chroma()
        if collection is None:
            cols = client.list_collections()
        else:
            try:
                cols = [client.get_collection(collection)]
            except Exception as exc:  # chromadb raises NotFoundError (or ValueError in older 1.x)
                if "does not exist" in str(exc) or type(exc).__name__ == "NotFoundError":
                    raise LookupError(f"collection {collection!r} does not exist") from None
                raise
        results: list[dict[str, Any]] = []
        for col in cols:
            dimension = col.get_model().dimension
            if not dimension or not col.count():
                continue
            res = col.query(query_embeddings=[embed(q, dimension)], n_results=k, include=["distances", "documents"])
            for i, doc_id in enumerate(res["ids"][0]):
                results.append({"id": doc_id, "collection": col.name, "distance": float(res["distances"][0][i]),
                                "document": (res["documents"] or [[None] * (i + 1)])[0][i]})
        results.sort(key=lambda r: r["distance"])
        body = {"query": q, "k": k, "collection": collection, "results": results[:k],
                "ids": [r["id"] for r in results[:k]]}
        if cache:
            try:
                self.redis().set(key, json.dumps(body), ex=self.cache_ttl)
            except Exception:  # noqa: BLE001 - a cache failure must not fail the query
                cache = False
        return body | {"cached": False, "cache": "on" if cache else "off"}


def make_handler(backends: Backends) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt: str, *args: object) -> None:  # quiet
            pass

        def _send(self, code: int, body: dict[str, Any]) -> None:
            raw = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def _query(self, params: dict[str, Any]) -> None:
            q = params.get("q")
            try:
                k = int(params.get("k", 5))
            except (TypeError, ValueError):
                k = 0
            if not isinstance(q, str) or not q.strip() or not 1 <= k <= MAX_K:
                self._send(400, {"error": f"need q (non-empty text) and k (1..{MAX_K})"})
                return
            collection = params.get("collection") or None
            try:
                self._send(200, backends.query(q, k, collection))
            except LookupError as exc:
                self._send(404, {"error": str(exc)})
            except Exception as exc:  # noqa: BLE001 - the Chroma server is down or failing
                backends.reset_chroma()
                self._send(503, {"error": f"chroma: {type(exc).__name__}: {exc}"[:500]})

        def do_GET(self) -> None:  # noqa: N802
            url = urlsplit(self.path)
            if url.path == "/health":
                chroma_ok, redis_ok = backends.chroma_ok(), backends.redis_ok()
                ok = chroma_ok and redis_ok
                self._send(200 if ok else 503, {"status": "ok" if ok else "unhealthy", "chroma": chroma_ok,
                                                "redis": redis_ok})
            elif url.path == "/status":
                try:
                    self._send(200, backends.status())
                except Exception as exc:  # noqa: BLE001
                    backends.reset_chroma()
                    self._send(503, {"status": "error", "error": f"{type(exc).__name__}: {exc}"[:500]})
            elif url.path == "/query":
                self._query({name: values[-1] for name, values in parse_qs(url.query).items()})
            else:
                self._send(404, {"error": "not found"})

        def do_POST(self) -> None:  # noqa: N802
            if urlsplit(self.path).path != "/query":
                self._send(404, {"error": "not found"})
                return
            try:
                params = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            except ValueError:
                params = None
            if not isinstance(params, dict):
                self._send(400, {"error": "body must be a JSON object"})
                return
            self._query(params)

    return Handler


def main(argv: list[str] | None = None) -> None:
    env = os.environ.get
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default=env("RAG_API_HOST", "0.0.0.0"))
    parser.add_argument("--port", type=int, default=int(env("RAG_API_PORT", "8080")))
    parser.add_argument("--chroma-url", default=env("CHROMA_URL", "http://chroma:8000"))
    parser.add_argument("--redis-url", default=env("REDIS_URL", "redis://redis:6379/0"))
    parser.add_argument("--cache-ttl", type=int, default=int(env("RAG_API_CACHE_TTL_S", "300")))
    args = parser.parse_args(argv)
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    backends = Backends(args.chroma_url, args.redis_url, args.cache_ttl)
    server = ThreadingHTTPServer((args.host, args.port), make_handler(backends))
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # PID 1 in a container: stop at once
    print(f"rag-api on {args.host}:{args.port} (chroma {args.chroma_url}, redis {args.redis_url})", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
