"""ragops' stdlib helpers run INSIDE the stack's service containers (ContainerScripts: `docker exec
-i CONTAINER python3 - ARGS`, the script on stdin), on the session Compose stack of conftest.py
(each test runs once per engine, 20.10 and 26.1)."""

from __future__ import annotations

import hashlib
import io
import json
import posixpath
import tarfile

import pytest

from ragops.backup.sources.container_scripts import (
    ContainerScripts,
    make_container_path,
    make_exec_command,
    run_container_mounts,
    run_find_container,
)
from ragops.config import Host, HostEntry, HostSettings
from ragops.errors import StepError
from ragops.seam import Target
from tests.fixtures.compose_stack import SEED, Stack


def make_target(stack: Stack, tmp_path, dry: bool = False) -> Target:
    engine = stack.engine
    settings = HostSettings.model_validate({
        "lock_path": str(tmp_path / "lock"), "metrics_dir": None,
        "docker": {"docker_host": engine.host, "docker_config": engine.overrides["DOCKER_CONFIG"], "cli": str(engine.docker)},
    })
    return Target(Host(name="local", entry=HostEntry(), settings=settings, source="test"), dry=dry)


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def copied_hashes(stack: Stack, container: str, path: str) -> dict[str, str]:
    """sha256 of every regular file under `path`, read out of the container with `docker cp` (a tar)."""
    tar = stack.engine.run("cp", f"{container}:{path}", "-", input=b"").stdout
    out = {}
    with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
        for m in tf.getmembers():
            if m.isfile():
                out[posixpath.join(posixpath.dirname(path), m.name)] = hashlib.sha256(tf.extractfile(m).read()).hexdigest()
    return out


def test_exec_command_quotes_everything() -> None:
    cmd = make_exec_command("DOCKER_HOST=unix:///s docker", "rag-chroma-1", ["record", "/data x"], user="redis",
                            env={"A": "b c"}, secret_names=("REDISCLI_AUTH",))
    assert cmd == ("DOCKER_HOST=unix:///s docker exec -i -u redis -e 'A=b c' -e REDISCLI_AUTH rag-chroma-1 "
                   "python3 - record '/data x'")
    with pytest.raises(ValueError):
        make_exec_command("docker", "c", [], env={"A;rm": "x"})


def test_hash_files_in_the_chroma_container(stack: Stack, tmp_path) -> None:
    target = make_target(stack, tmp_path)
    container = run_find_container(target, "chroma", stack.name)
    assert container == stack.container("chroma")["Name"].lstrip("/")
    # the volume's host mountpoint, as the container sees it
    data = make_container_path(run_container_mounts(target, container), str(stack.mountpoint("chroma_data")))
    assert data == "/data"
    assert make_container_path(run_container_mounts(target, container), "/etc") is None
    scripts = ContainerScripts(target, container)
    for _ in range(3):  # the live server may touch a file between the two reads: read both again
        res = scripts.run_script("hash_files", [data])
        assert res.ok, res.stderr
        doc = last_json(res.stdout)
        got = {p: f["sha256"] for p, f in doc["files"].items()}
        want = copied_hashes(stack, container, data)
        if got == want:
            break
    assert got == want
    assert "/data/chroma.sqlite3" in got and len(got) >= 5  # the sqlite file and the collections' segment files
    host = {"/data/" + str(p.relative_to(stack.mountpoint("chroma_data"))): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in stack.mountpoint("chroma_data").rglob("*") if p.is_file()}
    assert set(host) == set(got)


def test_chroma_record_in_the_chroma_container(stack: Stack, tmp_path) -> None:
    target = make_target(stack, tmp_path)
    scripts = ContainerScripts.for_service(target, "chroma", stack.name)
    res = scripts.run_script("chroma_record", ["record", "/data", "--probes", "3", "--k", "5",
                                               "--server", f"http://127.0.0.1:{stack.chroma_port}"])
    doc = last_json(res.stdout)
    assert doc["ok"], doc
    assert doc["dir"] == "/data" and doc["integrity_check"] == "ok"
    counts = {c["name"]: c["count"] for c in doc["collections"]}
    code, status = stack.api("/status")
    assert code == 200 and counts == status["documents"] == {n: count for n, (_, count) in SEED.items()}
    assert {c["name"]: c["dimension"] for c in doc["collections"]} == status["dimensions"]
    for col in doc["collections"]:
        want = hashlib.sha256("\n".join(sorted(stack.seeded[col["name"]])).encode()).hexdigest()
        assert col["ids_digest"] == want
        assert len(col["probes"]) == 3 and all(p["top_k"][0] == p["id"] for p in col["probes"])


