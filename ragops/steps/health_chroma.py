"""health's Chroma check: a Chroma server over its HTTP API (``chroma.url``), else the data dir.

- ``chroma.url`` set (a Compose stack's chroma service, or ``chroma run`` on a bare host): from
  the controller with ``requests``, directly for ``local`` and through an SSH tunnel
  (:func:`ragops.tunnel.open_tunnel`) for a remote host: ``GET /api/v2/heartbeat``, ``/api/v2/version``,
  the tenant's database, its collections (paged) and ``.../collections/{id}/count`` for each.
  Plain HTTP rather than ``chromadb.HttpClient``: requests is a core dependency (chromadb is the
  optional, ~500 MB ``data`` extra and takes seconds to import), the v2 REST paths are the
  server's stable contract, and the client refuses servers of other versions, while the server
  in a Compose stack runs its image's version, not the controller's. No proxy is used (the
  environment's proxy settings are ignored): the server is reached directly or through the tunnel.
- else ``chroma.data_dir``: the stdlib helper ``remote/chroma_counts.py`` reads the sqlite file
  on the host (read-only), as before.

Both give the same figures (``collections``: name -> count, ``total``), so metrics and release's
document-count comparison work either way.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote as urlquote
from urllib.parse import urlsplit

from ..remote import script
from ..report import DEGRADED, FAILED, SKIPPED, format_bytes
from ..seam import Target, quote
from ..tunnel import TunnelError, open_tunnel
from .health_check import Check

PAGE = 100


class ChromaHttpError(Exception):
    """One failed request to the Chroma server (message: path and reason)."""


def make_chroma_paths(tenant: str, database: str) -> dict[str, str]:
    db = f"/api/v2/tenants/{urlquote(tenant, safe='')}/databases/{urlquote(database, safe='')}"
    return {"heartbeat": "/api/v2/heartbeat", "version": "/api/v2/version", "database": db,
            "collections": db + "/collections", "count": db + "/collections/{id}/count"}


def make_session(server_name: str | None = None, host_header: str | None = None) -> Any:
    """A requests Session without proxies. Through a tunnel: ``host_header`` (the URL's host:port)
    as Host, and for https ``server_name`` as the TLS name to check instead of the tunnel's 127.0.0.1."""
    import requests
    from requests.adapters import HTTPAdapter

    session = requests.Session()
    session.trust_env = False
    if server_name:
        class ServerNameAdapter(HTTPAdapter):
            def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
                kwargs.update(server_hostname=server_name, assert_hostname=server_name)
                super().init_poolmanager(*args, **kwargs)

        session.mount("https://", ServerNameAdapter())
    if host_header:
        session.headers["Host"] = host_header
    return session


def get_json(session: Any, base: str, path: str, timeout: float, params: dict[str, Any] | None = None) -> Any:
    import requests

    try:
        resp = session.get(base + path, params=params, timeout=timeout)
    except requests.Timeout:
        raise ChromaHttpError(f"GET {path}: timed out after {timeout:g}s (chroma.timeout_s)") from None
    except requests.ConnectionError as exc:
        why = "connection refused (is the Chroma server up?)" if "refused" in str(exc).lower() else \
            f"cannot connect: {str(exc)[-200:]}"
        raise ChromaHttpError(f"GET {path}: {why}") from None
    except requests.RequestException as exc:
        raise ChromaHttpError(f"GET {path}: {type(exc).__name__}: {str(exc)[-200:]}") from None
    if resp.status_code != 200:
        detail = resp.text.strip()[:200]
        raise ChromaHttpError(f"GET {path}: HTTP {resp.status_code}{': ' + detail if detail else ''}")
    try:
        return resp.json()
    except ValueError:
        raise ChromaHttpError(f"GET {path}: not JSON: {resp.text[:120]!r}") from None


def read_chroma_server(session: Any, base: str, tenant: str, database: str, timeout: float) -> dict[str, Any]:
    """Heartbeat, version and the per-collection counts of one tenant/database."""
    paths = make_chroma_paths(tenant, database)
    beat = get_json(session, base, paths["heartbeat"], timeout)
    version = get_json(session, base, paths["version"], timeout)
    get_json(session, base, paths["database"], timeout)  # 404: no such tenant/database
    collections: list[dict[str, Any]] = []
    while True:
        page = get_json(session, base, paths["collections"], timeout, {"limit": PAGE, "offset": len(collections)})
        collections += page
        if len(page) < PAGE:
            break
    counts = {c["name"]: int(get_json(session, base, paths["count"].format(id=c["id"]), timeout)) for c in collections}
    return {"heartbeat": beat.get("nanosecond heartbeat") if isinstance(beat, dict) else beat,
            "version": version, "collections": counts}


def check_chroma_server(target: Target) -> Check:
    c = target.settings.chroma
    url = urlsplit(str(c.url))
    host, https = url.hostname or "127.0.0.1", url.scheme == "https"
    port = url.port or (443 if https else 80)
    figures: dict[str, Any] = {"url": c.url, "tenant": c.tenant, "database": c.database}
    try:
        with open_tunnel(target, host, port, what="chroma") as (address, local_port):
            tunneled = (address, local_port) != (host, port)
            base = f"{url.scheme}://{address}:{local_port}"
            with make_session(host if https and tunneled else None, url.netloc if tunneled else None) as session:
                doc = read_chroma_server(session, base, c.tenant, c.database, c.timeout_s)
    except TunnelError as exc:
        return Check("chroma", FAILED, exc.reason, figures=figures)
    except ChromaHttpError as exc:
        return Check("chroma", FAILED, f"Chroma server {c.url}: {exc}", figures=figures)
    counts = doc["collections"]
    total = sum(counts.values())
    figures.update(collections=counts, total=total, server_version=doc["version"], heartbeat=doc["heartbeat"])
    check = Check("chroma", figures=figures,
                  message=f"server {doc['version']} up, {len(counts)} collection(s), {total} items")
    if c.min_documents is not None and total < c.min_documents:
        check.worsen(DEGRADED, f"< {c.min_documents} expected")
    return check


def check_chroma_dir(target: Target) -> Check:
    c = target.settings.chroma
    res = target.run(f"{target.python} - {quote(str(c.data_dir))}", stdin=script("chroma_counts"))
    try:
        doc = json.loads(res.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return Check("chroma", FAILED, f"cannot read {c.data_dir}: {res.stderr.strip()[-300:] or 'no output'}")
    if not doc.get("ok"):
        return Check("chroma", FAILED, str(doc.get("error")))
    counts = {col["name"]: col["count"] for col in doc["collections"]}
    check = Check("chroma", figures={"collections": counts, "total": doc["total"], "bytes": doc["bytes"]})
    check.message = f"{len(counts)} collection(s), {doc['total']} items, {format_bytes(doc['bytes'])}"
    if c.min_documents is not None and doc["total"] < c.min_documents:
        check.worsen(DEGRADED, f"< {c.min_documents} expected")
    return check


def check_chroma(target: Target) -> Check:
    c = target.settings.chroma
    if c.url:
        return check_chroma_server(target)
    if c.data_dir:
        return check_chroma_dir(target)
    return Check("chroma", SKIPPED, "no chroma.url or chroma.data_dir configured")
