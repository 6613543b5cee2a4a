"""Kubernetes and Velero tasks: k8s.render, k8s.run-now, k8s.upgrade, velero.backup, velero.restore-test.

Cluster tasks run kubectl on the controller (host `local`, no host lock); `--kubeconfig`/`--context`
select the cluster, ``$RAGOPS_KUBECTL`` the kubectl binary.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from invoke import Exit, task

from ..config import Host
from ..errors import ExitCode, RagopsError
from ..report import StepResult
from ..runner import Step
from ..seam import Target, run_local
from .common import HELP, execute, parse_float_flag, parse_text_flag, usage_errors

KUBE_HELP = {
    "kubeconfig": "kubeconfig file (default: $KUBECONFIG, ~/.kube/config).",
    "context": "kubeconfig context (default: the current one).",
    "config": HELP["config"],
    "json": HELP["json"],
}


def kube_helps(**extra: str) -> dict[str, str]:
    return {**KUBE_HELP, **extra}


def parse_timeout(value: object, default: float) -> float:
    """--timeout: seconds, a positive number."""
    seconds = parse_float_flag("timeout", value, above=0)
    return default if seconds is None else seconds


def run_cluster_task(c, name: str, work: Callable[..., StepResult], *, kubeconfig, context, config, dry, json_) -> None:  # noqa: ANN001
    """Run one cluster-level step through the common executor (summary, JSON, exit code)."""
    from ..k8s.kubectl import Kubectl

    def step(target: Target) -> StepResult:
        return work(Kubectl(kubeconfig=kubeconfig, context=context, dry=target.dry, label=target.name))

    def plan(host: Host) -> list[Step]:
        return [Step(name, step)]

    execute(c, name, plan, host="local", config=config, dry=dry, json_out=json_, lock=False)


@task(help={"overlay": "Also print the built manifests of this overlay (kubectl kustomize k8s/overlays/NAME).",
            "check": "Change nothing; exit 1 if the committed k8s/ files differ from a fresh render.",
            "api_version": "CronJob API version: batch/v1 (default, Kubernetes >= 1.21) or batch/v1beta1 (1.20).",
            "root": "Project root holding k8s/render.yaml and backup-policies/ (default: the current directory)."})
def render(c, overlay=None, check=False, api_version="batch/v1", root=None):
    """Render k8s/ (kustomize base + overlays: CronJobs, Velero Schedules, RBAC, ConfigMaps) from the policies."""
    from ..k8s.render import make_files
    from ..k8s.tree import find_project_dirs, load_inputs, make_drift, write_tree

    try:
        k8s_dir, policies_dir = find_project_dirs(root)
        inputs = load_inputs(k8s_dir, policies_dir)
        files = make_files(inputs.settings, inputs.policies, api_version)
    except (RagopsError, ValueError) as exc:
        raise Exit(f"k8s.render: {exc}", code=int(ExitCode.CONFIG_ERROR)) from None
    if overlay and overlay not in inputs.settings.overlays:
        raise Exit(f"k8s.render: --overlay {overlay!r}: not in k8s/render.yaml (have: "
                   f"{', '.join(sorted(inputs.settings.overlays)) or 'none'})", code=int(ExitCode.CONFIG_ERROR))
    drift = make_drift(k8s_dir, files) if check else write_tree(k8s_dir, files)
    policies = ", ".join(sorted(inputs.policies)) or "none"
    if check:
        if not drift.clean:
            raise Exit(f"k8s.render --check: {k8s_dir} differs from a fresh render ({drift.describe()}); "
                       "run `invoke k8s.render`", code=int(ExitCode.STEP_FAILED))
        print(f"k8s/ is up to date (policies: {policies})", file=sys.stderr)
    else:
        print(f"rendered {len(files)} files under {k8s_dir} (policies: {policies}; {drift.describe()})", file=sys.stderr)
    if overlay:
        kubectl = str(Path(sys.executable).parent / "kubectl")
        res = run_local([kubectl if Path(kubectl).exists() else "kubectl", "kustomize", str(k8s_dir / "overlays" / overlay)])
        if not res.ok:
            raise Exit(f"k8s.render: kubectl kustomize {overlay} failed: {res.stderr.strip()}", code=1)
        sys.stdout.write(res.stdout)


@task(help=kube_helps(cronjob="CronJob to start now, e.g. ragops-backup.", namespace="Its namespace (default rag-engine).",
                      timeout="Seconds to wait for the Job (default 1800).", dry="Server-side dry run only."))
def run_now(c, cronjob, namespace="rag-engine", timeout=None, dry=False, kubeconfig=None, context=None, config=None,
            json_=False):
    """Create a Job from a CronJob now (kubectl create job --from=cronjob/...), wait for it, show its logs."""
    from ..k8s.jobs import run_cronjob_now

    with usage_errors("k8s.run-now", json_, dry=dry):
        seconds = parse_timeout(timeout, 1800)
        parse_text_flag("cronjob", cronjob, required=True)
        parse_text_flag("namespace", namespace)
    run_cluster_task(c, "k8s.run-now", lambda k: run_cronjob_now(k, cronjob, namespace=namespace, timeout_s=seconds),
                     kubeconfig=kubeconfig, context=context, config=config, dry=dry, json_=json_)


@task(help=kube_helps(k8s="The workload: deployment/NAME.", image="New image, e.g. rag-api:1.5.0.",
                      namespace="Namespace (default rag-engine).", container="Container to update (default: the only one, or the one whose image name matches).",
                      timeout="Seconds the rollout may take before it is undone (default 300).",
                      dry="Show the plan; writes are server-side dry runs where the server is reachable."))
def upgrade(c, k8s, image, namespace="rag-engine", container=None, timeout=None, dry=False, kubeconfig=None,
            context=None, config=None, json_=False):
    """Set a Deployment's image, wait for the rollout; on timeout `rollout undo` and wait until healthy."""
    run_upgrade_task(c, k8s, image, namespace=namespace, container=container, timeout=timeout, dry=dry,
                     kubeconfig=kubeconfig, context=context, config=config, json_=json_)


