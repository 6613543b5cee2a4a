"""The restore drill as `restore-test --drill` runs it, after the data checks, while the scratch dir
still holds the restored snapshot (one call from ``ragops/restore/run.py``: :func:`run_drill`).

Phases (the drill's RTO, from the start of the restore to the first correct answer): ``restore``
(restore-test's restic restore), ``volumes`` (fresh volumes created and filled), ``start``
(`compose up -d`: includes the waits for ``depends_on: service_healthy``), ``healthy`` (every
container healthy), ``first_answer``, ``all_answers``. The drill runs whenever the restore produced
the data (also after a failed data check: its answers then show whether the damage reaches the
service). Everything it made is removed in ``finally`` (also on failure and SIGTERM) unless --keep.
"""

from __future__ import annotations

import json
import time
from typing import Any

from .. import interrupts, output
from ..backup.sources import registry
from ..backup.sources.compose_roles import run_discover
from ..backup.sources.hooks import Check, TestContext
from ..errors import Interrupted, RagopsError
from ..report import find_metric_value
from ..seam import Target
from ..steps.health import make_curl_command, parse_curl
from . import engine, history, probes
from .compare import (
    Answer,
    first_match_at,
    make_comparison,
    make_reference_check,
    make_rto,
    make_rto_check,
    parse_answer,
    parse_state,
)
from .plan import DrillPlan, count_ports, make_drill_plan, make_project_name

TEARDOWN = "drill: teardown"
def find_restored_data(ctx: TestContext, doc: dict[str, Any], roles: dict[str, str]) -> dict[str, dict[str, tuple[str, str | None]]]:
    """service -> {mount target: (restored host path, file name)} for the Chroma dir and the Redis dump."""
    data: dict[str, dict[str, tuple[str, str | None]]] = {}
    for key, rec in registry.records_by_key(doc):
        if key not in ("chroma", "redis") or not rec.get("path") or key not in roles:
            continue
        if key == "chroma":
            target, name = ctx.target.settings.docker.roles.chroma_path, None
        else:
            target, name = str((rec.get("container") or {}).get("path") or "/data"), str(rec.get("dbfilename") or "dump.rdb")
        data.setdefault(roles[key], {})[target] = (ctx.restored(str(rec["path"])), name)
    return data


def find_recorded_counts(doc: dict[str, Any]) -> dict[str, int] | None:
    """The snapshot's per-collection document counts (the Chroma record's ``collections``: a list of
    ``{name, count, ...}``); None when not recorded or not well-formed (an untrusted manifest)."""
    for key, rec in registry.records_by_key(doc):
        cols = rec.get("collections") if key == "chroma" else None
        if isinstance(cols, list) and cols and all(isinstance(c, dict) and isinstance(c.get("name"), str)
                                                   and type(c.get("count")) is int for c in cols):
            return {c["name"]: c["count"] for c in cols}
    return None


def run_queries(target: Target, base_url: str, paths: list[str], timeout_s: float) -> list[Answer]:
    out = []
    for path in paths:
        t0 = time.monotonic()
        res = target.run(make_curl_command(base_url.rstrip("/") + path, timeout_s))
        code, body = parse_curl(res.stdout)
        out.append(parse_answer(code, body, res.stderr.strip(), time.monotonic() - t0))
    return out


def run_state(target: Target, base_url: str, path: str, state_field: str, timeout_s: float) -> Any:
    code, body = parse_curl(target.run(make_curl_command(base_url.rstrip("/") + path, timeout_s)).stdout)
    return parse_state(body, state_field) if code == 200 else None


def run_wait_healthy(target: Target, plan: DrillPlan, timeout_s: float) -> Check:
    want = set(plan.compose["services"])
    deadline = time.monotonic() + timeout_s
    while True:
        states = engine.run_states(target, plan.project)
        ready = {s["service"] for s in states if s["state"] == "running" and s["health"] in ("healthy", "none")}
        dead = [s for s in states if s["state"] in ("exited", "dead")]
        if want <= ready or dead or time.monotonic() > deadline:
            break
        interrupts.check(target.name)
        time.sleep(0.5)
    shown = ", ".join(f"{s['service']} {s['health'] if s['state'] == 'running' else s['state']}" for s in states)
    if want <= ready:
        return Check("drill: services healthy", True, f"{len(want)} service(s) healthy: {shown}")
    bad = [s for s in states if s["service"] not in ready] or [{"service": m, "id": ""} for m in sorted(want - ready)]
    logs = "; ".join(f"{s['service']} log: {engine.run_logs(target, s['id'])}" for s in bad[:2] if s.get("id"))
    missing = sorted(want - {s["service"] for s in states})
    return Check("drill: services healthy", False, f"not healthy within {timeout_s:.0f}s: {shown or 'no container'}"
                 + (f"; never created: {', '.join(missing)}" if missing else "") + (f"; {logs}" if logs else ""))


