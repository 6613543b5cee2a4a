"""Running steps on a host and hosts in a fleet: order, stop on failure, metrics, pings, fail-percent."""

from __future__ import annotations

import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ragops import interrupts
from ragops.errors import ConfigError, ExitCode, StepError, VerifyError
from ragops.report import DEGRADED, FAILED, OK, HostResult, RunResult, StepResult
from ragops.runner import Step, run_fleet, run_host
from tests.fixtures.fleet_helpers import make_target


def ok_step(name, calls):
    def run(target):
        calls.append(name)
        return StepResult(name, OK, bytes_freed=5)
    return Step(name, run)


def failing_step(name, calls, exc=None):
    def run(target):
        calls.append(name)
        if exc:
            raise exc
        return StepResult(name, FAILED, message="broken")
    return Step(name, run)


def settings(tmp_path, **over):
    return {"lock_path": str(tmp_path / "run" / "lock"), "metrics_dir": str(tmp_path / "metrics"), **over}


def test_steps_run_in_order_and_stop_at_the_first_failure(tmp_path):
    calls: list[str] = []
    steps = [ok_step("cleanup", calls), failing_step("logrotate", calls), ok_step("health", calls)]
    result = run_host(make_target(tmp_path, settings(tmp_path)), "maintain", steps)
    assert calls == ["cleanup", "logrotate"]
    assert result.status == FAILED and result.exit_code == ExitCode.STEP_FAILED
    assert result.error == "stopped after failed step logrotate; not run: health"
    assert not (tmp_path / "run" / "lock").exists()  # released


def test_a_step_marked_continue_on_error_does_not_stop_the_host(tmp_path):
    calls: list[str] = []
    steps = [ok_step("cleanup", calls), failing_step("logrotate", calls), ok_step("health", calls)]
    target = make_target(tmp_path, settings(tmp_path, continue_on_error=["logrotate"]))
    result = run_host(target, "maintain", steps)
    assert calls == ["cleanup", "logrotate", "health"]
    assert result.status == FAILED and result.bytes_freed == 10


def test_errors_raised_by_a_step_become_its_failed_result(tmp_path):
    calls: list[str] = []
    steps = [failing_step("cleanup", calls, StepError("disk on fire")), ok_step("health", calls)]
    tgt = make_target(tmp_path, settings(tmp_path, continue_on_error=["cleanup"]))
    result = run_host(tgt, "maintain", steps)
    assert result.steps[0].message == "disk on fire"
    bug = run_host(tgt, "maintain", [failing_step("cleanup", calls, KeyError("x"))])
    assert bug.steps[0].status == FAILED and bug.steps[0].message == "unexpected error: KeyError: 'x'"


def test_a_degraded_step_fails_the_exit_code_only_when_strict(tmp_path):
    step = Step("health", lambda t: StepResult("health", DEGRADED))
    target = make_target(tmp_path, settings(tmp_path))
    assert run_host(target, "maintain", [step]).exit_code == ExitCode.OK
    strict = run_host(target, "health", [step], lock=False, strict=True)
    assert strict.status == DEGRADED and strict.exit_code == ExitCode.STEP_FAILED


# ------------------------------------------------------------------ a step's own exit code


def verify_step(name, path, expected):
    """Reads a file on the host and raises VerifyError when it differs (a restore test's check)."""
    def run(target):
        got = target.run(f"cat {path}").stdout
        if got != expected:
            raise VerifyError(f"{target.name}: {path}: content differs from the manifest")
        return StepResult(name, OK)
    return Step(name, run)


def password_step(name, path):
    """Reads a password file on the host and raises ConfigError when it is missing (exit 2)."""
    def run(target):
        if target.read_text(path) is None:
            raise ConfigError(f"{target.name}: backup.password_file: {path} does not exist on the host")
        return StepResult(name, OK)
    return Step(name, run)


def json_steps(result):
    return RunResult(task="t", dry=False, hosts=[result]).to_dict()["hosts"][0]["steps"]


def test_a_verify_error_raised_by_a_step_makes_the_host_exit_verify_failed(tmp_path):
    data = tmp_path / "restored.txt"
    data.write_text("damaged\n")
    result = run_host(make_target(tmp_path, settings(tmp_path)), "restore-test", [verify_step("verify", data, "intact\n")])
    assert result.status == FAILED and result.exit_code == ExitCode.VERIFY_FAILED == 5
    assert result.steps[0].exit_code == ExitCode.VERIFY_FAILED
    assert result.steps[0].message.endswith("content differs from the manifest")
    assert json_steps(result)[0]["exit_code"] == 5


