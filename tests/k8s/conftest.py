"""Fixtures of the real-API-server tier (tests marked slow).

- ``cluster`` (session): etcd + kube-apiserver 1.20 + kube-controller-manager + kube-scheduler on
  free loopback ports (tests/k8s/cluster.py), Velero CRDs generated from Velero's API types, a
  ``velero`` namespace.
- ``node`` (session): a REAL kubelet 1.20 node (``127.0.0.1``) on a private dockerd, Ready, with the
  busybox-based test images loaded (kubelet_helper.start_node). Pods need ``hostNetwork: true``.
- ``node_namespace`` (function): a fresh namespace pinned to that real node, deleted afterwards.
- ``kubelet`` (session): the STAND-IN (kubelet_helper.StandInKubelet, Node ``node-1``): it marks
  pods of unpinned namespaces Running/Succeeded (``failing_jobs`` makes Job pods fail). Used only
  where the real node cannot run the pods yet: the Velero tests (the rendered ragops CronJobs run
  on the real node: test_jobs.py).
- ``namespace`` (function): a fresh unpinned namespace (its pods go to the stand-in), deleted afterwards.
- ``velero`` (function): the Velero-server helper (velero_helper.py), outcomes reset to Completed.
- ``pod_network`` (session): the STAND-IN pod network (pod_network.py): the API server's HTTP proxy
  for its service/pod proxy, forwarding a pod IP to the loopback port routed to the pod's namespace.
- ``kube`` (function): ragops' Kubectl pointed at the cluster with Debian's kubectl 1.20.

When the binaries of scripts/setup.d/50-kube.sh are missing these tests FAIL (never skip): the
one-time build must have run on this machine.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ragops.k8s.kubectl import Kubectl

from .cluster import BIN, Cluster, find_missing, start_cluster
from .kubelet_helper import Node, StandInKubelet, pin_namespace, start_node
from .pod_network import PodNetwork
from .velero_helper import VeleroHelper
from .velero_schema import make_crd


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    missing = find_missing()
    if missing:
        pytest.fail(f"Kubernetes 1.20 binaries missing in {BIN} ({', '.join(missing)}): run "
                    "`bash scripts/setup.d/50-kube.sh` once on this machine (~11 min build + a 4-13 min kubelet stage)", pytrace=False)
    network = PodNetwork().start()
    try:
        c = start_cluster(tmp_path_factory.mktemp("kube"), pod_network=network.url)
    except BaseException:
        network.stop()
        raise
    network.connect(c.url, c.session())
    c.pod_network = network
    try:
        c.apply([make_crd(k) for k in ("Backup", "Restore", "Schedule")])
        c.kubectl_run("wait", "--for=condition=Established", "--timeout=60s", "crd/backups.velero.io",
                      "crd/restores.velero.io", "crd/schedules.velero.io")
        c.kubectl_run("create", "namespace", "velero")
        yield c
    finally:
        c.stop()
        network.stop()


@pytest.fixture(scope="session")
def pod_network(cluster: Cluster) -> PodNetwork:
    return cluster.pod_network


@pytest.fixture(scope="session")
def node(cluster: Cluster) -> Iterator[Node]:
    try:
        n = start_node(cluster)
    except RuntimeError as exc:
        pytest.fail(f"the real kubelet node did not come up: {exc}", pytrace=False)
    try:
        yield n
    finally:
        n.stop()


@pytest.fixture
def node_namespace(cluster: Cluster, node: Node) -> Iterator[str]:
    name = f"n-{uuid.uuid4().hex[:8]}"
    pin_namespace(cluster, name)
    yield name
    cluster.kubectl_run("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="session")
def kubelet(cluster: Cluster) -> Iterator[StandInKubelet]:
    helper = StandInKubelet(cluster.url, cluster.session()).start()
    try:
        yield helper
    finally:
        helper.stop()


@pytest.fixture(scope="session")
def velero_server(cluster: Cluster, kubelet: StandInKubelet) -> Iterator[VeleroHelper]:
    helper = VeleroHelper(cluster.url, cluster.session()).start()
    try:
        yield helper
    finally:
        helper.stop()


@pytest.fixture
def velero(velero_server: VeleroHelper) -> Iterator[VeleroHelper]:
    velero_server.backup_outcome = velero_server.restore_outcome = "Completed"
    yield velero_server
    velero_server.backup_outcome = velero_server.restore_outcome = "Completed"


@pytest.fixture
def kube(cluster: Cluster) -> Kubectl:
    return Kubectl(binary=cluster.kubectl, kubeconfig=str(cluster.kubeconfig), timeout_s=120)


@pytest.fixture
def namespace(cluster: Cluster, kubelet: StandInKubelet) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    cluster.kubectl_run("create", "namespace", name)
    yield name
    cluster.kubectl_run("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def ragops_yaml(tmp_path: Path) -> Path:
    """A ragops.yaml for the CLI tests: no metrics textfiles, no pings."""
    path = tmp_path / "ragops.yaml"
    path.write_text("defaults:\n  metrics_dir: null\n")
    return path
