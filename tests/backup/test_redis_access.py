"""Backups talk to Redis with redis-py as configured in ``redis:``: an ACL user granted only what
backups need, TLS (a throwaway CA made by openssl here), and for a remote host one SSH tunnel per
conversation (the test sshd on 127.0.0.2), closed after; the throwaway redis-server's password is
only in its config file. Real redis-server, real sshd, the real Redis source."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

import ragops.backup.sources.redis_server as redis_server
import ragops.redis_client as redis_client
from ragops.backup.policy_sources import RedisSource
from ragops.backup.sources import run_staging
from ragops.backup.sources.redis import stage
from ragops.errors import StepError
from tests.fixtures.backup_helpers import fill_redis, probe_redis
from tests.fixtures.fleet_helpers import make_host_entry, make_target
from tests.fixtures.services import free_port, port_listening, tunnel_threads

ADMIN = "admin-Pw-backups"
BACKUP_PW = "backup-Pw-acl"
BACKUP_ACL = ["+ping", "+info", "+lastsave", "+bgsave"]  # docs/backup-redis.md: the minimal backup user


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("backup-certs")
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=ragops backup test ca",
             "-keyout", str(d / "ca.key"), "-out", str(d / "ca.crt"))
    (d / "server.ext").write_text("subjectAltName=DNS:localhost\n")
    for name, ext in (("server", ["-extfile", str(d / "server.ext")]), ("client", [])):
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", f"/CN={name}", "-keyout", str(d / f"{name}.key"),
                 "-out", str(d / f"{name}.csr"))
        _openssl("x509", "-req", "-in", str(d / f"{name}.csr"), "-CA", str(d / "ca.crt"), "-CAkey", str(d / "ca.key"),
                 "-CAcreateserial", "-days", "2", "-out", str(d / f"{name}.crt"), *ext)
    return {n: str(d / n) for n in ("ca.crt", "server.crt", "server.key", "client.crt", "client.key")}


@pytest.fixture(scope="module")
def acl_redis(redis_factory, certs):
    """A password, a TLS port requiring client certificates, and ACL users: ``backup`` (only what a
    backup sends) and ``nosave`` (no BGSAVE)."""
    tls_port = free_port()
    server = redis_factory("backup-acl", password=ADMIN, extra_args=[
        "--tls-port", str(tls_port), "--tls-cert-file", certs["server.crt"], "--tls-key-file", certs["server.key"],
        "--tls-ca-cert-file", certs["ca.crt"], "--tls-auth-clients", "yes"])
    admin = server.client()
    admin.acl_setuser("backup", enabled=True, passwords=[f"+{BACKUP_PW}"], commands=BACKUP_ACL)
    admin.acl_setuser("nosave", enabled=True, passwords=[f"+{BACKUP_PW}"], commands=["+ping", "+info", "+lastsave"])
    admin.close()
    fill_redis(server, 2000)
    server.tls_port = tls_port
    return server


def _settings(tmp_path: Path, server, certs, user: str = "backup") -> dict:
    pw = tmp_path / f"pw-{user}"
    pw.write_text(BACKUP_PW + "\n")
    return {"redis": {"host": "localhost", "port": server.tls_port, "username": user, "password_file": str(pw),
                      "tls": True, "tls_ca_file": certs["ca.crt"], "tls_cert_file": certs["client.crt"],
                      "tls_key_file": certs["client.key"], "timeout_s": 5},
            "backup": {"staging_dir": str(tmp_path / "staging")}}


def _stage(target, tmp_path: Path, source: RedisSource) -> dict:
    with run_staging(target, str(tmp_path / "staging")) as run_dir:
        return stage(target, source, run_dir).record


def _saves(server) -> int:
    return int(server.client().info("persistence")["rdb_saves"])


def test_an_acl_user_with_only_the_backup_commands_backs_up_over_tls(tmp_path, acl_redis, certs):
    acl_redis.client().set("acl:change", "1")
    saves = _saves(acl_redis)
    target = make_target(tmp_path / "a", _settings(tmp_path, acl_redis, certs))
    rec = _stage(target, tmp_path, RedisSource(data_dir=str(acl_redis.dir)))  # no CONFIG GET granted: data_dir
    assert rec["save"] == "bgsave" and _saves(acl_redis) == saves + 1 and rec["keys_read"] == 2006
    again = _stage(target, tmp_path, RedisSource(data_dir=str(acl_redis.dir)))
    assert again["save"] == "existing" and _saves(acl_redis) == saves + 1, "nothing changed: no BGSAVE"
    acl_redis.client().set("acl:change", "2")
    denied = make_target(tmp_path / "b", _settings(tmp_path, acl_redis, certs, user="nosave"))
    with pytest.raises(StepError) as err:
        _stage(denied, tmp_path, RedisSource(data_dir=str(acl_redis.dir)))
    assert "user 'nosave' may not run this command" in str(err.value) and "docs/backup-redis.md" in str(err.value)
    assert BACKUP_PW not in str(err.value)


def test_under_dry_info_is_read_but_no_bgsave_is_sent(tmp_path, acl_redis, certs):
    acl_redis.client().set("acl:dry", "1")
    saves = _saves(acl_redis)
    target = make_target(tmp_path, _settings(tmp_path, acl_redis, certs), dry=True)
    rec = stage(target, RedisSource(data_dir=str(acl_redis.dir)), str(tmp_path / "run"))
    assert rec.record["save"] == "bgsave" and rec.record["lastsave"] is None and rec.record["version"].startswith("7.")
    assert _saves(acl_redis) == saves, "BGSAVE sent under --dry"


def test_a_remote_host_is_reached_through_one_tunnel_per_conversation_closed_after(tmp_path, sshd, acl_redis, certs,
                                                                                   monkeypatch):
    opened: list[tuple[str, int, int]] = []
    real = redis_client.open_tunnel

    @contextmanager
    def spy(target, host, port, *, what):
        with real(target, host, port, what=what) as route:
            opened.append((host, port, route[1]))
            yield route

    monkeypatch.setattr(redis_client, "open_tunnel", spy)
    acl_redis.client().set("acl:remote", "1")
    settings = _settings(tmp_path, acl_redis, certs)
    target = make_target(tmp_path, {"backup": settings["backup"]}, host="h2",
                         hosts={"h2": make_host_entry(sshd, "127.0.0.2", redis=settings["redis"])})
    try:
        t0 = time.monotonic()
        rec = _stage(target, tmp_path, RedisSource(data_dir=str(acl_redis.dir), dump_check="load", sample_keys=50))
        took = time.monotonic() - t0
    finally:
        target.close()
    idle = probe_redis(acl_redis.port, 50, password=ADMIN)
    assert rec["save"] == "bgsave" and rec["sample_source"] == "dump" and rec["db_keys"] == idle["db_keys"]
    assert rec["sample_digest"] == idle["sample_digest"], "the dump loaded through the tunnel == the idle server"
    live = [o for o in opened if o[:2] == ("localhost", acl_redis.tls_port)]
    throwaway = [o for o in opened if o[0] == "127.0.0.1"]
    assert len(live) == 1 and len(throwaway) == 1 and len(opened) == 2, opened
    assert all(route_port != port for _, port, route_port in opened), "the controller's end of the tunnel"
    assert not tunnel_threads(), "a tunnel thread outlived the run"
    assert not any(port_listening(route_port) for *_, route_port in opened), "a tunnel port still listens"
    assert int(acl_redis.client().info("clients")["connected_clients"]) == 1, "only this admin client is left"
    assert took < 30


def test_the_throwaway_servers_password_is_in_its_config_file_never_in_argv(tmp_path, redis_factory, monkeypatch):
    live = redis_factory("throwaway-pw")
    fill_redis(live, 500)
    live.client().save()
    passwords: list[str] = []
    real_password, real_open = redis_server.make_password, redis_server.open_throwaway
    monkeypatch.setattr(redis_server, "make_password", lambda: passwords.append(real_password()) or passwords[-1])
    refused: list[str] = []

    @contextmanager
    def spy(target, port, password, **kw):
        with real_open(target, port, password, **kw) as client:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:  # up: without its password it refuses
                sock.sendall(b"PING\r\n")
                refused.append(sock.recv(100).decode())
            yield client

    monkeypatch.setattr(redis_server, "open_throwaway", spy)
    seen: list[str] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            ps = subprocess.run(["ps", "-ww", "-eo", "args"], capture_output=True, text=True).stdout
            seen.extend(line for line in ps.splitlines() if "ragops-redis." in line and "--port " in line)
            time.sleep(0.01)  # ps in a tight loop starves the 2 cores

    thread = threading.Thread(target=watch)
    thread.start()
    target = make_target(tmp_path / "cfg")
    try:
        for _ in range(5):
            assert redis_server.run_dump_digest(target, str(live.dir), sample=16)["keys"] == 505
    finally:
        stop.set()
        thread.join()
    assert len(passwords) == 5 and len(set(passwords)) == 5, "a new random password per server"
    assert seen and all("redis.conf" in line and "requirepass" not in line for line in seen), seen[:2]
    assert not any(p in line for p in passwords for line in seen)
    assert len(refused) == 5 and all(r.startswith("-NOAUTH") for r in refused), refused