def test_a_config_error_raised_by_a_step_makes_the_host_exit_config_error(tmp_path):
    missing = tmp_path / "no-such-password"
    result = run_host(make_target(tmp_path, settings(tmp_path)), "backup", [password_step("backup", missing)])
    assert result.status == FAILED and result.exit_code == ExitCode.CONFIG_ERROR == 2
    assert json_steps(result)[0]["exit_code"] == 2


def test_a_config_error_wins_over_a_verify_error_and_a_plain_failure(tmp_path):
    data = tmp_path / "restored.txt"
    data.write_text("damaged\n")
    steps = [failing_step("cleanup", []), verify_step("health", data, "intact\n"),
             password_step("backup", tmp_path / "no-such-password")]
    target = make_target(tmp_path, settings(tmp_path, steps=["cleanup", "health", "backup"],
                                            continue_on_error=["cleanup", "health"]))
    assert run_host(target, "maintain", steps).exit_code == ExitCode.CONFIG_ERROR
    assert run_host(target, "maintain", steps[:2]).exit_code == ExitCode.VERIFY_FAILED


def test_a_failed_step_without_an_explicit_code_exits_step_failed_and_its_json_has_no_exit_code(tmp_path):
    target = make_target(tmp_path, settings(tmp_path))
    for step in (failing_step("cleanup", []), failing_step("cleanup", [], StepError("disk on fire"))):
        result = run_host(target, "maintain", [step])
        assert result.status == FAILED and result.exit_code == ExitCode.STEP_FAILED == 1
        assert result.steps[0].exit_code is None and "exit_code" not in json_steps(result)[0]
    ok = run_host(target, "maintain", [ok_step("cleanup", [])])
    assert ok.exit_code == ExitCode.OK and "exit_code" not in json_steps(ok)[0]


def test_metrics_are_written_per_step_and_for_the_task(tmp_path):
    calls: list[str] = []
    run_host(make_target(tmp_path, settings(tmp_path)), "maintain", [ok_step("cleanup", calls)])
    assert sorted(p.name for p in (tmp_path / "metrics").iterdir()) == ["ragops_cleanup.prom", "ragops_task_maintain.prom"]
    text = (tmp_path / "metrics" / "ragops_task_maintain.prom").read_text()
    assert 'ragops_step_bytes_freed{host="local",step="maintain"} 5' in text


def test_a_dry_run_writes_no_metrics(tmp_path):
    run_host(make_target(tmp_path, settings(tmp_path), dry=True), "maintain", [ok_step("cleanup", [])])
    assert not (tmp_path / "metrics").exists()


@pytest.fixture
def ping_server():
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            seen.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/ping/abc", seen
    server.shutdown()


def test_start_and_success_or_failure_are_pinged(tmp_path, ping_server):
    url, seen = ping_server
    target = make_target(tmp_path, settings(tmp_path, pings={"url": url}))
    run_host(target, "maintain", [ok_step("cleanup", [])])
    run_host(target, "maintain", [failing_step("cleanup", [])])
    assert seen == ["/ping/abc/start", "/ping/abc", "/ping/abc/start", "/ping/abc/fail"]


def test_a_failing_ping_url_never_fails_the_run(tmp_path, capsys):
    target = make_target(tmp_path, settings(tmp_path, pings={"url": "http://127.0.0.1:9/x", "timeout_s": 1}))
    assert run_host(target, "maintain", [ok_step("cleanup", [])]).exit_code == ExitCode.OK
    assert "ping start failed" in capsys.readouterr().err


def host_work(delay, failing):
    def work(target):
        time.sleep(delay)
        code = ExitCode.STEP_FAILED if target.name in failing else ExitCode.OK
        return HostResult(target.name, FAILED if code else OK, exit_code=code)
    return work


def fleet_targets(tmp_path, n):
    names = [f"h{i}" for i in range(n)]
    first = make_target(tmp_path, {}, host="h0", hosts={n: {"address": "127.0.0.1"} for n in names})
    from ragops.config import load_config
    from ragops.seam import Target

    loaded = load_config(str(tmp_path / "cfg" / "ragops.yaml"), environ={})
    return [first] + [Target(loaded.hosts[n]) for n in names[1:]]


