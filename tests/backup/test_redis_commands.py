"""ragops.backup.sources.redis_commands over redis-py against a real redis-server: THE key-sample
digest (unchanged from the stdlib RESP client it replaces, so older manifests still compare), BGSAVE
waiting for LASTSAVE, and redis-cli's replies (the Compose case without a host port) parsed alike."""

from __future__ import annotations

from pathlib import Path

import redis

from ragops.backup.sources.redis_cli import make_cli_command, parse_reply
from ragops.backup.sources.redis_commands import read_info, read_probe, run_bgsave
from tests.fixtures.backup_helpers import fill_redis, probe_redis

# computed with the deleted ragops/remote/redis_probe.py (its make_sample_digest, verbatim) on the
# data of _fill below: the definition must not change, records written before carry these digests
OLD_DIGEST_100 = "cc10deda68c94067b944ceae939b8f25fbdb5c1fc042e8d19175234daa27d52f"
OLD_DIGEST_ALL = "9626681d124fb338ebd4e1a625e7ab0a1a8118fa43ae16fed905c04d7e14f601"


def _raw(server) -> redis.Redis:
    client = redis.Redis(port=server.port, protocol=2)
    client.response_callbacks.clear()
    return client


def _fill(server) -> None:
    fill_redis(server, 3000)
    c = server.client()
    c.set(b"bin:\xff\x00key", b"\x00\x01\xfe value")
    c.xadd("st:1", {"f": "v"})
    c.zadd("z:2", {b"\xfe": 3.0, "w": 1e-7})


def test_the_sample_digest_is_the_one_older_records_carry_and_covers_every_type(redis_factory):
    server = redis_factory("digest")
    _fill(server)
    first = probe_redis(server.port, 100)
    assert first["db_keys"] == {"0": 3007, "1": 1} and first["sampled"] == 101
    assert first["sample_digest"] == OLD_DIGEST_100, "the digest definition changed: old manifests no longer compare"
    assert probe_redis(server.port, 5000)["sample_digest"] == OLD_DIGEST_ALL
    server.client().zadd("z:1", {"m": 2.5})  # a value change in a sampled zset
    assert probe_redis(server.port, 5000)["sample_digest"] != OLD_DIGEST_ALL
    assert probe_redis(server.port, 0)["sample_digest"] is None


def test_bgsave_waits_for_lastsave_to_advance_and_for_a_save_already_running(redis_factory):
    # slow saves (~1 s each): the first is still running when ours starts, even on a loaded machine
    server = redis_factory("save", extra_args=["--rdb-key-save-delay", "500"])
    fill_redis(server, 2000)
    server.client().bgsave()
    client = _raw(server)
    try:
        done = run_bgsave(client, 60)
        info = read_info(client)
    finally:
        client.close()
    assert done["waited_for_running_save"] is True and done["rdb_saves"] >= 2
    assert done["lastsave"] >= done["previous_lastsave"] and info["lastsave"] == done["lastsave"]
    assert info["persistence"]["rdb_bgsave_in_progress"] == "0" and info["persistence"]["rdb_changes_since_last_save"] == "0"
    assert Path(info["dir"], info["dbfilename"]).is_file() and info["version"].startswith("7.")


def _cli(port: int, *args: str) -> str:
    """The redis-cli part of ``docker exec -i CONTAINER redis-cli ...``, to run on the host."""
    return "redis-cli" + make_cli_command("docker", "c", port, list(args)).split(" redis-cli", 1)[1]


def test_redis_cli_replies_parse_like_redis_pys_raw_ones(redis_factory):
    """redis-cli on the host stands in for the one in the redis image (same program)."""
    import subprocess

    server = redis_factory("cli")
    fill_redis(server, 10)
    client = _raw(server)
    try:
        for args in (("INFO", "persistence"), ("CONFIG", "GET", "dir"), ("LASTSAVE",)):
            out = subprocess.run(["sh", "-c", _cli(server.port, *args)], capture_output=True, text=True, check=True).stdout
            mine, theirs = parse_reply(args[0], out), client.execute_command(*args)
            assert (mine.splitlines() if args[0] == "INFO" else mine) == (
                theirs.splitlines() if args[0] == "INFO" else theirs), args
        failed = subprocess.run(["sh", "-c", _cli(server.port, "NOSUCH")], capture_output=True, text=True)
        assert failed.returncode == 1 and "unknown command" in failed.stderr, "-e: an error reply is exit 1 (on stderr)"
        assert read_probe(client, 0)["keys"] == 15
    finally:
        client.close()
