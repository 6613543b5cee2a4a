"""A test helper thread acting as the Velero server (FAKE: no Velero server binary is installable here).

It does what Velero's controllers do with the objects ragops creates: a new Backup goes InProgress,
its namespace's Deployments/PVCs/ConfigMaps/Services are captured, and it ends in ``backup_outcome``;
a new Restore recreates the captured objects under its ``namespaceMapping`` and ends in
``restore_outcome``. An outcome of None leaves the object InProgress forever (timeouts). A Failed
restore still creates the target namespace first, like a restore that dies half-way.
"""

from __future__ import annotations

import copy
import threading
from typing import Any

import requests

from .kubelet_helper import now

GROUP = "/apis/velero.io/v1"
KINDS = [("apps", "v1", "deployments"), ("", "v1", "persistentvolumeclaims"), ("", "v1", "configmaps"),
         ("", "v1", "services")]
PLURALS = {"Deployment": "deployments", "PersistentVolumeClaim": "persistentvolumeclaims",
           "ConfigMap": "configmaps", "Service": "services"}
DROP_META = ("uid", "resourceVersion", "creationTimestamp", "managedFields", "ownerReferences", "generation",
             "selfLink", "finalizers")


def api_path(group: str, version: str, namespace: str, plural: str) -> str:
    prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
    return f"{prefix}/namespaces/{namespace}/{plural}"


def clean_copy(obj: dict[str, Any], namespace: str) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    out.pop("status", None)
    meta = out["metadata"]
    for key in DROP_META:
        meta.pop(key, None)
    meta["namespace"] = namespace
    meta.get("annotations", {}).pop("pv.kubernetes.io/bind-completed", None)
    meta.get("annotations", {}).pop("deployment.kubernetes.io/revision", None)
    if out.get("kind") == "PersistentVolumeClaim":
        out["spec"].pop("volumeName", None)
    if out.get("kind") == "Service":
        out["spec"].pop("clusterIP", None)
        out["spec"].pop("clusterIPs", None)
    if out.get("kind") == "ConfigMap" and meta.get("name") == "kube-root-ca.crt":
        return {}
    return out


class VeleroHelper:
    def __init__(self, url: str, session: requests.Session, namespace: str = "velero") -> None:
        self.url, self.s, self.ns = url, session, namespace
        self.backup_outcome: str | None = "Completed"
        self.restore_outcome: str | None = "Completed"
        self.contents: dict[str, list[dict[str, Any]]] = {}
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="velero-helper", daemon=True)

    def start(self) -> VeleroHelper:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                for plural, handle in (("backups", self.handle_backup), ("restores", self.handle_restore)):
                    found = self.s.get(f"{self.url}{GROUP}/namespaces/{self.ns}/{plural}", timeout=10)
                    for obj in found.json().get("items", []) if found.ok else []:
                        if obj.get("status", {}).get("phase") in (None, "", "New"):
                            handle(obj)
            except Exception as exc:  # noqa: BLE001
                self.errors.append(repr(exc))
            self._stop.wait(0.3)

    def _status(self, plural: str, name: str, status: dict[str, Any]) -> None:
        self.s.patch(f"{self.url}{GROUP}/namespaces/{self.ns}/{plural}/{name}", json={"status": status},
                     headers={"Content-Type": "application/merge-patch+json"}, timeout=10)

    def _finish(self, plural: str, name: str, outcome: str | None) -> None:
        if outcome is None:
            self._status(plural, name, {"phase": "InProgress", "startTimestamp": now()})
            return
        status: dict[str, Any] = {"phase": outcome, "startTimestamp": now(), "completionTimestamp": now(),
                                  "warnings": 1 if outcome == "PartiallyFailed" else 0,
                                  "errors": 0 if outcome == "Completed" else 1}
        if outcome == "Failed":
            status["failureReason"] = "test helper: simulated failure"
        self._status(plural, name, status)

    def handle_backup(self, backup: dict[str, Any]) -> None:
        name = backup["metadata"]["name"]
        captured: list[dict[str, Any]] = []
        for ns in backup["spec"].get("includedNamespaces", []):
            for group, version, plural in KINDS:
                found = self.s.get(f"{self.url}{api_path(group, version, ns, plural)}", timeout=10).json()
                kind = found.get("kind", "").removesuffix("List")
                for item in found.get("items", []):
                    captured.append({**item, "apiVersion": f"{group}/{version}" if group else version, "kind": kind})
        self.contents[name] = captured
        self._finish("backups", name, self.backup_outcome)

    def handle_restore(self, restore: dict[str, Any]) -> None:
        name, spec = restore["metadata"]["name"], restore["spec"]
        mapping = spec.get("namespaceMapping", {})
        outcome = self.restore_outcome
        for target in sorted(set(mapping.values())):
            self.s.post(f"{self.url}/api/v1/namespaces", json={"apiVersion": "v1", "kind": "Namespace",
                                                               "metadata": {"name": target}}, timeout=10)
        if outcome in ("Completed", "PartiallyFailed"):
            for item in self.contents.get(spec.get("backupName", ""), []):
                ns = mapping.get(item["metadata"]["namespace"], item["metadata"]["namespace"])
                obj = clean_copy(item, ns)
                if not obj:
                    continue
                group, _, version = obj["apiVersion"].rpartition("/")
                plural = PLURALS[obj["kind"]]
                self.s.post(f"{self.url}{api_path(group, version, ns, plural)}", json=obj, timeout=10)
        self._finish("restores", name, outcome)
