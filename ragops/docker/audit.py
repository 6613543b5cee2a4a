"""docker.audit-logs: containers and Compose services whose logs grow without limit.

A json-file log without ``max-size`` grows until the disk is full (the maintenance guide's fix:
``json-file`` with ``max-size: 10m``, ``max-file: 3``). The `local` driver rotates by default
(20m x 5 per Docker's documentation) and journald/syslog/none keep nothing on the container's
disk, so only json-file without max-size is reported. Daemon-wide log-opts from daemon.json are
merged into each container's LogConfig at creation, so a container's inspect output is the truth;
a service counts as bounded when its compose `logging:` is, or all its containers are.
"""

from __future__ import annotations

from typing import Any

from .. import output
from ..report import FAILED, OK, StepResult
from ..seam import Target
from .cli import run_docker, run_inspect
from .compose import run_compose_config

SERVICE_FIX = """services:
  {service}:
    logging:
      driver: json-file
      options:
        max-size: "10m"
        max-file: "3"
"""
CONTAINER_FIX = ("recreate it with `--log-driver json-file --log-opt max-size=10m --log-opt max-file=3`, or set "
                 '{"log-driver": "json-file", "log-opts": {"max-size": "10m", "max-file": "3"}} in /etc/docker/daemon.json '
                 "(applies to containers created afterwards)")


def find_unbounded(driver: str | None, options: dict[str, Any] | None) -> str | None:
    """Why a log config is unbounded, or None if it is bounded (or keeps no local file)."""
    driver = driver or "json-file"
    if driver == "json-file" and not (options or {}).get("max-size"):
        return "json-file without max-size: the log grows without limit"
    return None


def make_audit(containers: list[dict[str, Any]], project: dict[str, Any] | None) -> dict[str, list[dict[str, Any]]]:
    """Pure: the unbounded containers and services, each with its fix."""
    bad_containers = []
    by_service: dict[str, list[bool]] = {}
    project_name = (project or {}).get("name")
    for c in containers:
        log = (c.get("HostConfig") or {}).get("LogConfig") or {}
        why = find_unbounded(log.get("Type"), log.get("Config"))
        labels = c["Config"].get("Labels") or {}
        if project_name and labels.get("com.docker.compose.project") == project_name:
            by_service.setdefault(labels.get("com.docker.compose.service", ""), []).append(why is None)
        if why:
            bad_containers.append({"container": c.get("Name", "").lstrip("/"), "id": c["Id"][:12], "driver": log.get("Type"),
                                   "options": log.get("Config") or {}, "problem": why, "fix": CONTAINER_FIX})
    bad_services = []
    for name, spec in sorted(((project or {}).get("services") or {}).items()):
        logging = spec.get("logging") or {}
        why = find_unbounded(logging.get("driver"), logging.get("options"))
        if why and not (by_service.get(name) and all(by_service[name])):
            if not logging:
                why = "no logging: section (daemon default json-file, no max-size)"
            bad_services.append({"service": name, "driver": logging.get("driver"), "options": logging.get("options") or {},
                                 "problem": why, "fix": SERVICE_FIX.format(service=name)})
    return {"containers": bad_containers, "services": bad_services}


def run_audit_logs(target: Target) -> StepResult:
    ids = run_docker(target, ["ps", "-a", "-q", "--no-trunc"]).stdout.split()
    containers = run_inspect(target, "container", ids)
    project = run_compose_config(target, override=False) if target.settings.docker.compose_file else None
    audit = make_audit(containers, project)
    for item in audit["services"]:
        output.warn(target.name, f"service {item['service']}: {item['problem']}; fix in the compose file:\n{item['fix']}")
    for item in audit["containers"]:
        output.warn(target.name, f"container {item['container']}: {item['problem']}")
    total = len(audit["containers"]) + len(audit["services"])
    result = StepResult("audit-logs", FAILED if total else OK, details=audit)
    result.metrics.append(("ragops_docker_unbounded_logs", {}, float(len(audit["containers"]))))
    if total:
        names = [s["service"] for s in audit["services"]] + [c["container"] for c in audit["containers"]]
        result.message = (f"{len(audit['services'])} service(s) and {len(audit['containers'])} container(s) without "
                          f"log rotation: {', '.join(names[:10])}{' ...' if len(names) > 10 else ''}; "
                          "fix: json-file with max-size 10m, max-file 3")
    else:
        result.message = f"all {len(containers)} container(s) have bounded logs"
    return result
