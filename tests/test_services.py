"""The shared service fixtures work: real sshd (Fabric, restic sftp), redis-server, SeaweedFS S3."""

from __future__ import annotations

import shutil
import subprocess
import uuid

import pytest


def _fabric_connection(sshd, address):
    import fabric
    import paramiko

    conn = fabric.Connection(address, port=sshd.port, user="root",
                             connect_kwargs={"key_filename": sshd.key_file, "look_for_keys": False,
                                             "allow_agent": False})
    conn.client.load_host_keys(sshd.known_hosts)
    conn.client.set_missing_host_key_policy(paramiko.RejectPolicy())
    return conn


@pytest.mark.parametrize("address", ["127.0.0.2", "127.0.0.5"])
def test_sshd_fabric_on_distinct_addresses(sshd, address):
    assert address in sshd.addresses
    with _fabric_connection(sshd, address) as conn:
        result = conn.run("echo ok-$(id -un) $SSH_CONNECTION", hide=True, in_stream=False)
    words = result.stdout.split()
    assert words[0] == "ok-root"
    assert words[3:5] == [address, str(sshd.port)]  # server address/port as seen by sshd


def test_sshd_rejects_unknown_host_key(sshd, tmp_path):
    import fabric
    import paramiko

    conn = fabric.Connection(sshd.addresses[0], port=sshd.port, user="root",
                             connect_kwargs={"key_filename": sshd.key_file, "look_for_keys": False})
    conn.client.set_missing_host_key_policy(paramiko.RejectPolicy())  # empty known hosts
    with pytest.raises(paramiko.SSHException):
        conn.open()
    conn.close()


def test_sshd_openssh_client_and_config(sshd):
    for target in ("127.0.0.3", "h4"):
        out = subprocess.run([*sshd.ssh_argv(target), "echo", "$SSH_CONNECTION"], check=True,
                             capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
        assert out.stdout.split()[2] == ("127.0.0.4" if target == "h4" else target)
    assert sshd.host_key_pub.startswith("ssh-ed25519 AAAA")
    lines = open(sshd.known_hosts).read().splitlines()
    assert lines == [f"[{a}]:{sshd.port} {sshd.host_key_pub}" for a in sshd.addresses]


def test_sshd_fabric_threading_group(sshd):
    from fabric import ThreadingGroup

    hosts = sshd.addresses[:3]
    group = ThreadingGroup(*hosts, port=sshd.port, user="root", connect_kwargs=sshd.connect_kwargs())
    for conn in group:
        conn.client.load_host_keys(sshd.known_hosts)
    try:
        results = group.run("hostname", hide=True, in_stream=False)
    finally:
        group.close()
    assert sorted(c.host for c in results) == sorted(hosts)
    assert all(r.ok for r in results.values())


@pytest.mark.skipif(shutil.which("restic") is None, reason="restic not installed")
def test_sshd_restic_sftp(sshd, tmp_path):
    repo_dir = sshd.dir / f"restic-{uuid.uuid4().hex[:6]}"
    pw = tmp_path / "pw"
    pw.write_text("test-password\n")
    env = {"PATH": "/usr/bin:/bin", "RESTIC_CACHE_DIR": str(tmp_path / "cache")}
    out = subprocess.run(["restic", "-r", f"sftp:{sshd.addresses[1]}:{repo_dir}", "--password-file", str(pw),
                          "-o", f"sftp.command={sshd.sftp_command(sshd.addresses[1])}", "init"],
                         capture_output=True, text=True, timeout=120, env=env, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr
    assert (repo_dir / "config").is_file()


def test_redis_ping_set_get(redis_server):
    client = redis_server.client()
    assert client.ping() is True
    client.set("ragops:test", "value")
    assert client.get("ragops:test") == b"value"
    assert redis_server.dir.is_dir() and redis_server.password is None
    client.close()


def test_redis_password_refuses_unauthenticated(redis_factory):
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    secret = "pw-" + uuid.uuid4().hex
    server = redis_factory("auth", password=secret, appendonly=True)
    assert server.client().ping() is True
    # redis-py retries AuthenticationError (a ConnectionError) with backoff: ~4.5 s per failure.
    no_retry = Retry(NoBackoff(), 0)
    anon = server.client(password=None, protocol=2, retry=no_retry)
    with pytest.raises(redis.exceptions.AuthenticationError, match="Authentication required"):
        anon.set("k", "v")
    with pytest.raises(redis.exceptions.AuthenticationError):
        server.client(password="wrong", retry=no_retry).ping()
    ps = subprocess.run(["ps", "-eo", "args"], check=True, capture_output=True, text=True).stdout
    assert secret not in ps
    assert (server.conf_file.stat().st_mode & 0o777) == 0o600
    assert server.client().config_get("appendonly") == {"appendonly": "yes"}
    server.stop()


@pytest.mark.slow
def test_s3_bucket_put_get(s3_server):
    s3 = s3_server.client()
    bucket = "ragops-" + uuid.uuid4().hex[:8]
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="dir/hello.txt", Body=b"hello s3")
    assert s3.get_object(Bucket=bucket, Key="dir/hello.txt")["Body"].read() == b"hello s3"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["dir/hello.txt"]


@pytest.mark.slow
def test_s3_enforces_auth(s3_server):
    import boto3
    import botocore.exceptions
    from botocore.config import Config

    bad = boto3.client("s3", endpoint_url=s3_server.endpoint, aws_access_key_id=s3_server.access_key,
                       aws_secret_access_key="wrong", region_name=s3_server.region,
                       config=Config(retries={"max_attempts": 1}))
    with pytest.raises(botocore.exceptions.ClientError):
        bad.list_buckets()
