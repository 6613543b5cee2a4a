"""Velero backups and restore tests, by creating velero.io/v1 objects and watching ``status.phase``.

The ``velero`` CLI is used to create them when it is installed (it creates the same objects); without
it the objects are created with kubectl. Either way ragops waits for a final phase itself, with a
timeout, and reports Velero's warning/error counts. A restore test restores the newest completed
backup of the namespace into ``<ns>-restoretest-<timestamp>`` (a namespace mapping), waits for the
restored pods to be ready, runs a verification Job against the restored volumes there, and deletes
the scratch namespace afterwards - also when anything failed. With drill queries configured it also
compares the restored API Service's answers with the live one's (restore_drill.py).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from typing import Any

from .. import output
from ..errors import ExitCode, StepError, VerifyError
from ..report import DEGRADED, FAILED, OK, StepResult
from ..seam import run_local
from . import restore_drill
from .kubectl import Kubectl, wait_for
from .restore_drill import K8sDrill

FINAL = ("Completed", "PartiallyFailed", "Failed", "FailedValidation")
LABEL = "app.kubernetes.io/managed-by=ragops"


@dataclass
class VerifySpec:
    """The verification Job run in the scratch namespace against the restored volumes."""

    image: str = "ragops"
    claims: dict[str, str] = field(default_factory=lambda: {"chroma-data": "/data/chroma", "redis-data": "/data/redis"})
    command: list[str] = field(default_factory=lambda: ["python", "-m", "ragops.k8s.verify_restore",
                                                      "--chroma", "/data/chroma", "--redis", "/data/redis"])


def make_stamp() -> str:
    return time.strftime("%Y%m%d%H%M%S", time.gmtime())


def make_backup(name: str, namespace: str, velero_ns: str, ttl: str = "720h0m0s") -> dict[str, Any]:
    return {"apiVersion": "velero.io/v1", "kind": "Backup",
            "metadata": {"name": name, "namespace": velero_ns, "labels": {"app.kubernetes.io/managed-by": "ragops"}},
            "spec": {"includedNamespaces": [namespace], "defaultVolumesToFsBackup": True, "ttl": ttl}}


def make_restore(name: str, backup: str, source_ns: str, target_ns: str, velero_ns: str) -> dict[str, Any]:
    return {"apiVersion": "velero.io/v1", "kind": "Restore",
            "metadata": {"name": name, "namespace": velero_ns, "labels": {"app.kubernetes.io/managed-by": "ragops"}},
            "spec": {"backupName": backup, "includedNamespaces": [source_ns],
                     "namespaceMapping": {source_ns: target_ns}, "restorePVs": True}}


def make_verify_job(name: str, namespace: str, spec: VerifySpec) -> dict[str, Any]:
    mounts = [{"name": f"v{i}", "mountPath": path, "readOnly": True} for i, path in enumerate(spec.claims.values())]
    volumes = [{"name": f"v{i}", "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}
               for i, claim in enumerate(spec.claims)]
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/managed-by": "ragops"}},
            "spec": {"backoffLimit": 0, "template": {"metadata": {"labels": {"job-name": name}}, "spec": {
                "restartPolicy": "Never",
                "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [{"name": "verify", "image": spec.image, "command": spec.command, "volumeMounts": mounts,
                                "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                                    "capabilities": {"drop": ["ALL"]}}}],
                "volumes": volumes}}}}


def create_object(kube: Kubectl, obj: dict[str, Any], velero_args: list[str]) -> None:
    """Through the velero CLI when installed (and not --dry), else the object itself via kubectl."""
    if shutil.which("velero") and not kube.dry:
        res = run_local(["velero", *velero_args, "--namespace", obj["metadata"]["namespace"]], timeout=120)
        if not res.ok:
            raise StepError(f"velero {' '.join(velero_args[:3])} failed: {res.stderr.strip()[-500:]}")
        return
    kube.create(obj)


def wait_phase(kube: Kubectl, kind: str, name: str, velero_ns: str, timeout_s: float) -> dict[str, Any]:
    def final() -> dict[str, Any] | None:
        obj = kube.get(kind, name, namespace=velero_ns)
        return obj if obj and obj.get("status", {}).get("phase") in FINAL else None

    obj = wait_for(final, timeout_s=timeout_s, interval_s=1.0)
    if obj is None:
        current = (kube.get(kind, name, namespace=velero_ns) or {}).get("status", {}).get("phase") or "New"
        raise StepError(f"velero {kind} {velero_ns}/{name}: no final phase after {int(timeout_s)}s (still {current}); "
                        "is the Velero server running?")
    return obj


def summarize(kind: str, obj: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    status = obj.get("status", {})
    phase = status.get("phase", "")
    details = {"name": obj["metadata"]["name"], "phase": phase, "warnings": status.get("warnings", 0),
               "errors": status.get("errors", 0), "failure_reason": status.get("failureReason", "")}
    text = f"{kind} {details['name']}: {phase} (warnings {details['warnings']}, errors {details['errors']})"
    if details["failure_reason"]:
        text += f": {details['failure_reason']}"
    state = OK if phase == "Completed" and not details["errors"] else DEGRADED if phase == "PartiallyFailed" else FAILED
    if phase == "Completed" and details["warnings"]:
        state = DEGRADED
    return state, text, details


def run_velero_backup(kube: Kubectl, namespace: str, *, velero_ns: str = "velero", name: str | None = None,
                      wait: bool = True, timeout_s: float = 1800) -> StepResult:
    name = name or f"{namespace}-{make_stamp()}"
    create_object(kube, make_backup(name, namespace, velero_ns),
                  ["backup", "create", name, "--include-namespaces", namespace, "--default-volumes-to-fs-backup"])
    if kube.dry or not wait:
        return StepResult("velero.backup", OK, message=f"backup {velero_ns}/{name} of {namespace} created (not waited on)",
                          details={"name": name})
    state, text, details = summarize("backup", wait_phase(kube, "backups.velero.io", name, velero_ns, timeout_s))
    return StepResult("velero.backup", state, message=text, details=details)


def find_latest_backup(kube: Kubectl, namespace: str, velero_ns: str) -> str:
    done = [b for b in kube.items("backups.velero.io", namespace=velero_ns)
            if b.get("status", {}).get("phase") == "Completed"
            and namespace in (b.get("spec", {}).get("includedNamespaces") or [])]
    if not done:
        raise StepError(f"no completed Velero backup of namespace {namespace} in {velero_ns}: run velero.backup first")
    done.sort(key=lambda b: (b["status"].get("completionTimestamp") or "", b["metadata"]["creationTimestamp"]))
    return str(done[-1]["metadata"]["name"])


def pods_ready(kube: Kubectl, namespace: str) -> bool:
    """Every Deployment has all its replicas ready and every running pod is Ready."""
    for dep in kube.items("deployments", namespace=namespace):
        want = dep.get("spec", {}).get("replicas", 1)
        if dep.get("status", {}).get("readyReplicas", 0) < want:
            return False
    pods = [p for p in kube.items("pods", namespace=namespace)
            if p.get("status", {}).get("phase") not in ("Succeeded", "Failed")]
    return all(any(c.get("type") == "Ready" and c.get("status") == "True" for c in p.get("status", {}).get("conditions", []))
               for p in pods)


def run_verify_job(kube: Kubectl, namespace: str, spec: VerifySpec, timeout_s: float) -> str:
    name = "ragops-restore-verify"
    kube.create(make_verify_job(name, namespace, spec))

    def finished() -> str | None:
        status = (kube.get("job", name, namespace=namespace) or {}).get("status", {})
        for cond in status.get("conditions", []):
            if cond.get("status") == "True" and cond.get("type") in ("Complete", "Failed"):
                return str(cond["type"])
        return None

    outcome = wait_for(finished, timeout_s=timeout_s)
    logs = kube.run(["logs", f"job/{name}", "--tail=50"], namespace=namespace, check=False)
    if outcome != "Complete":
        why = "did not finish in time" if outcome is None else "failed"
        raise VerifyError(f"verification Job {namespace}/{name} {why}: {(logs.stdout or logs.stderr).strip()[-400:]}")
    return logs.stdout.strip()[-400:]


def run_velero_restore_test(kube: Kubectl, namespace: str, *, backup: str | None = None, velero_ns: str = "velero",
                            verify: VerifySpec | None = None, timeout_s: float = 1800,
                            drill: K8sDrill | None = None) -> StepResult:
    """Restore a backup into a scratch namespace, wait for its pods, verify, compare the restored API's
    answers with live's when ``drill`` has queries (restore_drill.py), delete the namespace."""
    backup = backup or find_latest_backup(kube, namespace, velero_ns)
    stamp = make_stamp()
    scratch = f"{namespace}-restoretest-{stamp}"[:63].rstrip("-")
    name = f"{backup}-restoretest-{stamp}"[:63].rstrip("-")
    details: dict[str, Any] = {"backup": backup, "scratch_namespace": scratch, "restore": name}
    t0 = time.monotonic()
    create_object(kube, make_restore(name, backup, namespace, scratch, velero_ns),
                  ["restore", "create", name, "--from-backup", backup, "--include-namespaces", namespace,
                   "--namespace-mappings", f"{namespace}:{scratch}"])
    if kube.dry:
        asked = f", ask {len(drill.paths)} queries of both {drill.service} Services" if drill else ""
        return StepResult("velero.restore-test", OK, details=details,
                          message=f"would restore {backup} into {scratch}, verify{asked}, then delete {scratch}")
    try:
        state, text, info = summarize("restore", wait_phase(kube, "restores.velero.io", name, velero_ns, timeout_s))
        details.update(info)
        if state == FAILED:
            raise VerifyError(text)
        phases = {"restore": round(time.monotonic() - t0, 3)}
        t0 = time.monotonic()
        if not wait_for(lambda: pods_ready(kube, scratch), timeout_s=timeout_s, interval_s=1.0):
            raise VerifyError(f"restored pods in {scratch} not ready within {int(timeout_s)}s")
        checks = [restore_drill.run_wait_endpoints(kube, scratch, drill, timeout_s)] if drill else []
        phases["healthy"] = round(time.monotonic() - t0, 3)
        details["verify_log"] = run_verify_job(kube, scratch, verify or VerifySpec(), timeout_s)
        if drill is None:
            details["drill"] = {"skipped": "no drill queries configured (restore_test.drill.queries of the policy, "
                                           "or docker.release.queries): answers not compared"}
            return StepResult("velero.restore-test", state, details=details,
                              message=f"{text}; pods ready and verified in {scratch}; answers not compared (no drill queries)")
        if checks[0].ok:
            checks += restore_drill.run_compare(kube, namespace, scratch, drill, phases)
        details["checks"] = [c.to_dict() for c in checks]
        details["drill"] = restore_drill.make_report(checks, phases, scratch)
        failed = [c for c in checks if not c.ok]
        if failed:
            return StepResult("velero.restore-test", FAILED, exit_code=ExitCode.VERIFY_FAILED, details=details,
                              message=f"{text}; pods ready and verified in {scratch}; FAILED "
                                      + "; ".join(f"{c.check}: {c.evidence}" for c in failed)[:900])
        return StepResult("velero.restore-test", state, details=details,
                          message=f"{text}; pods ready and verified in {scratch}; {checks[1].evidence}")
    finally:
        delete_scratch(kube, scratch, timeout_s=min(timeout_s, 300), details=details)


def delete_scratch(kube: Kubectl, scratch: str, *, timeout_s: float, details: dict[str, Any]) -> None:
    kube.run(["delete", "namespace", scratch, "--ignore-not-found", "--wait=false"], write=True, check=False)
    gone = wait_for(lambda: kube.get("namespace", scratch) is None, timeout_s=timeout_s)
    details["scratch_deleted"] = bool(gone)
    if not gone:
        output.warn(kube.label, f"scratch namespace {scratch} still terminating after {int(timeout_s)}s")