def run_upgrade_task(c, k8s, image, *, namespace=None, container=None, timeout=None, dry=False,  # noqa: ANN001
                     kubeconfig=None, context=None, config=None, json_=False) -> None:
    """The body of k8s.upgrade, also called by `invoke upgrade --k8s ...` (ragops/tasks/release.py)."""
    from ..k8s.rollout import run_k8s_upgrade

    with usage_errors("k8s.upgrade", json_, dry=dry):
        parse_text_flag("k8s", k8s, required=True)
        parse_text_flag("image", image, required=True)
        parse_text_flag("namespace", namespace)
        seconds = parse_timeout(timeout, 300)
    run_cluster_task(c, "k8s.upgrade", lambda k: run_k8s_upgrade(k, k8s, image, namespace=namespace or "rag-engine",
                                                                  container=container, timeout_s=seconds),
                     kubeconfig=kubeconfig, context=context, config=config, dry=dry, json_=json_)


@task(help=kube_helps(namespace="Namespace to back up (default rag-engine).", wait="Wait for a final phase.",
                      name="Backup name (default <namespace>-<UTC timestamp>).", velero_namespace="Velero's namespace (default velero).",
                      timeout="Seconds to wait with --wait (default 1800).", dry="Server-side dry run only."))
def backup(c, namespace="rag-engine", wait=False, name=None, velero_namespace="velero", timeout=None, dry=False,
           kubeconfig=None, context=None, config=None, json_=False):
    """Create a Velero Backup of a namespace (its volumes included); --wait for Completed/Failed."""
    from ..k8s.velero import run_velero_backup

    with usage_errors("velero.backup", json_, dry=dry):
        seconds = parse_timeout(timeout, 1800)
        parse_text_flag("name", name)
    run_cluster_task(c, "velero.backup", lambda k: run_velero_backup(k, namespace, velero_ns=velero_namespace, name=name,
                                                                      wait=wait, timeout_s=seconds),
                     kubeconfig=kubeconfig, context=context, config=config, dry=dry, json_=json_)


@task(help=kube_helps(backup="Backup to restore (default: the newest Completed backup of the namespace).",
                      namespace="Namespace that was backed up (default rag-engine).", velero_namespace="Velero's namespace (default velero).",
                      image="Image of the verification Job (default ragops).", timeout="Seconds per wait (default 1800).",
                      policy="Backup policy whose restore_test.drill queries are asked of both API Services (default: the host's backup.policy).",
                      api_service="The API Service as NAME:PORT, asked through the API server's service proxy (default: api.url's, e.g. http://rag-api.rag-engine.svc:8000).",
                      dry="Server-side dry run only."))
def restore_test(c, backup=None, namespace="rag-engine", velero_namespace="velero", image="ragops", timeout=None,
                 policy=None, api_service=None, dry=False, kubeconfig=None, context=None, config=None, json_=False):
    """Restore into <ns>-restoretest-<ts>, wait for pods, verify, compare the restored API's answers, delete the namespace."""
    from ..backup.policy import load_host_policy
    from ..k8s.kubectl import Kubectl
    from ..k8s.restore_drill import attach_metrics, make_k8s_drill
    from ..k8s.velero import VerifySpec, run_velero_restore_test

    with usage_errors("velero.restore-test", json_, dry=dry):
        seconds = parse_timeout(timeout, 1800)
        parse_text_flag("backup", backup)
        parse_text_flag("api_service", api_service)

    def plan(host: Host) -> list[Step]:
        drill = make_k8s_drill(load_host_policy(host, policy), host.settings, api_service, namespace, host.source)

        def step(target: Target) -> StepResult:
            kube = Kubectl(kubeconfig=kubeconfig, context=context, dry=target.dry, label=target.name)
            result = run_velero_restore_test(kube, namespace, backup=backup, velero_ns=velero_namespace,
                                             verify=VerifySpec(image=image), timeout_s=seconds, drill=drill)
            attach_metrics(result, target, namespace)
            return result

        return [Step("velero.restore-test", step)]

    execute(c, "velero.restore-test", plan, host="local", config=config, dry=dry, json_out=json_, lock=False)
