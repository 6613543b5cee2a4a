"""ragops.redis_client + ragops.tunnel against real parts: redis-server (password, ACL user, TLS with
certificates made by openssl here) and the test sshd for the SSH tunnel (Fabric forward_local)."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import pytest

from ragops.errors import ConfigError
from ragops.redis_client import RedisClientError, open_redis
from ragops.steps.health_redis import check_redis
from ragops.tunnel import TunnelError, open_tunnel
from tests.fixtures.fleet_helpers import make_host_entry, make_target
from tests.fixtures.services import free_port, port_listening, tunnel_threads

PASSWORD = "s3cret-Pw with spaces"


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A CA, a server certificate for DNS:localhost only, a client certificate, and a second CA."""
    d = tmp_path_factory.mktemp("certs")
    for ca in ("ca", "other-ca"):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN=ragops test {ca}",
                 "-keyout", str(d / f"{ca}.key"), "-out", str(d / f"{ca}.crt"))
    (d / "server.ext").write_text("subjectAltName=DNS:localhost\n")
    for name, ext in (("server", ["-extfile", str(d / "server.ext")]), ("client", [])):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", str(d / f"{name}.key"),
                 "-out", str(d / f"{name}.csr"))
        _openssl("x509", "-req", "-in", str(d / f"{name}.csr"), "-CA", str(d / "ca.crt"), "-CAkey", str(d / "ca.key"),
                 "-CAcreateserial", "-days", "2", "-out", str(d / f"{name}.crt"), *ext)
    return {n: str(d / n) for n in ("ca.crt", "other-ca.crt", "server.crt", "server.key", "client.crt", "client.key")}


@pytest.fixture(scope="module")
def secure_redis(redis_factory, certs):
    """redis-server with a password and an ACL user, plus a TLS port that requires client certificates."""
    tls_port = free_port()
    server = redis_factory("secure", password=PASSWORD, extra_args=[
        "--tls-port", str(tls_port), "--tls-cert-file", certs["server.crt"], "--tls-key-file", certs["server.key"],
        "--tls-ca-cert-file", certs["ca.crt"], "--tls-auth-clients", "yes"])
    admin = server.client()
    admin.acl_setuser("health", enabled=True, passwords=[f"+{PASSWORD}-health"], commands=["+ping", "+info", "+time"])
    admin.acl_setuser("notime", enabled=True, passwords=[f"+{PASSWORD}-notime"], commands=["+ping", "+info"])
    admin.close()
    server.tls_port = tls_port
    return server


def _secret(tmp_path: Path, value: str) -> str:
    path = tmp_path / f"pw-{abs(hash(value))}"
    path.write_text(value + "\n")
    return str(path)


def _redis(tmp_path: Path, server, password: str | None = PASSWORD, **over):
    settings = {"host": "127.0.0.1", "port": server.port, "timeout_s": 3}
    if password is not None:
        settings["password_file"] = _secret(tmp_path, password)
    return {**settings, **over}


def _tls(server, certs, **over):
    return {"port": server.tls_port, "tls": True, "tls_ca_file": certs["ca.crt"], "tls_cert_file": certs["client.crt"],
            "tls_key_file": certs["client.key"], **over}


def _remote(tmp_path, sshd, redis):
    hosts = {"h2": make_host_entry(sshd, "127.0.0.2", redis=redis)}
    return make_target(tmp_path, {}, host="h2", hosts=hosts)


def _clients(server) -> int:
    admin = server.client()
    try:
        return int(admin.info("clients")["connected_clients"]) - 1  # not counting this one
    finally:
        admin.close()


def _wait_clients(server, n: int, timeout: float = 5.0) -> int:
    deadline = time.monotonic() + timeout
    while (seen := _clients(server)) != n and time.monotonic() < deadline:
        time.sleep(0.05)
    return seen


# -------------------------------------------------------------------------------- local: direct
def test_password_from_the_secret_file_authenticates(tmp_path, secure_redis):
    with open_redis(make_target(tmp_path, {"redis": _redis(tmp_path, secure_redis)})) as client:
        assert client.ping() is True and client.set("rc:probe", "1") and client.get("rc:probe") == "1"


