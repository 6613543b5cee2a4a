"""backup and restore-test of the real Compose RAG stack with `docker.data_tasks: containers`: the
volumes, images and containers found by ragops, Redis BGSAVE through the redis container, Chroma held
by stopping its service, the copy described and verified in throwaway containers of the services'
own images (both engines, one stack per module: `data_stack` of conftest.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from ragops.backup.sources.compose_roles import run_discover
from ragops.backup.step import run_backup
from ragops.config import load_config
from ragops.errors import ConfigError
from ragops.restore.run import Options, make_restore_test_step
from ragops.runner import run_host
from ragops.seam import Target
from tests.fixtures.compose_stack import SEED, Stack
from tests.fixtures.restore_helpers import INVOKE, ROOT, craft_snapshot, hash_tree, invoke

PW = "correct horse battery staple\n"


class Env:
    """ragops.yaml (host local, deployment compose, data_tasks containers) + policy + restic repo."""

    def __init__(self, stack: Stack, root: Path, *, policy_sources: dict[str, Any] | None = None,
                 docker_extra: dict[str, Any] | None = None) -> None:
        self.stack, self.root = stack, root
        root.mkdir(parents=True, exist_ok=True)
        self.repo, self.pw, self.staging = root / "repo", root / "pw", root / "staging"
        self.pw.write_text(PW)
        (root / "policies").mkdir(exist_ok=True)
        sources = policy_sources or {
            "redis": {"sample_keys": 64},
            "chroma": {"strategy": "stop", "stop": {"compose_service": "chroma", "timeout_s": 60},
                       "copy_mode": "mirror", "probes": 3, "probe_k": 5},
        }
        policy = {"repository": {"url": str(self.repo), "password_file": str(self.pw), "cache_dir": str(root / "cache")},
                  "sources": sources, "retention": {"keep_last": 50}, "tags": ["test"]}
        (root / "policies" / "t.yaml").write_text(yaml.safe_dump(policy, sort_keys=False))
        engine = stack.engine
        settings = {
            "deployment": "compose", "lock_path": str(root / "lock"), "metrics_dir": str(root / "metrics"),
            "redis": {"host": "127.0.0.1", "port": stack.redis_port},
            "backup": {"policy": "t", "policies_dir": str(root / "policies"), "staging_dir": str(self.staging),
                       # neither is used on a Compose host: a wrong one proves it
                       "chroma_python": "/nonexistent/python-with-chromadb", "redis_server": "/nonexistent/redis-server"},
            "docker": {"docker_host": engine.host, "docker_config": engine.overrides["DOCKER_CONFIG"],
                       "cli": str(engine.docker), "compose_project": stack.name, "data_tasks": "containers",
                       **(docker_extra or {})},
        }
        self.config = root / "ragops.yaml"
        self.config.write_text(yaml.safe_dump({"defaults": settings}, sort_keys=False))
        self.restic("init")

    def restic(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["restic", "-r", str(self.repo), "--password-file", str(self.pw), "--cache-dir",
                               str(self.root / "cache"), *args], capture_output=True, text=True, check=check, timeout=300)

    def snapshots(self) -> list[dict[str, Any]]:
        return json.loads(self.restic("snapshots", "--json").stdout or "[]")

    def restore(self, snapshot_id: str, dest: Path) -> Path:
        self.restic("restore", snapshot_id, "--target", str(dest))
        return dest

    def manifest(self, restored: Path) -> dict[str, Any]:
        found = list(restored.rglob("ragops-manifest.json"))
        assert len(found) == 1, found
        return dict(json.loads(found[0].read_text()))

    def host(self) -> Any:
        return load_config(str(self.config), environ={}).hosts["local"]

    def target(self, dry: bool = False) -> Target:
        return Target(host=self.host(), dry=dry)


def backup(env: Env) -> Any:
    result = run_backup(env.target())
    assert result.status == "ok", result.message
    return result


def restore_test(env: Env) -> Any:
    result = run_host(env.target(), "restore-test", [make_restore_test_step(env.host(), Options())])
    return result.steps[0]


def failed(step: Any) -> list[str]:
    return [f"{c['check']}: {c['evidence']}" for c in step.details["checks"] if not c["ok"]]


def sdk(stack: Stack) -> Any:
    """The docker SDK on the engine's socket: the test runs where the engine is (ragops itself uses
    the CLI through the seam, see docs/docker.md)."""
    import docker

    return docker.DockerClient(base_url=stack.engine.host, timeout=60)


def throwaways(stack: Stack) -> list[str]:
    client = sdk(stack)
    try:
        return [c.name for c in client.containers.list(all=True, filters={"label": "ragops.throwaway"})]
    finally:
        client.close()


def events(stack: Stack, since: float) -> list[dict[str, Any]]:
    client = sdk(stack)
    try:
        return list(client.events(since=since, until=time.time(), decode=True))
    finally:
        client.close()


def test_roles_volumes_and_images_are_found(data_stack: Stack, tmp_path: Path) -> None:
    env = Env(data_stack, tmp_path)
    stack = run_discover(env.target())
    assert stack.roles == {"chroma": "chroma", "redis": "redis", "api": "api"}
    chroma = stack.container("chroma", "local")
    assert chroma.image_id == data_stack.engine.inspect(data_stack.images["chroma"].tag, kind="image")[0]["Id"]
    assert chroma.host_path("/data") == str(data_stack.mountpoint("chroma_data"))
    assert chroma.host_path("/data/chroma.sqlite3") == str(data_stack.mountpoint("chroma_data") / "chroma.sqlite3")
    assert chroma.host_path("/etc") is None
    with pytest.raises(ConfigError, match=r"docker.roles.chroma: no service 'vector' in Compose project"):
        run_discover(Env(data_stack, tmp_path / "b", docker_extra={"roles": {"chroma": "vector"}}).target())
    # the project found from the compose file (the containers' config_files label), no project name given
    by_file = Env(data_stack, tmp_path / "c", docker_extra={"compose_project": None, "compose_file": str(data_stack.file)})
    assert run_discover(by_file.target()).project == data_stack.name
    elsewhere = Env(data_stack, tmp_path / "d", docker_extra={"compose_project": None, "compose_file": "/srv/x/compose.yaml"})
    with pytest.raises(ConfigError, match=r"docker.compose_file /srv/x/compose.yaml: none of the engine's Compose projects"):
        run_discover(elsewhere.target())


def test_backup_and_restore_test_of_the_compose_stack(data_stack: Stack, tmp_path: Path) -> None:
    env = Env(data_stack, tmp_path)
    data_stack.redis().set("data-tasks:marker", "1")
    t0 = time.time()
    result = backup(env)
    seen = events(data_stack, t0)
    manifest = result.details["manifest"] if "manifest" in result.details else None
    records = {r["kind"]: r for r in result.details["sources"]} if "sources" in result.details else {}
    assert records, result.details.keys()
    chroma, redis = records["chroma"], records["redis"]
    assert chroma["data_dir"] == str(data_stack.mountpoint("chroma_data"))
    assert chroma["container"]["service"] == "chroma" and chroma["container"]["volume"] == data_stack.volume("chroma_data")
    assert chroma["collections"] == {name: n for name, (_, n) in SEED.items()}
    assert redis["container"]["service"] == "redis" and redis["save"] == "bgsave" and redis["keys_read"] >= 1
    assert manifest is None or manifest
    # the helpers ran in containers: throwaway ones of the chroma / redis images, docker exec in redis
    images = {n: data_stack.engine.inspect(data_stack.images[n].tag, kind="image")[0]["Id"] for n in ("chroma", "redis")}
    created = [e for e in seen if e.get("Type") == "container" and e.get("Action") == "create"
               and (e.get("Actor", {}).get("Attributes") or {}).get("ragops.throwaway")]
    purposes = {e["Actor"]["Attributes"]["ragops.throwaway"]: e["Actor"]["Attributes"]["image"] for e in created}
    assert purposes.get("chroma-copy") == images["chroma"] and purposes.get("chroma-record") == images["chroma"]
    assert purposes.get("redis-check") == images["redis"], purposes
    assert any(e.get("Action", "").startswith("exec_create") and "redis_probe" not in str(e) for e in seen)
    assert any(e.get("Action") == "stop" or e.get("Action") == "kill" for e in seen)  # chroma held by stopping it
    assert data_stack.engine.health(data_stack.container("chroma")["Id"]) == "healthy"
    assert throwaways(data_stack) == []
    step = restore_test(env)
    assert step.status == "ok", failed(step)
    names = [c["check"] for c in step.details["checks"]]
    assert "redis: dump loads" in names and "compatibility with live collections" in names
    assert any(n.startswith("chroma: ") for n in names)
    assert throwaways(data_stack) == []


def test_dry_backup_prints_the_writes_and_starts_nothing(data_stack: Stack, tmp_path: Path, capsys) -> None:
    env = Env(data_stack, tmp_path)
    t0 = time.time()
    result = run_backup(env.target(dry=True))
    out = capsys.readouterr().err
    assert result.status == "ok", result.message
    assert "stop -t 60" in out and " start " in out, out[-3000:]
    assert " bgsave " in out or "redis: using the dump on disk" in out, out[-3000:]
    seen = events(data_stack, t0)
    assert not [e for e in seen if e.get("Action") in ("create", "stop", "kill", "pause")], seen  # reads only
    assert env.snapshots() == [] and throwaways(data_stack) == []


def make_bare_path(bin_dir: Path) -> str:
    """A PATH dir with every program of the system dirs EXCEPT Redis' and Chroma's (docker's CLI and
    restic stay): what a Compose host with only docker and restic installed offers."""
    bin_dir.mkdir()
    for d in ("/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"):
        for p in sorted(Path(d).iterdir()) if Path(d).is_dir() else []:
            if not p.name.startswith(("redis", "chroma")) and not (bin_dir / p.name).exists():
                (bin_dir / p.name).symlink_to(p)
    return str(bin_dir)


def test_the_host_needs_nothing_but_docker_and_restic(data_stack: Stack, tmp_path: Path) -> None:
    """`invoke backup` and `invoke restore-test` with a PATH without redis-server, redis-check-rdb and
    chroma, and a Python in which `import chromadb` fails (a poisoned chromadb first on PYTHONPATH: ragops
    and every helper it starts on the host inherit it); the helpers demonstrably ran in containers."""
    env = Env(data_stack, tmp_path)
    poison = tmp_path / "poison" / "chromadb"
    poison.mkdir(parents=True)
    (poison / "__init__.py").write_text("raise ImportError('chromadb imported on the host')\n")
    bare = {"PATH": make_bare_path(tmp_path / "bin"), "PYTHONPATH": str(tmp_path / "poison")}
    probe = subprocess.run(["sh", "-c", "command -v redis-server || command -v redis-check-rdb || command -v chroma"],
                           env=bare, capture_output=True, text=True)
    assert probe.returncode != 0, probe.stdout
    assert subprocess.run([sys.executable, "-c", "import chromadb"], env=bare, capture_output=True).returncode != 0
    data_stack.redis().set("bare:marker", "1")  # a change: BGSAVE runs
    t0 = time.time()
    res = invoke("backup", "--config", str(env.config), env=bare)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    res = invoke("restore-test", "--config", str(env.config), "--json", env=bare)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    seen = events(data_stack, t0)
    images = {n: data_stack.engine.inspect(data_stack.images[n].tag, kind="image")[0]["Id"] for n in ("chroma", "redis")}
    created: dict[str, set[str]] = {}
    for e in seen:
        attrs = e.get("Actor", {}).get("Attributes") or {}
        if e.get("Action") == "create" and attrs.get("ragops.throwaway"):
            created.setdefault(attrs["ragops.throwaway"], set()).add(attrs["image"])
    assert created == {"chroma-copy": {images["chroma"]}, "chroma-record": {images["chroma"]},
                       "chroma-verify": {images["chroma"]}, "redis-check": {images["redis"]},
                       "redis-load": {images["redis"]}}, created
    execs = {(e["Actor"]["Attributes"].get("name"), e["Action"].split(" ")[3] if len(e["Action"].split(" ")) > 3 else "")
             for e in seen if str(e.get("Action", "")).startswith("exec_create")}
    redis_c, chroma_c = (data_stack.container(s)["Name"].lstrip("/") for s in ("redis", "chroma"))
    assert (redis_c, "info") in execs and (redis_c, "bgsave") in execs and (chroma_c, "schema") in execs, execs
    assert throwaways(data_stack) == []


def run_and_signal(env: Env, task: str, ready: Any, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`invoke TASK` in a subprocess, SIGTERMed as soon as ``ready()`` is true; its outcome."""
    import signal

    proc = subprocess.Popen([INVOKE, task, "--config", str(env.config)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            assert proc.poll() is None and time.monotonic() < deadline, "the run ended before the moment to signal"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_sigterm_while_chroma_is_stopped_resumes_it_and_leaves_nothing(data_stack: Stack, tmp_path: Path) -> None:
    env = Env(data_stack, tmp_path)
    chroma = data_stack.container("chroma")["Id"]
    res = run_and_signal(env, "backup", lambda: data_stack.engine.inspect(chroma)[0]["State"]["Status"] != "running")
    assert res.returncode != 0 and "interrupted by SIGTERM" in res.stdout + res.stderr, res.stderr[-2000:]
    assert data_stack.engine.health(chroma) == "healthy"  # started again (and waited for) before ragops exited
    assert throwaways(data_stack) == [] and env.snapshots() == [] and not list(env.staging.glob("run-*"))


def test_sigterm_during_restore_test_removes_the_throwaway_containers(data_stack: Stack, tmp_path: Path) -> None:
    env = Env(data_stack, tmp_path)
    backup(env)
    res = run_and_signal(env, "restore-test", lambda: bool(throwaways(data_stack)))
    assert res.returncode != 0 and "interrupted by SIGTERM" in res.stdout + res.stderr, res.stderr[-2000:]
    assert throwaways(data_stack) == []
    assert not list((tmp_path / "staging-restore-test").glob("restore-test-*"))


# -- damaged snapshots: each fails its named check ---------------------------------------------

@pytest.fixture(scope="module")
def base(data_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Any:
    env = Env(data_stack, tmp_path_factory.mktemp("faults"))
    client = data_stack.redis()
    client.mset({f"fault:{i}": str(i) for i in range(200)})
    result = backup(env)

    class World:
        pass

    w = World()
    w.env, w.snapshot_id = env, str(result.details["snapshot_id"])  # type: ignore[attr-defined]
    return w


def live_hashes(stack: Stack) -> dict[str, str]:
    return hash_tree(stack.mountpoint("chroma_data"), stack.mountpoint("redis_data"))


def first_segment_file(staging: Path, name: str) -> Path:
    files = sorted((staging / "chroma").glob(f"*/{name}"), key=lambda p: p.stat().st_size)
    assert files, f"no {name} in the staged chroma copy"
    return files[-1]


def truncate_hnsw(staging: Path, manifest: dict[str, Any]) -> None:
    seg = first_segment_file(staging, "data_level0.bin")  # preallocated: cut into the stored elements
    with open(seg, "r+b") as fh:
        fh.truncate(2048)


def corrupt_sqlite(staging: Path, manifest: dict[str, Any]) -> None:
    db = staging / "chroma" / "chroma.sqlite3"
    data = bytearray(db.read_bytes())
    data[4096 * 3:4096 * 3 + 2000] = b"\x5a" * 2000  # inside a b-tree page, past the header
    db.write_bytes(bytes(data))


@pytest.mark.parametrize("fault", ["truncated hnsw segment", "corrupted sqlite", "dump missing keys"])
def test_a_damaged_snapshot_fails_its_named_check(data_stack: Stack, base: Any, tmp_path: Path, redis_factory,
                                                  fault: str) -> None:
    def drop_keys(staging: Path, manifest: dict[str, Any]) -> None:
        work = tmp_path / "redis-craft"
        work.mkdir()
        shutil.copy(staging / "redis" / "dump.rdb", work / "dump.rdb")
        server = redis_factory(f"craft-{uuid.uuid4().hex[:6]}", dir=work)
        server.client().delete(*[f"fault:{i}" for i in range(50)])
        server.client().save()
        server.stop()
        shutil.copy(work / "dump.rdb", staging / "redis" / "dump.rdb")

    mutate = {"truncated hnsw segment": truncate_hnsw, "corrupted sqlite": corrupt_sqlite, "dump missing keys": drop_keys}
    sid = craft_snapshot(base, tmp_path, mutate[fault])
    before = live_hashes(data_stack)
    result = run_host(base.env.target(), "restore-test",
                      [make_restore_test_step(base.env.host(), Options(snapshot=sid))])
    step = result.steps[0]
    assert live_hashes(data_stack) == before  # the live volumes are only ever read
    bad = [c["check"] for c in step.details["checks"] if not c["ok"]]
    assert step.status == "failed", bad
    if fault == "dump missing keys":
        assert bad == ["redis: redis-check-rdb", "redis: rdb checksum", "redis: key counts"] or "redis: key counts" in bad, bad
        counts = next(c for c in step.details["checks"] if c["check"] == "redis: key counts")
        assert "keys read" in counts["evidence"] and not any(b.startswith("chroma") for b in bad), bad
    elif fault == "corrupted sqlite":
        assert "chroma: opens" in bad and "files: sha256" in bad, bad
        opens = next(c for c in step.details["checks"] if c["check"] == "chroma: opens")
        assert "malformed" in opens["evidence"], opens
    else:  # the seeded collections are small: Chroma still serves them from its sqlite log, so the
        # checksum of the HNSW file (hashed at backup: a stable path) is what names the damage
        assert bad == ["files: sha256"], bad
        files = next(c for c in step.details["checks"] if c["check"] == "files: sha256")
        assert "data_level0.bin" in files["evidence"], files
    assert throwaways(data_stack) == []


def test_chroma_vacuum_runs_in_the_chroma_image_with_the_service_held(data_stack: Stack, tmp_path: Path) -> None:
    from ragops.backup.vacuum import run_vacuum

    env = Env(data_stack, tmp_path)
    counts = {c.name: c.count() for c in data_stack.chroma().list_collections()}
    t0 = time.time()
    result = run_vacuum(env.target(), backup_check=False)
    assert result.status == "ok" and result.details["tool"].startswith("chroma vacuum (image sha256:"), result.message
    assert result.details["data_dir"] == str(data_stack.mountpoint("chroma_data"))
    assert "Vacuum complete" in result.details["output"], result.details
    seen = events(data_stack, t0)
    vacuums = [e for e in seen if e.get("Action") == "create"
               and (e.get("Actor", {}).get("Attributes") or {}).get("ragops.throwaway") == "chroma-vacuum"]
    assert len(vacuums) == 2  # the CLI probe and the vacuum
    assert data_stack.engine.health(data_stack.container("chroma")["Id"]) == "healthy"
    assert {c.name: c.count() for c in data_stack.chroma().list_collections()} == counts
    assert throwaways(data_stack) == []


# -- a live writer ----------------------------------------------------------------------------

class Writer(threading.Thread):
    """Adds one document through the Chroma server's HTTP API and sets one Redis key every ~20 ms;
    failures (Chroma stopped for the copy) are counted and retried."""

    def __init__(self, stack: Stack) -> None:
        super().__init__(daemon=True)
        self.stack, self.halt = stack, threading.Event()
        self.acked: list[str] = []
        self.failures = 0
        self.last_ok = 0.0

    def run(self) -> None:
        from ragops.rag_api import embed

        client, col, r, i = None, None, self.stack.redis(), 0
        while not self.halt.is_set():
            doc_id = f"live-{i:05d}"
            try:
                if col is None:
                    client = self.stack.chroma()
                    col = client.get_or_create_collection("live", embedding_function=None)
                col.add(ids=[doc_id], embeddings=[embed(f"live {i}", 8)], documents=[f"live {i}"])
                r.set(f"live:{i}", str(i))
                self.acked.append(doc_id)
                self.last_ok = time.monotonic()
                i += 1
            except Exception:  # noqa: BLE001 - the server is stopped for the copy: retry
                self.failures += 1
                col = None
                time.sleep(0.2)
            time.sleep(0.02)


def test_back_to_back_backups_under_a_live_writer_each_restore_test_clean(data_stack: Stack, tmp_path: Path) -> None:
    env = Env(data_stack, tmp_path)
    writer = Writer(data_stack)
    writer.start()
    holds, runs = [], int(os.environ.get("RAGOPS_COMPOSE_BACKUPS", "5"))
    try:
        for n in range(runs):
            deadline = time.monotonic() + 30
            while len(writer.acked) < 5 * (n + 1) and time.monotonic() < deadline:
                time.sleep(0.05)
            result = backup(env)
            done = time.monotonic()
            chroma = next(r for r in result.details["sources"] if r["kind"] == "chroma")
            holds.append(chroma["hold_s"])
            assert chroma["collections"]["live"] >= 1
            step = restore_test(env)
            assert step.status == "ok", (n, failed(step))
            while writer.last_ok < done and time.monotonic() < done + 60:  # the writer is resumed
                time.sleep(0.05)
            assert writer.last_ok > done, f"backup {n}: the writer did not resume"
    finally:
        writer.halt.set()
        writer.join(30)
    stored = set(data_stack.chroma().get_collection("live").get(include=[])["ids"])
    assert set(writer.acked) <= stored  # no acknowledged write was lost
    assert len(env.snapshots()) == runs and throwaways(data_stack) == []
    assert not list(env.staging.glob("run-*")) and not list((tmp_path / "staging-restore-test").glob("restore-test-*"))
    print(f"{runs} backups under a writer: holds {holds}, writer failures {writer.failures}, acked {len(writer.acked)}")


# -- configuration (no engine) ------------------------------------------------------------------

def readme_blocks() -> list[Any]:
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = text.split("## Docker Compose deployments", 1)[1].split("\n## ", 1)[0]
    return [yaml.safe_load(b.split("\n", 1)[1]) for b in section.split("```yaml")[1:] for b in [b.split("```", 1)[0]]]


def test_the_readme_compose_example_is_a_valid_config_and_policy(tmp_path: Path) -> None:
    from ragops.backup.policy import validate_policy

    config, policy = readme_blocks()
    (tmp_path / "ragops.yaml").write_text(yaml.safe_dump(config))
    host = load_config(str(tmp_path / "ragops.yaml"), environ={}).hosts["prod1"]
    assert host.settings.docker.data_tasks == "containers" and host.settings.docker.roles.chroma == "chroma"
    parsed, problems = validate_policy(policy, "rag-compose.yaml")
    assert problems == [] and parsed is not None and parsed.sources.chroma.stop.compose_service == "chroma"


@pytest.mark.parametrize(("docker", "message"), [
    ({"data_tasks": "containers"}, "defaults.docker: data_tasks: containers needs the Compose project"),
    ({"data_tasks": "volumes"}, "defaults.docker.data_tasks: "),
    ({"data_tasks": "containers", "compose_project": "rag", "roles": {"chromadb": "x"}},
     "defaults.docker.roles.chromadb: unknown field (did you mean 'chroma'?)"),
    ({"data_tasks": "containers", "compose_project": "rag", "roles": {"redis": "a b"}}, "defaults.docker.roles.redis: "),
    ({"data_tasks": "containers", "compose_project": "rag", "roles": {"chroma_path": "data"}},
     "defaults.docker.roles.chroma_path: "),
])
def test_wrong_compose_settings_exit_2_naming_file_and_field(tmp_path: Path, docker: dict[str, Any], message: str) -> None:
    path = tmp_path / "ragops.yaml"
    path.write_text(yaml.safe_dump({"defaults": {"docker": docker}}))
    res = invoke("config.check", "--config", str(path))
    assert res.returncode == 2, res.stdout + res.stderr
    assert f"{path}: {message}" in res.stdout + res.stderr, res.stdout + res.stderr
    assert "Traceback" not in res.stderr


def test_a_bare_host_with_data_tasks_containers_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ragops.yaml"
    path.write_text(yaml.safe_dump({"defaults": {"deployment": "bare",
                                                 "docker": {"data_tasks": "containers", "compose_project": "rag"}}}))
    with pytest.raises(ConfigError, match=r"data_tasks: containers is for deployment: compose \(this host is bare\)"):
        load_config(str(path), environ={})


# -- the pure planners (no engine) --------------------------------------------------------------

def test_throwaway_run_command_mounts_at_the_same_path_and_quotes_everything() -> None:
    from ragops.backup.sources.throwaway import Mount, make_run_command

    cmd = make_run_command("DOCKER_HOST=unix:///s docker", "sha256:abc", "python3", ["-", "record", "/a b"],
                           name="ragops-chroma-record-1", purpose="chroma-record",
                           mounts=[Mount("/var/lib/x y"), Mount("/stage", read_only=False)], env={"A": "1"},
                           stdin=True)
    assert cmd == ("DOCKER_HOST=unix:///s docker run --rm -i --name ragops-chroma-record-1 --label "
                   "ragops.throwaway=chroma-record --network none -u \"$(id -u):$(id -g)\" -e HOME=/tmp -e A=1 "
                   "-v '/var/lib/x y:/var/lib/x y:ro' -v /stage:/stage --entrypoint python3 sha256:abc - record '/a b'")
    with pytest.raises(ValueError, match="--network none or host"):
        make_run_command("docker", "i", "sh", [], name="n", purpose="p", mounts=[], network="bridge")


def test_roles_default_by_name_then_image_and_ambiguity_is_a_config_error() -> None:
    from ragops.backup.sources.compose_roles import pick_role

    images = {"vectors": "chromadb/chroma:1.0.0", "cache": "redis:7", "web": "registry/rag-api:2"}
    assert pick_role("api", images, set(), None, "h", "p") == "web"
    assert pick_role("chroma", images, {"web"}, None, "h", "p") == "vectors"
    assert pick_role("redis", {**images, "redis": "x"}, set(), None, "h", "p") == "redis"  # the name wins
    assert pick_role("api", {"chroma": "c"}, set(), None, "h", "p") is None
    with pytest.raises(ConfigError, match=r"docker.roles.chroma: several services .* \(a, b\)"):
        pick_role("chroma", {"a": "chroma:1", "b": "x/chroma:2"}, set(), None, "h", "p")
    with pytest.raises(ConfigError, match=r"docker.roles.redis: no service 'kv'"):
        pick_role("redis", images, set(), "kv", "h", "p")


def test_host_path_goes_through_the_deepest_mount() -> None:
    from ragops.backup.sources.compose_roles import ServiceContainer

    c = ServiceContainer("chroma", "c", "id", "running", "healthy", "sha256:i", "img", mounts=(
        {"Type": "volume", "Name": "v", "Source": "/var/lib/docker/volumes/v/_data", "Destination": "/data"},
        {"Type": "bind", "Source": "/srv/idx", "Destination": "/data/index"}))
    assert c.host_path("/data") == "/var/lib/docker/volumes/v/_data"
    assert c.host_path("/data/chroma.sqlite3") == "/var/lib/docker/volumes/v/_data/chroma.sqlite3"
    assert c.host_path("/data/index/a.bin") == "/srv/idx/a.bin"
    assert c.host_path("/database") is None and c.host_path("/etc") is None


def test_hold_commands_stop_then_start_and_wait_for_health() -> None:
    from ragops.backup.sources.chroma_containers import make_hold_commands

    stop, start = make_hold_commands("docker", ["rag-chroma-1"], 30)
    assert stop == "docker stop -t 30 rag-chroma-1 >/dev/null"
    assert start.startswith("docker start rag-chroma-1 >/dev/null && for n in rag-chroma-1;")
    assert "healthy|running) break" in start and "-ge 60 ]" in start
