"""End to end through the ``invoke`` CLI, as a user runs it: real sshd "hosts" on 127.0.0.2-7,
real files, real locks, a real redis-server + demo API + ChromaDB dir for health."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from ragops.errors import ExitCode
from tests.fixtures.fleet_helpers import (
    files_under,
    hash_tree,
    make_host_entry,
    make_host_settings,
    make_tree,
    parse_textfile,
    run_invoke,
    start_invoke,
    write_config,
    write_fleet_config,
)
from tests.fixtures.services import free_port

pytestmark = pytest.mark.slow


def test_maintain_on_three_ssh_hosts_in_parallel_deletes_exactly_the_old_files(tmp_path, sshd):
    cfg = tmp_path / "ragops.yaml"
    bases = write_fleet_config(cfg, sshd, ["127.0.0.2", "127.0.0.3", "127.0.0.4"], tmp_path / "hosts")
    trees = {name: make_tree(base, old=3, new=3) for name, base in bases.items()}
    res = run_invoke("maintain", "--host", "@fleet", "--config", str(cfg), "--json")
    assert res.returncode == ExitCode.OK, res.stderr
    doc = res.json()
    assert doc["ok"] is True and doc["dry_run"] is False and doc["task"] == "maintain"
    assert [h["host"] for h in doc["hosts"]] == ["h2", "h3", "h4"]
    for host in doc["hosts"]:
        assert host["status"] == "ok" and [s["step"] for s in host["steps"]] == ["cleanup", "logrotate", "health"]
        assert host["steps"][0]["files"] == 12 and host["bytes_freed"] == 1200
    for name, base in bases.items():
        assert files_under(base / "logs") | files_under(base / "tmp") == trees[name]["keep"]
        assert (base / "logrotate.d" / "ragops").read_text().startswith("# Managed by ragops")
        assert f"[{name}] cleanup: ok" in res.stderr
    assert "ragops maintain — 3 host(s)" in res.stderr  # the summary table


def test_metrics_textfiles_are_replaced_atomically_with_the_expected_metrics(tmp_path, sshd):
    cfg = tmp_path / "ragops.yaml"
    base = write_fleet_config(cfg, sshd, ["127.0.0.5"], tmp_path / "hosts")["h5"]
    make_tree(base, old=2, new=1, size=50)
    assert run_invoke("maintain", "--host", "h5", "--config", str(cfg)).returncode == 0
    metrics = base / "metrics"
    names = sorted(p.name for p in metrics.iterdir())
    assert names == ["ragops_cleanup.prom", "ragops_health.prom", "ragops_logrotate.prom", "ragops_task_maintain.prom"]
    cleanup = parse_textfile((metrics / "ragops_cleanup.prom").read_text())
    assert cleanup["ragops_step_bytes_freed"] == ['ragops_step_bytes_freed{host="h5",step="cleanup"} 400']
    assert cleanup["ragops_step_success"] == ['ragops_step_success{host="h5",step="cleanup"} 1']
    assert len(cleanup["ragops_cleanup_files"]) == 2
    health = parse_textfile((metrics / "ragops_health.prom").read_text())
    assert "ragops_health_check_status" in health and "ragops_step_last_success_timestamp_seconds" in health
    inode = (metrics / "ragops_cleanup.prom").stat().st_ino
    assert run_invoke("cleanup", "--host", "h5", "--config", str(cfg)).returncode == 0
    assert (metrics / "ragops_cleanup.prom").stat().st_ino != inode  # renamed into place, not rewritten
    # no temp files left, and no ragops_task_cleanup.prom repeating the step's series (node_exporter rejects duplicates)
    assert sorted(p.name for p in metrics.iterdir()) == names


def test_maintain_dry_run_leaves_the_tree_byte_identical_and_lists_what_would_go(tmp_path, sshd):
    cfg = tmp_path / "ragops.yaml"
    base = write_fleet_config(cfg, sshd, ["127.0.0.5"], tmp_path / "hosts")["h5"]
    tree = make_tree(base, old=2, new=2)
    before = hash_tree(tmp_path)
    res = run_invoke("maintain", "--host", "h5", "--config", str(cfg), "--dry", "--json")
    assert res.returncode == 0, res.stderr
    assert hash_tree(tmp_path) == before
    doc = res.json()
    assert doc["dry_run"] is True
    listed = {p["path"] for r in doc["hosts"][0]["steps"][0]["details"]["roots"] for p in r["paths"]}
    assert listed == {str(p) for p in tree["old"]}
    for path in tree["old"]:
        assert f"(dry run) delete {path} (100 B)" in res.stderr
    assert "(dry run) write" in res.stderr and "(dry run) take lock" in res.stderr


def test_symlinks_never_lead_cleanup_outside_its_roots(tmp_path, sshd):
    outside = tmp_path / "outside"
    make_tree(outside, old=2, new=0)
    base = tmp_path / "hosts" / "h6"
    (base / "logs").mkdir(parents=True)
    os.symlink(outside / "logs", base / "logs" / "linked-dir")             # a dir inside a root, pointing out
    os.symlink(outside / "logs" / "old-0.log", base / "logs" / "file.log")  # a file inside a root, pointing out
    os.symlink(outside / "logs", base / "root-link")                       # a root that is itself a symlink
    os.symlink(outside, base / "parent-link")                              # a root below a symlinked parent
    settings = make_host_settings(base)
    settings["logs"] = [{"root": str(base / "logs")}, {"root": str(base / "root-link")},
                        {"root": str(base / "parent-link" / "logs")}]
    settings["temp"] = [{"root": str(base / "parent-link" / "tmp")}]
    cfg = write_config(tmp_path / "ragops.yaml", {"hosts": {"h6": {**make_host_entry(sshd, "127.0.0.6"), **settings}}})
    before = hash_tree(outside)
    res = run_invoke("cleanup", "--host", "h6", "--config", str(cfg), "--json")
    assert hash_tree(outside) == before
    assert os.path.islink(base / "logs" / "file.log")
    assert res.returncode == ExitCode.STEP_FAILED  # refused roots fail the step, loudly
    roots = {r["root"]: r for r in res.json()["hosts"][0]["steps"][0]["details"]["roots"]}
    assert roots[str(base / "logs")]["status"] == "ok" and roots[str(base / "logs")]["files"] == 0
    for refused in ("root-link", "parent-link/logs", "parent-link/tmp"):
        assert roots[str(base / refused)]["status"] == "failed"
        assert f"resolves to {outside}" in roots[str(base / refused)]["message"]


def test_dropped_hosts_are_reported_and_the_others_complete(tmp_path, sshd):
    cfg = tmp_path / "ragops.yaml"
    bases = write_fleet_config(cfg, sshd, ["127.0.0.2", "127.0.0.9", "127.0.0.3"], tmp_path / "hosts")
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    wrong = tmp_path / "wrong_known_hosts"
    wrong.write_text(f"[127.0.0.3]:{sshd.port} {' '.join(other.with_suffix('.pub').read_text().split()[:2])}\n")
    data = json.loads(json.dumps(__import__("yaml").safe_load(cfg.read_text())))
    data["hosts"]["h3"]["known_hosts"] = str(wrong)
    write_config(cfg, data)
    tree = make_tree(bases["h2"], old=2, new=2)
    res = run_invoke("maintain", "--host", "@fleet", "--config", str(cfg), "--json")
    assert res.returncode == ExitCode.UNREACHABLE
    hosts = {h["host"]: h for h in res.json()["hosts"]}
    assert hosts["h2"]["status"] == "ok"
    assert files_under(bases["h2"] / "logs") | files_under(bases["h2"] / "tmp") == tree["keep"]
    assert hosts["h9"]["status"] == "unreachable"
    assert hosts["h9"]["error"] == f"h9: SSH connection refused by root@127.0.0.9:{sshd.port}"
    assert hosts["h3"]["status"] == "unreachable" and "host key mismatch" in hosts["h3"]["error"]
    assert "failed on 2 of 3 host(s): h9, h3" in res.stderr
    assert "Traceback" not in res.stderr


def test_fail_percent_flag_beats_environment_beats_file(tmp_path, sshd):
    cfg = tmp_path / "ragops.yaml"
    bases = write_fleet_config(cfg, sshd, ["127.0.0.9", "127.0.0.2"], tmp_path / "hosts", parallel=1, fail_percent=100,
                               defaults={"steps": ["cleanup"]})
    make_tree(bases["h2"], old=1, new=1)
    args = ("maintain", "--host", "h9,h2", "--config", str(cfg), "--json")
    by_file = {h["host"]: h["status"] for h in run_invoke(*args).json()["hosts"]}
    assert by_file == {"h9": "unreachable", "h2": "ok"}
    by_env = {h["host"]: h["status"] for h in run_invoke(*args, env={"RAGOPS_FAIL_PERCENT": "50"}).json()["hosts"]}
    assert by_env == {"h9": "unreachable", "h2": "not started"}
    by_flag = run_invoke(*args, "--fail-percent", "100", env={"RAGOPS_FAIL_PERCENT": "50"}).json()
    assert {h["host"]: h["status"] for h in by_flag["hosts"]} == {"h9": "unreachable", "h2": "ok"}


@pytest.fixture
def silent_api():
    """A TCP port that accepts connections and never answers: a health check there takes its timeout."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


