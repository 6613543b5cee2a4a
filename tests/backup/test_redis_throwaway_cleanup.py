"""The throwaway redis-server that loads a dump (``run_dump_digest``) leaves no scratch dir behind.

Found in /tmp after CI runs: ~40 ``/tmp/ragops-redis.*`` dirs per run. The cleanup ran
``STOP; rm -rf DIR`` where the stop command ends with ``exit 0``: the shell exited before ``rm``.
Real redis-server, many rounds."""

from __future__ import annotations

import glob

from ragops.backup.sources.redis import run_dump_digest
from tests.fixtures.fleet_helpers import make_target


def test_loading_a_dump_many_times_leaves_no_scratch_dir(redis_factory, tmp_path):
    live = redis_factory("throwaway-cleanup")
    client = live.client()
    client.mset({f"k{i}": "v" * 50 for i in range(2000)})
    client.save()
    dump_dir = tmp_path / "dump"
    dump_dir.mkdir()
    (dump_dir / "dump.rdb").write_bytes((live.dir / "dump.rdb").read_bytes())
    target = make_target(tmp_path / "cfg")
    before = set(glob.glob("/tmp/ragops-redis.*"))
    for _ in range(15):
        doc = run_dump_digest(target, str(dump_dir), sample=16)
        assert doc["ok"] and doc["keys"] == 2000, doc
    assert set(glob.glob("/tmp/ragops-redis.*")) - before == set()
