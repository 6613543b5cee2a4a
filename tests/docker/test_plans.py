"""Pure planners of the docker package: prune candidates, log audit, history, plans, parsing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ragops.config import DockerSettings
from ragops.docker.audit import make_audit
from ragops.docker.cli import make_docker_command, parse_duration, parse_size, parse_time
from ragops.docker.compose import make_override_text, parse_override
from ragops.docker.history import find_rollback_targets
from ragops.docker.prune import PruneOptions, Snapshot, make_prune_plan
from ragops.docker.record import make_release_markdown
from ragops.docker.upgrade import make_upgrade_plan
from ragops.errors import StepError
from ragops.report import HostResult, RunResult, StepResult

NOW = datetime(2026, 1, 10, tzinfo=UTC)
OLD, NEW = "2020-01-02T03:04:05Z", "2026-01-09T23:00:00.123456789Z"


def container(cid, status="running", image="sha256:img1", labels=None, volumes=(), network="none"):
    return {"Id": cid, "Name": f"/{cid}", "State": {"Status": status}, "Config": {"Labels": labels or {}},
            "Image": image, "Mounts": [{"Type": "volume", "Name": v} for v in volumes], "SizeRw": 10,
            "HostConfig": {"NetworkMode": network}, "NetworkSettings": {"Networks": {network: {"NetworkID": f"id-{network}"}}}}


def image(iid, created, tags=(), labels=None):
    return {"Id": iid, "Created": created, "RepoTags": list(tags), "Size": 100, "Config": {"Labels": labels or {}}}


def opts(volumes=False):
    return PruneOptions(until_s=168 * 3600, volumes=volumes, protected_label="ragops.protected=true",
                        protected_volumes=["*chroma*", "*redis*"], now=NOW)


def snapshot():
    return Snapshot(
        containers=[container("run1", volumes=["in_use"]), container("stop1", "exited", "sha256:img2", volumes=["stopped_ref"]),
                    container("keep1", "exited", "sha256:img3", labels={"ragops.protected": "true"}, network="appnet")],
        images=[image("sha256:img1", OLD, ["app:1"]), image("sha256:img2", OLD, ["app:2", "app:latest"]),
                image("sha256:img3", OLD, ["app:3"]), image("sha256:dang", NEW), image("sha256:fresh", NEW, ["app:4"]),
                image("sha256:prot", OLD, ["base:1"], labels={"ragops.protected": "true"})],
        networks=[{"Id": "id-none", "Name": "none"}, {"Id": "id-host", "Name": "host"}, {"Id": "n1", "Name": "unused"},
                  {"Id": "id-appnet", "Name": "appnet"}, {"Id": "n2", "Name": "swarmnet", "Scope": "swarm"}],
        volumes=[{"Name": "in_use"}, {"Name": "stopped_ref"}, {"Name": "proj_rag_chroma_data"},
                 {"Name": "x", "Labels": {"com.docker.compose.volume": "redis_data"}},
                 {"Name": "lab", "Labels": {"ragops.protected": "true"}}, {"Name": "orphan"}],
        volume_sizes={"orphan": 4096},
    )


def test_prune_plan_takes_stopped_containers_dangling_and_old_unused_images_and_unused_networks():
    plan = make_prune_plan(snapshot(), opts())
    got = {(c.kind, c.name) for c in plan}
    assert got == {("container", "stop1"), ("image", "app:2, app:latest"), ("image", "dang"),
                   ("network", "unused")}
    old = next(c for c in plan if c.name.startswith("app:2"))
    assert old.args == ["rmi", "app:2", "app:latest"]  # untag every tag: rmi <id> refuses multi-tag images
    assert [c.kind for c in plan] == ["container", "image", "image", "network"]


def test_prune_plan_touches_volumes_only_when_asked_and_never_protected_or_referenced_ones():
    assert not [c for c in make_prune_plan(snapshot(), opts()) if c.kind == "volume"]
    vols = [c for c in make_prune_plan(snapshot(), opts(volumes=True)) if c.kind == "volume"]
    assert [(c.name, c.size) for c in vols] == [("orphan", 4096)]  # stopped_ref: referenced by a stopped container


def test_docker_command_sets_host_and_config_and_quotes_arguments():
    s = DockerSettings(docker_host="unix:///run/x.sock", docker_config="/etc/d c", cli="/usr/bin/docker")
    assert make_docker_command(s, ["ps", "--format", "{{json .}}"]) == \
        "DOCKER_HOST=unix:///run/x.sock DOCKER_CONFIG='/etc/d c' /usr/bin/docker ps --format '{{json .}}'"


def test_parsers_read_docker_sizes_durations_and_nanosecond_times():
    assert parse_size("1.986MB") == 1_986_000 and parse_size("3B") == 3 and parse_size("N/A") == 0
    assert parse_duration("168h") == parse_duration("7d") == 604800 and parse_duration("1h30m") == 5400
    with pytest.raises(StepError, match="bad duration"):
        parse_duration("7 days")
    assert parse_time("2020-01-02T03:04:05.123456789Z") == datetime(2020, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    assert parse_time("2020-01-02T04:04:05+01:00") == datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_audit_flags_unbounded_json_file_logs_with_the_fix_and_passes_bounded_ones():
    def ctr(name, kind, cfg, service=None):
        labels = {"com.docker.compose.project": "p", "com.docker.compose.service": service} if service else {}
        return {"Id": name * 4, "Name": "/" + name, "Config": {"Labels": labels}, "HostConfig": {"LogConfig": {"Type": kind, "Config": cfg}}}

    containers = [ctr("a", "json-file", {}, "api"), ctr("b", "json-file", {"max-size": "10m"}, "worker"),
                  ctr("c", "local", {}), ctr("d", "journald", {})]
    project = {"name": "p", "services": {"api": {}, "worker": {}, "bounded": {"logging": {"driver": "json-file", "options": {"max-size": "10m", "max-file": "3"}}}}}
    audit = make_audit(containers, project)
    assert [c["container"] for c in audit["containers"]] == ["a"]
    assert [s["service"] for s in audit["services"]] == ["api"]  # worker: daemon log-opts bound its containers
    assert 'max-size: "10m"' in audit["services"][0]["fix"] and 'max-file: "3"' in audit["services"][0]["fix"]


def test_override_file_round_trips_the_pinned_images():
    text = make_override_text({"api": "reg/rag-api:1.5.0", "worker": "reg/w:2"})
    assert text.startswith("# Written by ragops")
    assert parse_override(text) == {"api": "reg/rag-api:1.5.0", "worker": "reg/w:2"}
    assert parse_override(None) == {}


def test_rollback_targets_skip_failed_upgrades_and_walk_back_past_earlier_rollbacks():
    def rec(i, to, frm, kind="upgrade", result="ok", undoes=None, service="api"):
        return {"id": i, "kind": kind, "project": "p", "service": service, "result": result,
                "from": {"image": frm}, "to": {"image": to}, "undoes": undoes}

    history = [rec("1", "v2", "v1"), rec("2", "v3", "v2", kind="release"), rec("3", "broken", "v3", result="rolled_back"),
               rec("4", "w2", "w1", service="worker")]
    assert find_rollback_targets(history, "p", ["api"])["api"]["id"] == "2"
    history.append(rec("5", "v2", "v3", kind="rollback", undoes="2"))
    assert find_rollback_targets(history, "p", ["api", "worker"])["api"]["from"]["image"] == "v1"
    assert find_rollback_targets(history, "other", ["api"]) == {}


def test_upgrade_plan_replaces_one_replica_at_a_time_and_names_the_rollback():
    lines = make_upgrade_plan(service="api", project="p", replicas=["p-api-1", "p-api-2"], from_image="a:1", to_image="a:2",
                              compose=["compose", "-f", "c.yaml", "-f", "o.yaml"], override_path="o.yaml",
                              health_command="wget -q -O- http://127.0.0.1:8080/health", timeout_s=30, stop_timeout_s=5,
                              history_file="/h.jsonl")
    assert "keeping >= 1 healthy" in lines[0]
    replica_lines = [x for x in lines if "replica " in x and "--scale api=3 --no-recreate" in x]
    assert len(replica_lines) == 2 and "docker rm p-api-1" in replica_lines[0] and "docker rm p-api-2" in replica_lines[1]
    assert any("pin a:1 again" in x for x in lines) and lines[-1] == "append the outcome to /h.jsonl"


def test_release_markdown_lists_every_host_and_step():
    run = RunResult("release", False, [HostResult("h2", steps=[StepResult("preflight", message="ok")]),
                                       HostResult("h3", status="failed", error="release stopped at upgrade:api",
                                                  steps=[StepResult("upgrade:api", "failed", message="a|b")])])
    run.hosts[1].exit_code = 1
    md = make_release_markdown(run, {"version": "1.5.0", "release_id": "r1", "started": "t", "who": "me@c", "hosts": ["h2", "h3"],
                                     "batch_size": 1, "options": {}, "stopped_after_batch": 2, "stop_reason": "failed on h3"})
    assert md.startswith("# Release 1.5.0 — FAILED")
    assert "| h3 | upgrade:api | failed | 0.0s | a\\|b |" in md and "Stopped after batch 2" in md
