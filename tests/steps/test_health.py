"""health: planners and parsers, then run_health against a real redis-server, demo API and ChromaDB dir."""

from __future__ import annotations

from ragops.config import HostSettings, RedisSettings
from ragops.report import DEGRADED, FAILED, OK, SKIPPED
from ragops.steps.health import (
    MARK,
    judge_redis,
    make_curl_command,
    make_disk_command,
    make_disk_paths,
    parse_curl,
    parse_disk,
    run_health,
)
from tests.fixtures.fleet_helpers import make_target
from tests.fixtures.services import free_port


def test_curl_command_quotes_the_url_and_marks_the_status_code():
    cmd = make_curl_command("http://127.0.0.1:8000/health?x=1&y=2", 2.5)
    assert cmd == f"curl -sS --max-time 2.5 -o - -w '\\n{MARK}%{{http_code}}' 'http://127.0.0.1:8000/health?x=1&y=2'"


def test_curl_output_is_split_into_status_and_body():
    assert parse_curl('{"status": "ok"}\n' + MARK + "200") == (200, '{"status": "ok"}')
    assert parse_curl("line1\nline2\n\n" + MARK + "503") == (503, "line1\nline2")
    assert parse_curl("\n" + MARK + "000") == (0, "")
    assert parse_curl("no marker: curl died")[0] == 0


def redis_info(last=900, changes=0, bgsave="ok", **over):
    """INFO server+persistence+memory as redis-py parses it (ints for numbers)."""
    info = {"redis_version": "7.0.15", "loading": 0, "rdb_changes_since_last_save": changes,
            "rdb_last_save_time": last, "rdb_last_bgsave_status": bgsave, "aof_enabled": 0,
            "aof_last_write_status": "ok", "aof_last_bgrewrite_status": "ok", "used_memory": 1_000_000,
            "maxmemory": 0, "maxmemory_policy": "noeviction"}
    return {**info, **over}


def _redis(**over):
    return RedisSettings.model_validate({"max_save_age_s": 3600, **over})


def test_redis_is_healthy_with_a_recent_save():
    check = judge_redis(redis_info(), 1000, _redis())
    assert check.status == OK and check.message.startswith("PONG, last save 100s ago (ok)")
    assert check.figures["last_save_age_s"] == 100 and check.figures["rdb_last_bgsave_status"] == "ok"
    assert check.figures["memory_used_percent"] is None and "no maxmemory" in check.message


def test_redis_with_an_old_save_and_unsaved_changes_is_degraded():
    assert judge_redis(redis_info(last=100, changes=5), 10_000, _redis()).status == DEGRADED
    assert judge_redis(redis_info(last=100, changes=0), 10_000, _redis()).status == OK


def test_redis_with_failing_persistence_has_failed():
    assert judge_redis(redis_info(bgsave="err"), 1000, _redis()).status == FAILED
    aof = judge_redis(redis_info(aof_enabled=1, aof_last_write_status="err"), 1000, _redis())
    assert aof.status == FAILED and "aof write err" in aof.message
    # AOF off: its (stale) write status does not count
    assert judge_redis(redis_info(aof_last_write_status="err"), 1000, _redis()).status == OK
    rewrite = judge_redis(redis_info(aof_enabled=1, aof_last_bgrewrite_status="err"), 1000, _redis())
    assert rewrite.status == DEGRADED and "AOF rewrite failing" in rewrite.message
    assert judge_redis(redis_info(loading=1), 1000, _redis()).status == DEGRADED


def test_redis_memory_is_judged_only_under_noeviction():
    full = redis_info(used_memory=95, maxmemory=100)
    check = judge_redis(full, 1000, _redis())
    assert check.status == DEGRADED and check.figures["memory_used_percent"] == 95.0 and "noeviction" in check.message
    assert judge_redis(full, 1000, _redis(memory_warn_percent=96)).status == OK
    assert judge_redis({**full, "maxmemory_policy": "allkeys-lru"}, 1000, _redis()).status == OK


def _disk_settings(**disk):
    return HostSettings.model_validate({"disk": {"warn_percent": 80, "fail_percent": 90, **disk}})


def disk_out(path, used, inodes):
    return (f"{path}\t/dev/vda 1000 {used * 10} {1000 - used * 10} {used}% /\n"
            f"{path}\t/dev/vda 100 {inodes} {100 - inodes} {inodes}% /\n")


