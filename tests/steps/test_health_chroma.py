"""health's Chroma check over the HTTP API (chroma.url) against a real `chroma run` server: directly
and through the test sshd's SSH tunnel; the sqlite read of chroma.data_dir is in test_health.py."""

from __future__ import annotations

import threading

import pytest

from ragops.report import DEGRADED, FAILED, OK
from ragops.steps import health_chroma
from ragops.steps.health import run_health
from ragops.steps.health_chroma import check_chroma, make_chroma_paths
from tests.fixtures.fleet_helpers import make_host_entry, make_target
from tests.fixtures.services import free_port, start_chroma_server

COUNTS = {"docs": 7, "faq": 3, "empty": 0}


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory: pytest.TempPathFactory):
    import chromadb
    from chromadb.config import Settings

    work = tmp_path_factory.mktemp("chroma-http")
    server = start_chroma_server(work / "data", work / "chroma.log")
    try:
        client = chromadb.HttpClient(host="127.0.0.1", port=server.port, settings=Settings(anonymized_telemetry=False))
        for name, n in COUNTS.items():
            col = client.get_or_create_collection(name, embedding_function=None)
            if n:
                col.add(ids=[f"{name}-{i}" for i in range(n)], embeddings=[[float(i), 1.0, 0.5] for i in range(n)])
        yield server
    finally:
        server.stop()


def _settings(url: str, **chroma):
    return {"chroma": {"url": url, **chroma}, "redis": {"enabled": False}}


def test_paths_quote_tenant_and_database():
    paths = make_chroma_paths("my tenant", "db/1")
    assert paths["collections"] == "/api/v2/tenants/my%20tenant/databases/db%2F1/collections"
    assert paths["count"].format(id="abc") == "/api/v2/tenants/my%20tenant/databases/db%2F1/collections/abc/count"


def test_counts_come_from_the_server_and_feed_the_metrics(tmp_path, chroma_server):
    result = run_health(make_target(tmp_path, _settings(chroma_server.url)))
    check = {c["name"]: c for c in result.details["checks"]}["chroma"]
    assert check["status"] == OK, check["message"]
    assert check["figures"]["collections"] == COUNTS and check["figures"]["total"] == 10
    assert check["figures"]["heartbeat"] > 0 and check["message"].startswith("server ")
    assert "3 collection(s), 10 items" in check["message"]
    gauges = {labels.get("collection"): v for name, labels, v in result.metrics if name == "ragops_chroma_documents"}
    assert gauges == {k: float(v) for k, v in COUNTS.items()}


def test_collections_are_read_page_by_page(tmp_path, chroma_server, monkeypatch):
    monkeypatch.setattr(health_chroma, "PAGE", 2)  # 3 collections: two pages, the second short
    check = check_chroma(make_target(tmp_path, _settings(chroma_server.url)))
    assert check.status == OK and check.figures["collections"] == COUNTS


def test_fewer_items_than_expected_is_degraded(tmp_path, chroma_server):
    check = check_chroma(make_target(tmp_path, _settings(chroma_server.url, min_documents=11)))
    assert check.status == DEGRADED and "< 11 expected" in check.message


def test_an_unknown_database_or_a_server_that_is_down_has_failed(tmp_path, chroma_server):
    check = check_chroma(make_target(tmp_path / "a", _settings(chroma_server.url, database="nope")))
    assert check.status == FAILED and "HTTP 404" in check.message and "nope" in check.message
    dead = f"http://127.0.0.1:{free_port()}"
    down = check_chroma(make_target(tmp_path / "b", _settings(dead)))
    assert down.status == FAILED and "/api/v2/heartbeat: connection refused" in down.message


def test_through_the_ssh_tunnel_with_nothing_left_open(tmp_path, sshd, chroma_server):
    from fabric.tunnels import Tunnel, TunnelManager

    hosts = {"h3": make_host_entry(sshd, "127.0.0.3", **_settings(chroma_server.url))}
    target = make_target(tmp_path, {}, host="h3", hosts=hosts)
    try:
        check = check_chroma(target)
        assert check.status == OK and check.figures["collections"] == COUNTS, check.message
        assert not [t for t in threading.enumerate() if isinstance(t, (Tunnel, TunnelManager)) and t.is_alive()]
        dead = free_port()
        hosts["h3"]["chroma"]["url"] = f"http://127.0.0.1:{dead}"
        other = make_target(tmp_path / "dead", {}, host="h3", hosts=hosts)
        try:
            down = check_chroma(other)
        finally:
            other.close()
        assert down.status == FAILED and f"chroma at 127.0.0.1:{dead} (through SSH): connection refused" in down.message
    finally:
        target.close()
