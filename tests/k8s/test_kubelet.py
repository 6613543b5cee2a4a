"""Pods on the REAL kubelet node: a pod, CronJob-made Jobs (one succeeding, one failing), their logs
through ``kubectl logs``, and a hostPath PersistentVolume bound to a claim and mounted read-only.

Nothing here goes through the stand-in: the namespaces are pinned to Node 127.0.0.1 (the real
kubelet 1.20 on a private dockerd, tests/k8s/kubelet_helper.py), images are busybox-based ones
imported into that engine (``imagePullPolicy: Never``), pods use ``hostNetwork``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .cluster import Cluster
from .kubelet_helper import NODE_NAME, Node, wait_until

pytestmark = pytest.mark.slow

STORAGE_CLASS = "ragops-test-hostpath"  # no StorageClass object: the binder matches the name


def get(cluster: Cluster, *args: str) -> dict[str, Any] | None:
    res = cluster.kubectl_run("get", *args, "-o", "json", check=False)
    return json.loads(res.stdout) if res.returncode == 0 else None


def pod_spec(node: Node, command: str, **extra: Any) -> dict[str, Any]:
    return {"hostNetwork": True, "restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "main", "image": node.images.busybox, "imagePullPolicy": "Never",
                            "command": ["sh", "-c", command]}], **extra}


def make_cronjob(name: str, namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "batch/v1beta1", "kind": "CronJob", "metadata": {"name": name, "namespace": namespace},
            "spec": {"schedule": "0 3 1 1 *", "suspend": True, "concurrencyPolicy": "Forbid",
                     "jobTemplate": {"spec": {"backoffLimit": 0, "template": {"spec": spec}}}}}


def job_finished(cluster: Cluster, namespace: str, name: str) -> str:
    job = get(cluster, "job", name, "-n", namespace) or {}
    for cond in job.get("status", {}).get("conditions", []):
        if cond["type"] in ("Complete", "Failed") and cond["status"] == "True":
            return cond["type"]
    return ""


def run_from_cronjob(cluster: Cluster, namespace: str, cronjob: str, job: str) -> str:
    cluster.kubectl_run("create", "job", f"--from=cronjob/{cronjob}", job, "-n", namespace)
    return wait_until(lambda: job_finished(cluster, namespace, job), timeout=60, what=f"job {job} finished")


def job_pods(cluster: Cluster, namespace: str, job: str) -> list[dict[str, Any]]:
    return (get(cluster, "pods", "-n", namespace, "-l", f"job-name={job}") or {}).get("items", [])


def test_the_node_is_a_real_kubelet_on_docker(cluster: Cluster, node: Node) -> None:
    info = node.get()["status"]["nodeInfo"]
    assert info["kubeletVersion"].startswith("v1.20.")
    assert info["containerRuntimeVersion"] == f"docker://{node.engine.version}"
    addresses = {a["type"]: a["address"] for a in node.get()["status"]["addresses"]}
    assert addresses["InternalIP"] == NODE_NAME


def test_a_pod_runs_to_completion_in_the_nodes_engine_under_its_cgroup_root(
        cluster: Cluster, node: Node, node_namespace: str) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "hello", "namespace": node_namespace},
           "spec": pod_spec(node, "echo hello-from-the-node; grep -m1 memory /proc/self/cgroup")}
    cluster.apply([pod])
    phase = wait_until(lambda: (get(cluster, "pod", "hello", "-n", node_namespace) or {}).get("status", {})
                       .get("phase") in ("Succeeded", "Failed") and get(cluster, "pod", "hello", "-n", node_namespace),
                       timeout=60, what="pod hello finished")["status"]["phase"]
    assert phase == "Succeeded"
    got = get(cluster, "pod", "hello", "-n", node_namespace)
    assert got is not None and got["spec"]["nodeName"] == NODE_NAME
    state = got["status"]["containerStatuses"][0]["state"]["terminated"]
    assert state["exitCode"] == 0 and state["containerID"].startswith("docker://")
    # the container really ran in the node's private engine ...
    ctr = node.engine.inspect(state["containerID"].removeprefix("docker://"))[0]
    assert ctr["Config"]["Labels"]["io.kubernetes.pod.name"] == "hello"
    sandbox = node.engine.inspect(ctr["HostConfig"]["NetworkMode"].removeprefix("container:"))[0]
    assert sandbox["Config"]["Image"] == node.images.pause and sandbox["HostConfig"]["NetworkMode"] == "host"
    # ... and its output comes back through the API server -> kubelet -> log file path
    logs = cluster.kubectl_run("logs", "hello", "-n", node_namespace).stdout
    assert "hello-from-the-node" in logs
    assert f"{node.cgroup_root}/kubepods/besteffort/pod{got['metadata']['uid']}/" in logs


@pytest.fixture
def hostpath_claim(cluster: Cluster, node_namespace: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A hostPath PersistentVolume holding one file, bound to the claim ``data`` in the namespace."""
    data = tmp_path / "pv"
    data.mkdir()
    (data / "payload.txt").write_text("payload from the hostPath volume\n")
    pv = f"ragops-test-{uuid.uuid4().hex[:8]}"
    cluster.apply([
        {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": pv},
         "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                  "persistentVolumeReclaimPolicy": "Retain", "storageClassName": STORAGE_CLASS,
                  "hostPath": {"path": str(data), "type": "Directory"},
                  "claimRef": {"namespace": node_namespace, "name": "data"}}},
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": node_namespace},
         "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": STORAGE_CLASS, "volumeName": pv,
                  "resources": {"requests": {"storage": "1Gi"}}}},
    ])
    wait_until(lambda: (get(cluster, "pvc", "data", "-n", node_namespace) or {}).get("status", {})
               .get("phase") == "Bound", timeout=30, what="claim data bound")
    yield pv, data
    cluster.kubectl_run("delete", "pvc", "data", "-n", node_namespace, "--wait=false", check=False)
    cluster.kubectl_run("delete", "pv", pv, "--wait=false", check=False)


