"""`invoke restore --into-volumes` on the real Compose RAG stack (`docker.data_tasks: containers`): the
snapshot goes into NEW labelled volumes (hash-equal to the snapshot), the live volumes stay
byte-identical, and following the printed switch-over steps serves the restored data (the API
answers /query on it); the printed roll-back brings the live data back. SIGTERM mid-fill leaves no
volume, container or scratch dir; usage errors exit 2; --dry creates nothing; an incompatible
snapshot is refused before anything is written.

One stack for the module (``data_stack``) on the 20.10 engine only: the docker calls are the data
tasks' and the drill's, tested on both engines elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.compose_data import Env, backup, run_and_signal, sdk, throwaways
from tests.fixtures.compose_stack import Stack
from tests.fixtures.restore_helpers import craft_snapshot, hash_tree, invoke

pytestmark = [pytest.mark.parametrize("stack_engine", ["docker-20"], indirect=True)]
LABEL = "ragops.restore"


@pytest.fixture(scope="module")
def base(data_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One backup (a Redis marker in it); then live drifts: a key and a collection the snapshot lacks."""
    root = tmp_path_factory.mktemp("into-volumes")
    env = Env(data_stack, root)
    settings = yaml.safe_load(env.config.read_text())
    settings["defaults"]["api"] = {"url": f"http://127.0.0.1:{data_stack.api_port}", "timeout_s": 20}
    env.config.write_text(yaml.safe_dump(settings, sort_keys=False))
    nonce = uuid.uuid4().hex[:8]
    data_stack.redis().set("iv:marker", nonce)
    sid = str(backup(env).details["snapshot_id"])
    assert data_stack.engine.wait_health(data_stack.container("chroma")["Id"], "healthy", timeout=60) == "healthy"
    data_stack.redis().set("iv:after", "1")
    data_stack.chroma().get_or_create_collection("iv_after", embedding_function=None).add(
        ids=["x"], embeddings=[[0.1] * 8], documents=["after the backup"])

    class World:
        pass

    w = World()
    w.env, w.snapshot_id, w.nonce = env, sid, nonce  # type: ignore[attr-defined]
    return w


@pytest.fixture(autouse=True)
def no_leftover_volumes(data_stack: Stack) -> Any:
    """Each test starts without restored volumes; whatever a failed one left is removed after it."""
    assert restored_volumes(data_stack) == {}
    yield
    left = restored_volumes(data_stack)
    if left:
        data_stack.engine.run("volume", "rm", "-f", *left, check=False)


def live_hashes(stack: Stack) -> dict[str, str]:
    return hash_tree(stack.mountpoint("chroma_data"), stack.mountpoint("redis_data"))


def restored_volumes(stack: Stack) -> dict[str, dict[str, Any]]:
    client = sdk(stack)
    try:
        return {v.name: v.attrs for v in client.volumes.list(filters={"label": LABEL})}
    finally:
        client.close()


def relative(tree: dict[str, str], root: Path) -> dict[str, str]:
    return {str(Path(p).relative_to(root)): h for p, h in tree.items()}


def sh(stack: Stack, command: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=timeout,
                          env=stack.engine.env, cwd=stack.dir)


def settle(stack: Stack) -> None:
    """Wait until the live Chroma server's files stop changing (it persists lazily after writes)."""
    last, deadline = live_hashes(stack), time.monotonic() + 20
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = live_hashes(stack)
        if now == last:
            return
        last = now


