"""backup and restore-test of the real Compose RAG stack with `docker.data_tasks: containers`: the
volumes, images and containers found by ragops, Redis BGSAVE through the redis container, Chroma held
by stopping its service, the copy described and verified in throwaway containers of the services'
own images (both engines, one stack per module: `data_stack` of conftest.py)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from ragops.backup.sources.compose_roles import run_discover
from ragops.backup.step import run_backup
from ragops.errors import ConfigError
from tests.fixtures.compose_data import Env, backup, events, failed, restore_test, run_and_signal, throwaways
from tests.fixtures.compose_stack import SEED, Stack
from tests.fixtures.restore_helpers import invoke


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
    # Redis (network_mode: host) is asked with redis-py from the controller: no exec in its container
    # but its image's HEALTHCHECK (`/bin/sh -c redis-cli ... ping`)
    in_redis = [e["Action"] for e in seen if str(e.get("Action", "")).startswith("exec_create")
                and e["Actor"]["Attributes"].get("name") == redis_c and not e["Action"].startswith("exec_create: /bin/sh -c ")]
    assert not in_redis and (chroma_c, "schema") in execs, (in_redis, execs)
    assert throwaways(data_stack) == []


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
    # signalled once the throwaway redis-server runs (the pre-started chroma verify runs then too)
    res = run_and_signal(env, "restore-test", lambda: any("redis-load" in n for n in throwaways(data_stack)))
    assert res.returncode != 0 and "interrupted by SIGTERM" in res.stdout + res.stderr, res.stderr[-2000:]
    assert throwaways(data_stack) == []
    assert not list((tmp_path / "staging-restore-test").glob("restore-test-*"))


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




@pytest.mark.parametrize("stack_engine", ["docker-26"], indirect=True)
def test_live_strategy_and_dump_check_load_on_the_compose_stack(data_stack: Stack, tmp_path: Path) -> None:
    """Chroma not held (sqlite online backup, then segments, then the copy validated in a throwaway
    container of the chroma image) and the staged dump loaded in a throwaway container of the redis
    image at backup time: the chroma service keeps running, the snapshot restore-tests clean."""
    env = Env(data_stack, tmp_path, policy_sources={
        "redis": {"sample_keys": 64, "dump_check": "load"},
        "chroma": {"strategy": "live", "copy_mode": "mirror", "probes": 3, "probe_k": 5}})
    data_stack.redis().mset({f"live-load:{i}": str(i) for i in range(100)})
    chroma_id = data_stack.container("chroma")["Id"]
    started = data_stack.engine.inspect(chroma_id)[0]["State"]["StartedAt"]
    t0 = time.time()
    result = backup(env)
    records = {r["kind"]: r for r in result.details["sources"]}
    assert records["chroma"]["strategy"] == "live" and records["chroma"]["attempts"] >= 1, records["chroma"]
    assert records["redis"]["db_keys"].get("0", 0) >= 100 and records["redis"]["sample_digest"], records["redis"]
    assert data_stack.engine.inspect(chroma_id)[0]["State"]["StartedAt"] == started  # never stopped
    assert not any(e.get("Action") in ("stop", "kill") and e.get("Actor", {}).get("ID") == chroma_id
                   for e in events(data_stack, t0))
    purposes = {(e.get("Actor", {}).get("Attributes") or {}).get("ragops.throwaway") for e in events(data_stack, t0)}
    assert "redis-load" in purposes and records["redis"]["sample_source"] == "dump", (purposes, records["redis"])
    step = restore_test(env)
    assert step.status == "ok", failed(step)
    assert throwaways(data_stack) == []