def test_a_job_from_a_cronjob_reads_a_read_only_claim_and_its_logs_come_back(
        cluster: Cluster, node: Node, node_namespace: str, hostpath_claim: tuple[str, Path]) -> None:
    _, data = hostpath_claim
    script = ("cat /data/payload.txt; "
              "if touch /data/written 2>/dev/null; then echo WRITABLE; exit 1; else echo read-only-ok; fi")
    spec = pod_spec(node, script, volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "data",
                                                                                        "readOnly": True}}])
    spec["containers"][0]["volumeMounts"] = [{"name": "data", "mountPath": "/data", "readOnly": True}]
    cluster.apply([make_cronjob("reader", node_namespace, spec)])
    assert run_from_cronjob(cluster, node_namespace, "reader", "reader-manual") == "Complete"
    job = get(cluster, "job", "reader-manual", "-n", node_namespace)
    assert job is not None and job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
    assert job["status"]["succeeded"] == 1
    [pod] = job_pods(cluster, node_namespace, "reader-manual")
    assert pod["spec"]["nodeName"] == NODE_NAME and pod["status"]["phase"] == "Succeeded"
    logs = cluster.kubectl_run("logs", "job/reader-manual", "-n", node_namespace).stdout
    assert logs.splitlines() == ["payload from the hostPath volume", "read-only-ok"]
    assert not (data / "written").exists()


def test_a_failing_pod_makes_a_failed_job_with_its_exit_code_and_logs(
        cluster: Cluster, node: Node, node_namespace: str) -> None:
    cluster.apply([make_cronjob("breaks", node_namespace, pod_spec(node, "echo about-to-fail >&2; exit 3"))])
    assert run_from_cronjob(cluster, node_namespace, "breaks", "breaks-manual") == "Failed"
    job = get(cluster, "job", "breaks-manual", "-n", node_namespace)
    assert job is not None
    failed = next(c for c in job["status"]["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "BackoffLimitExceeded" and job["status"].get("failed") == 1
    [pod] = job_pods(cluster, node_namespace, "breaks-manual")
    assert pod["status"]["phase"] == "Failed"
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 3
    logs = cluster.kubectl_run("logs", "job/breaks-manual", "-n", node_namespace).stdout
    assert "about-to-fail" in logs
