"""health: the API (/health, /status), Redis, Chroma, Compose containers, disk.

Each check is ok / degraded / failed / skipped with its evidence (:class:`~.health_check.Check`).
Where each one runs:

- API and disk: ON the host through the seam (curl, df), so the same code checks a remote host;
- Redis (:mod:`.health_redis`): redis-py from the controller, through an SSH tunnel for a remote host;
- Chroma (:mod:`.health_chroma`): the server's HTTP API (``chroma.url``) from the controller,
  tunnelled likewise, else the data dir's sqlite read on the host;
- containers (:mod:`.health_containers`): ``docker inspect`` on the host, per Compose service.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict

from ..config import HostSettings
from ..errors import ToolNotFoundError
from ..report import DEGRADED, FAILED, OK, SKIPPED, StepResult, summarize_status
from ..seam import Target, Tool, quote
from .health_check import SEVERITY, Check
from .health_chroma import check_chroma
from .health_containers import check_containers
from .health_redis import check_redis, judge_redis

__all__ = ["Check", "check_chroma", "check_containers", "check_redis", "judge_redis", "make_curl_command",
           "parse_curl", "run_health"]

MARK = "__RAGOPS_HTTP_STATUS__"
CURL = Tool("curl")


def make_curl_command(url: str, timeout_s: float) -> str:
    return f"curl -sS --max-time {timeout_s:g} -o - -w '\\n{MARK}%{{http_code}}' {quote(url)}"


def parse_curl(stdout: str) -> tuple[int, str]:
    body, _, code = stdout.rpartition(MARK)
    return (int(code) if code.strip().isdigit() else 0), body.rstrip("\n")


def fetch(target: Target, url: str) -> tuple[int, str, str]:
    """GET with the configured retries; returns (status code, body, error)."""
    api = target.settings.api
    error = ""
    for attempt in range(api.retries + 1):
        try:
            res = target.run(make_curl_command(url, api.timeout_s), requires=CURL)
        except ToolNotFoundError as exc:
            return 0, "", exc.reason
        code, body = parse_curl(res.stdout)
        if code == api.expect_status:
            return code, body, ""
        error = res.stderr.strip() or f"HTTP {code}"
        if attempt < api.retries:
            time.sleep(api.retry_delay_s)
    return code, body, error


def check_api(target: Target) -> list[Check]:
    api = target.settings.api
    if not api.url:
        return [Check("api", SKIPPED, "no api.url configured")]
    base = api.url.rstrip("/")
    checks = []
    code, body, error = fetch(target, base + api.health_path)
    health = Check("api_health", figures={"url": base + api.health_path, "status_code": code})
    if error:
        health.status, health.message = FAILED, f"{base + api.health_path}: {error}"
    elif api.expect_body and api.expect_body not in body:
        health.status, health.message = FAILED, f"body does not contain {api.expect_body!r}: {body[:120]!r}"
    else:
        health.message = f"HTTP {code}"
    checks.append(health)
    code, body, error = fetch(target, base + api.status_path)
    status = Check("api_status", figures={"url": base + api.status_path, "status_code": code})
    if error:
        status.status, status.message = FAILED, f"{base + api.status_path}: {error}"
    else:
        try:
            doc = json.loads(body)
        except ValueError:
            doc = {}
        total = doc.get("total_documents") if isinstance(doc, dict) else None
        status.figures["documents"] = doc.get("documents") if isinstance(doc, dict) else None
        status.figures["total_documents"] = total
        status.message = f"{total} documents" if total is not None else "no document count in /status"
        if api.min_documents is not None and (total is None or total < api.min_documents):
            status.status = DEGRADED
            status.message += f" (< {api.min_documents} expected)"
    checks.append(status)
    return checks


def make_disk_paths(settings: HostSettings) -> list[str]:
    if settings.disk.paths:
        return list(settings.disk.paths)
    paths = [settings.chroma.data_dir] if settings.chroma.data_dir else []
    paths += [r.root for r in settings.logs] + [r.root for r in settings.temp]
    return list(dict.fromkeys(p for p in paths if p))


def make_disk_command(paths: list[str]) -> str:
    quoted = " ".join(quote(p) for p in paths)
    return f"for p in {quoted}; do [ -e \"$p\" ] && printf '%s\\t' \"$p\" && df -P -B1 -- \"$p\" | tail -n1 && " \
           f"printf '%s\\t' \"$p\" && df -P -i -- \"$p\" | tail -n1; done; true"


def parse_disk(stdout: str, settings: HostSettings) -> list[Check]:
    d = settings.disk
    seen: dict[str, Check] = {}
    for line in stdout.splitlines():
        path, _, row = line.partition("\t")
        cols = row.split()
        if len(cols) < 6 or not cols[4].endswith("%"):
            continue
        check = seen.setdefault(path, Check(f"disk:{path}", figures={"path": path, "mount": cols[5]}))
        if "bytes_used_percent" not in check.figures:
            check.figures.update(bytes_used_percent=int(cols[4].rstrip("%")), bytes_free=int(cols[3]))
        else:
            check.figures["inodes_used_percent"] = int(cols[4].rstrip("%")) if cols[4] != "-" else 0
    for check in seen.values():
        used, inodes = check.figures.get("bytes_used_percent", 0), check.figures.get("inodes_used_percent", 0)
        check.message = f"{used}% space, {inodes}% inodes used on {check.figures['mount']}"
        if used >= d.fail_percent or inodes >= d.inode_fail_percent:
            check.status = FAILED
        elif used >= d.warn_percent or inodes >= d.inode_warn_percent:
            check.status = DEGRADED
    return list(seen.values())


def check_disk(target: Target) -> list[Check]:
    paths = make_disk_paths(target.settings)
    if not paths:
        return [Check("disk", SKIPPED, "no paths to check")]
    checks = parse_disk(target.run(make_disk_command(paths)).stdout, target.settings)
    missing = sorted(set(paths) - {c.figures["path"] for c in checks})
    if missing:
        checks.append(Check("disk", DEGRADED, f"missing path(s): {', '.join(missing)}"))
    return checks


def run_health(target: Target) -> StepResult:
    checks = [*check_api(target), check_redis(target), check_chroma(target), *check_containers(target),
              *check_disk(target)]
    status = summarize_status([StepResult(c.name, c.status) for c in checks])
    bad = [c for c in checks if c.status in (DEGRADED, FAILED)]
    result = StepResult("health", status, details={"checks": [asdict(c) for c in checks]})
    groups = sorted({c.name.split(":")[0].split("_")[0] for c in checks if c.status == OK})
    result.message = f"healthy: {sum(c.status == OK for c in checks)} checks ok ({', '.join(groups)})" if not bad else \
        "; ".join(f"{c.name} {c.status}: {c.message}" for c in bad)
    for c in checks:
        result.metrics.append(("ragops_health_check_status", {"check": c.name}, float(SEVERITY[c.status])))
        for name, count in (c.figures.get("collections") or {}).items():
            result.metrics.append(("ragops_chroma_documents", {"collection": name}, float(count)))
        if "bytes_used_percent" in c.figures:
            result.metrics.append(("ragops_disk_used_percent", {"path": c.figures["path"]}, float(c.figures["bytes_used_percent"])))
    return result