def test_the_fleet_runs_hosts_in_parallel_and_keeps_their_order(tmp_path):
    targets = fleet_targets(tmp_path, 6)
    t0 = time.monotonic()
    results = run_fleet(targets, host_work(0.3, set()), parallel=6, fail_percent=100)
    assert time.monotonic() - t0 < 1.2
    assert [r.host for r in results] == [t.name for t in targets]


def test_the_fleet_stops_starting_hosts_past_fail_percent(tmp_path):
    targets = fleet_targets(tmp_path, 4)
    results = run_fleet(targets, host_work(0.01, {"h0", "h1"}), parallel=1, fail_percent=50)
    assert [r.status for r in results] == [FAILED, FAILED, "not started", "not started"]
    assert results[2].error == "not started: --fail-percent 50 reached"
    everyone = run_fleet(targets, host_work(0.01, {"h0", "h1"}), parallel=1, fail_percent=100)
    assert [r.status for r in everyone] == [FAILED, FAILED, OK, OK]


# ------------------------------------------------------------------ signals (real SIGTERM at this process)


def signalling_step(name, sig=signal.SIGTERM):
    """A step whose command makes ragops (this process) receive ``sig`` while the command runs."""
    return Step(name, lambda target: StepResult(name, OK, message=target.run(f"kill -{sig.name[3:]} {os.getpid()}; sleep 30").stdout))


def test_a_signal_during_a_step_stops_the_host_as_interrupted_with_failed_metrics_and_the_fail_ping(tmp_path, ping_server):
    url, seen = ping_server
    calls: list[str] = []
    target = make_target(tmp_path, settings(tmp_path, pings={"url": url}))
    t0 = time.monotonic()
    with interrupts.handling():
        result = run_host(target, "maintain", [signalling_step("cleanup"), ok_step("health", calls)])
    assert time.monotonic() - t0 < 10 and calls == []  # no further step started
    assert result.status == "interrupted" and result.exit_code == ExitCode.INTERRUPTED == 130
    assert result.error == "interrupted by SIGTERM; not run: health"
    assert result.steps[0].status == FAILED and result.steps[0].message == "local: interrupted by SIGTERM"
    step = (tmp_path / "metrics" / "ragops_cleanup.prom").read_text()
    whole = (tmp_path / "metrics" / "ragops_task_maintain.prom").read_text()
    assert 'ragops_step_success{host="local",step="cleanup"} 0' in step
    assert 'ragops_step_status{host="local",step="maintain"} 2' in whole
    assert seen == ["/ping/abc/start", "/ping/abc/fail"]
    assert not (tmp_path / "run" / "lock").exists()  # released after the signal


def test_a_signal_the_kernel_hands_to_a_worker_thread_still_stops_the_fleet_at_once(tmp_path):
    local = make_target(tmp_path, settings(tmp_path))

    def in_worker(target):  # pthread_kill: the signal lands on this (host) thread, not the main one
        signal.pthread_kill(threading.get_ident(), signal.SIGTERM)
        return StepResult("cleanup", OK, message=target.run("sleep 30").stdout)

    def work(target):
        result = run_host(local, "maintain", [Step("cleanup", in_worker)])
        result.host = target.name
        return result

    t0 = time.monotonic()
    with interrupts.handling():
        results = run_fleet(fleet_targets(tmp_path, 2), work, parallel=1, fail_percent=100)
    assert time.monotonic() - t0 < 10
    assert [r.status for r in results] == ["interrupted", "not started"]


def test_after_a_signal_the_fleet_starts_no_new_host(tmp_path):
    local, started = make_target(tmp_path, settings(tmp_path)), []

    def work(target):
        started.append(target.name)
        result = run_host(local, "maintain", [signalling_step("cleanup", signal.SIGINT)])
        result.host = target.name
        return result

    with interrupts.handling():
        results = run_fleet(fleet_targets(tmp_path, 3), work, parallel=1, fail_percent=100)
    assert started == ["h0"]
    assert [r.status for r in results] == ["interrupted", "not started", "not started"]
    assert [r.exit_code for r in results] == [ExitCode.INTERRUPTED] * 3
    assert results[1].error == "not started: interrupted by SIGINT"