def run_drill(ctx: TestContext, layout: Any, doc: dict[str, Any] | None, phases: dict[str, float]) -> list[Check]:
    target, settings = ctx.target, ctx.policy.restore_test.drill
    report: dict[str, Any] = {"project": None, "kept": False, "phases": {"restore": round(phases.get("restore", 0.0), 3)},
                              "rto_s": None, "answers_matched": 0, "answers_total": 0, "ok": False,
                              "history_file": settings.history_file}
    queries = settings.queries or target.settings.docker.release.queries
    report["questions"] = "queries" if queries else "probes"
    probe_sets, refused = ([], []) if queries else probes.make_probe_sets(doc)
    live_url = ctx.live_target.settings.api.url
    problem = ("the restore produced no manifest: nothing to drill" if doc is None else
               "--drill runs on the source host's own engine (it starts the live images): not with --on"
               if target.name != ctx.live_target.name else
               "no drill queries (restore_test.drill.queries, docker.release.queries) and the manifest records no "
               "usable Chroma probes" + (f" ({'; '.join(refused[:3])})" if refused else "") if not queries and not probe_sets else
               "api.url is not set: the live API's answers are the reference" if not live_url else "")
    if problem:
        return [Check("drill: setup", False, problem), Check(TEARDOWN, True, "nothing started", report)]
    assert doc is not None and live_url
    checks: list[Check] = []
    plan: DrillPlan | None = None
    p = report["phases"]
    try:
        stack = run_discover(ctx.live_target)
        data = find_restored_data(ctx, doc, stack.roles)
        images = {c.service: c.image_id for c in stack.containers}
        live = engine.run_live_config(target, stack.project, stack.containers[0].id)
        ports = engine.run_free_ports(target, count_ports(live, stack.roles, settings))
        plan = make_drill_plan(live, project=make_project_name(stack.project), images=images, roles=stack.roles,
                               data=data, ports=ports, settings=settings, live_volumes=engine.run_live_volumes(target))
        report["project"] = plan.project
        if not plan.api_url:
            raise RagopsError("the live project has no API service with a port (docker.roles.api)")
        t0 = time.monotonic()
        for vol in plan.volumes:
            engine.run_create_volume(target, plan, vol)
            if vol.source:
                engine.run_fill_volume(target, plan, vol)
        p["volumes"] = round(time.monotonic() - t0, 3)
        filled = [f"{v.name} ({v.service}:{v.target})" for v in plan.volumes if v.source]
        checks.append(Check("drill: volumes filled", True, f"{len(plan.volumes)} fresh volume(s) of project {plan.project}, "
                            f"filled from the snapshot: {', '.join(filled) or 'none'}", {"ports": plan.ports}))
        paths = [q.path for q in queries]
        live_answers = run_queries(target, live_url, paths, target.settings.api.timeout_s)
        reference = make_reference_check(paths, live_answers, [q.expect_status for q in queries], live_url) \
            if queries else None
        if reference is not None:  # before anything starts: without a reference there is nothing to compare
            raise RagopsError(reference.evidence)
        chroma_urls = (None, None) if queries else (
            probes.find_drill_chroma_url(plan.ports, stack.roles.get("chroma")),
            probes.find_live_chroma_url(ctx.live_target, live, stack.roles.get("chroma"), settings.services.chroma.port_env))
        if not queries and not all(chroma_urls):
            raise RagopsError("probe questions need the Chroma servers' ports: set chroma.url (live) and "
                              "restore_test.drill.services.chroma.port_env, or publish the chroma service's port")
        live_state = run_state(target, live_url, settings.state_path, settings.state_field, target.settings.api.timeout_s)
        compose_file = f"{layout.root}/drill/compose.json"
        target.put_text(json.dumps(plan.compose, indent=1, sort_keys=True) + "\n", compose_file, mode="0600")
        t0 = time.monotonic()
        up = target.run(engine.make_compose_command(target, plan.project, compose_file, "up", "-d"), write=True,
                        timeout=settings.health_timeout_s + 120)
        p["start"] = round(time.monotonic() - t0, 3)
        t0 = time.monotonic()
        healthy = run_wait_healthy(target, plan, max(1.0, settings.health_timeout_s - (p["start"] if not up.ok else 0)))
        if not up.ok and healthy.ok:
            healthy = Check(healthy.check, False, f"`compose up` failed: {up.stderr.strip()[-300:]}")
        checks.append(healthy)
        if healthy.ok:
            p["healthy"] = round(time.monotonic() - t0, 3)
            if queries:
                drill_answers = run_queries(target, plan.api_url, paths, target.settings.api.timeout_s)
            else:
                paths, drill_answers, live_answers, bad = probes.run_probe_answers(
                    target, str(chroma_urls[0]), str(chroma_urls[1]), probe_sets, target.settings.chroma.timeout_s)
                if bad or refused or not paths:
                    checks.append(Check("drill: setup", False, "probe questions refused: "
                                        + "; ".join((bad + refused)[:3] or ["no probe vector in the drill's Chroma"])))
            first = first_match_at(drill_answers, live_answers, settings.min_overlap)
            if first is not None:
                p["first_answer"] = first
            p["all_answers"] = round(sum(a.seconds for a in drill_answers), 3)
            drill_state = run_state(target, plan.api_url, settings.state_path, settings.state_field,
                                    target.settings.api.timeout_s)
            compared = make_comparison(paths, drill_answers, live_answers, settings.min_overlap, drill_state, live_state,
                                       find_recorded_counts(doc), questions=report["questions"])
            report.update(answers_matched=compared.figures["answers_matched"], answers_total=len(paths))
            checks.append(compared)
            rto_check = make_rto_check(p, ctx.policy.restore_test.rto_budget_s)
            checks += [rto_check] if rto_check else []
    except Interrupted:
        raise
    except RagopsError as exc:
        checks.append(Check("drill: setup", False, str(exc)[-600:]))
    finally:
        report["rto_s"] = make_rto(p)
        report["ok"] = bool(checks) and all(c.ok for c in checks)
        if plan is not None:
            checks.append(run_teardown(target, plan.project, ctx.options.keep, report))
            report["ok"] = report["ok"] and checks[-1].ok
    if plan is None:
        checks.append(Check(TEARDOWN, True, "nothing started", report))
    return checks


