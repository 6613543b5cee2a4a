"""The real-Docker test fixtures work: engines, images, Compose projects, health states."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.fixtures.docker_assets import OLD_CREATED, busybox_rootfs_tar
from tests.fixtures.docker_engine import Engine, start_engine


def _created(engine: Engine, ref: str) -> datetime:
    raw = engine.inspect(ref, kind="image")[0]["Created"]  # RFC 3339, nanoseconds
    return datetime.fromisoformat(raw[:19]).replace(tzinfo=UTC)


def test_engine_reports_api_version(dockerd):
    assert dockerd.api_version == "1.41"
    assert dockerd.version.startswith("20.10.")
    assert dockerd.host == f"unix://{dockerd.root}/sock"
    assert dockerd.env["DOCKER_HOST"] == dockerd.host
    assert (Path(dockerd.env["DOCKER_CONFIG"]) / "cli-plugins/docker-compose").exists()
    assert os.path.exists(f"/proc/{dockerd.pid}")
    out = dockerd.run("version", "--format", "{{.Server.APIVersion}} {{.Client.Version}}").stdout.split()
    assert out[0] == "1.41" and out[1].startswith("20.10.")  # the matching CLI comes first on PATH
    assert dockerd.compose_version.lstrip("v").startswith("2.")
    networks = dockerd.run("network", "ls", "--format", "{{.Name}}").stdout.split()
    assert sorted(networks) == ["host", "none"]  # dockerd --bridge=none: no bridge network at all


def test_images_exist_with_creation_dates(dockerd, images):
    now = datetime.now(UTC)
    for ref in (images.busybox, images.api_v1, images.api_v2, images.broken):
        assert now - _created(dockerd, ref) < timedelta(hours=1), ref
    old = datetime.fromisoformat(OLD_CREATED.replace("Z", "+00:00"))
    assert _created(dockerd, images.old) == old
    assert _created(dockerd, images.old_dangling) == old
    assert dockerd.inspect(images.old_dangling, kind="image")[0]["RepoTags"] == []
    info = dockerd.inspect(images.api_v2, kind="image")[0]
    assert "RAG_API_VERSION=2" in info["Config"]["Env"]
    assert info["Config"]["Labels"]["org.opencontainers.image.version"] == "2"
    assert "wget" in " ".join(info["Config"]["Healthcheck"]["Test"])
    out = dockerd.run("run", "--rm", "--network", "none", images.api_v1, "cat", "/www/health", "/www/version")
    assert out.stdout == "ok1"
    dangling = dockerd.run("images", "-q", "--no-trunc", "--filter", "dangling=true").stdout.split()
    assert dangling == [images.old_dangling]  # what `image prune --filter until=...` (no -a) would remove


def test_compose_project_two_healthy_replicas(dockerd, compose_project):
    proj = compose_project()
    ids = proj.containers()
    assert len(ids) == 2
    for cid in ids:
        assert dockerd.health(cid) == "healthy"
        assert proj.http_get(cid, "/health") == "ok"
        assert proj.http_get(cid, "/version") == "1"
        mounts = dockerd.inspect(cid)[0]["Mounts"]
        assert [(m["Name"], m["Destination"]) for m in mounts] == [(proj.volume, "/data")]
    assert dockerd.inspect(proj.volume, kind="volume")[0]["Labels"]["com.docker.compose.volume"] == "rag_chroma_data"
    t0 = time.monotonic()
    proj.compose("stop", "-t", "10")
    assert time.monotonic() - t0 < 8  # init: true -> SIGTERM reaches the server, no 10 s timeout
    proj.down()
    assert proj.containers(all=True) == []


def test_broken_image_becomes_unhealthy(dockerd, images):
    cid = dockerd.run("run", "-d", "--init", "--network", "none", images.broken).stdout.strip()
    try:
        assert dockerd.wait_health(cid, "unhealthy", timeout=30) == "unhealthy"
    finally:
        dockerd.run("rm", "-f", cid)


def test_compose_up_wait_fails_on_broken_image(compose_project, images):
    proj = compose_project(image=images.broken, replicas=1, up=False)
    with pytest.raises(RuntimeError, match="rc 1"):
        proj.up(timeout=20)


def test_new_engine(dockerd_new, images_new, compose_project):
    assert tuple(int(x) for x in dockerd_new.api_version.split(".")) >= (1, 42)
    assert dockerd_new.version.startswith("26.")
    proj = compose_project(image=images_new.api_v2, engine=dockerd_new)
    ids = proj.containers()
    assert len(ids) == 2 and all(dockerd_new.health(c) == "healthy" for c in ids)
    assert proj.http_get(ids[0], "/version") == "2"


def test_fresh_engine_is_private(dockerd, images, fresh_engine):
    engine, imgs = fresh_engine()
    assert engine.root != dockerd.root and engine.pid != dockerd.pid
    engine.run("image", "prune", "-a", "-f")  # wrecks only the private engine
    assert engine.run("images", "-q").stdout.split() == []
    assert dockerd.inspect(imgs.api_v1, kind="image")


def test_engine_stop_leaves_nothing(dockerd):
    engine = start_engine(dockerd.spec)  # a second private engine, beside the session one
    engine.run("import", "-", "local/busybox:1", input=busybox_rootfs_tar())
    engine.run("run", "-d", "--network", "none", "local/busybox:1", "sleep", "600")
    engine.run("volume", "create", "keep")
    root, pid = engine.root, engine.pid
    engine.stop()
    assert not root.exists()
    assert not os.path.exists(f"/proc/{pid}") or "Z" in Path(f"/proc/{pid}/stat").read_text().split(") ")[1][:1]
    leftovers = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _mentions(p, str(root))]
    assert leftovers == []
    assert str(root) not in Path("/proc/self/mountinfo").read_text()


def _mentions(proc: Path, needle: str) -> bool:
    try:
        return needle.encode() in (proc / "cmdline").read_bytes()
    except OSError:
        return False