def test_into_volumes_then_the_printed_switch_over_serves_the_restored_data(data_stack: Stack, base: Any,
                                                                            tmp_path: Path) -> None:
    env = base.env
    t0 = time.monotonic()
    settle(data_stack)
    settled = time.monotonic() - t0
    before = live_hashes(data_stack)
    t0 = time.monotonic()
    res = invoke("restore", "--config", str(env.config), "--into-volumes", "--json")
    took = time.monotonic() - t0
    assert res.returncode == 0, res.stderr[-3000:] + res.stdout[-2000:]
    step = json.loads(res.stdout)["hosts"][0]["steps"][0]["details"]
    assert live_hashes(data_stack) == before  # the live volumes are only read
    vols = restored_volumes(data_stack)
    made = {v["role"]: v for v in step["volumes"]}
    assert set(vols) == {v["name"] for v in step["volumes"]} and set(made) == {"chroma", "redis"}, (vols, step)
    for v in step["volumes"]:
        assert v["live"] == data_stack.volume(f"{v['role']}_data") and v["name"].startswith(v["live"] + "-restored-")
        assert vols[v["name"]]["Labels"] == {LABEL: step["set"], f"{LABEL}.live": v["live"],
                                             f"{LABEL}.snapshot": step["snapshot"]}
    # the new volumes hold exactly the snapshot's copies
    snap = env.restore(base.snapshot_id, tmp_path / "snap")
    recs = {r["kind"]: r for r in env.manifest(snap)["sources"]}
    chroma_src = snap / recs["chroma"]["path"].lstrip("/")
    chroma_vol = Path(vols[made["chroma"]["name"]]["Mountpoint"])
    assert relative(hash_tree(chroma_vol), chroma_vol) == relative(hash_tree(chroma_src), chroma_src)
    dump_vol = Path(vols[made["redis"]["name"]]["Mountpoint"]) / "dump.rdb"
    dump_src = snap / recs["redis"]["path"].lstrip("/")
    assert hashlib.sha256(dump_vol.read_bytes()).digest() == hashlib.sha256(dump_src.read_bytes()).digest()
    assert throwaways(data_stack) == [] and not list((env.staging.parent / "staging-restore-test").glob("restore-test-*"))
    # follow the printed steps: switch over, check, roll back, remove the restored volumes
    steps = [s for s in step["switch_over"] if s["command"]]
    assert [s["step"].split(" ")[0] for s in steps] == ["check", "write", "stop", "start", "health", "ROLL", "later,"]
    override = Path(step["override_file"])
    t1 = time.monotonic()
    try:
        for s in steps[:5]:
            out = sh(data_stack, s["command"])
            assert out.returncode == 0, (s, out.stderr[-2000:])
        switch = time.monotonic() - t1
        r = data_stack.redis()
        assert r.get("iv:marker") == base.nonce.encode() and r.get("iv:after") is None  # the snapshot's Redis
        names = {c.name for c in data_stack.chroma().list_collections()}
        assert "iv_after" not in names and {"docs", "faq"} <= names  # the snapshot's Chroma
        code, body = data_stack.api("/query?q=refund+policy&k=3&collection=docs")
        assert code == 200 and len(body["ids"]) == 3 and all(i.startswith("docs-") for i in body["ids"]), body
        mounts = {m["Destination"]: m.get("Name") for m in data_stack.container("chroma")["Mounts"]}
        assert mounts["/data"] == made["chroma"]["name"]
    finally:
        t2 = time.monotonic()
        out = sh(data_stack, steps[5]["command"])  # ROLL BACK: always, so the module's stack is live again
        override.unlink(missing_ok=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert data_stack.redis().get("iv:after") == b"1"
    assert "iv_after" in {c.name for c in data_stack.chroma().list_collections()}
    assert sh(data_stack, steps[6]["command"]).returncode == 0 and restored_volumes(data_stack) == {}
    print(f"settle {settled:.1f}s, restore --into-volumes {took:.1f}s, switch-over {switch:.1f}s, "
          f"roll back {time.monotonic() - t2:.1f}s")


def test_sigterm_while_filling_leaves_no_volume(data_stack: Stack, base: Any) -> None:
    env = base.env
    settle(data_stack)
    before = live_hashes(data_stack)
    res = run_and_signal(env, "restore", lambda: bool(restored_volumes(data_stack)), "--into-volumes")
    assert res.returncode == 130 and "interrupted by SIGTERM" in res.stdout + res.stderr, res.stderr[-2000:]
    assert restored_volumes(data_stack) == {} and throwaways(data_stack) == []
    assert not list((env.staging.parent / "staging-restore-test").glob("restore-test-*"))
    assert live_hashes(data_stack) == before


def test_usage_errors_dry_and_an_incompatible_snapshot_create_nothing(data_stack: Stack, base: Any,
                                                                     tmp_path: Path) -> None:
    env = base.env
    res = invoke("restore", "--config", str(env.config), "--into-volumes", "--target", str(tmp_path / "t"))
    assert res.returncode == 2 and "not with --target" in res.stderr, res.stderr
    bare = tmp_path / "bare.yaml"
    settings = yaml.safe_load(env.config.read_text())
    settings["defaults"]["deployment"] = "bare"
    del settings["defaults"]["docker"]["data_tasks"]
    bare.write_text(yaml.safe_dump(settings))
    res = invoke("restore", "--config", str(bare), "--into-volumes")
    assert res.returncode == 2 and "deployment" in res.stderr and "--into-volumes needs" in res.stderr, res.stderr
    res = invoke("restore", "--config", str(env.config), "--into-volumes", "--dry")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "volume create" in res.stdout + res.stderr and "restore-fill" in res.stdout + res.stderr
    assert restored_volumes(data_stack) == {}

    def redimension(staging: Path, manifest: dict[str, Any]) -> None:
        rec = next(r for r in manifest["sources"] if r["kind"] == "chroma")
        next(c for c in rec["collections"] if c["name"] == "docs")["dimension"] = 64
        (staging / "ragops-manifest.json").write_text(json.dumps(manifest))

    sid = craft_snapshot(base, tmp_path, redimension)
    res = invoke("restore", "--config", str(env.config), "--into-volumes", "--snapshot", sid)
    assert res.returncode != 0 and "refusing to restore snapshot" in res.stderr, res.stderr[-2000:]
    assert "dimension is 64 in the snapshot but 16 live" in res.stderr, res.stderr[-2000:]
    assert restored_volumes(data_stack) == {} and throwaways(data_stack) == []
