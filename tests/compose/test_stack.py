"""The real Compose RAG stack (Chroma server + Redis + API images built by 60-images.sh), on the
private engines 20.10 and 26.1 (fixtures in conftest.py; each test runs once per engine)."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from ragops.rag_api import CACHE_PREFIX, embed
from tests.fixtures.compose_stack import SEED, Stack, image_cache


def _direct_ids(stack: Stack, collection: str, q: str, k: int) -> list[str]:
    """The same query straight to the Chroma server with the host's client."""
    col = stack.chroma().get_collection(collection)
    return col.query(query_embeddings=[embed(q, SEED[collection][0])], n_results=k)["ids"][0]


def test_health_and_status_counts_match(stack: Stack) -> None:
    assert stack.api("/health") == (200, {"status": "ok", "chroma": True, "redis": True})
    code, status = stack.api("/status")
    assert code == 200, status
    want = {name: n for name, (_, n) in SEED.items()}
    assert status["documents"] == want
    assert status["dimensions"] == {name: dim for name, (dim, _) in SEED.items()}
    assert status["total_documents"] == sum(want.values())
    assert status["redis"] is True and status["chroma"] is True
    assert {c.name: c.count() for c in stack.chroma().list_collections()} == want  # the server's own view


def test_query_answers_from_the_chroma_server(stack: Stack) -> None:
    for name, ids in stack.seeded.items():
        for doc_id in (ids[0], ids[len(ids) // 2], ids[-1]):
            q = stack.documents[name][doc_id]
            code, body = stack.api(f"/query?q={q.replace(' ', '+')}&k=5&collection={name}")
            assert code == 200, body
            assert body["ids"][0] == doc_id and body["results"][0]["distance"] == pytest.approx(0, abs=1e-5)
            assert set(body["ids"]) <= set(ids) and len(body["ids"]) == 5
            assert body["ids"] == _direct_ids(stack, name, q, 5)
            assert body["results"][0]["document"] == q
    # all collections merged by distance; POST with a JSON body
    q = stack.documents["faq"][stack.seeded["faq"][3]]
    code, body = stack.api("/query", {"q": q, "k": 4})
    assert code == 200, body
    assert body["ids"][0] == stack.seeded["faq"][3]
    assert {r["collection"] for r in body["results"]} <= set(SEED)
    assert all(r["id"] in stack.seeded[r["collection"]] for r in body["results"])
    distances = [r["distance"] for r in body["results"]]
    assert distances == sorted(distances)


def test_query_errors(stack: Stack) -> None:
    assert stack.api("/query?q=refund&k=3&collection=nope")[0] == 404
    assert stack.api("/query?k=3")[0] == 400
    assert stack.api("/query?q=refund&k=0")[0] == 400
    assert stack.api("/nothing")[0] == 404


def test_query_cached_in_redis(stack: Stack) -> None:
    q = "warranty return policy " + stack.name  # a query no other test asks
    first = stack.api(f"/query?q={q.replace(' ', '+')}&k=3")[1]
    second = stack.api(f"/query?q={q.replace(' ', '+')}&k=3")[1]
    assert first["cached"] is False and first["cache"] == "on"
    assert second["cached"] is True and second["ids"] == first["ids"]
    keys = stack.redis().keys(CACHE_PREFIX + "*")
    assert keys and all(0 < stack.redis().ttl(k) <= 300 for k in keys)


def test_data_in_named_volumes(stack: Stack) -> None:
    for service, volume in (("chroma", "chroma_data"), ("redis", "redis_data")):
        mounts = stack.container(service)["Mounts"]
        assert [(m["Type"], m["Name"], m["Destination"]) for m in mounts] == [("volume", stack.volume(volume), "/data")]
        assert stack.mountpoint(volume).is_relative_to(stack.engine.data_root)
    # Chroma: its sqlite in the volume holds every seeded record
    db = stack.mountpoint("chroma_data") / "chroma.sqlite3"
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        stored = {row[0] for row in conn.execute("SELECT embedding_id FROM embeddings")}
    assert stored == {i for ids in stack.seeded.values() for i in ids}
    assert [p.name for p in stack.mountpoint("chroma_data").iterdir() if re.fullmatch(r"[0-9a-f-]{36}", p.name)]
    # Redis: a SAVE writes dump.rdb into its volume (written by the image's redis user, not root)
    stack.redis().set("compose-test:marker", stack.name)
    assert stack.redis().save()
    dump = stack.mountpoint("redis_data") / "dump.rdb"
    assert dump.stat().st_size > 0 and stack.name.encode() in dump.read_bytes()
    assert dump.stat().st_uid != 0


def test_images_keep_their_own_ca_bundle(stack: Stack) -> None:
    """The host CA (given to pip during the build) is in no image: each has the Debian base's bundle."""
    host_local = [blk for f in sorted(Path("/usr/local/share/ca-certificates").glob("*.crt"))
                  for blk in re.findall(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", f.read_text(), re.S)]
    for name, image in stack.images.items():
        bundle = stack.engine.run("run", "--rm", "--network", "none", "--entrypoint", "cat", image.tag,
                                  "/etc/ssl/certs/ca-certificates.crt").stdout
        digest = stack.engine.run("run", "--rm", "--network", "none", "--entrypoint", "sha256sum", image.tag,
                                  "/etc/ssl/certs/ca-certificates.crt").stdout.split()[0]
        assert digest == image.meta["ca_sha256"], name
        assert not [blk for blk in host_local if blk in bundle], f"{name}: a host-local CA is in the image"


@pytest.mark.parametrize("stack_engine", ["docker-20"], indirect=True)
def test_ragops_image_runs_readonly_as_10001(stack_engine) -> None:  # noqa: ANN001 - the engine fixture
    """The project's own Dockerfile, built on the local Debian base: `invoke --list` as UID 10001."""
    ragops = image_cache()["ragops"]
    if not ragops.cached:
        pytest.skip(f"{ragops.tag} (the ragops image of this tree) is not built: run "
                    "bash scripts/setup.d/60-images.sh ragops (its key changes with every edit under ragops/)")
    stack_engine.run("load", "-q", "-i", str(ragops.tar), timeout=600)
    out = stack_engine.run("run", "--rm", "--network", "none", "--read-only", "--tmpfs", "/tmp", ragops.tag).stdout
    assert "backup" in out and "restore-test" in out, out
    assert stack_engine.run("run", "--rm", "--network", "none", "--entrypoint", "id", ragops.tag, "-u").stdout.strip() == "10001"
    versions = stack_engine.run("run", "--rm", "--network", "none", "--entrypoint", "sh", ragops.tag, "-c",
                                "restic version; python3 -c 'import chromadb, redis; print(chromadb.__version__)'; "
                                "kubectl version --client --short 2>/dev/null || kubectl version --client").stdout
    assert versions.startswith("restic ") and ragops.meta["ca_sha256"]
    assert "Client Version: v1." in versions, versions  # velero.restore-test's CronJob runs kubectl in this image
