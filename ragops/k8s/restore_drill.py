"""The answers check of velero.restore-test: does the restored namespace's API answer like live's?

When queries are configured (the policy's ``restore_test.drill.queries``, else the host's
``docker.release.queries``), velero.restore-test asks each of them of the API Service in the restored
scratch namespace and of the same Service in the live namespace, through the kube-apiserver's service
proxy (``kubectl get --raw /api/v1/namespaces/NS/services/NAME:PORT/proxy/PATH``: no port-forward and
no cluster DNS, so it works from a CronJob pod and from an operator's laptop alike), and compares them
with the Compose drill's functions (ragops/drill/compare.py: HTTP status, top-k ids overlap, the
store's state telling live drift from damage). Velero keeps no manifest, so a drill store unlike the
snapshot cannot be told apart: differing answers with equal state are damage, with differing state drift.

Phases (the drill's RTO): ``restore`` (the Velero Restore to its final phase), ``healthy`` (restored
pods ready and the Service's Endpoints filled), ``first_answer``, ``all_answers``. The checks, the
report (``details.drill``) and the metrics (``ragops_restore_drill_*``, label ``source`` = the
namespace) are the Compose drill's.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..backup.sources.hooks import Check
from ..drill.compare import (
    Answer,
    first_match_at,
    make_comparison,
    make_reference_check,
    make_rto,
    make_rto_check,
    parse_answer,
    parse_state,
)
from ..drill.run import make_metrics
from ..errors import ConfigError
from ..report import find_metric_value, metrics_file_name
from ..seam import Target
from .kubectl import Kubectl, wait_for

STEP = "velero.restore-test"
_SERVICE = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?):([A-Za-z0-9-]{1,15})$")
# kubectl -v=6: "GET https://... 200 OK in 3 milliseconds" (<= 1.29) or 'verb="GET" url="..." status="200 OK"'
_STATUS = (re.compile(r"\b(?:GET|POST) https?://\S+ (\d{3})\b"), re.compile(r'status="(\d{3})\b'))


@dataclass(frozen=True)
class K8sDrill:
    """What velero.restore-test asks of both API Services, and how it compares the answers."""

    service: str  # the API Service's name, the same in the live and the restored namespace
    port: str  # its port (number or name)
    paths: tuple[str, ...]
    expect: tuple[int, ...] = ()  # each query's expect_status (the live answers must have it: a reference)
    min_overlap: float = 1.0
    state_path: str = "/status"
    state_field: str = "documents"
    rto_budget_s: float | None = None
    timeout_s: float = 30.0


def find_service_in_url(url: str | None, namespace: str) -> str | None:
    """``NAME:PORT`` of an api.url like ``http://rag-api.rag-engine.svc:8000`` (the namespace's own Service)."""
    if not url:
        return None
    parts = urlsplit(url)
    labels = (parts.hostname or "").split(".")
    if len(labels) >= 3 and labels[1] == namespace and labels[2] == "svc":
        return f"{labels[0]}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
    return None


def make_k8s_drill(policy: Any, settings: Any, api_service: str | None, namespace: str, source: str) -> K8sDrill | None:
    """The drill of a restore test, or None when no queries are configured (no comparison then).
    ``api_service`` (``NAME:PORT``, the --api-service flag) defaults to api.url's Service."""
    drill = policy.restore_test.drill if policy is not None else None
    queries = (drill.queries if drill is not None else []) or settings.docker.release.queries
    if not queries:
        return None
    service = api_service or find_service_in_url(settings.api.url, namespace)
    if not service:
        raise ConfigError(f"{source}: api.url: velero.restore-test asks the drill queries of the API Service: give "
                          f"--api-service NAME:PORT or an api.url like http://NAME.{namespace}.svc:PORT")
    match = _SERVICE.match(service)
    if not match:
        raise ConfigError(f"--api-service {service!r}: must be NAME:PORT (a Service name and its port number or name)")
    extra = {} if drill is None else {"min_overlap": drill.min_overlap, "state_path": drill.state_path,
                                      "state_field": drill.state_field}
    return K8sDrill(service=match.group(1), port=match.group(3), paths=tuple(q.path for q in queries),
                    expect=tuple(q.expect_status for q in queries),
                    rto_budget_s=policy.restore_test.rto_budget_s if policy is not None else None,
                    timeout_s=settings.api.timeout_s, **extra)


def make_proxy_path(namespace: str, drill: K8sDrill, path: str) -> str:
    return f"/api/v1/namespaces/{namespace}/services/{drill.service}:{drill.port}/proxy/{path.lstrip('/')}"


