"""The rendered ragops CronJobs on the REAL kubelet node, with real data on real volumes (issue 15).

- Images: the ``ragops`` and ``redis`` images of scripts/setup.d/60-images.sh (cached ``docker save``
  tarballs for THIS tree, tests/fixtures/compose_stack.py) are ``docker load``ed into the node's private dockerd.
- Data (:func:`make_data`), on the host under the test's tmp dir: a real Chroma store made with the
  venv's chromadb (ragops.demo.make_chroma), a Redis data dir written by a real Redis pod, a logs dir
  with old and new files, and a restic repository initialized with the host's restic. Owners are those
  of the pods: UID 10001 (the ragops image's user) for logs and the repository, the redis image's user
  for the Redis dir; the Chroma store stays root-owned (the backup pods only read it).
- Objects (:func:`make_volume_objects`): hostPath PersistentVolumes pre-bound to the claims the
  rendered CronJobs mount (chroma-data, redis-data, rag-engine-logs-pvc) and to ``restic-repo``.
- The test overlay (:func:`write_overlay`), generated in the test's tmp dir on top of the rendered base
  (the shipped base, rendered with ``batch/v1beta1`` for the 1.20 server): only what this machine
  needs - ``hostNetwork`` (no docker bridge, no CNI), the image name/tag, the restic repository
  volume at the policy's local path, the Redis port in ragops-config. Nothing about users, mounts,
  resources or the security context is changed: those are the shipped ones.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.fixtures.compose_stack import CachedImage, load_images

from .cluster import Cluster

RAGOPS_UID = 10001
STORAGE_CLASS = "ragops-test-hostpath"
REPO_MOUNT = "/var/backups/ragops/restic"  # backup-policies/default.yaml repository.url
DAY = 86400.0


@dataclass
class StackData:
    root: Path
    chroma: Path
    redis: Path
    logs: Path
    repo: Path
    password: str
    chroma_counts: dict[str, int]
    old_logs: set[Path]
    kept_logs: set[Path]


def load_stack_images(engine: Any) -> dict[str, CachedImage]:
    """The images of THIS tree. ``$RAGOPS_TEST_RAGOPS_IMAGE=<cache>/ragops-<key>.tar`` loads that cached
    ragops image instead (a busy shared tree changes the key under ragops/ every few minutes: a dev aid
    only; the image's code then is that key's, the manifests and policies are always this tree's)."""
    override = os.environ.get("RAGOPS_TEST_RAGOPS_IMAGE")
    if not override:
        return load_images(engine, ("ragops", "redis"))
    images = load_images(engine, ("redis",))
    tar = Path(override)
    meta = json.loads(tar.with_suffix(".json").read_text())
    key = tar.stem.removeprefix("ragops-")
    engine.run("load", "-q", "-i", str(tar), timeout=600)
    images["ragops"] = CachedImage("ragops", f"ragops/ragops:{key}", key, tar, True, meta)
    return images


def image_uid(engine: Any, tag: str) -> int:
    res = engine.run("run", "--rm", "--network", "none", "--entrypoint", "id", tag, "-u")
    return int(res.stdout.strip())


def _age(path: Path, days: float) -> None:
    stamp = time.time() - days * DAY
    os.utime(path, (stamp, stamp))


def make_logs(logs: Path) -> tuple[set[Path], set[Path]]:
    """Old ``*.log`` files (10 and 30 days) to delete; new logs and old non-matching files to keep."""
    (logs / "app").mkdir(parents=True)
    old, kept = set(), set()
    for rel, days, goes in (("old-0.log", 10, True), ("app/old-1.log", 30, True), ("new-0.log", 0, False),
                            ("app/new-1.log", 6, False), ("old-notes.txt", 40, False)):
        p = logs / rel
        p.write_text(f"{rel}\n")
        _age(p, days)
        (old if goes else kept).add(p)
    return old, kept


def make_data(root: Path, redis_uid: int, password: str) -> StackData:
    from ragops.demo import make_chroma

    chroma, redis, logs, repo = (root / n for n in ("chroma", "redis", "logs", "repo"))
    for d in (chroma, redis, repo):
        d.mkdir(parents=True)
    counts = make_chroma(chroma)
    old, kept = make_logs(logs)
    pw = root / "restic-password"
    pw.write_text(password)
    subprocess.run(["restic", "-r", str(repo), "--password-file", str(pw), "init"], check=True,
                   capture_output=True, timeout=60)
    for d in (logs, repo):
        subprocess.run(["chown", "-R", f"{RAGOPS_UID}:{RAGOPS_UID}", str(d)], check=True)
    os.chown(redis, redis_uid, redis_uid)
    root.chmod(0o755)
    return StackData(root, chroma, redis, logs, repo, password, counts, old, kept)


def make_pv(name: str, path: Path, namespace: str, claim: str) -> list[dict[str, Any]]:
    return [
        {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
         "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                  "persistentVolumeReclaimPolicy": "Retain", "storageClassName": STORAGE_CLASS,
                  "hostPath": {"path": str(path), "type": "Directory"},
                  "claimRef": {"namespace": namespace, "name": claim}}},
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": claim, "namespace": namespace},
         "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": STORAGE_CLASS, "volumeName": name,
                  "resources": {"requests": {"storage": "1Gi"}}}},
    ]


