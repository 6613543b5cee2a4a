"""The demo RAG API: /health and /status backed by the real Redis (redis-py) and Chroma dir.

Run as ``python -m ragops.demo_api --port P --redis-port R --chroma DIR``. Tests also use it as
the API in front of their real services (``--fail-health`` makes /health answer 503).
"""

from __future__ import annotations

import argparse
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .remote.chroma_counts import main as chroma_counts


def connect_redis(port: int, host: str = "127.0.0.1", timeout: float = 2.0) -> Any:
    """A redis-py client for the demo's Redis (no password: the demo's redis-server binds loopback)."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis(host=host, port=port, socket_timeout=timeout, socket_connect_timeout=timeout,
                       decode_responses=True, retry=Retry(NoBackoff(), 0))


def make_handler(redis_port: int, chroma_dir: str, fail_health: bool) -> type[BaseHTTPRequestHandler]:
    import redis

    client = connect_redis(redis_port)  # a thread-safe pool shared by the handler threads

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt: str, *args: object) -> None:  # quiet
            pass

        def _send(self, code: int, body: dict[str, object]) -> None:
            raw = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self) -> None:  # noqa: N802
            try:
                redis_ok = bool(client.ping())
            except redis.RedisError:
                redis_ok = False
            chroma = chroma_counts(chroma_dir)
            if self.path == "/health":
                ok = redis_ok and bool(chroma.get("ok")) and not fail_health
                self._send(200 if ok else 503, {"status": "ok" if ok else "unhealthy", "redis": redis_ok,
                                                "chroma": bool(chroma.get("ok"))})
            elif self.path == "/status":
                docs = {c["name"]: c["count"] for c in chroma.get("collections", [])}
                try:
                    keys = client.dbsize() if redis_ok else None
                except redis.RedisError:
                    keys = None
                self._send(200, {"status": "ok", "documents": docs, "total_documents": sum(docs.values()),
                                 "redis_keys": keys})
            else:
                self._send(404, {"error": "not found"})

    return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-port", type=int, required=True)
    parser.add_argument("--chroma", required=True)
    parser.add_argument("--fail-health", action="store_true")
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(args.redis_port, args.chroma, args.fail_health))
    server.serve_forever()


if __name__ == "__main__":
    main()
