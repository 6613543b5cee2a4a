"""velero.backup / velero.restore-test against the real 1.20 API server with Velero's CRDs.

The Velero server is a test helper (velero_helper.py: no Velero binary is installable here) that
captures and restores namespace objects and ends each Backup/Restore in the outcome a test chooses.
Pods are made Ready and Job pods finished by the STAND-IN kubelet (kubelet_helper.StandInKubelet),
not the real node: the Velero server restores objects, not volume data, so the restored claims have
no volumes, and the verification Job runs the ``ragops`` image, which the real node's engine does not
have yet. The scratch namespaces the helper creates are unpinned, so their pods go to the stand-in.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ragops.errors import StepError, VerifyError
from ragops.k8s import verify_restore
from ragops.k8s.velero import (
    VerifySpec,
    make_backup,
    make_restore,
    make_verify_job,
    run_velero_backup,
    run_velero_restore_test,
    summarize,
)

from .kubelet_helper import wait_until
from .test_rollout import make_deployment
from .velero_schema import validate_strict


def make_pvc(name: str, namespace: str) -> dict:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "namespace": namespace},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}


def make_rag_namespace(cluster, kube, namespace: str) -> None:
    cluster.apply([make_pvc("chroma-data", namespace), make_pvc("redis-data", namespace),
                   make_deployment("rag-api", namespace, "rag-api:1", replicas=1)])
    wait_until(lambda: (kube.get("deployment", "rag-api", namespace=namespace) or {}).get("status", {})
               .get("readyReplicas") == 1, what="rag-api ready")


def scratch_of(kube, restore_prefix: str) -> str:
    restores = [r for r in kube.items("restores.velero.io", namespace="velero")
                if r["metadata"]["name"].startswith(restore_prefix)]
    assert restores, f"no Restore named {restore_prefix}*"
    return next(iter(restores[-1]["spec"]["namespaceMapping"].values()))


def assert_namespace_gone(kube, name: str) -> None:
    wait_until(lambda: kube.get("namespace", name) is None, timeout=90, what=f"namespace {name} deleted")


def test_backup_restore_and_verify_job_objects_match_velero_and_kubernetes_types() -> None:
    import kubernetes_validate

    validate_strict(make_backup("b1", "rag-engine", "velero"))
    restore = make_restore("r1", "b1", "rag-engine", "rag-engine-restoretest-1", "velero")
    validate_strict(restore)
    assert restore["spec"]["namespaceMapping"] == {"rag-engine": "rag-engine-restoretest-1"}
    kubernetes_validate.validate(make_verify_job("v", "ns", VerifySpec()), "1.30.0", strict=True)


def test_phases_map_to_step_statuses() -> None:
    def obj(phase: str, **status: int) -> dict:
        return {"metadata": {"name": "b"}, "status": {"phase": phase, **status}}

    assert summarize("backup", obj("Completed"))[0] == "ok"
    assert summarize("backup", obj("Completed", warnings=2))[0] == "degraded"
    assert summarize("backup", obj("PartiallyFailed", errors=1))[0] == "degraded"
    assert summarize("backup", obj("FailedValidation"))[0] == "failed"


def test_the_verification_script_passes_a_sound_copy_and_fails_a_damaged_one(tmp_path: Path) -> None:
    chroma, redis = tmp_path / "chroma", tmp_path / "redis"
    chroma.mkdir()
    redis.mkdir()
    with sqlite3.connect(chroma / "chroma.sqlite3") as conn:
        conn.execute("create table embeddings (id integer primary key)")
        conn.executemany("insert into embeddings values (?)", [(i,) for i in range(3)])
    (redis / "dump.rdb").write_bytes(b"REDIS0011" + b"\x00" * 16)
    assert verify_restore.main(["--chroma", str(chroma), "--redis", str(redis)]) == 0
    (redis / "dump.rdb").write_bytes(b"garbage")
    assert verify_restore.main(["--chroma", str(chroma), "--redis", str(redis)]) == 1
    assert verify_restore.main(["--chroma", str(tmp_path / "missing")]) == 1


@pytest.mark.slow
@pytest.mark.parametrize("outcome,status", [("Completed", "ok"), ("PartiallyFailed", "degraded"), ("Failed", "failed")])
def test_velero_backup_waits_for_the_final_phase_and_reports_it(kube, velero, namespace, outcome, status) -> None:
    velero.backup_outcome = outcome
    result = run_velero_backup(kube, namespace, wait=True, timeout_s=60)
    assert result.status == status and result.details["phase"] == outcome
    if outcome == "Failed":
        assert "simulated failure" in result.message


@pytest.mark.slow
def test_velero_backup_times_out_naming_the_stuck_phase(kube, velero, namespace) -> None:
    velero.backup_outcome = None
    with pytest.raises(StepError, match=r"no final phase after 3s \(still InProgress\)"):
        run_velero_backup(kube, namespace, wait=True, timeout_s=3)


@pytest.mark.slow
def test_restore_test_restores_into_a_scratch_namespace_verifies_and_deletes_it(cluster, kube, velero, namespace) -> None:
    make_rag_namespace(cluster, kube, namespace)
    backup = run_velero_backup(kube, namespace, wait=True, timeout_s=60)
    assert backup.status == "ok"
    result = run_velero_restore_test(kube, namespace, timeout_s=90)
    assert result.status == "ok", result.message
    scratch = result.details["scratch_namespace"]
    assert scratch.startswith(f"{namespace}-restoretest-") and result.details["backup"] == backup.details["name"]
    assert "pods ready and verified" in result.message and result.details["scratch_deleted"] is True
    assert "answers not compared (no drill queries)" in result.message  # no queries: no comparison, said so
    assert "no drill queries configured" in result.details["drill"]["skipped"] and "checks" not in result.details
    assert kube.get("namespace", scratch) is None


@pytest.mark.slow
def test_a_failed_restore_fails_the_test_and_still_deletes_the_scratch_namespace(cluster, kube, velero, namespace) -> None:
    make_rag_namespace(cluster, kube, namespace)
    name = run_velero_backup(kube, namespace, wait=True, timeout_s=60).details["name"]
    velero.restore_outcome = "Failed"
    with pytest.raises(VerifyError, match="Failed"):
        run_velero_restore_test(kube, namespace, backup=name, timeout_s=60)
    assert_namespace_gone(kube, scratch_of(kube, f"{name}-restoretest-"))


@pytest.mark.slow
def test_a_failing_verification_job_fails_the_test_and_deletes_the_namespace(cluster, kube, kubelet, velero, namespace) -> None:
    make_rag_namespace(cluster, kube, namespace)
    name = run_velero_backup(kube, namespace, wait=True, timeout_s=60).details["name"]
    kubelet.failing_jobs.add("ragops-restore-verify")
    try:
        with pytest.raises(VerifyError, match="verification Job .* failed"):
            run_velero_restore_test(kube, namespace, backup=name, timeout_s=60)
    finally:
        kubelet.failing_jobs.discard("ragops-restore-verify")
    assert_namespace_gone(kube, scratch_of(kube, f"{name}-restoretest-"))


@pytest.mark.slow
def test_a_restore_that_never_finishes_times_out_and_deletes_the_namespace(cluster, kube, velero, namespace) -> None:
    name = run_velero_backup(kube, namespace, wait=True, timeout_s=60).details["name"]
    velero.restore_outcome = None
    with pytest.raises(StepError, match="no final phase after 3s"):
        run_velero_restore_test(kube, namespace, backup=name, timeout_s=3)
    assert_namespace_gone(kube, scratch_of(kube, f"{name}-restoretest-"))


@pytest.mark.slow
def test_restore_test_without_a_completed_backup_says_to_run_one(kube, velero, namespace) -> None:
    velero.backup_outcome = "Failed"
    run_velero_backup(kube, namespace, wait=True, timeout_s=60)
    with pytest.raises(StepError, match=f"no completed Velero backup of namespace {namespace}"):
        run_velero_restore_test(kube, namespace, timeout_s=10)