def make_volume_objects(data: StackData, namespace: str, suffix: str) -> list[dict[str, Any]]:
    objs: list[dict[str, Any]] = []
    for claim, path in (("chroma-data", data.chroma), ("redis-data", data.redis),
                        ("rag-engine-logs-pvc", data.logs), ("restic-repo", data.repo)):
        objs += make_pv(f"ragops-{claim}-{suffix}", path, namespace, claim)
    return objs


def make_redis_pod(namespace: str, image: str, port: int) -> dict[str, Any]:
    """Redis on the real node, its data on the redis-data claim (labels the CronJobs' podAffinity targets)."""
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "redis", "namespace": namespace, "labels": {"app.kubernetes.io/name": "redis"}},
            "spec": {"hostNetwork": True, "terminationGracePeriodSeconds": 2,
                     "containers": [{"name": "redis", "image": image, "imagePullPolicy": "Never",
                                     "env": [{"name": "REDIS_PORT", "value": str(port)},
                                             {"name": "REDIS_BIND", "value": "127.0.0.1"}],
                                     "readinessProbe": {"exec": {"command": ["redis-cli", "-p", str(port), "ping"]},
                                                        "periodSeconds": 1},
                                     "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                     "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "redis-data"}}]}}


def image_has(engine: Any, tag: str, program: str) -> bool:
    res = engine.run("run", "--rm", "--network", "none", "--entrypoint", "sh", tag, "-c", f"command -v {program}",
                     check=False)
    return res.returncode == 0


def write_overlay(overlay: Path, *, image: CachedImage, redis_port: int, config: dict[str, Any],
                  policies: dict[str, dict[str, Any]] | None = None) -> Path:
    """kustomization.yaml (+ patches) on ../base: hostNetwork, image, repository volume, Redis port."""
    overlay.mkdir(parents=True)
    name, _, tag = image.tag.rpartition(":")
    pod = "/spec/jobTemplate/spec/template/spec"
    ops = [
        {"op": "add", "path": f"{pod}/hostNetwork", "value": True},
        {"op": "add", "path": f"{pod}/dnsPolicy", "value": "ClusterFirstWithHostNet"},
        {"op": "add", "path": f"{pod}/terminationGracePeriodSeconds", "value": 2},
    ]
    repo_ops = [
        {"op": "add", "path": f"{pod}/volumes/-",
         "value": {"name": "restic-repo", "persistentVolumeClaim": {"claimName": "restic-repo"}}},
        {"op": "add", "path": f"{pod}/containers/0/volumeMounts/-",
         "value": {"name": "restic-repo", "mountPath": REPO_MOUNT}},
    ]
    cfg = json.loads(json.dumps(config))
    cfg.setdefault("defaults", {})["redis"] = {"host": "127.0.0.1", "port": redis_port}
    config_patch = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ragops-config", "namespace": "rag-engine"},
                    "data": {"ragops.yaml": yaml.safe_dump(cfg, sort_keys=False)}}
    docs = [config_patch]
    if policies:  # WORKAROUND (see the caller): replaced policy files
        docs.append({"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": "ragops-backup-policies", "namespace": "rag-engine"},
                     "data": {f"{n}.yaml": yaml.safe_dump(p, sort_keys=False) for n, p in policies.items()}})
    (overlay / "config.yaml").write_text(yaml.safe_dump_all(docs, sort_keys=False))
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": ["../base"],
        "images": [{"name": "ragops", "newName": name, "newTag": tag}],
        "patches": [
            {"target": {"kind": "CronJob"}, "patch": yaml.safe_dump(ops)},
            {"target": {"kind": "CronJob", "labelSelector": "ragops.io/policy=default"}, "patch": yaml.safe_dump(repo_ops)},
            {"path": "config.yaml"},
        ],
    }
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump(kustomization, sort_keys=False))
    return overlay


def kustomize(directory: Path) -> list[dict[str, Any]]:
    kubectl = Path(os.environ.get("VIRTUAL_ENV", Path(__file__).resolve().parents[2] / ".venv")) / "bin" / "kubectl"
    res = subprocess.run([str(kubectl), "kustomize", str(directory)], capture_output=True, text=True, timeout=60)
    if res.returncode:
        raise AssertionError(f"kubectl kustomize {directory}: {res.stderr}")
    return [d for d in yaml.safe_load_all(res.stdout) if d]


def job_pod(cluster: Cluster, namespace: str, job: str) -> dict[str, Any]:
    res = cluster.kubectl_run("get", "pods", "-n", namespace, "-l", f"job-name={job}", "-o", "json")
    items = json.loads(res.stdout)["items"]
    assert items, f"no pod of job {job}"
    return items[-1]
