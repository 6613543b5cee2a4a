"""The restore drill's pure planners (ragops/drill/plan.py, compare.py) and its policy settings: no
engine needed (the real drill on the Compose stack: test_drill.py)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from ragops.backup.policy import Policy
from ragops.backup.policy_drill import DrillSettings
from ragops.drill.compare import (
    Answer,
    make_comparison,
    make_reference_check,
    make_rto,
    overlap,
    parse_answer,
)
from ragops.drill.plan import count_ports, make_drill_plan, make_project_name
from ragops.errors import ConfigError, SafetyError
from ragops.report import find_latest_record

# `docker compose config --format json` of the seed stack (tests/fixtures/compose_stack.py), trimmed
LIVE: dict[str, Any] = {
    "name": "rag1",
    "services": {
        "chroma": {"image": "ragops/chroma:k", "network_mode": "host", "container_name": "live-chroma",
                   "environment": {"CHROMA_HOST": "127.0.0.1", "CHROMA_PORT": "8000"}, "restart": "always",
                   "volumes": [{"type": "volume", "source": "chroma_data", "target": "/data", "volume": {}}],
                   "healthcheck": {"interval": "1s"}},
        "redis": {"image": "ragops/redis:k", "network_mode": "host", "environment": {"REDIS_PORT": "6379"},
                  "volumes": [{"type": "volume", "source": "redis_data", "target": "/data", "volume": {}}]},
        "api": {"image": "ragops/rag-api:k", "network_mode": "host",
                "environment": {"RAG_API_PORT": "8080", "CHROMA_URL": "http://127.0.0.1:8000",
                                "REDIS_URL": "redis://127.0.0.1:6379/0"},
                "volumes": [{"type": "bind", "source": "/etc/rag", "target": "/etc/rag"}],
                "depends_on": {"chroma": {"condition": "service_healthy", "required": True}}},
    },
    "volumes": {"chroma_data": {"name": "rag1_chroma_data"}, "redis_data": {"name": "rag1_redis_data"}},
}
IMAGES = {"chroma": "sha256:c", "redis": "sha256:r", "api": "sha256:a"}
ROLES = {"chroma": "chroma", "redis": "redis", "api": "api"}
DATA = {"chroma": {"/data": ("/scratch/restore/staging/chroma", None)},
        "redis": {"/data": ("/scratch/restore/staging/dump.rdb", "dump.rdb")}}


def plan(live: dict[str, Any] = LIVE, settings: DrillSettings | None = None, **kw: Any) -> Any:
    settings = settings or DrillSettings()
    args: dict[str, Any] = {"project": "rag1-drill-abc123", "images": IMAGES, "roles": ROLES, "data": DATA,
                            "ports": [41001, 41002, 41003, 41004][:count_ports(live, ROLES, settings)],
                            "settings": settings, "live_volumes": {"rag1_chroma_data", "rag1_redis_data"}}
    return make_drill_plan(live, **{**args, **kw})


def test_the_drill_document_pins_images_and_uses_only_fresh_volumes_and_new_ports() -> None:
    p = plan()
    svc = p.compose["services"]
    assert p.compose["name"] == "rag1-drill-abc123" and p.project.startswith("rag1-drill-")
    assert {s: svc[s]["image"] for s in svc} == IMAGES and all(svc[s]["pull_policy"] == "never" for s in svc)
    assert svc["chroma"]["environment"]["CHROMA_PORT"] == "41001" and svc["redis"]["environment"]["REDIS_PORT"] == "41002"
    assert svc["api"]["environment"] == {"RAG_API_PORT": "41003", "CHROMA_URL": "http://127.0.0.1:41001",
                                         "REDIS_URL": "redis://127.0.0.1:41002/0"}
    assert p.api_url == "http://127.0.0.1:41003"
    assert "container_name" not in svc["chroma"] and svc["chroma"]["restart"] == "no"
    assert svc["api"]["volumes"] == [{"type": "bind", "source": "/etc/rag", "target": "/etc/rag", "read_only": True}]
    assert svc["api"]["depends_on"] == LIVE["services"]["api"]["depends_on"]
    assert p.compose["volumes"] == {"chroma_data": {"external": True, "name": "rag1-drill-abc123_chroma_data"},
                                    "redis_data": {"external": True, "name": "rag1-drill-abc123_redis_data"}}
    assert [(v.name, v.image, v.source, v.file_name) for v in p.volumes] == [
        ("rag1-drill-abc123_chroma_data", "sha256:c", "/scratch/restore/staging/chroma", None),
        ("rag1-drill-abc123_redis_data", "sha256:r", "/scratch/restore/staging/dump.rdb", "dump.rdb")]
    assert all(s["labels"] == {"ragops.drill": "rag1-drill-abc123", "ragops.drill.live": "rag1"} for s in svc.values())
    assert LIVE["services"]["chroma"]["container_name"] == "live-chroma"  # the live config is not mutated


def test_published_ports_move_to_new_loopback_ports() -> None:
    live = copy.deepcopy(LIVE)
    for name in live["services"]:
        del live["services"][name]["network_mode"]
    live["services"]["api"]["ports"] = [{"mode": "ingress", "target": 8080, "published": "8080", "protocol": "tcp"}]
    p = plan(live)
    assert p.compose["services"]["api"]["ports"] == [{"target": 8080, "published": "41001", "host_ip": "127.0.0.1",
                                                      "protocol": "tcp"}]
    assert p.api_url == "http://127.0.0.1:41001"
    assert p.compose["services"]["api"]["environment"]["CHROMA_URL"] == "http://127.0.0.1:8000"  # bridge: unchanged


def test_sharing_anything_with_live_is_refused() -> None:
    with pytest.raises(SafetyError, match="would be live volumes"):
        plan(live_volumes={"rag1-drill-abc123_chroma_data"})
    with pytest.raises(SafetyError, match="not the live project"):
        plan(project="rag1")
    live = copy.deepcopy(LIVE)
    live["services"]["api"]["network_mode"] = "container:live-chroma"
    with pytest.raises(SafetyError, match="shares a container"):
        plan(live)
    with pytest.raises(ConfigError, match="restore_test.drill.environment: no service web"):
        plan(settings=DrillSettings(environment={"web": {"X": "1"}}))
    with pytest.raises(ConfigError, match="has no container"):
        plan(images={"chroma": "sha256:c", "redis": "sha256:r"})
    assert make_project_name("Rag_Prod.1", "0a0b0c") == "rag_prod1-drill-0a0b0c"


def answer(ids: list[str], dist: list[float] | None = None, status: int = 200) -> Answer:
    results = [{"id": i, "distance": d} for i, d in zip(ids, dist or [0.0] * len(ids), strict=True)]
    import json

    return parse_answer(status, json.dumps({"ids": ids, "results": results if dist else []}))


def test_a_live_answer_without_its_expected_status_is_no_reference() -> None:
    good, broken = answer(["a"], [0.1]), answer([], status=503)
    assert make_reference_check(["/q", "/r"], [good, good], [200, 200], "http://live") is None
    check = make_reference_check(["/q", "/r"], [good, broken], [200, 200], "http://live")
    assert check is not None and not check.ok and check.check == "drill: setup"
    assert "/r" in check.evidence and "expected HTTP 200" in check.evidence and "no reference" in check.evidence
    assert make_reference_check(["/q"], [broken], [503], "http://live") is None  # a query that expects an error


def test_comparison_exact_ties_damage_and_drift() -> None:
    live = [answer(["a", "b", "c"], [0.1, 0.2, 0.3])]
    assert make_comparison(["/q"], [answer(["a", "b", "c"], [0.1, 0.2, 0.3])], live, 1.0, {"d": 3}, {"d": 3}).ok
    tie = answer(["a", "b", "x"], [0.1, 0.2, 0.3])  # x is as far as c: either makes the cut
    assert overlap(tie, live[0]) == 1.0
    near = answer(["a", "b", "x"], [0.1, 0.2, 0.31])
    assert overlap(near, live[0]) == pytest.approx(2 / 3)
    damaged = make_comparison(["/q"], [near], live, 1.0, {"d": 3}, {"d": 3})
    assert not damaged.ok and damaged.check == "drill: answers match live" and damaged.figures["damage"]
    drift = make_comparison(["/q"], [near], live, 1.0, {"d": 3}, {"d": 4})
    assert not drift.ok and drift.check == "drill: live drift" and drift.figures["drift"]
    assert make_comparison(["/q"], [near], live, 0.6, {"d": 3}, {"d": 4}).ok  # a busy store: less overlap
    # the drill holds what the snapshot recorded: drift; an empty (or partial) drill store: damage
    assert make_comparison(["/q"], [near], live, 1.0, {"d": 3}, {"d": 4}, {"d": 3}).check == "drill: live drift"
    empty = make_comparison(["/q"], [answer([], status=404)], live, 1.0, {}, {"d": 4}, {"d": 3})
    assert empty.check == "drill: answers match live" and "the snapshot recorded" in empty.evidence
    assert not make_comparison(["/q"], [answer(["a", "b", "c"], status=503)], live, 0.0, None, None).ok


def test_rto_runs_from_the_restore_to_the_first_correct_answer() -> None:
    phases = {"restore": 2.0, "volumes": 1.0, "start": 3.0, "healthy": 4.0, "first_answer": 0.5, "all_answers": 2.0}
    assert make_rto(phases) == 10.5
    assert make_rto({k: v for k, v in phases.items() if k != "first_answer"}) is None


def test_drill_settings_are_described_and_strict() -> None:
    base = {"repository": {"url": "/r", "password_file": "/p"}, "retention": {"keep_last": 1}}
    policy = Policy.model_validate({**base, "restore_test": {"drill": {"queries": [{"path": "/query?q=x&k=3"}],
                                                                       "min_overlap": 0.8}}})
    assert policy.restore_test.drill.services.chroma.port_env == "CHROMA_PORT"
    assert policy.restore_test.drill.services.redis.url_env == ["REDIS_URL"]
    with pytest.raises(ValidationError, match="extra"):
        Policy.model_validate({**base, "restore_test": {"drill": {"querys": []}}})
    with pytest.raises(ValidationError, match="environment variable name"):
        DrillSettings.model_validate({"services": {"chroma": {"url_env": ["bad-name"]}}})
    for model in (DrillSettings,):
        assert all(f.description for f in model.model_fields.values())


def test_drill_usage_errors_exit_2_before_anything_runs(tmp_path: Any) -> None:
    """`restore-test --drill` on a bare host or without api.url: one message, exit 2 (without queries the
    manifest's probes are asked: test_drill.py)."""
    import yaml

    from tests.fixtures.restore_helpers import invoke

    (tmp_path / "pw").write_text("pw\n")
    (tmp_path / "policies").mkdir()
    policy = {"repository": {"url": str(tmp_path / "repo"), "password_file": str(tmp_path / "pw")},
              "retention": {"keep_last": 1}}
    (tmp_path / "policies" / "t.yaml").write_text(yaml.safe_dump(policy))

    def run(settings: dict[str, Any]) -> Any:
        base = {"backup": {"policy": "t", "policies_dir": str(tmp_path / "policies")}, "lock_path": str(tmp_path / "lock"),
                "metrics_dir": str(tmp_path / "metrics")}
        (tmp_path / "ragops.yaml").write_text(yaml.safe_dump({"defaults": {**base, **settings}}))
        return invoke("restore-test", "--config", str(tmp_path / "ragops.yaml"), "--drill")

    res = run({"deployment": "bare"})
    assert res.returncode == 2 and "--drill needs a Compose host" in res.stderr, res.stderr[-2000:]
    res = run({"deployment": "compose", "docker": {"release": {"queries": [{"path": "/query?q=x"}]}}})
    assert res.returncode == 2 and "api.url" in res.stderr, res.stderr[-2000:]
    assert not (tmp_path / "metrics").exists()  # nothing recorded


def _chroma_doc(collections: list[Any]) -> dict[str, Any]:
    return {"sources": [{"kind": "chroma", "path": "/s/chroma", "collections": collections}]}


def test_probe_questions_from_an_untrusted_manifest_are_validated() -> None:
    """No queries configured: the manifest's Chroma probes become the questions (ragops/drill/probes.py);
    names, ids, dimensions, counts and k are checked, bounded, the bad ones refused with a reason."""
    from ragops.drill.probes import MAX_PROBES, check_vectors, make_probe_sets

    good = {"name": "docs", "count": 60, "dimension": 16, "k": 5, "probes": [{"id": "a", "top_k": ["a"]}, {"id": "b"}]}
    sets, refused = make_probe_sets(_chroma_doc([
        good,
        {"name": "../x", "count": 1, "dimension": 16, "probes": [{"id": "a"}]},
        {"name": "faq", "count": 3, "dimension": "16", "probes": [{"id": "a"}]},
        {"name": "kb", "count": 2, "dimension": 8, "k": 10, "probes": [{"id": "a"}, {"id": 5}, {"id": "a"}, "x"]},
        {"name": "big", "count": 10**6, "dimension": 4, "probes": [{"id": f"p{i}", "top_k": [1, 2, 3]} for i in range(200)]},
    ]))
    assert [(s.collection, s.ids, s.k, s.dimension) for s in sets[:2]] == [("docs", ("a", "b"), 5, 16), ("kb", ("a",), 2, 8)]
    assert sets[2].collection == "big" and len(sets[2].ids) == MAX_PROBES - 3 and sets[2].k == 3
    assert sum(len(s.ids) for s in sets) == MAX_PROBES
    assert any("'../x'" in r for r in refused) and any(r.startswith("faq: dimension") for r in refused)
    assert any(r.startswith("kb: 3 probe id(s)") for r in refused), refused
    assert make_probe_sets({"sources": [{"kind": "chroma", "collections": "x"}]}) == ([], [])
    assert make_probe_sets(None) == ([], [])
    ok = check_vectors({"ids": ["a"], "embeddings": [[0.5, 1]]}, ("a", "b"), 2)
    assert ok == (["a"], [[0.5, 1.0]], "")
    assert "not 2 finite numbers" in check_vectors({"ids": ["a"], "embeddings": [[0.5, float("nan")]]}, ("a",), 2)[2]
    assert "not 2 finite numbers" in check_vectors({"ids": ["a"], "embeddings": [[0.5]]}, ("a",), 2)[2]
    assert "not asked" in check_vectors({"ids": ["z"], "embeddings": [[0.5, 1]]}, ("a",), 2)[2]
    assert "equal length" in check_vectors({"ids": ["a"], "embeddings": []}, ("a",), 2)[2]


def test_drill_history_is_bounded_and_malformed_lines_are_ignored(tmp_path: Any) -> None:
    """The drill record (ragops/drill/history.py): appended by the real shell command, the last KEEP
    lines kept; a damaged or hostile line is not a record."""
    import json
    import subprocess

    from ragops.drill.history import (
        describe_drill,
        make_append_command,
        make_record,
        parse_history,
    )

    path = tmp_path / "state" / "drills.jsonl"
    sid = "0123456789abcdef" * 4
    for i in range(5):
        rec = make_record({"ok": i % 2 == 0, "rto_s": 10.0 + i, "answers_matched": i, "answers_total": 4,
                           "questions": "queries", "project": "p"}, sid if i < 4 else "f" * 64, "h1", now=1000.0 + i)
        subprocess.run(["bash", "-c", make_append_command(str(path), keep=3)], input=json.dumps(rec) + "\n",
                       text=True, check=True)
    text = path.read_text()
    assert len(text.splitlines()) == 3 and not (tmp_path / "state" / "drills.jsonl.tmp").exists()
    records, bad = parse_history(text + 'garbage\n{"snapshot_id": "../x", "ok": true, "time": "t"}\n[1]\n'
                                 + json.dumps({"snapshot_id": sid, "ok": True, "time": "t", "rto_s": "fast"}) + "\n")
    assert bad == 4 and [r["ts"] for r in records] == [1002.0, 1003.0, 1004.0]
    found = find_latest_record(records, sid)
    assert found is not None and found["ts"] == 1003.0 and not found["ok"]
    assert describe_drill(found) == "FAILED 1970-01-01T00:16:43Z (RTO 13.0s, 3/4 answers)"
    assert describe_drill(None) == "never" and find_latest_record(records, "0" * 64) is None
