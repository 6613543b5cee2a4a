"""The scheduled Velero restore drill (render.yaml ``velero_drill``): CronJob, ServiceAccount, least RBAC.

Offline: cadence, the setting switched off, the overlay's image tag in the arguments. Against the
real kube-apiserver 1.20 (``slow``, tests/k8s/conftest.py): the rendered objects are created for
real, ``kubectl auth can-i --as=system:serviceaccount:NS:SA`` (a SubjectAccessReview by the real RBAC
authorizer) answers yes for every call the task makes and no for what it must not do, and the
shipped CronJob's own arguments run `invoke velero.restore-test` end to end under that identity
(kubeconfig ``as:``), with the Velero-server helper and the stand-in kubelet of test_velero.py.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ragops.backup.policy import Policy, load_policies
from ragops.k8s.render import make_base, make_files, make_objects
from ragops.k8s.render_drill import make_drill_account
from ragops.k8s.settings import RenderSettings, load_render_settings

from . import test_velero_drill
from .test_render import K8S, ROOT, find_kubectl, make_policy, validate_kubernetes
from .test_rollout import INVOKE
from .test_velero import make_rag_namespace
from .test_velero_drill import QUERIES, Apis

DRILL = "ragops-velero-restore-test"
apis = test_velero_drill.apis  # the module-scoped fixture: two real rag API processes (chroma + redis behind)


def drill_settings(**over: Any) -> RenderSettings:
    return load_render_settings(K8S / "render.yaml").model_copy(update={"velero_drill": True, **over})


def drill_jobs(objs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objs
            if o["kind"] == "CronJob" and o["metadata"]["name"].startswith(DRILL)}


def args_of(cron: dict[str, Any]) -> list[str]:
    return list(cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"])


def test_the_drill_cronjob_runs_at_the_drill_cadence_else_the_restore_test_cadence() -> None:
    policies = {"default": make_policy(restore_test={"cadence": "30 6 * * 6", "drill": {"cadence": "45 4 * * 3"}}),
                "plain": make_policy(), "off": make_policy(restore_test={"enabled": False})}
    jobs = drill_jobs(make_objects(drill_settings(), policies))
    assert sorted(jobs) == [DRILL, f"{DRILL}-plain"]  # restore tests disabled: no drill either
    assert jobs[DRILL]["spec"]["schedule"] == "45 4 * * 3"
    assert jobs[f"{DRILL}-plain"]["spec"]["schedule"] == "30 6 * * 6"
    pod = jobs[DRILL]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "ragops-velero-drill" != drill_settings().service_account
    args = args_of(jobs[DRILL])
    assert args[:5] == ["velero.restore-test", "--image", "ragops", "--policy", "default"]
    assert "--host" not in args and args[-2:] == ["--config", "/etc/ragops/ragops.yaml"]
    for obj in make_base(drill_settings(), policies)["velero-drill.yaml"]:
        validate_kubernetes(obj)


def test_with_velero_drill_off_nothing_of_the_drill_is_rendered() -> None:
    assert RenderSettings().velero_drill is False  # the default
    policies = load_policies(ROOT / "backup-policies")
    files = make_files(drill_settings(velero_drill=False), policies)
    assert "base/velero-drill.yaml" not in files
    assert "velero-drill.yaml" not in yaml.safe_load(files["base/kustomization.yaml"].split("\n", 1)[1])["resources"]
    assert not any("velero-drill" in text or "velero-restore-test" in text for text in files.values())
    on = make_files(drill_settings(), policies)
    assert "base/velero-drill.yaml" in on and "velero-restore-test" in on["overlays/prod/kustomization.yaml"]


def test_an_overlay_gives_the_verification_job_its_tagged_image() -> None:
    built = subprocess.run([find_kubectl(), "kustomize", str(K8S / "overlays" / "prod")],
                           capture_output=True, text=True, check=True).stdout
    jobs = drill_jobs([d for d in yaml.safe_load_all(built) if d])
    tag = load_render_settings(K8S / "render.yaml").overlays["prod"].image_tag
    assert jobs, "k8s/render.yaml enables velero_drill: the prod overlay must have drill CronJobs"
    for cron in jobs.values():
        assert args_of(cron)[1:3] == ["--image", f"ragops:{tag}"]
        assert cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"] == f"ragops:{tag}"


# --- the real API server -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def drill_ns(cluster, kubelet) -> Iterator[dict[str, Any]]:
    """Every base object (the drill's included) rendered from the shipped inputs for a fresh RAG namespace, created for real."""
    ns = f"d-{uuid.uuid4().hex[:8]}"
    base = load_render_settings(K8S / "render.yaml")
    config = {**base.config, "defaults": {**base.config["defaults"], "api": {"url": f"http://rag-api.{ns}.svc:8000"}}}
    settings = drill_settings(namespace=ns, config=config)
    policies: dict[str, Policy] = load_policies(ROOT / "backup-policies")
    objs = make_objects(settings, policies, api_version="batch/v1beta1")
    try:
        for obj in objs:  # one by one (the rendered Namespace first): the API server must accept each as rendered
            cluster.kubectl_run("create", "-f", "-", stdin=json.dumps(obj))
        yield {"ns": ns, "settings": settings, "objs": objs,
               "user": f"system:serviceaccount:{ns}:{make_drill_account(settings)}"}
    finally:
        for obj in objs:
            if obj["kind"] in ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Schedule"):
                meta = obj["metadata"]
                cluster.kubectl_run("delete", obj["kind"].lower() if obj["kind"] != "Schedule" else "schedules.velero.io",
                                    meta["name"], *(["-n", meta["namespace"]] if "namespace" in meta else []),
                                    "--ignore-not-found", "--wait=false", check=False)
        cluster.kubectl_run("delete", "namespace", ns, "--wait=false", check=False)


def can_i(cluster, user: str, verb: str, resource: str, namespace: str | None = None) -> bool:
    what, _, sub = resource.partition("/")
    args = ["auth", "can-i", verb, what, f"--as={user}"] + ([f"--subresource={sub}"] if sub else [])
    res = cluster.kubectl_run(*args, *(["-n", namespace] if namespace else []), check=False)
    assert res.stdout.strip() in ("yes", "no"), res.stdout + res.stderr
    return res.stdout.strip() == "yes"


@pytest.mark.slow
def test_the_drill_account_may_do_exactly_what_velero_restore_test_does(cluster, drill_ns) -> None:
    ns, user = drill_ns["ns"], drill_ns["user"]
    scratch = f"{ns}-restoretest-20260101000000"
    needed = [("list", "backups.velero.io", "velero"), ("create", "restores.velero.io", "velero"),
              ("get", "restores.velero.io", "velero"), ("list", "deployments.apps", scratch),
              ("list", "pods", scratch), ("get", "endpoints", scratch), ("create", "jobs.batch", scratch),
              ("get", "jobs.batch", scratch), ("get", "pods/log", scratch), ("get", "services/proxy", scratch),
              ("get", "services/proxy", ns), ("get", "namespaces", None), ("delete", "namespaces", None)]
    denied = [("delete", "secrets", ns), ("get", "secrets", ns), ("list", "secrets", scratch),
              ("create", "namespaces", None), ("create", "restores.velero.io", ns),
              ("delete", "backups.velero.io", "velero"), ("create", "backups.velero.io", "velero"),
              ("delete", "restores.velero.io", "velero"), ("create", "pods", ns), ("delete", "jobs.batch", scratch),
              ("patch", "deployments.apps", ns), ("create", "pods/exec", scratch), ("get", "configmaps", ns),
              ("create", "rolebindings.rbac.authorization.k8s.io", scratch)]
    wrong = [c for c in needed if not can_i(cluster, user, *c)] + [("NOT", *c) for c in denied if can_i(cluster, user, *c)]
    assert not wrong, f"{user}: {wrong}"


def write_pod_files(objs: list[dict[str, Any]], root: Path, queries: list[str]) -> Path:
    """/etc/ragops as the pod sees it: ragops.yaml and backup-policies/ from the rendered ConfigMaps,
    the default policy given drill ``queries`` (the shipped ones have none: nothing would be compared)."""
    maps = {o["metadata"]["name"]: o["data"] for o in objs if o["kind"] == "ConfigMap"}
    (root / "backup-policies").mkdir(parents=True)
    (root / "ragops.yaml").write_text(maps["ragops-config"]["ragops.yaml"])
    for name, text in maps["ragops-backup-policies"].items():
        policy = yaml.safe_load(text)
        if name == "default.yaml":
            policy.setdefault("restore_test", {})["drill"] = {"queries": [{"path": q} for q in queries]}
        (root / "backup-policies" / name).write_text(yaml.safe_dump(policy))
    return root / "ragops.yaml"


@pytest.mark.slow
def test_the_shipped_drill_cronjob_command_runs_as_its_service_account(cluster, kube, velero, drill_ns, pod_network,
                                                                        apis: Apis, tmp_path: Path) -> None:
    """With drill queries: the service proxy (live and restored) and Endpoints are used for real too."""
    from ragops.k8s.velero import run_velero_backup

    ns = drill_ns["ns"]
    pod_network.route(ns, apis.live_port)
    pod_network.route(f"{ns}-restoretest-*", apis.restored_port)
    apis.redis.client().flushall()
    make_rag_namespace(cluster, kube, ns)
    cluster.apply([{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "rag-api", "namespace": ns},
                    "spec": {"selector": {"app": "rag-api"}, "ports": [{"name": "http", "port": 8000, "targetPort": 8080}]}}])
    assert run_velero_backup(kube, ns, wait=True, timeout_s=60).status == "ok"  # as admin: Velero's Schedule
    config = write_pod_files(drill_ns["objs"], tmp_path / "etc", QUERIES)
    kubeconfig = yaml.safe_load(cluster.kubeconfig.read_text())
    kubeconfig["users"][0]["user"]["as"] = drill_ns["user"]  # every request impersonates the drill's account
    (tmp_path / "kubeconfig").write_text(yaml.safe_dump(kubeconfig))
    args = args_of(drill_jobs(drill_ns["objs"])[DRILL])
    args[args.index("--config") + 1] = str(config)
    args[args.index("--timeout") + 1] = "90"
    try:
        res = subprocess.run([INVOKE, *args, "--json"], capture_output=True, text=True, cwd=ROOT, timeout=400,
                             env={**cluster.env(), "KUBECONFIG": str(tmp_path / "kubeconfig")})
    finally:
        pod_network.unroute(ns)
        pod_network.unroute(f"{ns}-restoretest-*")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    step = json.loads(res.stdout)["hosts"][0]["steps"][0]
    assert step["status"] == "ok" and "pods ready and verified" in step["message"], step
    checks = {c["check"]: c for c in step["details"]["checks"]}
    assert checks["drill: services healthy"]["ok"] and checks["drill: answers match live"]["ok"], checks
    assert checks["drill: answers match live"]["figures"]["answers_matched"] == len(QUERIES)
    assert step["details"]["scratch_deleted"] is True and "forbidden" not in res.stderr.lower()
    assert kube.get("namespace", step["details"]["scratch_namespace"]) is None
