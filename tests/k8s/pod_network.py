"""STAND-IN for the cluster's pod network, as far as the kube-apiserver's service proxy needs one.

Why: the service proxy (``/api/v1/namespaces/NS/services/NAME:PORT/proxy/...``) dials the IP of an
Endpoints address, and that address must be a pod's IP (``targetRef``; the API server checks the pod
has it) and may not be loopback (Endpoints validation refuses 127.0.0.0/8). The stand-in kubelet's
pods get unique 10.244.x.y IPs that exist nowhere, and network only to 127.0.0.0/8 is allowed here.

What: an HTTP forward proxy on 127.0.0.1 the API server is started with (``HTTP_PROXY``; Go never
proxies loopback, so etcd and the kubelets stay direct). It cannot see the pod IP the API server
dialed: Go writes the incoming request's Host (the API server's own address) into the proxied request
line. So it reads the namespace and Service from the ``X-Forwarded-Uri`` the API server adds
(``/api/v1/namespaces/NS/services/NAME:PORT/proxy/...``), checks that Service's Endpoints hold a ready
address whose pod (``targetRef``) is in NS, and forwards to the loopback port routed to NS (``route``:
fnmatch patterns, first match wins), i.e. to the real process standing for that namespace's pods.
No route or no such endpoint: 502. Everything else is real: the Service, its Endpoints made by the
real endpoints controller from the pods' IPs, the API server's endpoint choice and its checks (a
Service without ready endpoints gets the API server's own 503 and never reaches this stand-in).
"""

from __future__ import annotations

import fnmatch
import http.client
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import requests

_SERVICE_URI = re.compile(r"^/api/v1/namespaces/([^/]+)/services/([^/]+)/proxy(/|$)")


class PodNetwork:
    def __init__(self) -> None:
        self.routes: list[tuple[str, int]] = []
        self.api_url: str | None = None
        self.session: requests.Session | None = None
        self.forwarded: list[tuple[str, str, int]] = []  # (namespace, path, loopback port)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._make_handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="pod-network", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> PodNetwork:
        self._thread.start()
        return self

    def connect(self, api_url: str, session: requests.Session) -> None:
        self.api_url, self.session = api_url, session

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def route(self, namespace_pattern: str, port: int) -> None:
        self.routes.insert(0, (namespace_pattern, port))

    def unroute(self, namespace_pattern: str) -> None:
        self.routes = [r for r in self.routes if r[0] != namespace_pattern]

    def find_namespace(self, forwarded_uri: str) -> str | None:
        """The namespace of a proxied Service whose Endpoints have a ready pod address in it."""
        match = _SERVICE_URI.match(forwarded_uri or "")
        if not match or self.session is None:
            return None
        parts = match.group(2).split(":")  # NAME, NAME:PORT or SCHEME:NAME:PORT
        namespace, service = match.group(1), parts[1] if len(parts) == 3 else parts[0]
        found = self.session.get(f"{self.api_url}/api/v1/namespaces/{namespace}/endpoints/{service}", timeout=10)
        subsets = found.json().get("subsets") or [] if found.ok else []
        refs = [a.get("targetRef") or {} for s in subsets for a in s.get("addresses") or []]
        return namespace if any(r.get("kind") == "Pod" and r.get("namespace") == namespace for r in refs) else None

    def find_port(self, namespace: str | None) -> int | None:
        return next((port for pattern, port in self.routes if namespace and fnmatch.fnmatchcase(namespace, pattern)), None)

    def _make_handler(self) -> type[BaseHTTPRequestHandler]:
        network = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt: str, *args: object) -> None:
                pass

            def _forward(self) -> None:
                parts = urlsplit(self.path)
                uri = self.headers.get("X-Forwarded-Uri", "")
                namespace = network.find_namespace(uri)
                port = network.find_port(namespace)
                if port is None:
                    body = f"pod network stand-in: no route for {uri or self.path} (namespace {namespace})".encode()
                    self.send_response(502)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                path = parts.path + (f"?{parts.query}" if parts.query else "")
                network.forwarded.append((namespace or "", path, port))
                length = int(self.headers.get("Content-Length") or 0)
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                try:
                    conn.request(self.command, path, body=self.rfile.read(length) if length else None,
                                 headers={k: v for k, v in self.headers.items() if k.lower() not in ("host", "proxy-connection")})
                    resp = conn.getresponse()
                    data = resp.read()
                finally:
                    conn.close()
                self.send_response(resp.status)
                for key, value in resp.getheaders():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _forward  # noqa: N815

        return Handler
