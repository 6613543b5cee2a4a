"""The rendered manifests on a real 1.20 API server, and k8s.run-now (Debian's kubectl 1.20).

Job pods here are finished by the STAND-IN kubelet (kubelet_helper.StandInKubelet): the rendered
CronJobs run the ``ragops`` image, which is not built into the real node's engine yet, and mount
claims that no volume backs, so the real kubelet could not start them. The Job and CronJob
controllers and the scheduler are the real ones. CronJob-made Jobs running for real on the real
kubelet (success, failure, logs, a read-only claim): test_kubelet.py.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from ragops.backup.policy import load_policies
from ragops.k8s.jobs import make_job_name, run_cronjob_now
from ragops.k8s.render import make_objects
from ragops.k8s.settings import load_render_settings

from .test_rollout import INVOKE, ROOT


def test_manual_job_names_stay_within_the_kubernetes_limit() -> None:
    name = make_job_name("ragops-restore-test-" + "x" * 60, "20260101000000")
    assert len(name) <= 63 and name.endswith("-manual-20260101000000")


@pytest.fixture(scope="module")
def applied(cluster, kubelet) -> list[dict]:
    """Every rendered base object (CronJobs as batch/v1beta1) applied with kubectl 1.20."""
    settings = load_render_settings(ROOT / "k8s" / "render.yaml")
    objs = make_objects(settings, load_policies(ROOT / "backup-policies"), api_version="batch/v1beta1")
    cluster.apply(objs)
    return objs


@pytest.mark.slow
def test_the_rendered_objects_apply_to_a_1_20_server(cluster, applied) -> None:
    listed = json.loads(cluster.kubectl_run("get", "cronjobs.v1beta1.batch", "-n", "rag-engine", "-o", "json").stdout)
    names = {c["metadata"]["name"] for c in listed["items"]}
    assert names == {o["metadata"]["name"] for o in applied if o["kind"] == "CronJob"}
    assert all(c["spec"]["concurrencyPolicy"] == "Forbid" for c in listed["items"])
    schedules = cluster.kubectl_run("get", "schedules.velero.io", "-n", "velero", "-o", "name").stdout.split()
    assert len(schedules) == len([o for o in applied if o["kind"] == "Schedule"]) > 0


@pytest.mark.slow
def test_run_now_creates_a_job_from_the_cronjob_and_waits_for_it(kube, applied) -> None:
    result = run_cronjob_now(kube, "ragops-cleanup", namespace="rag-engine", timeout_s=60)
    assert result.status == "ok", result.message
    job = kube.get("job", result.details["job"], namespace="rag-engine")
    assert job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
    assert job["spec"]["template"]["spec"]["containers"][0]["args"][0] == "cleanup"


@pytest.mark.slow
def test_run_now_of_a_failing_job_exits_non_zero_through_the_cli(cluster, kubelet, applied, ragops_yaml) -> None:
    kubelet.failing_jobs.add("ragops-backup-manual-")
    try:
        res = subprocess.run([INVOKE, "k8s.run-now", "--cronjob", "ragops-backup", "--timeout", "60", "--json",
                              "--kubeconfig", str(cluster.kubeconfig), "--config", str(ragops_yaml)],
                             capture_output=True, text=True, cwd=ROOT, env=cluster.env(), timeout=180)
    finally:
        kubelet.failing_jobs.discard("ragops-backup-manual-")
    assert res.returncode == 1, res.stderr
    step = json.loads(res.stdout)["hosts"][0]["steps"][0]
    assert step["status"] == "failed" and "failed" in step["message"]


@pytest.mark.slow
def test_run_now_of_an_unknown_cronjob_names_it(kube, applied) -> None:
    from ragops.errors import StepError

    with pytest.raises(StepError, match="nope"):
        run_cronjob_now(kube, "nope", namespace="rag-engine", timeout_s=5)


