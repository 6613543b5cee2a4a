"""Kubernetes: manifests rendered from the backup policies, kubectl, rollouts, Velero.

- ``settings``: k8s/render.yaml schema (image, namespaces, Secret names, overlays, the ragops config).
- ``render``: pure policies + settings -> manifests (the committed k8s/ tree); ``tree``: write/compare it.
- ``kubectl``: kubectl through the seam (server-side dry runs under --dry).
- ``rollout``: ``run_k8s_upgrade`` (set image, rollout status, undo on failure).
- ``jobs``: ``run_cronjob_now`` (a Job from a CronJob, waited on).
- ``velero``: Backup/Restore objects, final phases, restore tests in scratch namespaces.
- ``verify_restore``: the stdlib check the restore-test Job runs against restored volumes.
"""
