"""Restore drills on the real Compose RAG stack (issue 14): `restore-test --drill` serves the restored
snapshot in a throwaway Compose project of the live images (by id) on fresh volumes and its own
loopback ports, and compares its answers with the live API's.

One stack per module (``data_stack``) on the 20.10 engine only (the drill's docker calls are the
data tasks' ones, tested on both engines in test_data_tasks.py; a second engine doubles the runtime).
"""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from ragops.rag_api import embed
from tests.compose.drill_fixtures import (
    DrillEnv,
    check,
    drill_objects,
    failed,
    live_state,
    make_queries,
    read_metrics,
    report_json,
    scratch_dirs,
)
from tests.fixtures.compose_stack import Stack
from tests.fixtures.fleet_helpers import start_invoke
from tests.fixtures.restore_helpers import craft_snapshot, invoke

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("stack_engine", ["docker-20"], indirect=True)]


@pytest.fixture(scope="module")
def base(data_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One backup of the live stack; the env's policy `t` drills with queries no other module asks."""
    nonce = uuid.uuid4().hex[:8]
    env = DrillEnv(data_stack, tmp_path_factory.mktemp("drill"),
                   {"queries": make_queries(data_stack, nonce), "health_timeout_s": 90})
    env.nonce, env.queries = nonce, make_queries(data_stack, nonce)  # type: ignore[attr-defined]
    data_stack.redis().set("drill:marker", nonce)  # in the snapshot's dump: the drill's Redis must hold it
    env.snapshot_id = env.backup()  # type: ignore[attr-defined]
    chroma = data_stack.container("chroma")["Id"]
    state = data_stack.engine.wait_health(chroma, "healthy", timeout=60)
    assert state == "healthy", f"the backup (strategy stop) left the live chroma {state}: ragops/backup/sources"
    return env


def warm_live(stack: Stack, queries: list[dict[str, Any]]) -> None:
    """Ask the live API the drill's queries first: the live Chroma server persists its index files
    lazily on the first query of a collection (its own normal work on read traffic, not a drill's
    write); afterwards the answers come from the live Redis cache and the live volumes stay still."""
    for q in queries:
        assert stack.api(q["path"])[0] == 200
    time.sleep(1.5)


def test_drill_passes_and_matches_live(data_stack: Stack, base: Any) -> None:
    warm_live(data_stack, base.queries)
    before = live_state(data_stack)
    step = base.drill(snapshot=base.snapshot_id)
    assert step.status == "ok", [(c["check"], c["evidence"]) for c in step.details["checks"] if not c["ok"]]
    after = live_state(data_stack)
    assert after["containers"] == before["containers"]
    for vol in ("chroma_data", "redis_data"):
        assert after[vol] == before[vol], (vol, {k: (before[vol].get(k), v) for k, v in after[vol].items()
                                                 if before[vol].get(k) != v})
    names = [c["check"] for c in step.details["checks"]]
    assert names[-5:] == ["drill: volumes filled", "drill: services healthy", "drill: answers match live",
                          "drill: teardown"][-4:] or "drill: answers match live" in names, names
    answers = check(step, "drill: answers match live")
    assert answers["ok"] and answers["figures"]["answers_matched"] == answers["figures"]["answers_total"] == 4
    report = step.details["drill"]
    assert report["ok"] and not report["kept"] and report["answers_matched"] == 4
    assert set(report["phases"]) == {"restore", "volumes", "start", "healthy", "first_answer", "all_answers"}
    assert report["rto_s"] == pytest.approx(sum(report["phases"][p] for p in
                                                ("restore", "volumes", "start", "healthy", "first_answer")), abs=0.01)
    ports = check(step, "drill: volumes filled")["figures"]["ports"]
    assert set(ports.values()).isdisjoint({data_stack.chroma_port, data_stack.redis_port, data_stack.api_port})
    metrics = read_metrics(base)
    assert 'ragops_restore_drill_success{host="local",source="local"} 1' in metrics or \
        "ragops_restore_drill_success" in metrics, metrics
    assert "ragops_restore_drill_last_success_timestamp_seconds" in metrics
    assert "ragops_restore_drill_answers_matched" in metrics and 'phase="first_answer"' in metrics
    assert drill_objects(data_stack) == {} and scratch_dirs(base) == []
    print(f"drill RTO {report['rto_s']}s, phases {report['phases']}")


def test_kept_drill_is_isolated_and_drill_down_removes_it(data_stack: Stack, base: Any) -> None:
    """--keep leaves the drill up: its containers run the live images by id on the drill volumes only,
    its Redis is not the live one (a key written there is not live); `invoke drill.down` removes it."""
    warm_live(data_stack, base.queries)
    before = live_state(data_stack)
    step = base.drill(snapshot=base.snapshot_id, keep=True)
    assert step.status == "ok", failed(step)
    report = step.details["drill"]
    project = report["project"]
    assert report["kept"] and report["down_command"] == f"invoke drill.down --host local --project {project}"
    assert f"invoke drill.down --host local --project {project}" in check(step, "drill: teardown")["evidence"]
    e = data_stack.engine
    ids = e.run("ps", "-q", "--no-trunc", "--filter", f"label=com.docker.compose.project={project}").stdout.split()
    assert len(ids) == 3
    live_volumes = {data_stack.volume("chroma_data"), data_stack.volume("redis_data")}
    live_images = {s: data_stack.container(s)["Image"] for s in ("chroma", "redis", "api")}
    for info in e.inspect(*ids):
        service = info["Config"]["Labels"]["com.docker.compose.service"]
        assert info["Image"] == live_images[service]  # the same image, by id
        assert info["HostConfig"]["NetworkMode"] == "host"
        mounts = {m.get("Name") for m in info["Mounts"] if m["Type"] == "volume"}
        assert mounts.isdisjoint(live_volumes) and all(m.startswith(project + "_") for m in mounts), mounts
    ports = check(step, "drill: volumes filled")["figures"]["ports"]
    import redis as redis_py

    drill_redis = redis_py.Redis(host="127.0.0.1", port=ports["redis"], socket_timeout=5)
    assert drill_redis.get("drill:marker") == base.nonce.encode()  # the restored dump, loaded
    drill_redis.set("drill:only", project)
    assert data_stack.redis().get("drill:only") is None and drill_redis.get("drill:only") == project.encode()
    drill_redis.close()
    res = invoke("drill.down", "--config", str(base.config), "--dry")
    assert res.returncode == 0 and "rm -f -v" in res.stderr + res.stdout, res.stderr[-2000:]
    assert len(e.run("ps", "-q", "--filter", f"label=com.docker.compose.project={project}").stdout.split()) == 3
    res = invoke("drill.down", "--config", str(base.config), "--json")
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    out = report_json(res.stdout)["hosts"][0]["steps"][0]
    assert out["details"]["projects"] == [project] and not out["details"]["left"], out
    assert drill_objects(data_stack) == {}
    after = live_state(data_stack)
    assert after == before
    assert invoke("drill.down", "--config", str(base.config), "--project", "rag-live").returncode == 2
    scratch = step.details["scratch_dir"]
    assert scratch and Path(scratch).is_dir()  # --keep keeps the scratch dir too (restore-test's --keep)
    import shutil

    shutil.rmtree(scratch)


def shift_vectors(staging: Path, manifest: dict[str, Any]) -> None:
    """Damage the snapshot's Chroma index: every stored vector moves to the next id (same count, same
    ids, same dimensions: the store's shape is intact, its answers are not)."""
    db = staging / "chroma" / "chroma.sqlite3"
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT seq_id, vector FROM embeddings_queue WHERE vector IS NOT NULL ORDER BY seq_id").fetchall()
        assert len(rows) >= 80, len(rows)
        by_size: dict[int, list[tuple[int, bytes]]] = {}
        for seq, vec in rows:
            by_size.setdefault(len(vec), []).append((seq, vec))
        for group in by_size.values():
            for (seq, _), (_, vec) in zip(group, group[1:] + group[:1], strict=True):
                conn.execute("UPDATE embeddings_queue SET vector = ? WHERE seq_id = ?", (vec, seq))
    for seg in (staging / "chroma").glob("*/"):  # the persisted index, if any, goes: Chroma rebuilds it from the log
        if seg.is_dir():
            for f in seg.iterdir():
                f.unlink()
            seg.rmdir()


def test_damaged_chroma_index_fails_the_answers_check(data_stack: Stack, base: Any, tmp_path: Path) -> None:
    sid = craft_snapshot(base, tmp_path, shift_vectors)
    before = live_state(data_stack)
    step = base.drill(snapshot=sid)
    assert step.status == "failed"
    assert live_state(data_stack)["containers"] == before["containers"]
    bad = failed(step)
    assert "drill: answers match live" in bad and "drill: live drift" not in bad, bad
    answers = check(step, "drill: answers match live")
    assert answers["figures"]["damage"] and answers["figures"]["answers_matched"] < answers["figures"]["answers_total"]
    assert "while the store's state is the same" in answers["evidence"], answers
    assert check(step, "drill: services healthy")["ok"]
    assert check(step, "drill: teardown")["ok"] and drill_objects(data_stack) == {} and scratch_dirs(base) == []
    assert "ragops_restore_drill_success" in read_metrics(base)


def test_unhealthy_drill_api_fails_the_health_check_and_leaves_nothing(data_stack: Stack, base: Any) -> None:
    """The drill API pointed at a port where nothing listens (restore_test.drill.environment): it never
    becomes healthy; the check names it and everything is removed."""
    base.add_policy("broken", {"queries": base.queries, "health_timeout_s": 12,
                               "environment": {"api": {"CHROMA_URL": "http://127.0.0.1:9"}}})
    before = live_state(data_stack)
    step = base.drill(snapshot=base.snapshot_id, policy="broken")
    assert step.status == "failed"
    assert failed(step) == ["drill: services healthy"], failed(step)
    health = check(step, "drill: services healthy")
    assert "not healthy within 12s" in health["evidence"], health
    assert re.search(r"api (starting|unhealthy), ", health["evidence"]) and "chroma healthy" in health["evidence"], health
    assert step.details["drill"]["rto_s"] is None and "first_answer" not in step.details["drill"]["phases"]
    assert drill_objects(data_stack) == {} and scratch_dirs(base) == []
    assert live_state(data_stack)["containers"] == before["containers"]


def test_sigterm_during_the_drill_leaves_nothing(data_stack: Stack, base: Any) -> None:
    """A real `invoke restore-test --drill` gets SIGTERM once the drill's containers exist: exit 130,
    no drill container, volume or scratch dir left, live untouched."""
    before = live_state(data_stack)["containers"]
    proc = start_invoke("restore-test", "--config", str(base.config), "--drill", "--snapshot", base.snapshot_id, "--json")
    try:
        deadline = time.monotonic() + 240
        while not data_stack.engine.run("ps", "-q", "--filter", "label=ragops.drill",
                                        "--filter", "label=com.docker.compose.project").stdout.split():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the drill never started"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err[-3000:]
    assert "interrupted" in out + err
    assert drill_objects(data_stack) == {} and scratch_dirs(base) == []
    assert live_state(data_stack)["containers"] == before


def engine_objects(stack: Stack) -> dict[str, list[str]]:
    e = stack.engine
    return {"containers": sorted(e.run("ps", "-aq", "--no-trunc").stdout.split()),
            "volumes": sorted(e.run("volume", "ls", "-q").stdout.split()),
            "networks": sorted(e.run("network", "ls", "-q").stdout.split())}


def test_dry_drill_prints_the_plan_and_starts_nothing(data_stack: Stack, base: Any) -> None:
    """`restore-test --dry --drill`: the plan (project, images by id, fresh volumes, ports, questions)
    and the commands, from reads only: no container, volume or network created, no scratch dir."""
    before = engine_objects(data_stack)
    res = invoke("restore-test", "--config", str(base.config), "--dry", "--drill", "--json")
    assert res.returncode == 0, res.stderr[-3000:]
    assert engine_objects(data_stack) == before and scratch_dirs(base) == []
    step = report_json(res.stdout)["hosts"][0]["steps"][0]
    plan, commands = step["details"]["drill_plan"], step["details"]["commands"]
    project = plan["project"]
    assert re.fullmatch(rf"{data_stack.name}-drill-[0-9a-f]{{6}}", project), plan
    assert plan["images"] == {s: data_stack.container(s)["Image"] for s in ("chroma", "redis", "api")}
    assert sorted(plan["volumes"]) == [f"{project}_chroma_data", f"{project}_redis_data"]
    assert not set(plan["volumes"]) & set(before["volumes"])
    assert set(plan["ports"].values()).isdisjoint({data_stack.chroma_port, data_stack.redis_port, data_stack.api_port})
    assert plan["questions"] == [q["path"] for q in base.queries]
    assert any(f"compose -p {project} -f" in c and c.endswith(" up -d") for c in commands), commands
    assert sum("volume create" in c for c in commands) == 2 and any("rm -f -v" in c for c in commands)
    assert f"(dry run) drill project: \"{project}\"" in res.stderr and "(dry run) " in res.stderr
    assert invoke("restore-test", "--config", str(base.config), "--dry").returncode == 2  # without --drill: refused


def test_drill_without_queries_asks_the_manifests_probes_and_marks_the_snapshot(data_stack: Stack, base: Any) -> None:
    """No queries configured: the manifest's Chroma probes, by their stored vectors, are asked of the
    drill's and the live Chroma server; the outcome is recorded and `backup.snapshots` shows it (a
    malformed line in the record is ignored with a warning)."""
    base.add_policy("probes", {"health_timeout_s": 90})
    before = live_state(data_stack)
    step = base.drill(snapshot=base.snapshot_id, policy="probes")
    assert step.status == "ok", failed(step)
    answers = check(step, "drill: answers match live")
    assert answers["figures"]["questions"] == "probes" and "probe answer(s)" in answers["evidence"], answers
    assert answers["figures"]["answers_matched"] == answers["figures"]["answers_total"] == 6, answers  # 3 x 2 collections
    report = step.details["drill"]
    assert report["questions"] == "probes" and report["ok"] and report["rto_s"]
    assert live_state(data_stack)["containers"] == before["containers"] and drill_objects(data_stack) == {}
    lines = base.history.read_text().splitlines()
    last = json.loads(lines[-1])
    assert last["snapshot_id"].startswith(base.snapshot_id) and len(last["snapshot_id"]) == 64 and last["ok"] is True and last["questions"] == "probes"
    assert last["answers_matched"] == 6 and last["rto_s"] == report["rto_s"]
    with base.history.open("a") as f:
        f.write('not json\n{"snapshot_id": "../../etc", "ok": "yes"}\n')
    res = invoke("backup.snapshots", "--config", str(base.config), "--policy", "probes", "--json")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "2 malformed line(s) ignored" in res.stderr, res.stderr[-2000:]
    rows = report_json(res.stdout)["hosts"][0]["steps"][0]["details"]["snapshots"]
    row = next(r for r in rows if last["snapshot_id"].startswith(r["id"]))
    assert row["drill"]["ok"] is True and row["drill"]["ts"] == last["ts"], row
    text = " ".join(res.stderr.split())  # the console may wrap long lines
    assert re.search(rf"{row['id']} .*? drill=passed \S+ \(RTO [0-9.]+s, 6/6 answers\)", text), text[-2000:]


def test_backup_and_probe_drill_over_ssh(data_stack: Stack, base: Any, sshd: Any) -> None:
    """The same stack as a remote host: `invoke backup` and `restore-test --drill` (no queries: the
    probes, POSTed with curl on the host) run every command over SSH (the test sshd on 127.0.0.2),
    the private engine reached through docker.docker_host. Both pass; afterwards no SSH connection
    of ragops and none of the drill's ports is left open."""
    import yaml

    from tests.fixtures.fleet_helpers import make_host_entry
    from tests.fixtures.services import port_open

    base.add_policy("ssh", {"health_timeout_s": 90})
    defaults = yaml.safe_load(base.config.read_text())["defaults"]
    defaults["backup"] = {**defaults["backup"], "policy": "ssh"}
    config = base.root / "ssh.yaml"
    config.write_text(yaml.safe_dump({"defaults": defaults, "hosts": {"h2": make_host_entry(sshd, "127.0.0.2")}}))

    def ssh_sessions() -> int:
        out = subprocess.run(["ss", "-Htn", "state", "established", f"( dport = :{sshd.port} )"],
                             capture_output=True, text=True, check=True).stdout
        return len(out.splitlines())

    sessions = ssh_sessions()
    log = sshd.dir / "sshd.log"
    accepted = log.read_text().count("Accepted publickey")
    res = invoke("backup", "--config", str(config), "--host", "h2", "--json")
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    snap = report_json(res.stdout)["hosts"][0]["steps"][0]["details"]["snapshot_id"]
    before = live_state(data_stack)["containers"]
    res = invoke("restore-test", "--config", str(config), "--host", "h2", "--drill", "--json")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    step = report_json(res.stdout)["hosts"][0]["steps"][0]
    assert step["details"]["snapshot"].startswith(snap) and step["details"]["source"] == "h2"
    report = step["details"]["drill"]
    assert report["ok"] and report["questions"] == "probes" and report["answers_matched"] == 6, step["details"]["checks"]
    ports = next(c for c in step["details"]["checks"] if c["check"] == "drill: volumes filled")["figures"]["ports"]
    assert ports and not any(port_open("127.0.0.1", p) for p in ports.values()), ports
    assert ssh_sessions() == sessions
    assert log.read_text().count("Accepted publickey") >= accepted + 2  # both tasks connected over SSH
    assert drill_objects(data_stack) == {} and scratch_dirs(base) == []
    assert live_state(data_stack)["containers"] == before  # the drill left the live containers alone
    last = json.loads(base.history.read_text().splitlines()[-1])
    assert last["host"] == "h2" and last["snapshot_id"].startswith(snap) and last["ok"]


def test_live_changed_after_the_snapshot_is_reported_as_drift(data_stack: Stack, base: Any) -> None:
    """Documents added to live after the snapshot take the top of a query's answer: drift (the store's
    counts differ), not damage. Runs last: it changes the live store."""
    col = data_stack.chroma().get_collection("docs")
    q = f"drift {base.nonce} refund policy"
    col.add(ids=[f"new-{i}" for i in range(3)], embeddings=[embed(q, 16)] * 3, documents=[q] * 3)
    base.add_policy("drift", {"queries": [{"path": f"/query?q={q.replace(' ', '+')}&k=5&collection=docs"}]})
    step = base.drill(snapshot=base.snapshot_id, policy="drift")
    assert failed(step) == ["drill: live drift"], failed(step)
    drift = check(step, "drill: live drift")
    assert drift["figures"]["drift"] and '"docs": 63' in drift["evidence"] and '"docs": 60' in drift["evidence"], drift
    assert drill_objects(data_stack) == {} and scratch_dirs(base) == []