def test_auth_failures_are_one_sentence_without_the_password(tmp_path, secure_redis):
    wrong = _redis(tmp_path, secure_redis, password="not-it")
    with pytest.raises(RedisClientError) as err:
        with open_redis(make_target(tmp_path / "a", {"redis": wrong})):
            pass
    assert "authentication failed for the default user" in err.value.reason and "not-it" not in str(err.value)
    none = check_redis(make_target(tmp_path / "b", {"redis": _redis(tmp_path, secure_redis, password=None)}))
    assert none.status == "failed" and "needs a password: set redis.password_file" in none.message


def test_an_acl_user_with_ping_info_time_passes_health_and_one_without_time_is_told_why(tmp_path, secure_redis):
    ok = check_redis(make_target(tmp_path / "a", {"redis": _redis(tmp_path, secure_redis, password=f"{PASSWORD}-health",
                                                                  username="health")}))
    assert ok.status == "ok" and ok.message.startswith("PONG"), ok.message
    denied = check_redis(make_target(tmp_path / "b", {"redis": _redis(tmp_path, secure_redis, password=f"{PASSWORD}-notime",
                                                                      username="notime")}))
    assert denied.status == "failed" and "user 'notime' may not run this command" in denied.message
    assert "time" in denied.message.lower() and PASSWORD not in denied.message
    wrong_user = check_redis(make_target(tmp_path / "c", {"redis": _redis(tmp_path, secure_redis, username="nobody")}))
    assert wrong_user.status == "failed" and "authentication failed for user 'nobody'" in wrong_user.message


def test_tls_with_the_ca_and_a_client_certificate(tmp_path, secure_redis, certs):
    settings = _redis(tmp_path, secure_redis, **_tls(secure_redis, certs, host="localhost"))
    check = check_redis(make_target(tmp_path, {"redis": settings}))
    assert check.status == "ok", check.message


def test_tls_failures_name_the_setting_to_check(tmp_path, secure_redis, certs):
    def message(**over):
        settings = _redis(tmp_path, secure_redis, **{**_tls(secure_redis, certs, host="localhost"), **over})
        check = check_redis(make_target(tmp_path / str(len(over)) / next(iter(over or {"x": 0})), {"redis": settings}))
        assert check.status == "failed"
        return check.message

    assert "TLS failed" in message(tls_ca_file=certs["other-ca.crt"]) and "CERTIFICATE_VERIFY_FAILED" in message(
        tls_ca_file=certs["other-ca.crt"])
    # the certificate names localhost, not 127.0.0.1; without the name check the chain still counts
    assert "TLS failed" in message(host="127.0.0.1")
    settings = _redis(tmp_path, secure_redis, **_tls(secure_redis, certs, host="127.0.0.1", tls_check_hostname=False))
    assert check_redis(make_target(tmp_path / "nohost", {"redis": settings})).status == "ok"
    plain = check_redis(make_target(tmp_path / "plain", {"redis": _redis(tmp_path, secure_redis, port=secure_redis.tls_port)}))
    assert plain.status == "failed" and "redis.tls" in plain.message, plain.message


def test_missing_tls_files_and_tls_files_without_tls_are_config_errors(tmp_path, secure_redis, certs):
    with pytest.raises(ConfigError, match="redis.tls_ca_file"):
        with open_redis(make_target(tmp_path / "a", {"redis": _redis(tmp_path, secure_redis, **_tls(
                secure_redis, certs, tls_ca_file=str(tmp_path / "missing.crt")))})):
            pass
    with pytest.raises(ConfigError, match="tls_ca_file set but tls is false"):
        make_target(tmp_path / "b", {"redis": {"tls_ca_file": certs["ca.crt"]}})


# -------------------------------------------------------------------------- remote: SSH tunnel
def test_through_the_ssh_tunnel_health_passes_and_the_tunnel_is_closed_after(tmp_path, sshd, redis_factory):
    server = redis_factory("tunnel", password=PASSWORD)
    target = _remote(tmp_path, sshd, _redis(tmp_path, server))
    try:
        with open_redis(target) as client:
            address, port = client.connection._sock.getpeername()
            assert address == "127.0.0.1" and port != server.port  # the tunnel's end, not Redis itself
            assert port_listening(port) and tunnel_threads()
            assert client.info("persistence")["rdb_last_bgsave_status"] == "ok"
            assert _wait_clients(server, 1) == 1
        assert not port_listening(port), "the tunnel's listener outlived the block"
        assert not tunnel_threads(), "a tunnel thread outlived the block"
        assert _wait_clients(server, 0) == 0, "the forwarded connection to Redis stayed open"
        check = check_redis(target)
        assert check.status == "ok" and check.message.startswith("PONG"), check.message
    finally:
        target.close()


