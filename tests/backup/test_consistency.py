"""Consistency under load: a real writer keeps adding to Chroma and Redis while backups run.

Every snapshot must restore to a Chroma dir that passes the copy validation and matches its
manifest, and to a Redis dump that passes redis-check-rdb and loads in a throwaway redis-server
with the recorded key counts and sample digest. The pause strategy must always resume the writer.
"""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest

from ragops.backup.step import run_backup
from tests.fixtures.backup_helpers import VENV_PYTHON, assert_restored_sources_valid

WRITER = r'''
import os, sys, time, random, socket
os.environ["ANONYMIZED_TELEMETRY"] = "False"
import chromadb
from chromadb.config import Settings
path, port, pause, status = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
col = chromadb.PersistentClient(path, settings=Settings(anonymized_telemetry=False)).get_collection("docs")
sock = socket.create_connection(("127.0.0.1", port))
n = 0
while True:
    if os.path.exists(pause):
        open(status, "w").write("paused %d" % n)
        time.sleep(0.02)
        continue
    ids = ["w-%d" % (n + i) for i in range(100)]
    col.add(ids=ids, embeddings=[[random.random() for _ in range(32)] for _ in ids])
    payload = b"".join(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$1\r\n1\r\n" % (len(i), i.encode()) for i in ids)
    sock.sendall(payload)
    got = b""
    while got.count(b"\r\n") < 100:
        got += sock.recv(65536)
    n += 100
    open(status, "w").write("running %d" % n)
    time.sleep(0.1)  # ~1k items/s: steady load without starving the 2-core test machine
'''


def start_writer(chroma_dir, server, tmp_path):
    pause, status = tmp_path / "pause", tmp_path / "status"
    proc = subprocess.Popen([VENV_PYTHON, "-c", WRITER, str(chroma_dir), str(server.port), str(pause), str(status)],
                            stdout=subprocess.DEVNULL, stderr=open(tmp_path / "writer.log", "w"))
    deadline = time.monotonic() + 60
    while not (status.exists() and status.read_text().startswith("running")):
        assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "writer.log").read_text()
        time.sleep(0.1)
    return pause, status, proc


@pytest.fixture
def writer(tmp_path, copy_chroma, redis_factory):
    chroma_dir = copy_chroma()
    server = redis_factory("load")
    pause, status, proc = start_writer(chroma_dir, server, tmp_path)
    yield chroma_dir, server, pause, status, proc
    proc.kill()
    proc.wait()


def _check_snapshot(env, snap_id, dest):
    restored = env.restore(snap_id, dest)
    assert_restored_sources_valid(env.target(), restored, env.manifest(restored), dest)


@pytest.mark.slow
def test_ten_live_backups_under_write_load_each_restore_to_a_valid_store(writer, backup_env, tmp_path):
    chroma_dir, server, _pause, status, proc = writer
    env = backup_env(redis=server, chroma_dir=chroma_dir, strategy="live")
    counts = []
    attempts = []
    for _ in range(10):
        result = run_backup(env.target())
        assert result.status == "ok", result.message
        assert proc.poll() is None, "the writer kept running"
        counts.append(result.details["sources"][1]["collections"]["docs"])
        attempts.append(result.details["sources"][1]["attempts"])
    print(f"live copy attempts per backup: {attempts}, docs counts: {counts}")
    snaps = env.snapshots()
    assert len(snaps) == 10 and counts == sorted(counts) and counts[-1] > counts[0], counts
    for i, snap in enumerate(snaps):
        _check_snapshot(env, snap["id"], tmp_path / f"r{i}")


@pytest.mark.slow
def test_the_pause_strategy_quiets_a_real_writer_and_always_resumes_it(writer, backup_env, tmp_path):
    chroma_dir, server, pause, status, proc = writer
    env = backup_env(redis=server, chroma_dir=chroma_dir, strategy="pause",
                     chroma_extra={"pause": {"pre": f"touch {pause} && sleep 0.3", "post": f"rm -f {pause}"}})
    result = run_backup(env.target())
    assert result.status == "ok", result.message
    assert not pause.exists()
    before = status.read_text()
    time.sleep(1.0)
    assert status.read_text() != before and status.read_text().startswith("running"), "writer resumed"
    _check_snapshot(env, env.snapshots()[-1]["id"], tmp_path / "r")


@pytest.mark.slow
@pytest.mark.parametrize("kind, mode", [("btrfs", "snapshot"), ("xfs", "reflink"), ("ext4", "mirror")])
def test_ten_paused_backups_under_write_load_restore_to_valid_stores_in_each_copy_mode(
        kind, mode, loop_fs, chroma_dataset, redis_factory, backup_env, tmp_path):
    if kind == "ext4":
        data, staging = tmp_path / "chroma-live", tmp_path / "staging"
        shutil.copytree(chroma_dataset, data)
    else:
        fs = loop_fs(kind)
        data = fs.subvolume("chroma") if kind == "btrfs" else fs.mount / "chroma"
        shutil.copytree(chroma_dataset, data, dirs_exist_ok=True)
        staging = fs.mount / "staging"
    server = redis_factory(f"load-{kind}")
    pause, status, proc = start_writer(data, server, tmp_path)
    try:
        env = backup_env(redis=server, chroma_dir=data, strategy="pause", staging=staging,
                         chroma_extra={"pause": {"pre": f"touch {pause} && sleep 0.3", "post": f"rm -f {pause}"}})
        counts, holds = [], []
        for _ in range(10):
            result = run_backup(env.target())
            assert result.status == "ok", result.message
            assert proc.poll() is None and not pause.exists(), "the writer runs again"
            rec = next(s for s in result.details["sources"] if s["kind"] == "chroma")
            assert rec["copy_mode"] == mode
            counts.append(rec["collections"]["docs"])
            holds.append(rec["hold_s"])
    finally:
        proc.kill()
        proc.wait()
    print(f"{mode}: docs counts {counts}, writer held {holds}")
    assert counts == sorted(counts) and counts[-1] > counts[0], counts
    for i, snap in enumerate(env.snapshots()):
        _check_snapshot(env, snap["id"], tmp_path / f"r{i}")