def wait_for_file(path: Path, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text()
        time.sleep(0.05)
    raise AssertionError(f"{path} never appeared")


def test_the_lock_refuses_a_concurrent_run_and_recovers_from_a_killed_holder(tmp_path, silent_api):
    base = tmp_path / "host"
    make_tree(base, old=1, new=1)
    lock = base / "run" / "ragops.lock"
    slow = {**make_host_settings(base), "steps": ["health"],
            "api": {"url": silent_api, "timeout_s": 30, "retries": 0}}
    fast = {**make_host_settings(base), "steps": ["cleanup"]}
    slow_cfg = write_config(tmp_path / "slow.yaml", {"defaults": slow})
    fast_cfg = write_config(tmp_path / "fast.yaml", {"defaults": fast})
    holder = start_invoke("maintain", "--host", "local", "--config", str(slow_cfg))
    try:
        info = json.loads(wait_for_file(lock))
        assert info["pid"] == holder.pid
        refused = run_invoke("maintain", "--host", "local", "--config", str(fast_cfg))
        assert refused.returncode == ExitCode.LOCK_HELD
        assert (f"lock {lock} is held by pid {holder.pid} on {socket.gethostname()}, maintain started "
                f"{info['started']}; refusing to run") in refused.stderr
        assert files_under(base / "logs") != set() and len(files_under(base / "logs")) == 5  # nothing ran
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)
    assert json.loads(lock.read_text())["pid"] == holder.pid  # the killed holder left its lock behind
    took = run_invoke("maintain", "--host", "local", "--config", str(fast_cfg))
    assert took.returncode == ExitCode.OK, took.stderr
    assert f"took over stale lock {lock} (holder pid {holder.pid} on {socket.gethostname()} is gone" in took.stderr
    assert not lock.exists()


