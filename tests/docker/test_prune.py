"""docker.prune against real private engines: 20.10 (API 1.41) and 26.x (API >= 1.42)."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from ragops.config import Host, HostEntry, HostSettings
from ragops.docker.prune import run_docker_step, run_prune
from ragops.seam import Target
from tests.fixtures.docker_engine import Engine


def make_target(engine: Engine, tmp_path, dry: bool = False, **docker) -> Target:
    settings = HostSettings.model_validate({
        "lock_path": str(tmp_path / "lock"), "metrics_dir": None,
        "docker": {"docker_host": engine.host, "docker_config": engine.overrides["DOCKER_CONFIG"], "cli": engine.docker, **docker},
    })
    return Target(Host(name="local", entry=HostEntry(), settings=settings, source="test"), dry=dry)


def make_state(engine: Engine) -> dict[str, list[str]]:
    """Every object the engine knows, plus `docker system df`."""
    def ls(*args: str) -> list[str]:
        return sorted(engine.run(*args).stdout.split())

    return {"containers": ls("ps", "-a", "-q", "--no-trunc"), "images": ls("images", "-a", "-q", "--no-trunc"),
            "volumes": ls("volume", "ls", "-q"), "networks": ls("network", "ls", "-q"),
            "df": [engine.run("system", "df", "--format", "{{.Type}} {{.TotalCount}} {{.Size}}").stdout]}


def make_objects(engine: Engine, images) -> dict[str, str]:
    """A running container with a volume, a stopped one referencing another volume, a plain stopped
    one, and volumes: protected by name (chroma), by label, and one orphan."""
    bb = images.busybox
    for args in (["volume", "create", "proj_rag_chroma_data"], ["volume", "create", "--label", "ragops.protected=true", "labelled"],
                 ["volume", "create", "orphan"], ["volume", "create", "in_use"], ["volume", "create", "stopped_ref"]):
        engine.run(*args)
    running = engine.run("run", "-d", "--init", "--network", "none", "-v", "in_use:/d", bb, "sleep", "600").stdout.strip()
    stopped_ref = engine.run("create", "--network", "none", "-v", "stopped_ref:/d", images.api_v1, "true").stdout.strip()
    stopped = engine.run("run", "--network", "none", images.api_v2, "true").stdout.strip() or \
        engine.run("ps", "-a", "-q", "--no-trunc", "-l").stdout.strip()
    return {"running": running, "stopped_ref": stopped_ref, "stopped": stopped}


@pytest.mark.parametrize("new", [False, True], ids=["engine-20.10", "engine-26"])
def test_prune_removes_exactly_the_expected_objects_and_never_a_protected_or_in_use_volume(fresh_engine, tmp_path, new):
    engine, images = fresh_engine(new=new)
    objs = make_objects(engine, images)
    before = make_state(engine)

    dry = run_prune(make_target(engine, tmp_path, dry=True), until="168h", volumes=True)
    assert make_state(engine) == before  # the dry run changed nothing, system df included
    planned = {(c["kind"], c["name"]) for c in dry.details["candidates"]}
    assert planned == {("container", n) for n in _names(engine, objs["stopped_ref"], objs["stopped"])} | {
        ("image", images.old), ("image", images.old_dangling[7:19]), ("volume", "orphan")}
    assert all(c["size"] > 0 for c in dry.details["candidates"] if c["kind"] == "image")
    kept = {v["volume"]: v["kept_because"] for v in dry.details["protected_volumes"]}
    assert kept == {"proj_rag_chroma_data": "name matches '*chroma*'", "labelled": "label ragops.protected=true",
                    "in_use": "in use", "stopped_ref": "in use"}

    res = run_prune(make_target(engine, tmp_path), until="168h", volumes=True)
    assert res.status == "ok", res.message
    after = make_state(engine)
    assert after["containers"] == [objs["running"]]
    assert set(before["images"]) - set(after["images"]) >= {images.ids[images.old], images.old_dangling}
    for ref in (images.busybox, images.api_v1, images.api_v2, images.broken):  # recent (or in use): kept
        assert images.ids[ref] in after["images"]
    assert after["volumes"] == sorted(["proj_rag_chroma_data", "labelled", "in_use", "stopped_ref"])
    assert res.details["objects"]["container"] == 2 and res.details["objects"]["volume"] == 1
    assert res.details["bytes"]["image"] > 0 and res.bytes_freed >= res.details["bytes"]["image"]
    assert res.details["engine"]["api_version"] == engine.api_version


def _names(engine: Engine, *ids: str) -> list[str]:
    return [i["Name"].lstrip("/") for i in engine.inspect(*ids)]


def test_maintain_docker_step_never_touches_volumes_and_a_short_until_takes_recent_unused_images(fresh_engine, tmp_path):
    engine, images = fresh_engine()
    engine.run("volume", "create", "orphan")
    time.sleep(2.5)  # every image is now older than until=1s (the fixture may have built the last one just now)
    res = run_docker_step(make_target(engine, tmp_path, prune_until="1s"))
    assert res.status == "ok" and "volumes untouched" in res.message
    assert engine.run("volume", "ls", "-q").stdout.split() == ["orphan"]
    left = engine.run("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    assert images.api_v2 not in left and images.old not in left


def test_prune_over_ssh_lists_candidates_as_json_and_changes_nothing(dockerd, images, sshd, tmp_path):
    """docker on the "remote" host 127.0.0.2, reached through the test sshd; DOCKER_HOST from the config."""
    from tests.fixtures.fleet_helpers import INVOKE, REPO, make_host_entry, write_config

    cfg = write_config(tmp_path / "ragops.yaml", {"hosts": {"remote": {
        **make_host_entry(sshd, "127.0.0.2"), "lock_path": str(tmp_path / "lock"), "metrics_dir": None,
        "docker": {"docker_host": dockerd.host, "cli": dockerd.docker}}}})
    before = make_state(dockerd)
    proc = subprocess.run([INVOKE, "docker.prune", "--host", "remote", "--config", str(cfg), "--dry", "--json", "--volumes"],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    step = doc["hosts"][0]["steps"][0]
    assert doc["dry_run"] and step["status"] == "ok" and step["details"]["engine"]["api_version"] == "1.41"
    assert ("image", images.old) in {(c["kind"], c["name"]) for c in step["details"]["candidates"]}
    assert "(dry run) docker rmi local/old:1" in proc.stderr
    assert make_state(dockerd) == before