def test_disk_usage_is_judged_against_space_and_inode_thresholds():
    out = disk_out("/a", 50, 10) + disk_out("/b", 85, 10) + disk_out("/c", 95, 10) + disk_out("/d", 10, 92)
    checks = {c.figures["path"]: c for c in parse_disk(out, _disk_settings())}
    assert {p: c.status for p, c in checks.items()} == {"/a": OK, "/b": DEGRADED, "/c": FAILED, "/d": FAILED}
    assert checks["/a"].figures == {"path": "/a", "mount": "/", "bytes_used_percent": 50, "bytes_free": 500,
                                    "inodes_used_percent": 10}


def test_disk_paths_default_to_chroma_and_every_root():
    settings = HostSettings.model_validate({"chroma": {"data_dir": "/data/chroma"}, "logs": [{"root": "/l"}],
                                            "temp": [{"root": "/t"}, {"root": "/l"}]})
    assert make_disk_paths(settings) == ["/data/chroma", "/l", "/t"]
    assert "'/with space'" in make_disk_command(["/with space"])


def _settings(stack, **over):
    settings = {
        "api": {"url": stack.api_url, "timeout_s": 5, "retries": 0, "expect_body": "ok"},
        "redis": {"host": "127.0.0.1", "port": stack.redis_port},
        "chroma": {"data_dir": str(stack.chroma_dir)},
        "disk": {"paths": [str(stack.chroma_dir)], "warn_percent": 99, "fail_percent": 100},
    }
    for key, value in over.items():
        settings[key] = {**settings[key], **value}
    return settings


def test_health_of_a_real_stack_reports_counts_and_is_healthy(tmp_path, rag_stack):
    result = run_health(make_target(tmp_path, _settings(rag_stack)))
    assert result.status == OK, result.message
    checks = {c["name"]: c for c in result.details["checks"]}
    assert checks["api_status"]["figures"]["total_documents"] == sum(rag_stack.counts.values())
    assert checks["api_status"]["figures"]["documents"] == rag_stack.counts
    assert checks["chroma"]["figures"]["collections"] == rag_stack.counts
    assert checks["redis"]["status"] == OK and checks["redis"]["message"].startswith("PONG")
    assert checks[f"disk:{rag_stack.chroma_dir}"]["status"] == OK
    gauges = {(name, tuple(sorted(labels.items()))): v for name, labels, v in result.metrics}
    assert gauges[("ragops_chroma_documents", (("collection", "docs"),))] == rag_stack.counts["docs"]


def test_health_is_degraded_below_the_expected_document_count(tmp_path, rag_stack):
    settings = _settings(rag_stack, chroma={"min_documents": 10_000})
    result = run_health(make_target(tmp_path, settings))
    assert result.status == DEGRADED and "chroma degraded" in result.message


def test_health_fails_when_the_api_answers_503(tmp_path, rag_stack):
    result = run_health(make_target(tmp_path, _settings(rag_stack, api={"url": rag_stack.failing_api_url})))
    assert result.status == FAILED and "api_health failed" in result.message and "HTTP 503" in result.message


def test_health_fails_when_the_api_and_redis_are_down(tmp_path, rag_stack):
    dead = free_port()
    settings = _settings(rag_stack, api={"url": f"http://127.0.0.1:{dead}"}, redis={"port": dead})
    result = run_health(make_target(tmp_path, settings))
    checks = {c["name"]: c for c in result.details["checks"]}
    assert result.status == FAILED
    assert checks["api_health"]["status"] == FAILED and "Failed to connect" in checks["api_health"]["message"]
    assert checks["redis"]["status"] == FAILED and checks["redis"]["message"].startswith("PING failed: redis at 127.0.0.1:")
    assert "connection refused" in checks["redis"]["message"]


def test_health_fails_for_a_missing_chroma_dir(tmp_path, rag_stack):
    result = run_health(make_target(tmp_path, _settings(rag_stack, chroma={"data_dir": str(tmp_path / "nope")})))
    checks = {c["name"]: c for c in result.details["checks"]}
    assert checks["chroma"]["status"] == FAILED and "does not exist" in checks["chroma"]["message"]


def test_health_with_nothing_configured_skips_every_service_check(tmp_path):
    result = run_health(make_target(tmp_path, {"redis": {"enabled": False}}))
    statuses = {c["name"]: c["status"] for c in result.details["checks"]}
    assert statuses == {"api": SKIPPED, "redis": SKIPPED, "chroma": SKIPPED, "disk": SKIPPED}
    assert result.status == OK