def health_config(tmp_path, stack, **api):
    settings = {"steps": ["health"], "lock_path": str(tmp_path / "lock"), "metrics_dir": str(tmp_path / "metrics"),
                "api": {"url": stack.api_url, "timeout_s": 5, "retries": 0, "expect_body": "ok", **api},
                "redis": {"port": stack.redis_port}, "chroma": {"data_dir": str(stack.chroma_dir)},
                "disk": {"warn_percent": 99, "fail_percent": 100}}
    return write_config(tmp_path / "ragops.yaml", {"defaults": settings})


def test_health_of_the_real_stack_passes_with_document_counts(tmp_path, rag_stack):
    res = run_invoke("health", "--host", "local", "--config", str(health_config(tmp_path, rag_stack)), "--json")
    assert res.returncode == ExitCode.OK, res.stderr
    checks = {c["name"]: c for c in res.json()["hosts"][0]["steps"][0]["details"]["checks"]}
    assert checks["api_status"]["figures"]["total_documents"] == sum(rag_stack.counts.values())
    assert checks["chroma"]["figures"]["collections"] == rag_stack.counts
    assert checks["redis"]["status"] == "ok"


def test_health_exits_non_zero_when_the_api_or_redis_is_down(tmp_path, rag_stack):
    dead = free_port()
    api_down = health_config(tmp_path / "api", rag_stack, url=f"http://127.0.0.1:{dead}")
    res = run_invoke("health", "--host", "local", "--config", str(api_down))
    assert res.returncode == ExitCode.STEP_FAILED and "api_health failed" in res.stderr
    degraded = health_config(tmp_path / "deg", rag_stack, min_documents=10**6)
    res = run_invoke("health", "--host", "local", "--config", str(degraded), "--json")
    assert res.returncode == ExitCode.STEP_FAILED and res.json()["hosts"][0]["status"] == "degraded"
    redis_down = health_config(tmp_path / "redis", rag_stack)
    res = run_invoke("health", "--host", "local", "--config", str(redis_down), env={"RAGOPS_REDIS__PORT": str(dead)})
    assert res.returncode == ExitCode.STEP_FAILED and "redis failed: PING failed" in res.stderr


