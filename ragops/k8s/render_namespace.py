"""The namespace's objects beside the CronJobs (pure, no I/O): labels, the Namespace, least-privilege
RBAC, the config and policy ConfigMaps (each data claim's mount path as its source's data_dir), and
one Velero Schedule per policy. ``render.make_base`` puts them into the base files."""

from __future__ import annotations

from typing import Any

import yaml

from .settings import RenderSettings

Obj = dict[str, Any]


def make_labels(component: str, policy: str | None = None) -> dict[str, str]:
    labels = {"app.kubernetes.io/name": "ragops", "app.kubernetes.io/component": component}
    if policy:
        labels["ragops.io/policy"] = policy
    return labels


def make_velero_schedule(settings: RenderSettings, name: str, policy: Any) -> Obj:
    """A velero.io/v1 Schedule backing up the RAG namespace with its data volumes (file-system backup)."""
    return {
        "apiVersion": "velero.io/v1",
        "kind": "Schedule",
        "metadata": {"name": f"{settings.namespace}-{name}", "namespace": settings.velero_namespace,
                     "labels": make_labels("velero-schedule", name)},
        "spec": {
            "schedule": policy.schedule,
            "useOwnerReferencesInBackup": False,
            "template": {
                "includedNamespaces": [settings.namespace],
                "defaultVolumesToFsBackup": True,
                "snapshotVolumes": False,
                "ttl": settings.velero_ttl,
                "metadata": {"labels": make_labels("velero-backup", name)},
            },
        },
    }


def make_pod_policy(settings: RenderSettings, policy: Any) -> Obj:
    """The policy as the pods read it: each data claim's mount_path as its source's data_dir (unless set).

    Without this the backup asks Redis for its dir (CONFIG GET dir: the Redis pod's own ``/data``)
    and copies from a path the backup pod does not have."""
    data: Obj = policy.model_dump(mode="json", exclude_defaults=True)
    for claim in settings.data:
        if claim.source is None or getattr(policy.sources, claim.source).data_dir:
            continue
        data.setdefault("sources", {}).setdefault(claim.source, {})["data_dir"] = claim.mount_path
    return data


def make_support_objects(settings: RenderSettings, policies: dict[str, Any]) -> list[Obj]:
    """Namespace, ServiceAccount, least-privilege Role/RoleBinding, the config and policy ConfigMaps."""
    ns, sa = settings.namespace, settings.service_account
    labels = make_labels("ragops")
    meta = {"namespace": ns, "labels": labels}
    policy_data = {f"{n}.yaml": yaml.safe_dump(make_pod_policy(settings, p), sort_keys=False)
                   for n, p in sorted(policies.items())}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": labels}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa, **meta}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": sa, **meta},
         "rules": [
             {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
             {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"],
              "resourceNames": ["ragops-config", "ragops-backup-policies"]},
         ]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": sa, **meta},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": sa},
         "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": ns}]},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ragops-config", **meta},
         "data": {"ragops.yaml": yaml.safe_dump(settings.config, sort_keys=False)}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ragops-backup-policies", **meta},
         "data": policy_data},
    ]
