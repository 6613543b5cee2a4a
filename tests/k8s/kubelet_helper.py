"""A test helper thread that plays scheduler + kubelet for the real control plane.

FAKE, because a kubelet cannot run here (no container runtime for Kubernetes pods, no cgroup
delegation): it registers one Node, binds every unscheduled pod to it, and writes pod status the
way a kubelet would - Running/Ready for ordinary pods, Running but never Ready for images tagged
``:broken``, Succeeded (or Failed, for images containing ``fail`` or Job names starting with an entry of ``failing_jobs``) for
Job pods - and finishes graceful deletions. Everything else (Deployments, ReplicaSets, Jobs,
CronJobs, namespaces, garbage collection) is the real kube-controller-manager.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

import requests

NODE = "node-1"


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_node() -> dict[str, Any]:
    capacity = {"cpu": "16", "memory": "64Gi", "pods": "200"}
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE, "labels": {"kubernetes.io/hostname": NODE}},
            "status": {"capacity": capacity, "allocatable": capacity,
                       "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                       "lastHeartbeatTime": now(), "lastTransitionTime": now()}]}}


class KubeletHelper:
    def __init__(self, url: str, session: requests.Session) -> None:
        self.url, self.s = url, session
        self.failing_jobs: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="kubelet-helper", daemon=True)
        self.errors: list[str] = []

    def start(self) -> KubeletHelper:
        node = make_node()
        res = self.s.post(f"{self.url}/api/v1/nodes", json=node, timeout=10)
        if res.status_code not in (201, 409):
            raise RuntimeError(f"registering node failed: {res.status_code} {res.text}")
        self._merge(f"/api/v1/nodes/{NODE}/status", {"status": node["status"]})
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _merge(self, path: str, body: dict[str, Any]) -> None:
        self.s.patch(f"{self.url}{path}", json=body, timeout=10,
                     headers={"Content-Type": "application/merge-patch+json"})

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                pods = self.s.get(f"{self.url}/api/v1/pods", timeout=10).json().get("items", [])
                for pod in pods:
                    self.handle(pod)
            except Exception as exc:  # noqa: BLE001 - keep serving; tests see errors if they matter
                self.errors.append(repr(exc))
            self._stop.wait(0.25)

    def handle(self, pod: dict[str, Any]) -> None:
        meta, spec, status = pod["metadata"], pod["spec"], pod.get("status", {})
        base = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}"
        if meta.get("deletionTimestamp"):
            self.s.delete(f"{self.url}{base}", json={"gracePeriodSeconds": 0}, timeout=10)
            return
        if not spec.get("nodeName"):
            binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": meta["name"]},
                       "target": {"apiVersion": "v1", "kind": "Node", "name": NODE}}
            self.s.post(f"{self.url}{base}/binding", json=binding, timeout=10)
            return
        if status.get("phase") in ("Succeeded", "Failed") or status.get("containerStatuses"):
            return
        self._merge(f"{base}/status", {"status": self.make_status(pod)})

    def make_status(self, pod: dict[str, Any]) -> dict[str, Any]:
        containers = pod["spec"]["containers"]
        owners = {o["kind"] for o in pod["metadata"].get("ownerReferences", [])}
        job = pod["metadata"].get("labels", {}).get("job-name", "")
        t = now()
        if "Job" in owners:
            failed = any(job.startswith(p) for p in self.failing_jobs) or any("fail" in c["image"] for c in containers)
            code = 1 if failed else 0
            return {"phase": "Failed" if failed else "Succeeded", "hostIP": "127.0.0.1", "podIP": "10.244.0.9",
                    "startTime": t,
                    "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": t},
                                   {"type": "Ready", "status": "False", "lastTransitionTime": t}],
                    "containerStatuses": [{"name": c["name"], "image": c["image"], "imageID": "", "ready": False,
                                           "restartCount": 0, "state": {"terminated": {
                                               "exitCode": code, "reason": "Error" if failed else "Completed",
                                               "startedAt": t, "finishedAt": t}}} for c in containers]}
        ready = not any(c["image"].endswith(":broken") for c in containers)
        flag = "True" if ready else "False"
        return {"phase": "Running", "hostIP": "127.0.0.1", "podIP": "10.244.0.8", "startTime": t,
                "conditions": [{"type": k, "status": "True" if k in ("PodScheduled", "Initialized") else flag,
                                "lastTransitionTime": t} for k in ("PodScheduled", "Initialized", "ContainersReady", "Ready")],
                "containerStatuses": [{"name": c["name"], "image": c["image"], "imageID": "", "ready": ready,
                                       "started": True, "restartCount": 0, "state": {"running": {"startedAt": t}}}
                                      for c in containers]}


def wait_until(check: Any, timeout: float = 60, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