def test_invoke_lists_every_task_and_documents_every_maintain_flag():
    listing = run_invoke("--list")
    assert listing.returncode == 0
    for name in ("maintain", "cleanup", "logrotate", "health", "config.check", "demo.up", "demo.down"):
        assert f"  {name} " in listing.stdout
    helped = run_invoke("--help", "maintain")
    assert helped.returncode == 0
    for flag in ("--host", "--config", "--dry", "--json", "--parallel", "--fail-percent"):
        assert flag in helped.stdout


def test_config_check_lists_every_error_and_exits_2_without_a_traceback(tmp_path):
    bad = tmp_path / "ragops.yaml"
    bad.write_text("parallel: x\nhosts:\n  prod1: {port: x, logs: [{root: /}], adress: y}\n")
    res = run_invoke("config.check", "--config", str(bad))
    assert res.returncode == ExitCode.CONFIG_ERROR
    for expected in (f"{bad}: parallel: must be an integer", f"{bad}: hosts.prod1.port: must be an integer",
                     f"{bad}: hosts.prod1.logs[0].root: refusing to clean '/'",
                     f"{bad}: hosts.prod1.adress: unknown field (did you mean 'address'?)"):
        assert expected in res.stderr
    assert "Traceback" not in res.stderr + res.stdout
    good = tmp_path / "good.yaml"
    good.write_text("hosts:\n  prod1: {address: 10.0.0.1}\n")
    ok = run_invoke("config.check", "--config", str(good))
    assert ok.returncode == 0 and ok.stdout == f"{good}: ok, 2 host(s): local, prod1\n"


def test_unknown_hosts_and_missing_config_files_exit_2(tmp_path):
    cfg = write_config(tmp_path / "ragops.yaml", {"hosts": {"prod1": {"address": "10.0.0.1"}}})
    res = run_invoke("maintain", "--host", "prod2", "--config", str(cfg))
    assert res.returncode == ExitCode.CONFIG_ERROR and "--host prod2: unknown host (did you mean 'prod1'?)" in res.stderr
    res = run_invoke("maintain", "--host", "local", "--config", str(tmp_path / "missing.yaml"))
    assert res.returncode == ExitCode.CONFIG_ERROR and "missing.yaml: config file not found" in res.stderr
    assert "Traceback" not in res.stderr
