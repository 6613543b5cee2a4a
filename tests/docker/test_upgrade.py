"""upgrade and release.rollback against a real engine and a real 2-replica Compose project."""

from __future__ import annotations

import json
import threading
import time

from ragops.config import Host, HostEntry, HostSettings
from ragops.docker.history import read_history
from ragops.docker.rollback import run_history_rollback
from ragops.docker.upgrade import run_upgrade_step
from ragops.seam import Target
from tests.fixtures.docker_engine import Engine


def make_target(engine: Engine, proj, tmp_path, dry: bool = False, **docker) -> Target:
    settings = HostSettings.model_validate({
        "lock_path": str(tmp_path / "lock"), "metrics_dir": None,
        "docker": {"docker_host": engine.host, "docker_config": engine.overrides["DOCKER_CONFIG"], "cli": engine.docker,
                   "compose_file": str(proj.file), "history_file": str(tmp_path / "history.jsonl"),
                   "health_timeout_s": 20.0, "stop_timeout_s": 2, "services": [{"name": "api"}], **docker},
    })
    return Target(Host(name="local", entry=HostEntry(), settings=settings, source="test"), dry=dry)


class HealthSampler(threading.Thread):
    """Counts healthy replicas of the service every 0.2 s while an upgrade runs."""

    def __init__(self, engine: Engine, proj) -> None:
        super().__init__(daemon=True)
        self.engine, self.proj, self.samples, self.stop = engine, proj, [], threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            out = self.engine.run("ps", "--filter", f"label=com.docker.compose.project={self.proj.name}",
                                  "--filter", "label=com.docker.compose.service=api", "--format", "{{.Status}}", check=False).stdout
            self.samples.append(sum("(healthy)" in line for line in out.splitlines()))
            time.sleep(0.2)

    def __enter__(self) -> HealthSampler:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.join()


def versions(proj) -> list[str]:
    return [proj.http_get(c, "/version") for c in proj.containers()]


def test_upgrade_replaces_replicas_keeping_n_minus_1_healthy_and_rollback_returns_to_the_previous_version(
        dockerd, images, compose_project, tmp_path):
    proj = compose_project()
    target = make_target(dockerd, proj, tmp_path)
    with HealthSampler(dockerd, proj) as sampler:
        res = run_upgrade_step(target, "api", images.api_v2)
    assert res.status == "ok", res.message
    assert len(sampler.samples) >= 10 and min(sampler.samples) >= 1  # N-1 of N=2, every 0.2 s
    assert versions(proj) == ["2", "2"] and all(dockerd.health(c) == "healthy" for c in proj.containers())
    assert (proj.dir / "compose.ragops.yaml").read_text().count("local/rag-api:2") == 1
    assert proj.volume in [m["Name"] for m in dockerd.inspect(proj.containers()[0])[0]["Mounts"]]

    rolled = run_history_rollback(target)
    assert [r.status for r in rolled] == ["ok"], rolled[0].message
    assert versions(proj) == ["1", "1"]
    history = read_history(target)
    assert [(h["kind"], h["result"], h["from"]["image"], h["to"]["image"]) for h in history] == [
        ("upgrade", "ok", images.api_v1, images.api_v2), ("rollback", "ok", images.api_v2, images.api_v1)]
    assert history[1]["undoes"] == history[0]["id"] and history[0]["who"] and history[0]["durations"]["total_s"] > 0
    assert run_history_rollback(target)[0].status == "skipped"  # nothing left to undo


def test_upgrade_to_a_broken_image_rolls_back_names_the_replica_and_ends_healthy(dockerd, images, compose_project, tmp_path):
    proj = compose_project()
    target = make_target(dockerd, proj, tmp_path)
    with HealthSampler(dockerd, proj) as sampler:
        res = run_upgrade_step(target, "api", images.broken)
    assert res.status == "failed"
    failing = res.details["failing_replica"]
    assert failing.startswith(f"{proj.name}-api-") and f"failing replica {failing}" in res.message
    assert "unhealthy" in res.message and "rolled back to local/rag-api:1" in res.message
    assert min(sampler.samples) >= 1
    assert versions(proj) == ["1", "1"] and all(dockerd.health(c) == "healthy" for c in proj.containers())
    assert len(proj.containers(all=True)) == 2  # the broken replica is gone
    (rec,) = read_history(target)
    assert (rec["result"], rec["to"]["image"], rec["failing_replica"]) == ("rolled_back", images.broken, failing)


def test_upgrade_dry_run_prints_the_plan_and_changes_nothing(dockerd, images, compose_project, tmp_path, capsys):
    proj = compose_project()
    before = proj.containers()
    res = run_upgrade_step(make_target(dockerd, proj, tmp_path, dry=True), "api", images.api_v2)
    err = capsys.readouterr().err
    assert res.status == "ok" and res.details["result"] == "planned"
    assert "--scale api=3 --no-recreate api" in err and "replica 2/2" in err and "append the outcome" in err
    assert proj.containers() == before and not (proj.dir / "compose.ragops.yaml").exists()
    assert not (tmp_path / "history.jsonl").exists()
    json.dumps(res.details)  # the JSON report can carry it
