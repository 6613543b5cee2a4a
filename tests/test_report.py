"""Results: the Prometheus textfile, the JSON document, the exit code and the summary table."""

from __future__ import annotations

import io
import json

from rich.console import Console

from ragops.errors import ExitCode
from ragops.report import (
    DEGRADED,
    FAILED,
    OK,
    HostResult,
    RunResult,
    StepResult,
    format_bytes,
    format_value,
    make_metrics_text,
    metrics_file_name,
    render_summary,
)
from tests.fixtures.fleet_helpers import parse_textfile


def value(families: dict[str, list[str]], name: str) -> float:
    (line,) = families[name]
    return float(line.rsplit(" ", 1)[1])


def test_metrics_of_a_successful_step():
    step = StepResult("cleanup", OK, duration_s=1.23456, bytes_freed=4096)
    step.metrics = [("ragops_cleanup_files", {"root": "/a", "kind": "logs"}, 3.0),
                    ("ragops_cleanup_bytes", {"root": "/a", "kind": "logs"}, 100.0),
                    ("ragops_cleanup_files", {"root": "/b", "kind": "temp"}, 1.0)]
    families = parse_textfile(make_metrics_text("prod1", step, 1795899939.123, None))
    assert value(families, "ragops_step_last_success_timestamp_seconds") == 1795899939.123
    assert value(families, "ragops_step_success") == 1 and value(families, "ragops_step_status") == 0
    assert value(families, "ragops_step_duration_seconds") == 1.235
    assert value(families, "ragops_step_bytes_freed") == 4096
    assert families["ragops_cleanup_files"] == [
        'ragops_cleanup_files{host="prod1",kind="logs",root="/a",step="cleanup"} 3',
        'ragops_cleanup_files{host="prod1",kind="temp",root="/b",step="cleanup"} 1',
    ]


def test_a_failed_step_keeps_the_previous_last_success_time():
    ok = make_metrics_text("prod1", StepResult("health", OK), 1000.5, None)
    failed = make_metrics_text("prod1", StepResult("health", FAILED), 2000.0, ok)
    families = parse_textfile(failed)
    assert value(families, "ragops_step_last_success_timestamp_seconds") == 1000.5
    assert value(families, "ragops_step_last_run_timestamp_seconds") == 2000
    assert value(families, "ragops_step_success") == 0 and value(families, "ragops_step_status") == 2
    never = parse_textfile(make_metrics_text("prod1", StepResult("health", FAILED), 2000.0, None))
    assert "ragops_step_last_success_timestamp_seconds" not in never


def test_a_degraded_step_counts_as_success_with_status_one():
    families = parse_textfile(make_metrics_text("h", StepResult("health", DEGRADED), 5.0, None))
    assert value(families, "ragops_step_success") == 1 and value(families, "ragops_step_status") == 1


def test_label_values_are_escaped():
    step = StepResult("cleanup", OK, metrics=[("ragops_x", {"root": 'a"b\\c\nd'}, 1.0)])
    assert 'root="a\\"b\\\\c\\nd"' in make_metrics_text("h", step, 1.0, None)


def test_values_keep_full_precision():
    assert format_value(1795899939.123) == "1795899939.123"
    assert format_value(3.0) == "3" and format_value(0.5) == "0.5"
    assert metrics_file_name("docker-prune") == "ragops_docker_prune.prom"
    assert format_bytes(512) == "512 B" and format_bytes(3 * 1024 * 1024) == "3.0 MiB"


def make_run() -> RunResult:
    good = HostResult("h2", OK, [StepResult("cleanup", OK, bytes_freed=10, files=2, duration_s=0.12345,
                                            metrics=[("m", {}, 1.0)])], duration_s=0.5)
    down = HostResult("h9", "unreachable", error="h9: SSH connection refused by 127.0.0.9:22",
                      exit_code=ExitCode.UNREACHABLE)
    failed = HostResult("h3", FAILED, [StepResult("health", FAILED, message="redis failed")],
                        exit_code=ExitCode.STEP_FAILED)
    return RunResult("maintain", False, [good, down, failed], started_at=100.0, duration_s=1.5)


def test_the_exit_code_is_the_worst_hosts():
    run = make_run()
    assert run.exit_code == ExitCode.UNREACHABLE
    assert RunResult("maintain", False, []).exit_code == ExitCode.OK


def test_the_json_document_has_hosts_steps_status_and_figures():
    doc = json.loads(make_run().to_json())
    assert {k: doc[k] for k in ("task", "dry_run", "exit_code", "ok")} == \
        {"task": "maintain", "dry_run": False, "exit_code": 4, "ok": False}
    hosts = {h["host"]: h for h in doc["hosts"]}
    assert hosts["h2"]["bytes_freed"] == 10 and hosts["h2"]["status"] == "ok"
    step = hosts["h2"]["steps"][0]
    assert step == {"step": "cleanup", "status": "ok", "message": "", "duration_s": 0.123, "bytes_freed": 10,
                    "files": 2, "dry": False, "details": {}}
    assert hosts["h9"]["status"] == "unreachable" and "connection refused" in hosts["h9"]["error"]
    assert hosts["h9"]["exit_code"] == 4 and hosts["h9"]["steps"] == []


def test_the_summary_table_has_a_row_per_step_and_per_failed_host():
    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(render_summary(make_run()))
    text = out.getvalue()
    assert "ragops maintain — 3 host(s), 1.5s" in text
    for expected in ("h2", "cleanup", "10 B", "h9", "unreachable", "connection refused", "h3", "redis failed"):
        assert expected in text
