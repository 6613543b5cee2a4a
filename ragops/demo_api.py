"""The demo RAG API: /health and /status backed by the real Redis and Chroma dir (stdlib only).

Run as ``python -m ragops.demo_api --port P --redis-port R --chroma DIR``. Tests also use it as
the API in front of their real services (``--fail-health`` makes /health answer 503).
"""

from __future__ import annotations

import argparse
import json
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .remote.chroma_counts import main as chroma_counts


def _complete(data: bytes) -> bool:
    if not data.endswith(b"\r\n"):
        return False
    if data[:1] == b"$":
        head = data.index(b"\r\n")
        size = int(data[1:head])
        return size < 0 or len(data) >= head + 2 + size + 2
    return True


def redis_command(port: int, *args: str, host: str = "127.0.0.1", timeout: float = 2.0) -> str | int | None:
    """One RESP command over a plain socket (the API must not need the redis package)."""
    payload = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(payload.encode())
        data = b""
        while not _complete(data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    kind, rest = data[:1], data[1:].split(b"\r\n")
    if kind == b"+":
        return rest[0].decode()
    if kind == b":":
        return int(rest[0])
    if kind == b"$":
        return None if rest[0] == b"-1" else rest[1].decode()
    if kind == b"-":
        raise RuntimeError(rest[0].decode())
    return data.decode(errors="replace")


def make_handler(redis_port: int, chroma_dir: str, fail_health: bool) -> type[BaseHTTPRequestHandler]:
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
                redis_ok = redis_command(redis_port, "PING") == "PONG"
            except OSError:
                redis_ok = False
            chroma = chroma_counts(chroma_dir)
            if self.path == "/health":
                ok = redis_ok and bool(chroma.get("ok")) and not fail_health
                self._send(200 if ok else 503, {"status": "ok" if ok else "unhealthy", "redis": redis_ok,
                                                "chroma": bool(chroma.get("ok"))})
            elif self.path == "/status":
                docs = {c["name"]: c["count"] for c in chroma.get("collections", [])}
                keys = redis_command(redis_port, "DBSIZE") if redis_ok else None
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
