"""The scheduled Velero restore drill (``render.yaml: velero_drill``): its ServiceAccount, least RBAC,
and the arguments of its CronJobs (pure, no I/O; ``render.make_base`` puts them into
base/velero-drill.yaml).

Every rule below is one of the kubectl calls `invoke velero.restore-test` makes (ragops/k8s/velero.py,
restore_drill.py, kubectl.py), and nothing else:

==========================================================  =====================================
kubectl call (namespace)                                    permission
==========================================================  =====================================
get backups.velero.io -o json (velero)                      list backups.velero.io (newest backup)
create -f - Restore (velero), also as --dry-run=server      create restores.velero.io
get restores.velero.io NAME (velero, polled)                get restores.velero.io
get deployments / get pods -o json (scratch)                list deployments.apps, list pods
get endpoints SERVICE (scratch, drill only)                 get endpoints
create -f - Job ragops-restore-verify (scratch)             create jobs.batch
get job NAME (scratch, polled)                              get jobs.batch
logs job/NAME --tail=50 (scratch)                           get jobs.batch, list pods, get pods/log
get --raw .../services/NAME:PORT/proxy/PATH (live, scratch) get services/proxy
delete namespace SCRATCH --wait=false                       delete namespaces
get namespace SCRATCH (polled until gone)                   get namespaces
==========================================================  =====================================

Velero's server creates the scratch namespace (the Restore's ``namespaceMapping``): ragops needs no
``create namespaces``. The scratch namespace's name (``<ns>-restoretest-<UTC timestamp>``) is not
known when the RBAC is applied and RBAC has no name patterns, so the scratch-namespace rules are a
ClusterRole bound cluster-wide (the live namespace's ``services/proxy`` is covered by it too); the
Velero rules are a Role in the Velero namespace only.
"""

from __future__ import annotations

from typing import Any

from .render_namespace import make_labels
from .settings import RenderSettings

Obj = dict[str, Any]
COMPONENT = "velero-restore-test"
IMAGE_ARG = 2  # index of the verification Job's image in the CronJob's args (overlays patch its tag)
RBAC = "rbac.authorization.k8s.io"

CLUSTER_RULES: list[Obj] = [
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "delete"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
    {"apiGroups": [""], "resources": ["endpoints"], "verbs": ["get"]},
    {"apiGroups": [""], "resources": ["services/proxy"], "verbs": ["get"]},
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["list"]},
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create", "get"]},
]
VELERO_RULES: list[Obj] = [
    {"apiGroups": ["velero.io"], "resources": ["backups"], "verbs": ["list"]},
    {"apiGroups": ["velero.io"], "resources": ["restores"], "verbs": ["create", "get"]},
]


def make_drill_account(settings: RenderSettings) -> str:
    """The drill's own ServiceAccount (in the RAG namespace, beside the other ragops CronJobs)."""
    return f"{settings.service_account}-velero-drill"


def make_drill_rbac_name(settings: RenderSettings) -> str:
    """Name of the cluster-scoped and Velero-namespace objects: prefixed by the RAG namespace, so two
    rendered RAG namespaces in one cluster do not overwrite each other's."""
    return f"{settings.namespace}-{make_drill_account(settings)}"


def make_drill_cadence(policy: Any) -> str:
    """``restore_test.drill.cadence`` when set, else ``restore_test.cadence`` (like the restore-test CronJob)."""
    return str(policy.restore_test.drill.cadence or policy.restore_test.cadence)


def make_drill_timeout(settings: RenderSettings) -> int:
    """--timeout (seconds per wait) so that the task's four waits plus the scratch deletion (<= 300 s)
    end before activeDeadlineSeconds kills the pod (a killed pod leaves its scratch namespace behind)."""
    return max(60, (settings.active_deadline_s - 300) // 4)


def make_drill_args(settings: RenderSettings, policy_name: str) -> list[str]:
    """`invoke velero.restore-test` with the policy (its drill queries), the namespaces and the
    verification Job's image (``IMAGE_ARG``: overlays replace it with their tagged image)."""
    args = ["velero.restore-test", "--image", settings.image, "--policy", policy_name,
            "--namespace", settings.namespace, "--velero-namespace", settings.velero_namespace,
            "--timeout", str(make_drill_timeout(settings))]
    return args


def make_drill_rbac(settings: RenderSettings) -> list[Obj]:
    """ServiceAccount, ClusterRole + ClusterRoleBinding (scratch/live namespace rules), Role +
    RoleBinding in the Velero namespace (Backups, Restores)."""
    sa, name = make_drill_account(settings), make_drill_rbac_name(settings)
    labels = make_labels("velero-drill")
    subject = [{"kind": "ServiceAccount", "name": sa, "namespace": settings.namespace}]
    velero_meta = {"name": name, "namespace": settings.velero_namespace, "labels": labels}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": sa, "namespace": settings.namespace, "labels": labels}},
        {"apiVersion": f"{RBAC}/v1", "kind": "ClusterRole", "metadata": {"name": name, "labels": labels},
         "rules": CLUSTER_RULES},
        {"apiVersion": f"{RBAC}/v1", "kind": "ClusterRoleBinding", "metadata": {"name": name, "labels": labels},
         "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": name}, "subjects": subject},
        {"apiVersion": f"{RBAC}/v1", "kind": "Role", "metadata": velero_meta, "rules": VELERO_RULES},
        {"apiVersion": f"{RBAC}/v1", "kind": "RoleBinding", "metadata": velero_meta,
         "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": name}, "subjects": subject},
    ]