def run_teardown(target: Target, project: str, keep: bool, report: dict[str, Any]) -> Check:
    if keep:
        report["kept"] = True
        report["down_command"] = f"invoke drill.down --host {target.name} --project {project}"
        output.info(target.name, f"--keep: drill project {project} kept; remove it with `{report['down_command']}`")
        return Check(TEARDOWN, True, f"kept project {project} (--keep): remove it with `{report['down_command']}`", report)
    left = engine.run_remove_project(target, project)
    if left:
        return Check(TEARDOWN, False, f"project {project}: still left: {left}", report)
    return Check(TEARDOWN, True, f"project {project} removed: no container, volume or network left", report)


def find_report(checks: list[Check]) -> dict[str, Any] | None:
    return next((dict(c.figures) for c in checks if c.check == TEARDOWN), None)


def read_previous_success(target: Target) -> float | None:
    if not target.settings.metrics_dir:
        return None
    text = target.read_text(f"{target.settings.metrics_dir.rstrip('/')}/ragops_restore_verify.prom")
    return find_metric_value(text, "ragops_restore_drill_last_success_timestamp_seconds")


def make_metrics(report: dict[str, Any], source: str, previous: float | None) -> list[tuple[str, dict[str, str], float]]:
    labels = {"source": source}
    ok = bool(report.get("ok"))
    out = [("ragops_restore_drill_success", labels, 1.0 if ok else 0.0),
           ("ragops_restore_drill_answers_matched", labels, float(report.get("answers_matched") or 0)),
           ("ragops_restore_drill_answers_total", labels, float(report.get("answers_total") or 0))]
    if report.get("rto_s") is not None:
        out.append(("ragops_restore_drill_rto_seconds", labels, float(report["rto_s"])))
    out += [("ragops_restore_drill_rto_seconds", {**labels, "phase": k}, float(v)) for k, v in report["phases"].items()]
    last = time.time() if ok else previous
    if last is not None:
        out.append(("ragops_restore_drill_last_success_timestamp_seconds", labels, round(last, 3)))
    return out


def attach(result: Any, checks: list[Check], target: Target, source: str) -> None:
    """Put the drill's report into the restore-test result's details and its metrics beside restore-test's."""
    report = find_report(checks)
    if report is None:
        return
    result.details["drill"] = report
    snapshot = result.details.get("snapshot")
    if snapshot and report.get("history_file"):
        try:
            history.run_append(target, report["history_file"], history.make_record(report, str(snapshot), source))
        except RagopsError as exc:
            output.warn(target.name, f"drill not recorded in {report['history_file']}: {exc}")
    result.metrics = list(result.metrics or []) + make_metrics(report, source, read_previous_success(target))
