"""The drill's questions when no queries are configured: the manifest's Chroma probes, asked by
embedding of the drill's Chroma server and of the live one (HTTP API v2, through ``Target.run``:
curl on the host, so over SSH too).

The manifest records per collection the probe **ids** (and their top-k at backup time); the probe's
vector is the one the snapshot stores: it is read from the drill's Chroma (the restored data), then
the same vector is asked of both servers and their top-k ids are compared like API answers
(``compare.matches``: ``min_overlap``, ties at the k-th distance). The manifest and the vectors
are untrusted: names, ids, counts, k and dimensions are checked (bounded), every vector must have
the recorded dimension and finite values, else the probe is refused with a reason.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote as urlquote

from ..backup.sources import registry
from ..seam import Target, quote
from ..steps.health import MARK, parse_curl
from .compare import Answer

MAX_PROBES = 64  # in all collections: the vectors pass through the controller
MAX_DIMENSION = 65536
MAX_K = 100
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,510}$")
_ID = re.compile(r"^[^\x00-\x1f]{1,512}$")
DB = "/api/v2/tenants/default_tenant/databases/default_database/collections"


@dataclass(frozen=True)
class ProbeSet:
    collection: str
    ids: tuple[str, ...]
    k: int
    dimension: int


def make_probe_sets(doc: dict[str, Any] | None) -> tuple[list[ProbeSet], list[str]]:
    """The probes of the manifest's Chroma record, validated; (sets, reasons some were refused)."""
    sets: list[ProbeSet] = []
    refused: list[str] = []
    total = 0
    for key, rec in registry.records_by_key(doc):
        cols = rec.get("collections") if key == "chroma" else None
        for col in cols if isinstance(cols, list) else []:
            if not isinstance(col, dict):
                refused.append("a collection record is not an object")
                continue
            name, dim, count = col.get("name"), col.get("dimension"), col.get("count")
            probes = col.get("probes")
            if not isinstance(name, str) or not _NAME.match(name):
                refused.append(f"collection name {str(name)[:40]!r} is not a Chroma name")
                continue
            if type(dim) is not int or not 0 < dim <= MAX_DIMENSION or type(count) is not int or count < 1:
                refused.append(f"{name}: dimension/count not recorded as positive integers")
                continue
            listed: list[Any] = probes if isinstance(probes, list) else []
            ids = [p.get("id") for p in listed if isinstance(p, dict)]
            good = tuple(dict.fromkeys(i for i in ids if isinstance(i, str) and _ID.match(i)))
            if len(good) != len(listed):
                refused.append(f"{name}: {len(listed) - len(good)} probe id(s) malformed or repeated")
            good = good[: max(0, MAX_PROBES - total)]
            if not good:
                continue
            total += len(good)
            recorded = col.get("k")
            k = recorded if type(recorded) is int else next(
                (len(p["top_k"]) for p in listed if isinstance(p, dict) and isinstance(p.get("top_k"), list)), 5)
            sets.append(ProbeSet(name, good, max(1, min(int(k), MAX_K, count)), dim))
    return sets, refused


def make_post_command(url: str, timeout_s: float) -> str:
    return (f"curl -sS --max-time {timeout_s:g} -X POST -H 'Content-Type: application/json' --data-binary @- "
            f"-o - -w '\\n{MARK}%{{http_code}}' {quote(url)}")


def run_json(target: Target, url: str, body: dict[str, Any] | None, timeout_s: float) -> tuple[int, Any, str]:
    if body is None:
        res = target.run(f"curl -sS --max-time {timeout_s:g} -o - -w '\\n{MARK}%{{http_code}}' {quote(url)}")
    else:
        res = target.run(make_post_command(url, timeout_s), stdin=json.dumps(body))
    code, text = parse_curl(res.stdout)
    try:
        return code, json.loads(text) if text else None, res.stderr.strip()[-200:]
    except ValueError:
        return code, None, f"not JSON: {text[:80]!r}"


def check_vectors(got: Any, ids: tuple[str, ...], dimension: int) -> tuple[list[str], list[list[float]], str]:
    """The stored vectors of a /get answer, validated (untrusted: the snapshot's data)."""
    if not isinstance(got, dict) or not isinstance(got.get("ids"), list) or not isinstance(got.get("embeddings"), list) \
            or len(got["ids"]) != len(got["embeddings"]) or len(got["ids"]) > len(ids):
        return [], [], "the drill's /get answer has no ids/embeddings of equal length"
    out_ids, vectors = [], []
    for i, vec in zip(got["ids"], got["embeddings"], strict=True):
        if i not in ids:
            return [], [], f"the drill's /get answered id {str(i)[:40]!r} it was not asked"
        if not isinstance(vec, list) or len(vec) != dimension or not all(
                isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in vec):
            return [], [], f"probe {i}: the stored vector is not {dimension} finite numbers"
        out_ids.append(str(i))
        vectors.append([float(x) for x in vec])
    return out_ids, vectors, ""