def parse_status(stderr: str) -> int:
    """The HTTP status kubectl -v=6 logged for the request (0: none logged, e.g. a connection failure)."""
    for pattern in _STATUS:
        found = pattern.findall(stderr)
        if found:
            return int(found[-1])
    return 0


def run_get(kube: Kubectl, namespace: str, drill: K8sDrill, path: str) -> tuple[int, str, str, float]:
    """(status, body, error, seconds) of one GET through the service proxy (a read: also under --dry)."""
    t0 = time.monotonic()
    res = kube.run(["get", "--raw", make_proxy_path(namespace, drill, path), "-v=6",
                    f"--request-timeout={max(1, int(drill.timeout_s))}s"], check=False, timeout=drill.timeout_s + 15)
    status = parse_status(res.stderr)
    lines = res.stderr.splitlines()
    error = "" if res.ok else next((ln for ln in lines if "Error from server" in ln), None) or \
        next((ln for ln in lines if "rror" in ln), res.stderr.strip()[-200:])
    return status, res.stdout if res.ok else "", error, time.monotonic() - t0


def run_answers(kube: Kubectl, namespace: str, drill: K8sDrill) -> list[Answer]:
    return [parse_answer(*run_get(kube, namespace, drill, path)) for path in drill.paths]


def run_state(kube: Kubectl, namespace: str, drill: K8sDrill) -> Any:
    status, body, _, _ = run_get(kube, namespace, drill, drill.state_path)
    return parse_state(body, drill.state_field) if status == 200 else None


def endpoints_ready(kube: Kubectl, namespace: str, service: str) -> bool:
    endpoints = kube.get("endpoints", service, namespace=namespace) or {}
    return any(s.get("addresses") for s in endpoints.get("subsets") or [])


def run_wait_endpoints(kube: Kubectl, namespace: str, drill: K8sDrill, timeout_s: float) -> Check:
    if wait_for(lambda: endpoints_ready(kube, namespace, drill.service), timeout_s=timeout_s, interval_s=0.5):
        return Check("drill: services healthy", True, f"service {namespace}/{drill.service} has ready endpoints")
    return Check("drill: services healthy", False, f"service {namespace}/{drill.service}: no ready endpoints within "
                 f"{int(timeout_s)}s (is it restored, does its selector match the restored pods?)")


def run_compare(kube: Kubectl, live_ns: str, scratch: str, drill: K8sDrill, phases: dict[str, float]) -> list[Check]:
    """Ask the live and the restored API; the comparison check and the RTO check (``phases`` gains
    first_answer and all_answers)."""
    live = run_answers(kube, live_ns, drill)
    reference = make_reference_check(list(drill.paths), live, list(drill.expect), f"{live_ns}/{drill.service}")
    if reference is not None:
        return [reference]
    live_state = run_state(kube, live_ns, drill)
    restored = run_answers(kube, scratch, drill)
    first = first_match_at(restored, live, drill.min_overlap)
    if first is not None:
        phases["first_answer"] = first
    phases["all_answers"] = round(sum(a.seconds for a in restored), 3)
    compared = make_comparison(list(drill.paths), restored, live, drill.min_overlap, run_state(kube, scratch, drill),
                               live_state)
    rto = make_rto_check(phases, drill.rto_budget_s)
    return [compared] + ([rto] if rto else [])


def make_report(checks: list[Check], phases: dict[str, float], scratch: str) -> dict[str, Any]:
    compared = next((c for c in checks if c.check in ("drill: answers match live", "drill: live drift")), None)
    return {"namespace": scratch, "kept": False, "phases": dict(phases), "rto_s": make_rto(phases),
            "answers_matched": compared.figures.get("answers_matched", 0) if compared else 0,
            "answers_total": compared.figures.get("answers_total", 0) if compared else 0,
            "ok": bool(checks) and all(c.ok for c in checks)}


def attach_metrics(result: Any, target: Target, source: str) -> None:
    """The drill's metrics (the Compose drill's names) beside the step's, when the drill ran."""
    report = result.details.get("drill")
    if not report or "phases" not in report:
        return
    previous = None
    if target.settings.metrics_dir:
        text = target.read_text(f"{target.settings.metrics_dir.rstrip('/')}/{metrics_file_name(STEP)}")
        previous = find_metric_value(text, "ragops_restore_drill_last_success_timestamp_seconds")
    result.metrics = list(result.metrics or []) + make_metrics(report, source, previous)
