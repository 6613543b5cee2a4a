"""`upgrade --k8s deployment/NAME --image IMAGE`: set image, wait for the rollout, undo it on failure.

Plan: read the Deployment (revision, container, current image) -> annotate the change cause -> ``kubectl
set image`` -> ``kubectl rollout status --timeout`` -> on failure ``kubectl rollout undo
--to-revision=<previous>`` and wait until it is healthy again. The revisions before and after are
recorded in the step's details (and in ``rollout history`` through the change-cause annotation).
Under ``--dry`` the writes are server-side dry runs when the API server is reachable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, StepError
from ..report import FAILED, OK, StepResult
from .kubectl import Kubectl

REVISION = "deployment.kubernetes.io/revision"


@dataclass
class UpgradePlan:
    kind: str
    name: str
    namespace: str
    container: str
    from_image: str
    to_image: str
    revision: str

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.name}"


def parse_resource(resource: str) -> tuple[str, str]:
    kind, _, name = resource.partition("/")
    if not name or kind not in ("deployment", "deploy", "deployments"):
        raise ConfigError(f"--k8s {resource!r}: expected deployment/NAME")
    return "deployment", name


def image_repo(image: str) -> str:
    """rag-api:1.5 -> rag-api; registry:5000/team/rag-api@sha256:.. -> rag-api (the last path part)."""
    last = image.split("@", 1)[0].rsplit("/", 1)[-1]
    return last.split(":", 1)[0]


def make_upgrade_plan(deployment: dict[str, Any], image: str, container: str | None = None) -> UpgradePlan:
    """Pure: which container gets which image, from the Deployment object as kubectl returns it."""
    meta, spec = deployment["metadata"], deployment["spec"]
    containers = spec["template"]["spec"]["containers"]
    ref = f"deployment/{meta['name']}"
    if container:
        chosen = [c for c in containers if c["name"] == container]
        if not chosen:
            names = ", ".join(c["name"] for c in containers)
            raise ConfigError(f"{ref}: no container named {container!r} (has: {names})")
    elif len(containers) == 1:
        chosen = containers
    else:
        chosen = [c for c in containers if image_repo(c["image"]) == image_repo(image)]
        if len(chosen) != 1:
            raise ConfigError(f"{ref}: {len(containers)} containers, none uniquely matching {image!r}: pass --container")
    return UpgradePlan(kind="deployment", name=meta["name"], namespace=meta.get("namespace", "default"),
                       container=chosen[0]["name"], from_image=chosen[0]["image"], to_image=image,
                       revision=meta.get("annotations", {}).get(REVISION, ""))


def read_deployment(kube: Kubectl, name: str, namespace: str) -> dict[str, Any]:
    found = kube.get("deployment", name, namespace=namespace)
    if found is None:
        raise StepError(f"deployment/{name} not found in namespace {namespace}")
    return found


def wait_rollout(kube: Kubectl, plan: UpgradePlan, timeout_s: float) -> tuple[bool, str]:
    res = kube.run(["rollout", "status", plan.ref, f"--timeout={int(timeout_s)}s"], namespace=plan.namespace,
                   check=False, timeout=timeout_s + 30)
    return res.ok, (res.stdout.strip().splitlines() or [""])[-1] + res.stderr.strip()[-300:]


def run_k8s_upgrade(kube: Kubectl, resource: str, image: str, *, namespace: str = "default",
                    container: str | None = None, timeout_s: float = 300) -> StepResult:
    """Upgrade a Deployment's image; a rollout that does not finish in time is undone and waited on."""
    _, name = parse_resource(resource)
    plan = make_upgrade_plan(read_deployment(kube, name, namespace), image, container)
    details: dict[str, Any] = {"deployment": plan.ref, "namespace": plan.namespace, "container": plan.container,
                               "from_image": plan.from_image, "to_image": plan.to_image,
                               "revision_before": plan.revision}
    if plan.from_image == plan.to_image:
        return StepResult("k8s.upgrade", OK, message=f"{plan.ref} already runs {image}", details=details)
    cause = f"ragops upgrade {plan.container}: {plan.from_image} -> {plan.to_image}"
    kube.run(["annotate", plan.ref, f"kubernetes.io/change-cause={cause}", "--overwrite"],
             namespace=plan.namespace, write=True)
    kube.run(["set", "image", plan.ref, f"{plan.container}={plan.to_image}"], namespace=plan.namespace, write=True)
    if kube.dry:
        return StepResult("k8s.upgrade", OK, details=details,
                          message=f"would set {plan.ref} {plan.container}={image} (from {plan.from_image}), "
                                  f"wait {int(timeout_s)}s, undo to revision {plan.revision or '?'} on failure")
    ok, why = wait_rollout(kube, plan, timeout_s)
    after = read_deployment(kube, name, namespace)
    details["revision_after"] = after["metadata"].get("annotations", {}).get(REVISION, "")
    if ok:
        return StepResult("k8s.upgrade", OK, details=details,
                          message=f"{plan.ref} runs {image} (revision {plan.revision} -> {details['revision_after']})")
    details["rollout_error"] = why
    undo = ["rollout", "undo", plan.ref] + ([f"--to-revision={plan.revision}"] if plan.revision else [])
    kube.run(undo, namespace=plan.namespace, write=True)
    healthy, why_undo = wait_rollout(kube, plan, timeout_s)
    final = read_deployment(kube, name, namespace)
    images = {c["name"]: c["image"] for c in final["spec"]["template"]["spec"]["containers"]}
    details.update(rolled_back=True, revision_final=final["metadata"].get("annotations", {}).get(REVISION, ""),
                   final_image=images.get(plan.container), healthy_after_undo=healthy)
    if healthy:
        msg = (f"{plan.ref}: rollout to {image} not ready within {int(timeout_s)}s ({why}); rolled back to "
               f"{images.get(plan.container)} (revision {details['revision_final']}), healthy again")
    else:
        msg = (f"{plan.ref}: rollout to {image} failed ({why}) and the rollback to {plan.from_image} is not "
               f"healthy either ({why_undo}): investigate now")
    return StepResult("k8s.upgrade", FAILED, message=msg, details=details)