def test_redis_image_runs_the_helpers(stack: Stack, tmp_path) -> None:
    """The ragops/redis image has Debian's python3 too: the stdlib helpers run there (as the image's
    user redis); `user=` is docker exec's -u. (Redis itself is asked with redis-py now.)"""
    target = make_target(stack, tmp_path)
    scripts = ContainerScripts.for_service(target, "redis", stack.name)
    assert int(scripts.run_script("free_port", []).stdout.strip()) > 0
    # a secret goes on stdin, into the container with `-e NAME` (no value in argv)
    res = scripts.run_script("free_port", [], secrets={"REDISCLI_AUTH": "s3cret"})
    assert res.ok and "s3cret" not in res.command and "-e REDISCLI_AUTH" in res.command
    owners = {}
    for user in (None, "root"):
        cache = f"/tmp/ragops-cache-{user}.json"
        assert ContainerScripts(target, scripts.container, user=user).run_script(
            "hash_files", ["--roots", "/data", "--cache", cache], write=True).ok
        owners[user] = stack.engine.run("exec", scripts.container, "stat", "-c", "%U", cache).stdout.strip()
        stack.engine.run("exec", "-u", "root", scripts.container, "rm", "-f", cache)
    assert owners == {None: "redis", "root": "root"}
    with pytest.raises(StepError, match=r"'python9' is not in container .*redis-1"):
        ContainerScripts(target, scripts.container, python="python9").run_script("hash_files", ["/data"])


def test_stopped_service_is_a_clear_error(stack: Stack, tmp_path) -> None:
    target = make_target(stack, tmp_path)
    scripts = ContainerScripts.for_service(target, "api", stack.name)
    with pytest.raises(StepError, match=r"no container of Compose service 'nope'"):
        run_find_container(target, "nope", stack.name)
    stack.compose("stop", "-t", "1", "api")
    try:
        with pytest.raises(StepError, match=rf"Compose service 'api' of project '{stack.name}' has no running "
                                            r"container \(.*api-1 is exited .*start it first"):
            run_find_container(target, "api", stack.name)
        with pytest.raises(StepError, match=r"container '.*api-1' is gone or not running"):
            scripts.run_script("hash_files", ["/opt/rag-api"])
    finally:
        stack.compose("up", "-d", "--wait", "api")
    assert stack.api("/health")[0] == 200


def test_dry_prints_the_exec_and_runs_nothing(stack: Stack, tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    target = make_target(stack, tmp_path, dry=True)
    scripts = ContainerScripts.for_service(target, "chroma", stack.name)  # a read: runs under --dry too
    cache = "/tmp/ragops-dry-cache.json"  # hash_files writes its cache there: the visible effect

    def cache_exists() -> bool:
        return stack.engine.run("exec", scripts.container, "test", "-e", cache, check=False).returncode == 0

    res = scripts.run_script("hash_files", ["--roots", "/data", "--cache", cache], write=True)
    assert res.dry and not res.stdout
    err = capsys.readouterr().err
    assert f"(dry run) DOCKER_HOST={stack.engine.host} " in err
    assert f" exec -i {scripts.container} python3 - --roots /data --cache {cache}" in err
    assert not cache_exists()
    # the same call for real writes the cache (what --dry kept from happening)
    real = ContainerScripts(make_target(stack, tmp_path), scripts.container)
    try:
        assert real.run_script("hash_files", ["--roots", "/data", "--cache", cache], write=True).ok
        assert cache_exists()
    finally:
        stack.engine.run("exec", scripts.container, "rm", "-f", cache)
