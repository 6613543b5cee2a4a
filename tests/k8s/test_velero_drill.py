"""velero.restore-test's drill: the restored namespace's API Service answers like the live one's.

Real: the 1.20 API server and its service proxy (the queries go through ``kubectl get --raw
/api/v1/namespaces/NS/services/rag-api:8000/proxy/...``), the Services (live, and restored by the
Velero helper), their Endpoints made by the real endpoints controller from the pods' IPs, and behind
them two REAL rag API processes (ragops/rag_api.py on 127.0.0.1) on a real ``chroma run`` server and a
real redis-server (live: db 0, restored: db 1).
STAND-INS: the Velero server (velero_helper.py: restores objects, not data), the kubelet
(kubelet_helper.StandInKubelet: pods Ready with unique 10.244.x.y IPs) and the pod network
(pod_network.PodNetwork: the API server's HTTP proxy, forwarding a pod IP to the rag API process
routed to the pod's namespace). Loopback processes back the pods since the restored claims have no
volumes and the real node's engine has no rag-api image.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ragops.k8s.restore_drill import K8sDrill, find_service_in_url, make_k8s_drill, parse_status
from ragops.k8s.velero import run_velero_backup, run_velero_restore_test
from ragops.rag_api import cache_key
from tests.fixtures import services
from tests.fixtures.backup_helpers import make_chroma_dir

from .test_velero import make_rag_namespace

INVOKE = str(Path(sys.executable).parent / "invoke")
REPO = Path(__file__).resolve().parents[2]
QUERIES = ["/query?q=refund+policy&k=3", "/query?q=reset+password&k=3"]


@dataclass
class Apis:
    live_port: int
    restored_port: int
    redis: Any


@pytest.fixture(scope="module")
def apis(tmp_path_factory: pytest.TempPathFactory, redis_factory: Any) -> Iterator[Apis]:
    work = tmp_path_factory.mktemp("k8sdrill")
    make_chroma_dir(work / "chroma", {"docs": 40})
    chroma = services.start_chroma_server(work / "chroma", work / "chroma.log")
    redis = redis_factory("k8sdrill")
    procs = []
    try:
        ports = []
        for db in (0, 1):
            port = services.free_port()
            log = work / f"api-{db}.log"
            procs.append(services.start_process(
                [sys.executable, "-m", "ragops.rag_api", "--host", "127.0.0.1", "--port", str(port), "--chroma-url",
                 chroma.url, "--redis-url", f"redis://127.0.0.1:{redis.port}/{db}"], log,
                env={**os.environ, "PYTHONPATH": str(REPO)}))
            services.wait_for(lambda p=port: services.port_open("127.0.0.1", p), "rag api", procs[-1], log, 30)
            ports.append(port)
        yield Apis(ports[0], ports[1], redis)
    finally:
        for proc in procs:
            services.stop_process(proc, grace=2)
        chroma.stop()


@pytest.fixture
def rag_namespace(cluster, kube, velero, namespace, pod_network, apis: Apis) -> Iterator[str]:
    """The live namespace: rag-api Deployment + Service; its pods and the restored ones routed to the APIs."""
    pod_network.route(namespace, apis.live_port)
    pod_network.route(f"{namespace}-restoretest-*", apis.restored_port)
    apis.redis.client().flushall()
    try:
        make_rag_namespace(cluster, kube, namespace)
        cluster.apply([{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "rag-api", "namespace": namespace},
                        "spec": {"selector": {"app": "rag-api"},
                                 "ports": [{"name": "http", "port": 8000, "targetPort": 8080}]}}])
        assert run_velero_backup(kube, namespace, wait=True, timeout_s=60).status == "ok"
        yield namespace
    finally:
        pod_network.unroute(namespace)
        pod_network.unroute(f"{namespace}-restoretest-*")


def drill_of(**kw: Any) -> K8sDrill:
    return K8sDrill(service="rag-api", port="8000", paths=tuple(QUERIES), expect=(200, 200), timeout_s=20, **kw)


def test_the_drill_settings_come_from_the_policy_and_api_url() -> None:
    from ragops.backup.policy import Policy
    from ragops.config import RagopsConfig

    settings = RagopsConfig.model_validate({"defaults": {"api": {"url": "http://rag-api.rag-engine.svc:8000"}}}).defaults
    policy = Policy.model_validate({"repository": {"url": "/r", "password_file": "/p"}, "retention": {"keep_daily": 1},
                                    "restore_test": {"rto_budget_s": 60, "drill": {"queries": [{"path": QUERIES[0]}],
                                                                                   "min_overlap": 0.6}}})
    drill = make_k8s_drill(policy, settings, None, "rag-engine", "ragops.yaml")
    assert drill == K8sDrill("rag-api", "8000", (QUERIES[0],), (200,), 0.6, "/status", "documents", 60, settings.api.timeout_s)
    assert make_k8s_drill(None, settings, None, "rag-engine", "x") is None  # no queries: no comparison
    assert find_service_in_url("http://10.0.0.1:8000", "rag-engine") is None
    assert parse_status('I1201 round_trippers.go:445] GET https://127.0.0.1:6443/api/v1/x 503 Service Unavailable in 2 ms') == 503
    assert parse_status('"Response" verb="GET" url="https://h/api" status="404 Not Found" milliseconds=3') == 404


@pytest.mark.slow
def test_restored_answers_that_match_live_pass_through_the_cli_with_phases_and_metrics(
        cluster, rag_namespace, pod_network, tmp_path: Path) -> None:
    ns = rag_namespace
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "drill.yaml").write_text(json.dumps({
        "repository": {"url": str(tmp_path / "repo"), "password_file": str(tmp_path / "pw")},
        "retention": {"keep_daily": 1}, "restore_test": {"rto_budget_s": 600, "drill": {"queries": [{"path": q} for q in QUERIES]}}}))
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    config = tmp_path / "ragops.yaml"
    config.write_text(json.dumps({"defaults": {"metrics_dir": str(metrics), "api": {"url": f"http://rag-api.{ns}.svc:8000"},
                                               "backup": {"policies_dir": str(tmp_path / "policies"), "policy": "drill"}}}))
    res = subprocess.run([INVOKE, "velero.restore-test", "--namespace", ns, "--timeout", "90", "--config", str(config),
                          "--json"], env=cluster.env(), capture_output=True, text=True, timeout=240, cwd=REPO)
    assert res.returncode == 0, res.stdout + res.stderr
    step = json.loads(res.stdout)["hosts"][0]["steps"][0]
    checks = {c["check"]: c for c in step["details"]["checks"]}
    assert checks["drill: answers match live"]["ok"] and checks["drill: answers match live"]["figures"]["answers_matched"] == 2
    assert checks["drill: rto within budget"]["ok"]
    drill = step["details"]["drill"]
    assert set(drill["phases"]) == {"restore", "healthy", "first_answer", "all_answers"} and drill["rto_s"] > 0
    assert drill["ok"] and drill["answers_total"] == 2
    served = {n for n, _, _ in pod_network.forwarded}
    assert ns in served and any(n.startswith(f"{ns}-restoretest-") for n in served)  # both Services really answered
    prom = (metrics / "ragops_velero_restore_test.prom").read_text()
    assert f'ragops_restore_drill_success{{host="local",source="{ns}",step="velero.restore-test"}} 1' in prom
    assert 'phase="first_answer"' in prom and "ragops_restore_drill_answers_matched" in prom


@pytest.mark.slow
def test_restored_answers_that_differ_from_live_fail_naming_the_check(kube, rag_namespace, apis: Apis) -> None:
    client = apis.redis.client(db=1)
    wrong = {"query": "refund policy", "k": 3, "collection": None, "results": [], "ids": ["wrong-1", "wrong-2", "wrong-3"]}
    client.set(cache_key("refund policy", 3, None), json.dumps(wrong))  # the restored Redis holds a bad cache entry
    t0 = time.monotonic()
    result = run_velero_restore_test(kube, rag_namespace, timeout_s=90, drill=drill_of())
    assert result.status == "failed" and int(result.exit_code or 0) == 5, result.message
    assert re.search(r"FAILED drill: answers match live: 1 of 2 .*differ", result.message), result.message
    compared = next(c for c in result.details["checks"] if c["check"] == "drill: answers match live")
    assert compared["figures"]["damage"] is True and compared["figures"]["answers_matched"] == 1
    assert "wrong-1" in compared["evidence"] and result.details["scratch_deleted"] is True
    assert time.monotonic() - t0 < 60


def test_queries_without_a_service_to_ask_exit_2_before_anything_runs(tmp_path: Path) -> None:
    config = tmp_path / "ragops.yaml"
    config.write_text(json.dumps({"defaults": {"metrics_dir": None, "api": {"url": "http://10.1.2.3:8000"},
                                               "docker": {"release": {"queries": [{"path": QUERIES[0]}]}}}}))
    env = {**os.environ, "RAGOPS_KUBECTL": "/nonexistent/kubectl"}  # never reached
    res = subprocess.run([INVOKE, "velero.restore-test", "--config", str(config)], env=env, capture_output=True,
                         text=True, timeout=60, cwd=REPO)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "api.url: velero.restore-test asks the drill queries of the API Service: give --api-service" in res.stderr
    res = subprocess.run([INVOKE, "velero.restore-test", "--config", str(config), "--api-service", "rag_api"], env=env,
                         capture_output=True, text=True, timeout=60, cwd=REPO)
    assert res.returncode == 2 and "--api-service 'rag_api': must be NAME:PORT" in res.stderr, res.stderr
