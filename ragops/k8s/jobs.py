"""`k8s.run-now --cronjob NAME`: a Job from the CronJob's template, waited on, its logs shown.

Uses ``kubectl create job --from=cronjob/NAME``. That needs a kubectl of the server's generation
(kubectl >= 1.2x cannot do it against a 1.20 server, whose CronJobs are batch/v1beta1): point
``$RAGOPS_KUBECTL`` at a matching kubectl.
"""

from __future__ import annotations

from typing import Any

from ..report import FAILED, OK, StepResult
from .kubectl import Kubectl, wait_for
from .velero import make_stamp


def make_job_name(cronjob: str, stamp: str) -> str:
    suffix = f"-manual-{stamp}"
    return cronjob[: 63 - len(suffix)].rstrip("-") + suffix


def find_outcome(job: dict[str, Any] | None) -> str | None:
    for cond in (job or {}).get("status", {}).get("conditions", []):
        if cond.get("status") == "True" and cond.get("type") in ("Complete", "Failed"):
            return str(cond["type"])
    return None


def run_cronjob_now(kube: Kubectl, cronjob: str, *, namespace: str, timeout_s: float = 1800) -> StepResult:
    name = make_job_name(cronjob, make_stamp())
    kube.run(["create", "job", name, f"--from=cronjob/{cronjob}"], namespace=namespace, write=True)
    details: dict[str, Any] = {"cronjob": cronjob, "job": name, "namespace": namespace}
    if kube.dry:
        return StepResult("k8s.run-now", OK, message=f"would create job {name} from cronjob/{cronjob}", details=details)
    outcome = wait_for(lambda: find_outcome(kube.get("job", name, namespace=namespace)), timeout_s=timeout_s)
    logs = kube.run(["logs", f"job/{name}", "--tail=200"], namespace=namespace, check=False, timeout=60)
    details["outcome"] = outcome or "timeout"
    details["logs"] = logs.stdout[-4000:] if logs.ok else ""
    if logs.ok and logs.stdout.strip():
        print(logs.stdout.rstrip())
    elif not logs.ok:
        details["logs_error"] = logs.stderr.strip()[-300:]
    if outcome == "Complete":
        return StepResult("k8s.run-now", OK, message=f"job {namespace}/{name} completed", details=details)
    why = "failed" if outcome == "Failed" else f"did not finish within {int(timeout_s)}s"
    return StepResult("k8s.run-now", FAILED, message=f"job {namespace}/{name} {why}", details=details)