def test_the_tunnel_closes_when_the_block_raises(tmp_path, sshd, redis_factory):
    server = redis_factory("tunnel-raise")
    target = _remote(tmp_path, sshd, _redis(tmp_path, server, password=None))
    try:
        with pytest.raises(RedisClientError, match="through SSH"):
            with open_redis(target) as client:
                port = client.connection._sock.getpeername()[1]
                client.execute_command("NO-SUCH-COMMAND")
        assert not port_listening(port) and not tunnel_threads()
        assert _wait_clients(server, 0) == 0
    finally:
        target.close()


def test_tls_through_the_tunnel_checks_the_hosts_name_not_the_tunnels(tmp_path, sshd, secure_redis, certs):
    target = _remote(tmp_path / "a", sshd, _redis(tmp_path, secure_redis, **_tls(secure_redis, certs, host="localhost")))
    wrong_name = _remote(tmp_path / "b", sshd, _redis(tmp_path, secure_redis, **_tls(secure_redis, certs, host="127.0.0.1")))
    try:
        check = check_redis(target)
        assert check.status == "ok", check.message
        for _ in range(3):  # the tunnel thread sees a socket reset after the failed handshake ~85% of the time
            mismatch = check_redis(wrong_name)  # the TLS error, not that reset
            assert mismatch.status == "failed" and "(through SSH): TLS failed" in mismatch.message, mismatch.message
            assert "IP address mismatch" in mismatch.message
        assert not tunnel_threads()
    finally:
        target.close()
        wrong_name.close()


def test_a_service_down_on_the_host_is_one_tunnel_error_and_nothing_is_left_open(tmp_path, sshd):
    dead = free_port()
    target = _remote(tmp_path, sshd, {"port": dead})
    try:
        t0 = time.monotonic()
        check = check_redis(target)
        assert check.status == "failed" and f"redis at 127.0.0.1:{dead} (through SSH): connection refused" in check.message
        assert time.monotonic() - t0 < 3, "a refused port must not wait for a timeout"
        with pytest.raises(TunnelError, match="h2: chroma at 127.0.0.1"):
            with open_tunnel(target, "127.0.0.1", dead, what="chroma"):
                pass
        assert not tunnel_threads()
    finally:
        target.close()


def test_tls_without_the_client_certificate_the_server_requires(tmp_path, secure_redis, certs):
    settings = _redis(tmp_path, secure_redis, **_tls(secure_redis, certs, host="localhost"))
    del settings["tls_cert_file"], settings["tls_key_file"]
    check = check_redis(make_target(tmp_path, {"redis": settings}))
    assert check.status == "failed" and "redis.tls_cert_file" in check.message, check.message


# ------------------------------------------------------------- the throwaway server's client
def test_open_throwaway_waits_for_a_late_server_and_stops_at_once_when_check_says_it_died(tmp_path):
    from ragops.errors import StepError
    from ragops.redis_client import open_throwaway

    target = make_target(tmp_path)
    port, password = free_port(), "throwaway-Pw"
    (tmp_path / "t.conf").write_text(f"requirepass {password}\n")
    proc: list[subprocess.Popen] = []
    timer = threading.Timer(0.5, lambda: proc.append(subprocess.Popen(
        ["redis-server", str(tmp_path / "t.conf"), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)))
    t0 = time.monotonic()
    timer.start()
    try:
        with open_throwaway(target, port, password, wait_s=20) as client:
            assert client.execute_command("PING") == b"PONG" and time.monotonic() - t0 >= 0.5
        with pytest.raises(RedisClientError, match="authentication failed"):  # a wrong password is not waited out
            with open_throwaway(target, port, "wrong", wait_s=20):
                pass
        assert time.monotonic() - t0 < 10
    finally:
        timer.join()
        for p in proc:
            p.kill()
            p.wait()
    calls: list[int] = []

    def died() -> None:
        calls.append(1)
        if len(calls) >= 3:
            raise StepError("local: the throwaway redis-server exited")

    t0 = time.monotonic()
    with pytest.raises(StepError, match="exited"):
        with open_throwaway(target, free_port(), password, wait_s=60, check=died):
            pass
    assert len(calls) == 3 and time.monotonic() - t0 < 3, "a dead server must not cost wait_s"
    with pytest.raises(RedisClientError, match="connection refused"):  # no wait: one attempt
        with open_throwaway(target, free_port(), password):
            pass