def parse_query(got: Any, n: int) -> list[tuple[tuple[str, ...], tuple[float, ...] | None]] | None:
    if not isinstance(got, dict) or not isinstance(got.get("ids"), list) or len(got["ids"]) != n:
        return None
    found = got.get("distances")
    dists: list[Any] = found if isinstance(found, list) and len(found) == n else [None] * n
    out = []
    for ids, ds in zip(got["ids"], dists, strict=True):
        if not isinstance(ids, list):
            return None
        d = tuple(float(x) for x in ds) if isinstance(ds, list) and len(ds) == len(ids) and all(
            isinstance(x, int | float) for x in ds) else None
        out.append((tuple(str(i) for i in ids), d))
    return out


def run_ask(target: Target, base_url: str, probe: ProbeSet, ids: list[str], vectors: list[list[float]],
            timeout_s: float) -> list[Answer]:
    """The vectors asked of one server's collection (by name): one Answer per probe."""
    t0 = time.monotonic()
    base = base_url.rstrip("/") + DB
    code, col, err = run_json(target, f"{base}/{urlquote(probe.collection, safe='')}", None, timeout_s)
    if code != 200 or not isinstance(col, dict) or not isinstance(col.get("id"), str):
        return [Answer(code, None, err or f"collection {probe.collection} not found") for _ in ids]
    code, got, err = run_json(target, f"{base}/{urlquote(col['id'], safe='')}/query",
                              {"query_embeddings": vectors, "n_results": probe.k, "include": ["distances"]}, timeout_s)
    found = parse_query(got, len(ids)) if code == 200 else None
    each = round((time.monotonic() - t0) / max(1, len(ids)), 3)
    if found is None:
        return [Answer(code, None, err or "no top-k ids in the answer", seconds=each) for _ in ids]
    return [Answer(code, top, "", None, each, dist) for top, dist in found]


def run_probe_answers(target: Target, drill_url: str, live_url: str, sets: list[ProbeSet],
                      timeout_s: float) -> tuple[list[str], list[Answer], list[Answer], list[str]]:
    """(labels, drill answers, live answers, problems): every probe's stored vector (read from the
    drill's Chroma) asked of the drill and of live."""
    labels: list[str] = []
    drill: list[Answer] = []
    live: list[Answer] = []
    problems: list[str] = []
    for probe in sets:
        base = drill_url.rstrip("/") + DB
        code, col, err = run_json(target, f"{base}/{urlquote(probe.collection, safe='')}", None, timeout_s)
        if code != 200 or not isinstance(col, dict) or not isinstance(col.get("id"), str):
            problems.append(f"{probe.collection}: not in the drill's Chroma (HTTP {code} {err})")
            continue
        code, got, err = run_json(target, f"{base}/{urlquote(col['id'], safe='')}/get",
                                  {"ids": list(probe.ids), "include": ["embeddings"]}, timeout_s)
        ids, vectors, why = check_vectors(got, probe.ids, probe.dimension) if code == 200 else ([], [], f"HTTP {code} {err}")
        if why:
            problems.append(f"{probe.collection}: {why}")
            continue
        if not ids:
            continue
        labels += [f"probe {probe.collection}/{i}" for i in ids]
        drill += run_ask(target, drill_url, probe, ids, vectors, timeout_s)
        live += run_ask(target, live_url, probe, ids, vectors, timeout_s)
    return labels, drill, live, problems


def find_live_chroma_url(target: Target, live: dict[str, Any], service: str | None, port_env: str | None) -> str | None:
    """``chroma.url`` of the host, else the live chroma service's port: its ``port_env`` (network_mode
    host) or its first published port, on 127.0.0.1."""
    if target.settings.chroma.url:
        return str(target.settings.chroma.url).rstrip("/")
    spec = (live.get("services") or {}).get(service or "") or {}
    env = spec.get("environment") or {}
    if spec.get("network_mode") == "host" and port_env and str(env.get(port_env) or "").isdigit():
        return f"http://127.0.0.1:{env[port_env]}"
    for p in spec.get("ports") or []:
        if str(p.get("published") or "").isdigit():
            return f"http://127.0.0.1:{p['published']}"
    return None


def find_drill_chroma_url(ports: dict[str, int], service: str | None) -> str | None:
    if not service:
        return None
    if service in ports:
        return f"http://127.0.0.1:{ports[service]}"
    mine = sorted(v for k, v in ports.items() if k.startswith(service + ":"))
    return f"http://127.0.0.1:{mine[0]}" if mine else None
